//! Parsing of the standard `OTEL_*` environment variables into an [`SdkConfig`].

use std::time::Duration;

use opentelemetry::KeyValue;

/// A configuration value that cannot be used. The message names the variable and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The variable (or builder setting) at fault.
    pub variable: String,
    /// The value it had.
    pub value: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn new(variable: &str, value: &str, reason: impl Into<String>) -> Self {
        Self {
            variable: variable.to_owned(),
            value: value.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where a signal is exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exporter {
    /// OTLP, over the protocol configured for the signal.
    Otlp,
    /// Human-readable output on stdout.
    Console,
    /// A Prometheus scrape endpoint (metrics only), see [`super::PrometheusHandle`].
    Prometheus,
}

/// OTLP transport (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// `grpc`
    Grpc,
    /// `http/protobuf` (the default)
    HttpProtobuf,
    /// `http/json`
    HttpJson,
}

/// OTLP payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OtlpCompression {
    /// `gzip`
    Gzip,
}

/// The three signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Spans.
    Traces,
    /// Metrics.
    Metrics,
    /// Log records.
    Logs,
}

impl Signal {
    /// `traces`, `metrics` or `logs`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
        }
    }

    fn env_infix(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Signal::Traces => "v1/traces",
            Signal::Metrics => "v1/metrics",
            Signal::Logs => "v1/logs",
        }
    }
}

/// OTLP settings of one signal, after applying the signal-specific and generic variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpConfig {
    /// The full endpoint URL (for HTTP including the `/v1/<signal>` path).
    pub endpoint: String,
    /// Transport.
    pub protocol: OtlpProtocol,
    /// Extra headers (gRPC metadata) sent with every export.
    pub headers: Vec<(String, String)>,
    /// Payload compression.
    pub compression: Option<OtlpCompression>,
    /// Export timeout: one export, including its retries, ends within it.
    pub timeout: Duration,
    /// TLS material: a custom CA and an mTLS client identity (used with `https://` endpoints).
    pub tls: TlsFiles,
}

/// Where a PEM document comes from: a file named by a variable (read and checked when the SDK is
/// built, so a bad path is an error naming the variable) or bytes handed in code.
#[derive(Clone, PartialEq, Eq)]
pub enum PemSource {
    /// A file, with the variable (or builder setting) that named it.
    File {
        /// `OTEL_EXPORTER_OTLP_CERTIFICATE` etc.
        variable: String,
        /// The path as given.
        path: std::path::PathBuf,
    },
    /// PEM bytes given in code.
    Pem(Vec<u8>),
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never print key material.
            PemSource::File { variable, path } => write!(f, "{variable}={}", path.display()),
            PemSource::Pem(b) => write!(f, "<{} PEM bytes>", b.len()),
        }
    }
}

/// The TLS settings of one signal (`OTEL_EXPORTER_OTLP_CERTIFICATE`,
/// `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` and their per-signal
/// forms). Without a CA, servers are verified against the built-in trust roots (see the module
/// docs); with one, only that CA is trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// CA certificate(s) that sign the collector's certificate.
    pub certificate: Option<PemSource>,
    /// Client certificate chain for mTLS.
    pub client_certificate: Option<PemSource>,
    /// Client private key for mTLS.
    pub client_key: Option<PemSource>,
}

/// Batching and concurrency of one signal's export pipeline (`OTEL_BSP_*` for spans,
/// `OTEL_BLRP_*` for log records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchConfig {
    /// Items held while waiting for export; past it new items are dropped and counted
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048).
    pub max_queue_size: usize,
    /// Items per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512).
    pub max_export_batch_size: usize,
    /// Longest wait before a partial batch is sent (`OTEL_BSP_SCHEDULE_DELAY`, default 5 s for
    /// spans, 1 s for logs).
    pub scheduled_delay: Duration,
    /// Export requests in flight at once, each on its own thread started when needed (`OTEL_BSP_MAX_CONCURRENT_EXPORTS`, default 8; logs:
    /// `OTEL_BLRP_MAX_CONCURRENT_EXPORTS`, an otelrs-core variable). Delivery grows with it when
    /// the collector is milliseconds away.
    pub max_concurrent_exports: usize,
    /// Longest one export may take, retries included (`OTEL_BSP_EXPORT_TIMEOUT`, default 30 s;
    /// the OTLP timeout applies too, whichever is shorter).
    pub export_timeout: Duration,
}

impl BatchConfig {
    /// The span defaults.
    pub const fn spans() -> Self {
        Self {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            max_concurrent_exports: 8,
            export_timeout: Duration::from_secs(30),
        }
    }

    /// The log record defaults.
    pub const fn logs() -> Self {
        Self {
            scheduled_delay: Duration::from_secs(1),
            ..Self::spans()
        }
    }

    /// Sets [`BatchConfig::max_queue_size`].
    pub fn with_max_queue_size(mut self, n: usize) -> Self {
        self.max_queue_size = n;
        self
    }

    /// Sets [`BatchConfig::max_export_batch_size`].
    pub fn with_max_export_batch_size(mut self, n: usize) -> Self {
        self.max_export_batch_size = n;
        self
    }

    /// Sets [`BatchConfig::scheduled_delay`].
    pub fn with_scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = delay;
        self
    }

    /// Sets [`BatchConfig::max_concurrent_exports`].
    pub fn with_max_concurrent_exports(mut self, n: usize) -> Self {
        self.max_concurrent_exports = n;
        self
    }

    /// Sets [`BatchConfig::export_timeout`].
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self
    }

    /// Checks the values; `setting` names the variable prefix or builder call in the error.
    pub(crate) fn validate(&self, setting: &str) -> Result<(), ConfigError> {
        let bad = |what: &str, v: String, why: &str| Err(ConfigError::new(&format!("{setting}{what}"), &v, why));
        if self.max_queue_size == 0 {
            return bad("MAX_QUEUE_SIZE", "0".into(), "must be at least 1");
        }
        if self.max_export_batch_size == 0 || self.max_export_batch_size > self.max_queue_size {
            return bad(
                "MAX_EXPORT_BATCH_SIZE",
                self.max_export_batch_size.to_string(),
                "must be between 1 and the queue size",
            );
        }
        if self.max_concurrent_exports == 0 || self.max_concurrent_exports > 256 {
            return bad(
                "MAX_CONCURRENT_EXPORTS",
                self.max_concurrent_exports.to_string(),
                "must be between 1 and 256",
            );
        }
        if self.scheduled_delay.is_zero() {
            return bad("SCHEDULE_DELAY", "0".into(), "must be greater than zero");
        }
        if self.export_timeout.is_zero() {
            return bad("EXPORT_TIMEOUT", "0".into(), "must be greater than zero");
        }
        Ok(())
    }
}

/// The trace sampler (`OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerConfig {
    /// `always_on`
    AlwaysOn,
    /// `always_off`
    AlwaysOff,
    /// `traceidratio`
    TraceIdRatio(f64),
    /// `parentbased_always_on` (the default)
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`
    ParentBasedTraceIdRatio(f64),
}

impl SamplerConfig {
    /// The SDK sampler this configuration names.
    pub fn to_sampler(self) -> opentelemetry_sdk::trace::Sampler {
        use opentelemetry_sdk::trace::Sampler;
        match self {
            SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
            SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
            SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
            SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            SamplerConfig::ParentBasedTraceIdRatio(r) => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r))),
        }
    }
}

/// A propagator named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagatorKind {
    /// `tracecontext`: the strict W3C Trace Context propagator.
    TraceContext,
    /// `baggage`: W3C Baggage.
    Baggage,
}

/// Everything the SDK setup reads from the environment. Build it with [`SdkConfig::from_env`] (or
/// [`SdkConfig::from_lookup`] in tests), or start from [`SdkConfig::default`].
#[derive(Clone, Debug, PartialEq)]
pub struct SdkConfig {
    /// `OTEL_SDK_DISABLED=true`: install nothing; every instrumentation becomes a no-op.
    pub disabled: bool,
    /// `OTEL_SERVICE_NAME` (takes precedence over `service.name` in the resource attributes).
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: Vec<KeyValue>,
    /// `OTEL_TRACES_EXPORTER` (default `otlp`; `none` gives an empty list).
    pub traces_exporters: Vec<Exporter>,
    /// `OTEL_METRICS_EXPORTER` (default `otlp`).
    pub metrics_exporters: Vec<Exporter>,
    /// `OTEL_LOGS_EXPORTER` (default `otlp`).
    pub logs_exporters: Vec<Exporter>,
    /// OTLP settings for traces.
    pub otlp_traces: OtlpConfig,
    /// OTLP settings for metrics.
    pub otlp_metrics: OtlpConfig,
    /// OTLP settings for logs.
    pub otlp_logs: OtlpConfig,
    /// The sampler.
    pub sampler: SamplerConfig,
    /// `OTEL_PROPAGATORS` (default `tracecontext,baggage`; `none` gives an empty list).
    pub propagators: Vec<PropagatorKind>,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default 60000).
    pub metric_export_interval: Duration,
    /// The span pipeline (`OTEL_BSP_*`).
    pub span_batch: BatchConfig,
    /// The log record pipeline (`OTEL_BLRP_*`).
    pub log_batch: BatchConfig,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for SdkConfig {
    fn default() -> Self {
        let otlp = |signal| OtlpConfig {
            endpoint: default_endpoint(OtlpProtocol::HttpProtobuf, signal),
            protocol: OtlpProtocol::HttpProtobuf,
            headers: Vec::new(),
            compression: None,
            timeout: DEFAULT_TIMEOUT,
            tls: TlsFiles::default(),
        };
        Self {
            disabled: false,
            service_name: None,
            resource_attributes: Vec::new(),
            traces_exporters: vec![Exporter::Otlp],
            metrics_exporters: vec![Exporter::Otlp],
            logs_exporters: vec![Exporter::Otlp],
            otlp_traces: otlp(Signal::Traces),
            otlp_metrics: otlp(Signal::Metrics),
            otlp_logs: otlp(Signal::Logs),
            sampler: SamplerConfig::ParentBasedAlwaysOn,
            propagators: vec![PropagatorKind::TraceContext, PropagatorKind::Baggage],
            metric_export_interval: Duration::from_secs(60),
            span_batch: BatchConfig::spans(),
            log_batch: BatchConfig::logs(),
        }
    }
}

fn default_endpoint(protocol: OtlpProtocol, signal: Signal) -> String {
    match protocol {
        OtlpProtocol::Grpc => "http://localhost:4317".to_owned(),
        _ => format!("http://localhost:4318/{}", signal.http_path()),
    }
}

impl SdkConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `lookup` (so tests need not touch the process environment).
    /// Empty values count as unset, as the specification asks.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut c = SdkConfig::default();

        if let Some(v) = get("OTEL_SDK_DISABLED") {
            c.disabled = parse_bool("OTEL_SDK_DISABLED", &v)?;
        }
        c.service_name = get("OTEL_SERVICE_NAME");
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            c.resource_attributes = parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &v)?
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect();
        }
        if let Some(v) = get("OTEL_TRACES_EXPORTER") {
            c.traces_exporters = parse_exporters("OTEL_TRACES_EXPORTER", &v, false)?;
        }
        if let Some(v) = get("OTEL_METRICS_EXPORTER") {
            c.metrics_exporters = parse_exporters("OTEL_METRICS_EXPORTER", &v, true)?;
        }
        if let Some(v) = get("OTEL_LOGS_EXPORTER") {
            c.logs_exporters = parse_exporters("OTEL_LOGS_EXPORTER", &v, false)?;
        }
        c.otlp_traces = otlp_config(&get, Signal::Traces)?;
        c.otlp_metrics = otlp_config(&get, Signal::Metrics)?;
        c.otlp_logs = otlp_config(&get, Signal::Logs)?;
        c.sampler = parse_sampler(
            get("OTEL_TRACES_SAMPLER").as_deref(),
            get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )?;
        if let Some(v) = get("OTEL_PROPAGATORS") {
            c.propagators = parse_propagators(&v)?;
        }
        if let Some(v) = get("OTEL_METRIC_EXPORT_INTERVAL") {
            let ms = parse_millis("OTEL_METRIC_EXPORT_INTERVAL", &v)?;
            if ms.is_zero() {
                return Err(ConfigError::new(
                    "OTEL_METRIC_EXPORT_INTERVAL",
                    &v,
                    "must be greater than zero",
                ));
            }
            c.metric_export_interval = ms;
        }
        c.span_batch = batch_config(&get, "OTEL_BSP_", BatchConfig::spans())?;
        c.log_batch = batch_config(&get, "OTEL_BLRP_", BatchConfig::logs())?;
        Ok(c)
    }
}

fn batch_config(
    get: &impl Fn(&str) -> Option<String>,
    prefix: &str,
    mut b: BatchConfig,
) -> Result<BatchConfig, ConfigError> {
    let count = |suffix: &str| -> Result<Option<usize>, ConfigError> {
        let var = format!("{prefix}{suffix}");
        match get(&var) {
            None => Ok(None),
            Some(v) => v
                .parse::<usize>()
                .map(Some)
                .map_err(|_| ConfigError::new(&var, &v, "expected a whole number")),
        }
    };
    let millis = |suffix: &str| -> Result<Option<Duration>, ConfigError> {
        let var = format!("{prefix}{suffix}");
        get(&var).map(|v| parse_millis(&var, &v)).transpose()
    };
    if let Some(n) = count("MAX_QUEUE_SIZE")? {
        b.max_queue_size = n;
    }
    if let Some(n) = count("MAX_EXPORT_BATCH_SIZE")? {
        b.max_export_batch_size = n;
    }
    if let Some(n) = count("MAX_CONCURRENT_EXPORTS")? {
        b.max_concurrent_exports = n;
    }
    if let Some(d) = millis("SCHEDULE_DELAY")? {
        b.scheduled_delay = d;
    }
    if let Some(d) = millis("EXPORT_TIMEOUT")? {
        b.export_timeout = d;
    }
    b.validate(prefix)?;
    Ok(b)
}

fn parse_bool(var: &str, v: &str) -> Result<bool, ConfigError> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ConfigError::new(var, v, "expected true or false"))
    }
}

fn parse_millis(var: &str, v: &str) -> Result<Duration, ConfigError> {
    v.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::new(var, v, "expected a whole number of milliseconds"))
}

/// `key1=value1,key2=value2`, values percent-decoded (W3C Baggage octet rules).
pub(crate) fn parse_key_values(var: &str, v: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, val)) = item.split_once('=') else {
            return Err(ConfigError::new(var, v, format!("entry {item:?} is not key=value")));
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(ConfigError::new(var, v, format!("entry {item:?} has an empty key")));
        }
        let val = percent_decode(val.trim())
            .ok_or_else(|| ConfigError::new(var, v, format!("entry {item:?} has a malformed percent-encoding")))?;
        out.push((k.to_owned(), val));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_exporters(var: &str, v: &str, metrics: bool) -> Result<Vec<Exporter>, ConfigError> {
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let e = match name {
            "none" => {
                if v.split(',').map(str::trim).any(|n| !n.is_empty() && n != "none") {
                    return Err(ConfigError::new(var, v, "none cannot be combined with other exporters"));
                }
                return Ok(Vec::new());
            }
            "otlp" => Exporter::Otlp,
            "console" => Exporter::Console,
            "prometheus" if metrics => Exporter::Prometheus,
            _ => {
                let accepted = if metrics {
                    "otlp, console, prometheus or none"
                } else {
                    "otlp, console or none"
                };
                return Err(ConfigError::new(
                    var,
                    v,
                    format!("unsupported exporter {name:?}; expected {accepted}"),
                ));
            }
        };
        if !out.contains(&e) {
            out.push(e);
        }
    }
    Ok(out)
}

fn parse_protocol(var: &str, v: &str) -> Result<OtlpProtocol, ConfigError> {
    match v {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Ok(OtlpProtocol::HttpJson),
        _ => Err(ConfigError::new(var, v, "expected grpc, http/protobuf or http/json")),
    }
}

fn parse_compression(var: &str, v: &str) -> Result<Option<OtlpCompression>, ConfigError> {
    match v {
        "gzip" => Ok(Some(OtlpCompression::Gzip)),
        "none" => Ok(None),
        _ => Err(ConfigError::new(var, v, "expected gzip or none")),
    }
}

fn check_url(var: &str, v: &str) -> Result<(), ConfigError> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .ok_or_else(|| ConfigError::new(var, v, "expected an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || http::uri::Authority::try_from(host).is_err() {
        return Err(ConfigError::new(var, v, "the URL has no valid host"));
    }
    Ok(())
}

fn otlp_config(get: &impl Fn(&str) -> Option<String>, signal: Signal) -> Result<OtlpConfig, ConfigError> {
    let s = signal.env_infix();
    let specific = |suffix: &str| {
        let var = format!("OTEL_EXPORTER_OTLP_{s}_{suffix}");
        get(&var).map(|v| (var, v))
    };
    let generic = |suffix: &str| {
        let var = format!("OTEL_EXPORTER_OTLP_{suffix}");
        get(&var).map(|v| (var, v))
    };
    let either = |suffix: &str| specific(suffix).or_else(|| generic(suffix));

    let protocol = match either("PROTOCOL") {
        Some((var, v)) => parse_protocol(&var, &v)?,
        None => OtlpProtocol::HttpProtobuf,
    };
    let insecure = match either("INSECURE") {
        Some((var, v)) => parse_bool(&var, &v)?,
        None => false,
    };
    // gRPC only: an endpoint without a scheme is https unless INSECURE says otherwise (spec).
    let with_scheme = |v: String| {
        if protocol == OtlpProtocol::Grpc && !v.contains("://") {
            format!("{}://{v}", if insecure { "http" } else { "https" })
        } else {
            v
        }
    };
    let endpoint = if let Some((var, v)) = specific("ENDPOINT") {
        // Signal-specific endpoints are used verbatim.
        let v = with_scheme(v);
        check_url(&var, &v)?;
        v
    } else if let Some((var, v)) = generic("ENDPOINT") {
        let v = with_scheme(v);
        check_url(&var, &v)?;
        match protocol {
            OtlpProtocol::Grpc => v,
            _ => format!("{}/{}", v.trim_end_matches('/'), signal.http_path()),
        }
    } else {
        default_endpoint(protocol, signal)
    };
    let mut headers = Vec::new();
    // Generic headers first, then signal-specific ones override keys they repeat.
    for found in [generic("HEADERS"), specific("HEADERS")].into_iter().flatten() {
        let (var, v) = found;
        for (k, val) in parse_key_values(&var, &v)? {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                return Err(ConfigError::new(&var, &v, format!("{k:?} is not a valid header name")));
            }
            if http::HeaderValue::from_str(&val).is_err() {
                return Err(ConfigError::new(
                    &var,
                    &v,
                    format!("the value of {k:?} is not a valid header value"),
                ));
            }
            headers.retain(|(existing, _): &(String, String)| !existing.eq_ignore_ascii_case(&k));
            headers.push((k.to_ascii_lowercase(), val));
        }
    }
    let compression = match either("COMPRESSION") {
        Some((var, v)) => parse_compression(&var, &v)?,
        None => None,
    };
    let timeout = match either("TIMEOUT") {
        Some((var, v)) => parse_millis(&var, &v)?,
        None => DEFAULT_TIMEOUT,
    };
    let file = |suffix: &str| {
        either(suffix).map(|(variable, path)| PemSource::File {
            variable,
            path: path.into(),
        })
    };
    let tls = TlsFiles {
        certificate: file("CERTIFICATE"),
        client_certificate: file("CLIENT_CERTIFICATE"),
        client_key: file("CLIENT_KEY"),
    };
    Ok(OtlpConfig {
        endpoint,
        protocol,
        headers,
        compression,
        timeout,
        tls,
    })
}

fn parse_ratio(arg: Option<&str>) -> Result<f64, ConfigError> {
    match arg {
        None => Ok(1.0),
        Some(v) => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
            _ => Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER_ARG",
                v,
                "expected a sampling ratio between 0.0 and 1.0",
            )),
        },
    }
}

fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<SamplerConfig, ConfigError> {
    Ok(match name.unwrap_or("parentbased_always_on") {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(parse_ratio(arg)?),
        "parentbased_always_on" => SamplerConfig::ParentBasedAlwaysOn,
        "parentbased_always_off" => SamplerConfig::ParentBasedAlwaysOff,
        "parentbased_traceidratio" => SamplerConfig::ParentBasedTraceIdRatio(parse_ratio(arg)?),
        other => {
            return Err(ConfigError::new(
                "OTEL_TRACES_SAMPLER",
                other,
                "expected always_on, always_off, traceidratio, parentbased_always_on, \
                 parentbased_always_off or parentbased_traceidratio",
            ))
        }
    })
}

fn parse_propagators(v: &str) -> Result<Vec<PropagatorKind>, ConfigError> {
    let mut out = Vec::new();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p = match name {
            "none" => return Ok(Vec::new()),
            "tracecontext" => PropagatorKind::TraceContext,
            "baggage" => PropagatorKind::Baggage,
            _ => {
                return Err(ConfigError::new(
                    "OTEL_PROPAGATORS",
                    v,
                    format!("unsupported propagator {name:?}; expected tracecontext, baggage or none"),
                ))
            }
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<SdkConfig, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        SdkConfig::from_lookup(|k| map.get(k).cloned())
    }

    fn err(vars: &[(&str, &str)]) -> ConfigError {
        cfg(vars).expect_err("configuration must be rejected")
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c, SdkConfig::default());
        assert!(!c.disabled);
        assert_eq!(c.traces_exporters, vec![Exporter::Otlp]);
        assert_eq!(c.otlp_traces.endpoint, "http://localhost:4318/v1/traces");
        assert_eq!(c.otlp_metrics.endpoint, "http://localhost:4318/v1/metrics");
        assert_eq!(c.otlp_logs.endpoint, "http://localhost:4318/v1/logs");
        assert_eq!(c.otlp_traces.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.otlp_traces.timeout, Duration::from_secs(10));
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(
            c.propagators,
            vec![PropagatorKind::TraceContext, PropagatorKind::Baggage]
        );
    }

    #[test]
    fn good_values() {
        let c = cfg(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=prod, team=a%20b,",
            ),
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_LOGS_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://metrics.example/custom"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20x,x-tenant=a"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=b"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_PROPAGATORS", "tracecontext"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ])
        .unwrap();
        assert!(c.disabled);
        assert_eq!(c.service_name.as_deref(), Some("checkout"));
        assert_eq!(
            c.resource_attributes,
            vec![
                KeyValue::new("deployment.environment.name", "prod"),
                KeyValue::new("team", "a b")
            ]
        );
        assert_eq!(c.traces_exporters, vec![Exporter::Otlp, Exporter::Console]);
        assert_eq!(c.metrics_exporters, vec![Exporter::Prometheus]);
        assert!(c.logs_exporters.is_empty());
        assert_eq!(c.otlp_traces.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(c.otlp_metrics.endpoint, "https://metrics.example/custom");
        assert_eq!(c.otlp_logs.endpoint, "http://logs:4317");
        assert_eq!(c.otlp_logs.protocol, OtlpProtocol::Grpc);
        assert_eq!(
            c.otlp_traces.headers,
            vec![
                ("authorization".to_string(), "Bearer x".to_string()),
                ("x-tenant".to_string(), "b".to_string())
            ]
        );
        assert_eq!(c.otlp_metrics.headers[1], ("x-tenant".to_string(), "a".to_string()));
        assert_eq!(c.otlp_traces.compression, Some(OtlpCompression::Gzip));
        assert_eq!(c.otlp_logs.compression, None);
        assert_eq!(c.otlp_metrics.timeout, Duration::from_millis(2500));
        assert_eq!(c.sampler, SamplerConfig::ParentBasedTraceIdRatio(0.25));
        assert_eq!(c.propagators, vec![PropagatorKind::TraceContext]);
        assert_eq!(c.metric_export_interval, Duration::from_secs(5));
    }

    #[test]
    fn grpc_generic_endpoint_is_used_as_is() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.endpoint, "http://collector:4317");
        let c = cfg(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap();
        assert_eq!(c.otlp_metrics.endpoint, "http://localhost:4317");
    }

    #[test]
    fn grpc_endpoint_without_scheme_follows_insecure() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_LOGS_INSECURE", "true"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.endpoint, "https://collector:4317");
        assert_eq!(c.otlp_logs.endpoint, "http://collector:4317");
        // A scheme wins over INSECURE.
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4317"),
            ("OTEL_EXPORTER_OTLP_INSECURE", "true"),
        ])
        .unwrap();
        assert_eq!(c.otlp_traces.endpoint, "https://collector:4317");
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_INSECURE", "maybe")]).variable,
            "OTEL_EXPORTER_OTLP_INSECURE"
        );
    }

    #[test]
    fn tls_files_per_signal_win_over_generic() {
        let c = cfg(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem"),
            ("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/etc/metrics-ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem"),
            ("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/logs.key"),
        ])
        .unwrap();
        let file = |variable: &str, path: &str| {
            Some(PemSource::File {
                variable: variable.into(),
                path: path.into(),
            })
        };
        assert_eq!(
            c.otlp_traces.tls.certificate,
            file("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/ca.pem")
        );
        assert_eq!(
            c.otlp_metrics.tls.certificate,
            file("OTEL_EXPORTER_OTLP_METRICS_CERTIFICATE", "/etc/metrics-ca.pem")
        );
        assert_eq!(
            c.otlp_logs.tls.client_certificate,
            file("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/client.pem")
        );
        assert_eq!(
            c.otlp_logs.tls.client_key,
            file("OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY", "/etc/logs.key")
        );
        assert_eq!(c.otlp_traces.tls.client_key, None);
    }

    #[test]
    fn batch_variables() {
        let c = cfg(&[
            ("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "8"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8192"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1024"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "5000"),
            ("OTEL_BLRP_MAX_CONCURRENT_EXPORTS", "2"),
        ])
        .unwrap();
        assert_eq!(
            c.span_batch,
            BatchConfig::spans()
                .with_max_concurrent_exports(8)
                .with_max_queue_size(8192)
                .with_max_export_batch_size(1024)
                .with_scheduled_delay(Duration::from_millis(200))
                .with_export_timeout(Duration::from_secs(5))
        );
        assert_eq!(c.log_batch, BatchConfig::logs().with_max_concurrent_exports(2));
        assert_eq!(
            err(&[("OTEL_BSP_MAX_CONCURRENT_EXPORTS", "0")]).variable,
            "OTEL_BSP_MAX_CONCURRENT_EXPORTS"
        );
        assert_eq!(
            err(&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096")]).variable,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
        );
        assert_eq!(
            err(&[("OTEL_BLRP_SCHEDULE_DELAY", "soon")]).variable,
            "OTEL_BLRP_SCHEDULE_DELAY"
        );
    }

    #[test]
    fn empty_values_are_unset() {
        let c = cfg(&[("OTEL_TRACES_SAMPLER", ""), ("OTEL_SERVICE_NAME", "  ")]).unwrap();
        assert_eq!(c.sampler, SamplerConfig::ParentBasedAlwaysOn);
        assert_eq!(c.service_name, None);
    }

    #[test]
    fn traceidratio_default_arg() {
        assert_eq!(
            cfg(&[("OTEL_TRACES_SAMPLER", "traceidratio")]).unwrap().sampler,
            SamplerConfig::TraceIdRatio(1.0)
        );
    }

    #[test]
    fn bad_values_name_the_variable_and_value() {
        let e = err(&[("OTEL_TRACES_SAMPLER", "sometimes")]);
        assert_eq!(e.variable, "OTEL_TRACES_SAMPLER");
        assert_eq!(e.value, "sometimes");
        assert!(e
            .to_string()
            .starts_with("invalid OTEL_TRACES_SAMPLER=\"sometimes\": expected always_on"));

        let e = err(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ]);
        assert_eq!(
            (e.variable.as_str(), e.value.as_str()),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5")
        );
        let e = err(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "half"),
        ]);
        assert_eq!(e.variable, "OTEL_TRACES_SAMPLER_ARG");

        assert_eq!(err(&[("OTEL_SDK_DISABLED", "yes")]).variable, "OTEL_SDK_DISABLED");
        assert_eq!(
            err(&[("OTEL_TRACES_EXPORTER", "jaeger")]).variable,
            "OTEL_TRACES_EXPORTER"
        );
        assert_eq!(
            err(&[("OTEL_TRACES_EXPORTER", "prometheus")]).variable,
            "OTEL_TRACES_EXPORTER"
        );
        assert_eq!(
            err(&[("OTEL_LOGS_EXPORTER", "none,otlp")]).variable,
            "OTEL_LOGS_EXPORTER"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http")]).variable,
            "OTEL_EXPORTER_OTLP_PROTOCOL"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "thrift")]).variable,
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")]).variable,
            "OTEL_EXPORTER_OTLP_TIMEOUT"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")]).variable,
            "OTEL_EXPORTER_OTLP_COMPRESSION"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).variable,
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://")]).variable,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).variable,
            "OTEL_EXPORTER_OTLP_HEADERS"
        );
        assert_eq!(
            err(&[("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "bad header=x")]).variable,
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS"
        );
        assert_eq!(
            err(&[("OTEL_RESOURCE_ATTRIBUTES", "a=%zz")]).variable,
            "OTEL_RESOURCE_ATTRIBUTES"
        );
        assert_eq!(
            err(&[("OTEL_RESOURCE_ATTRIBUTES", "=x")]).variable,
            "OTEL_RESOURCE_ATTRIBUTES"
        );
        assert_eq!(err(&[("OTEL_PROPAGATORS", "b3")]).variable, "OTEL_PROPAGATORS");
        assert_eq!(
            err(&[("OTEL_METRIC_EXPORT_INTERVAL", "0")]).variable,
            "OTEL_METRIC_EXPORT_INTERVAL"
        );
    }
}
