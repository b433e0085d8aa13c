//! [`SdkBuilder`]: the configuration read from the environment, overridden in code, and the
//! construction of the three providers.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::logs::{LoggerProviderBuilder, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, ShouldSample, TracerProviderBuilder};
use opentelemetry_sdk::Resource;

use super::env::{
    BatchConfig, ConfigError, Exporter, OtlpCompression, OtlpProtocol, PemSource, PropagatorKind, SdkConfig, Signal,
};
use super::guard::{Inner, TelemetryGuard};
use super::health::{CountingSampler, ExportHealth};
use super::otlp::{self, OtlpParts};
use super::pipeline::{CountingMetricExporter, ExportContext, LogPipelines, SpanPipelines, Transport};
use super::prometheus::PrometheusHandle;
use super::propagator::{build_propagator, PropagatorSet};
use super::resource;
use super::retry::RetryPolicy;
use super::SdkError;

type AddToTracer = Box<dyn FnOnce(TracerProviderBuilder) -> TracerProviderBuilder + Send>;
type AddToMeter = Box<dyn FnOnce(MeterProviderBuilder, &ExportHealth) -> MeterProviderBuilder + Send>;
type AddToLogger = Box<dyn FnOnce(LoggerProviderBuilder) -> LoggerProviderBuilder + Send>;
type AddSpanPipeline = Box<dyn FnOnce(&mut SpanPipelines, &ExportHealth, BatchConfig) -> std::io::Result<()> + Send>;
type AddLogPipeline = Box<dyn FnOnce(&mut LogPipelines, &ExportHealth, BatchConfig) -> std::io::Result<()> + Send>;

/// Configures the SDK: starts from the environment (or defaults), overridden in code.
pub struct SdkBuilder {
    config: SdkConfig,
    service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    sampler: Option<Box<dyn ShouldSample>>,
    shutdown_timeout: Duration,
    tracing_subscriber: bool,
    retry: RetryPolicy,
    span_processors: Vec<AddToTracer>,
    span_exporters: Vec<AddSpanPipeline>,
    metric_readers: Vec<AddToMeter>,
    log_processors: Vec<AddToLogger>,
    log_exporters: Vec<AddLogPipeline>,
    #[cfg(feature = "tracing-bridge")]
    tracing_bridge: Option<super::TracingBridge>,
}

impl fmt::Debug for SdkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("SdkBuilder");
        f.field("config", &self.config)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("custom_sampler", &self.sampler.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("tracing_subscriber", &self.tracing_subscriber)
            .field("retry", &self.retry)
            .field("extra_span_processors", &self.span_processors.len())
            .field("extra_span_exporters", &self.span_exporters.len())
            .field("extra_metric_readers", &self.metric_readers.len())
            .field("extra_log_processors", &self.log_processors.len())
            .field("extra_log_exporters", &self.log_exporters.len());
        #[cfg(feature = "tracing-bridge")]
        f.field("tracing_bridge", &self.tracing_bridge);
        f.finish()
    }
}

impl SdkBuilder {
    /// Starts from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::from_config(SdkConfig::from_env()?))
    }

    /// Starts from an explicit configuration (e.g. [`SdkConfig::default`]).
    pub fn from_config(config: SdkConfig) -> Self {
        Self {
            config,
            service_name: None,
            resource_attributes: Vec::new(),
            sampler: None,
            shutdown_timeout: Duration::from_secs(5),
            tracing_subscriber: false,
            retry: RetryPolicy::default(),
            span_processors: Vec::new(),
            span_exporters: Vec::new(),
            metric_readers: Vec::new(),
            log_processors: Vec::new(),
            log_exporters: Vec::new(),
            #[cfg(feature = "tracing-bridge")]
            tracing_bridge: None,
        }
    }

    /// The configuration as read so far.
    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    /// Sets `service.name` (wins over `OTEL_SERVICE_NAME`).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Adds resource attributes (win over `OTEL_RESOURCE_ATTRIBUTES`).
    pub fn with_resource_attributes(mut self, attrs: impl IntoIterator<Item = KeyValue>) -> Self {
        self.resource_attributes.extend(attrs);
        self
    }

    /// Adds the attributes of a resource built elsewhere (e.g. by a cloud resource detector);
    /// they win over the detected ones and `OTEL_RESOURCE_ATTRIBUTES`, like
    /// [`SdkBuilder::with_resource_attributes`].
    pub fn with_resource(mut self, resource: Resource) -> Self {
        self.resource_attributes
            .extend(resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
        self
    }

    /// Enables or disables the whole SDK (`OTEL_SDK_DISABLED`).
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.config.disabled = disabled;
        self
    }

    /// Trace exporters (empty: traces off unless exporters or processors are added in code).
    pub fn with_traces_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.traces_exporters = exporters.into_iter().collect();
        self
    }

    /// Metric exporters (empty: metrics off unless exporters or readers are added in code).
    pub fn with_metrics_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.metrics_exporters = exporters.into_iter().collect();
        self
    }

    /// Log exporters (empty: logs off unless exporters or processors are added in code).
    pub fn with_logs_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.logs_exporters = exporters.into_iter().collect();
        self
    }

    fn otlp_configs(&mut self) -> [&mut super::OtlpConfig; 3] {
        [
            &mut self.config.otlp_traces,
            &mut self.config.otlp_metrics,
            &mut self.config.otlp_logs,
        ]
    }

    /// OTLP base endpoint for all signals (`/v1/<signal>` is appended for HTTP). `https://`
    /// turns TLS on.
    pub fn with_otlp_endpoint(mut self, base: impl AsRef<str>) -> Self {
        let base = base.as_ref().trim_end_matches('/');
        for (cfg, path) in self
            .otlp_configs()
            .into_iter()
            .zip(["v1/traces", "v1/metrics", "v1/logs"])
        {
            cfg.endpoint = match cfg.protocol {
                OtlpProtocol::Grpc => base.to_owned(),
                _ => format!("{base}/{path}"),
            };
        }
        self
    }

    /// OTLP transport for all signals. Call before [`SdkBuilder::with_otlp_endpoint`].
    pub fn with_otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        for cfg in self.otlp_configs() {
            cfg.protocol = protocol;
        }
        self
    }

    /// OTLP export timeout for all signals: one export, retries included, ends within it.
    pub fn with_otlp_timeout(mut self, timeout: Duration) -> Self {
        for cfg in self.otlp_configs() {
            cfg.timeout = timeout;
        }
        self
    }

    /// OTLP payload compression for all signals (`None`: uncompressed).
    pub fn with_otlp_compression(mut self, compression: Option<OtlpCompression>) -> Self {
        for cfg in self.otlp_configs() {
            cfg.compression = compression;
        }
        self
    }

    /// Adds a header (gRPC metadata) to every OTLP export, e.g. an API key or
    /// `authorization: Bearer ...`. Replaces a header of the same name from the environment.
    pub fn with_otlp_header(mut self, name: impl AsRef<str>, value: impl Into<String>) -> Self {
        let name = name.as_ref().to_ascii_lowercase();
        let value = value.into();
        for cfg in self.otlp_configs() {
            cfg.headers.retain(|(k, _)| *k != name);
            cfg.headers.push((name.clone(), value.clone()));
        }
        self
    }

    /// Trusts only this CA (PEM, one or more certificates) for the collector's certificate, for
    /// all signals (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub fn with_otlp_ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        let pem = pem.into();
        for cfg in self.otlp_configs() {
            cfg.tls.certificate = Some(PemSource::Pem(pem.clone()));
        }
        self
    }

    /// Presents this client certificate chain and key (PEM) to the collector: mTLS, for all
    /// signals (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` / `OTEL_EXPORTER_OTLP_CLIENT_KEY`).
    pub fn with_otlp_client_identity_pem(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        let (cert, key) = (cert_pem.into(), key_pem.into());
        for cfg in self.otlp_configs() {
            cfg.tls.client_certificate = Some(PemSource::Pem(cert.clone()));
            cfg.tls.client_key = Some(PemSource::Pem(key.clone()));
        }
        self
    }

    /// Batching and concurrency of the span pipeline (`OTEL_BSP_*`).
    pub fn with_span_batch(mut self, batch: BatchConfig) -> Self {
        self.config.span_batch = batch;
        self
    }

    /// Batching and concurrency of the log record pipeline (`OTEL_BLRP_*`).
    pub fn with_log_batch(mut self, batch: BatchConfig) -> Self {
        self.config.log_batch = batch;
        self
    }

    /// How failed OTLP exports are retried (default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses this sampler instead of `OTEL_TRACES_SAMPLER` (e.g. a
    /// [`crate::sampling::RateLimitingSampler`] inside `Sampler::ParentBased`).
    pub fn with_sampler(mut self, sampler: impl ShouldSample + 'static) -> Self {
        self.sampler = Some(Box::new(sampler));
        self
    }

    /// Propagators (`OTEL_PROPAGATORS`).
    pub fn with_propagators(mut self, propagators: impl IntoIterator<Item = PropagatorKind>) -> Self {
        self.config.propagators = propagators.into_iter().collect();
        self
    }

    /// Metric export interval (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub fn with_metric_export_interval(mut self, interval: Duration) -> Self {
        self.config.metric_export_interval = interval;
        self
    }

    /// How long [`TelemetryGuard::shutdown`] (and drop) waits for the final flush (default 5 s).
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Also installs a global `tracing` subscriber: a console formatter for `INFO` and above, plus
    /// the OpenTelemetry log bridge when logs are exported.
    pub fn with_tracing_subscriber(mut self, install: bool) -> Self {
        self.tracing_subscriber = install;
        self
    }

    /// Also installs, as the global `tracing` subscriber, `tracing` spans exported on the tracer
    /// provider (context activation on), the log bridge and a console formatter with trace ids,
    /// filtered by `RUST_LOG`: see [`TracingBridge`](super::TracingBridge). Replaces
    /// [`SdkBuilder::with_tracing_subscriber`]. Feature `tracing-bridge`.
    ///
    /// ```no_run
    /// use otelrs_core::sdk::{SdkBuilder, TracingBridge};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let telemetry = SdkBuilder::from_env()?.with_tracing_bridge(TracingBridge::default()).install()?;
    /// # telemetry.shutdown()?; Ok(()) }
    /// ```
    #[cfg(feature = "tracing-bridge")]
    #[cfg_attr(docsrs, doc(cfg(feature = "tracing-bridge")))]
    pub fn with_tracing_bridge(mut self, bridge: super::TracingBridge) -> Self {
        self.tracing_bridge = Some(bridge);
        self
    }

    /// Adds a span processor of your own to the tracer provider, next to the configured exporters.
    pub fn with_span_processor(mut self, processor: impl opentelemetry_sdk::trace::SpanProcessor + 'static) -> Self {
        self.span_processors
            .push(Box::new(move |b| b.with_span_processor(processor)));
        self
    }

    /// Adds a span exporter of your own, fed by its own batch pipeline (the span batch settings,
    /// counted in [`TelemetryGuard::export_stats`] as `custom_span_exporter`).
    pub fn with_span_exporter(mut self, exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static) -> Self {
        self.span_exporters.push(Box::new(move |pipelines, health, batch| {
            let context = custom_context(health, Signal::Traces, "custom_span_exporter");
            pipelines.add(batch, exporter, context)
        }));
        self
    }

    /// Adds a metric exporter of your own, read every metric export interval (counted as
    /// `custom_metric_exporter`).
    pub fn with_metric_exporter(
        mut self,
        exporter: impl opentelemetry_sdk::metrics::exporter::PushMetricExporter + 'static,
    ) -> Self {
        self.metric_readers.push(Box::new(move |b, health| {
            let context = custom_context(health, Signal::Metrics, "custom_metric_exporter");
            b.with_reader(
                PeriodicReader::builder(CountingMetricExporter {
                    inner: exporter,
                    context,
                })
                .build(),
            )
        }));
        self
    }

    /// Adds a metric reader of your own (e.g. a pull exporter).
    pub fn with_metric_reader(mut self, reader: impl opentelemetry_sdk::metrics::reader::MetricReader) -> Self {
        self.metric_readers.push(Box::new(move |b, _| b.with_reader(reader)));
        self
    }

    /// Adds a log processor of your own to the logger provider.
    pub fn with_log_processor(mut self, processor: impl opentelemetry_sdk::logs::LogProcessor + 'static) -> Self {
        self.log_processors
            .push(Box::new(move |b| b.with_log_processor(processor)));
        self
    }

    /// Adds a log exporter of your own, fed by its own batch pipeline (counted as
    /// `custom_log_exporter`).
    pub fn with_log_exporter(mut self, exporter: impl opentelemetry_sdk::logs::LogExporter + 'static) -> Self {
        self.log_exporters.push(Box::new(move |pipelines, health, batch| {
            let context = custom_context(health, Signal::Logs, "custom_log_exporter");
            pipelines.add(batch, exporter, context)
        }));
        self
    }

    /// Builds the providers and installs them, and the propagator, globally.
    pub fn install(#[allow(unused_mut)] mut self) -> Result<TelemetryGuard, SdkError> {
        let install_subscriber = self.tracing_subscriber;
        #[cfg(feature = "tracing-bridge")]
        let tracing_bridge = self.tracing_bridge.take();
        let guard = self.build()?;
        if let Some(tp) = guard.tracer_provider() {
            opentelemetry::global::set_tracer_provider(tp.clone());
        }
        if let Some(mp) = guard.meter_provider() {
            opentelemetry::global::set_meter_provider(mp.clone());
        }
        if !guard.is_disabled() {
            opentelemetry::global::set_text_map_propagator(PropagatorSet(guard.propagation().clone()));
        }
        #[cfg(feature = "tracing-bridge")]
        if let Some(bridge) = tracing_bridge {
            bridge.install(&guard)?;
            return Ok(guard);
        }
        if install_subscriber {
            install_tracing_subscriber(&guard)?;
        }
        Ok(guard)
    }

    /// Builds the providers without touching the globals (use [`TelemetryGuard::instrumentation`]).
    pub fn build(self) -> Result<TelemetryGuard, SdkError> {
        let propagator = build_propagator(&self.config.propagators);
        let health = ExportHealth::default();
        let shutdown_timeout = self.shutdown_timeout;
        let guard = |tracer_provider, meter_provider, logger_provider, prometheus, disabled| {
            TelemetryGuard::new(Inner {
                health: health.clone(),
                disabled,
                tracer_provider,
                meter_provider,
                logger_provider,
                prometheus,
                propagator: propagator.clone(),
                shutdown_timeout,
                shut_down: Mutex::new(false),
            })
        };
        if self.config.disabled {
            return Ok(guard(None, None, None, None, true));
        }
        let c = &self.config;
        let needs_runtime = [
            (&c.traces_exporters, &c.otlp_traces),
            (&c.metrics_exporters, &c.otlp_metrics),
            (&c.logs_exporters, &c.otlp_logs),
        ]
        .iter()
        .any(|(ex, otlp)| ex.contains(&Exporter::Otlp) && otlp.protocol == OtlpProtocol::Grpc);
        if needs_runtime && tokio::runtime::Handle::try_current().is_err() {
            return Err(SdkError::NoTokioRuntime);
        }
        let resource = resource::build_resource(c, &self.resource_attributes, self.service_name.as_deref());

        // Metrics first, so that the self-observability instruments exist before any span ends.
        let mut prometheus = None;
        let meter_provider = if c.metrics_exporters.is_empty() && self.metric_readers.is_empty() {
            None
        } else {
            let (mp, prom) = build_meter_provider(c, resource.clone(), &health, self.retry, self.metric_readers)?;
            prometheus = prom;
            health.set_meter(&opentelemetry::metrics::MeterProvider::meter_with_scope(
                &mp,
                opentelemetry::InstrumentationScope::builder("otelrs-core")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            ));
            Some(mp)
        };
        let tracer_provider =
            if c.traces_exporters.is_empty() && self.span_exporters.is_empty() && self.span_processors.is_empty() {
                None
            } else {
                Some(build_tracer_provider(
                    c,
                    resource.clone(),
                    self.sampler,
                    &health,
                    self.retry,
                    shutdown_timeout,
                    self.span_exporters,
                    self.span_processors,
                )?)
            };
        let logger_provider =
            if c.logs_exporters.is_empty() && self.log_exporters.is_empty() && self.log_processors.is_empty() {
                None
            } else {
                Some(build_logger_provider(
                    c,
                    resource,
                    &health,
                    self.retry,
                    shutdown_timeout,
                    self.log_exporters,
                    self.log_processors,
                )?)
            };
        Ok(guard(
            tracer_provider,
            meter_provider,
            logger_provider,
            prometheus,
            false,
        ))
    }
}

/// The counting context of an exporter given in code: one attempt per batch (its retries are
/// its own business).
fn custom_context(health: &ExportHealth, signal: Signal, component_type: &'static str) -> ExportContext {
    ExportContext {
        stats: health.exporter(signal, component_type, None),
        health: health.clone(),
        transport: Transport::Other,
        stop: health.stopping(),
    }
}

fn pipeline_error(signal: &'static str, e: std::io::Error) -> SdkError {
    SdkError::Exporter {
        signal,
        message: format!("cannot start the export thread: {e}"),
    }
}

#[allow(clippy::too_many_arguments)]
fn build_tracer_provider(
    c: &SdkConfig,
    resource: Resource,
    sampler: Option<Box<dyn ShouldSample>>,
    health: &ExportHealth,
    retry: RetryPolicy,
    shutdown_timeout: Duration,
    extra_exporters: Vec<AddSpanPipeline>,
    extra_processors: Vec<AddToTracer>,
) -> Result<SdkTracerProvider, SdkError> {
    let counters = health.span_counters();
    let mut b = SdkTracerProvider::builder().with_resource(resource);
    b = match sampler {
        Some(s) => b.with_sampler(CountingSampler {
            inner: BoxedSampler(s),
            counters: counters.clone(),
        }),
        None => b.with_sampler(CountingSampler {
            inner: c.sampler.to_sampler(),
            counters: counters.clone(),
        }),
    };
    let mut pipelines = SpanPipelines::new(health, shutdown_timeout);
    let started = |r: std::io::Result<()>| r.map_err(|e| pipeline_error("traces", e));
    for e in &c.traces_exporters {
        match e {
            Exporter::Otlp => {
                let (exporter, context) = otlp::span_exporter(&OtlpParts {
                    signal: Signal::Traces,
                    config: &c.otlp_traces,
                    retry,
                    health,
                })?;
                started(pipelines.add(c.span_batch, exporter, context))?;
            }
            Exporter::Console => {
                let context = custom_context(health, Signal::Traces, "console_span_exporter");
                started(pipelines.add(c.span_batch, opentelemetry_stdout::SpanExporter::default(), context))?;
            }
            // Rejected by the parser for traces; nothing to export to.
            Exporter::Prometheus => {}
        }
    }
    for add in extra_exporters {
        started(add(&mut pipelines, health, c.span_batch))?;
    }
    b = b.with_span_processor(pipelines);
    for add in extra_processors {
        b = add(b);
    }
    Ok(b.build())
}

/// Lets a boxed custom sampler be passed where `ShouldSample + Clone + 'static` is expected.
#[derive(Debug, Clone)]
struct BoxedSampler(Box<dyn ShouldSample>);

impl ShouldSample for BoxedSampler {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        self.0
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

fn build_meter_provider(
    c: &SdkConfig,
    resource: Resource,
    health: &ExportHealth,
    retry: RetryPolicy,
    extra_readers: Vec<AddToMeter>,
) -> Result<(SdkMeterProvider, Option<PrometheusHandle>), SdkError> {
    let mut b = SdkMeterProvider::builder().with_resource(resource);
    let mut prometheus = None;
    for e in &c.metrics_exporters {
        b = match e {
            Exporter::Otlp => {
                let (inner, context) = otlp::metric_exporter(&OtlpParts {
                    signal: Signal::Metrics,
                    config: &c.otlp_metrics,
                    retry,
                    health,
                })?;
                b.with_reader(
                    PeriodicReader::builder(CountingMetricExporter { inner, context })
                        .with_interval(c.metric_export_interval)
                        .build(),
                )
            }
            Exporter::Console => b.with_reader(
                PeriodicReader::builder(CountingMetricExporter {
                    inner: opentelemetry_stdout::MetricExporter::default(),
                    context: custom_context(health, Signal::Metrics, "console_metric_exporter"),
                })
                .with_interval(c.metric_export_interval)
                .build(),
            ),
            Exporter::Prometheus => {
                let registry = ::prometheus::Registry::new();
                let exporter = opentelemetry_prometheus::exporter()
                    .with_registry(registry.clone())
                    .build()
                    .map_err(|e| SdkError::Exporter {
                        signal: "metrics",
                        message: e.to_string(),
                    })?;
                prometheus = Some(PrometheusHandle::new(registry));
                b.with_reader(exporter)
            }
        };
    }
    for add in extra_readers {
        b = add(b, health);
    }
    Ok((b.build(), prometheus))
}

fn build_logger_provider(
    c: &SdkConfig,
    resource: Resource,
    health: &ExportHealth,
    retry: RetryPolicy,
    shutdown_timeout: Duration,
    extra_exporters: Vec<AddLogPipeline>,
    extra_processors: Vec<AddToLogger>,
) -> Result<SdkLoggerProvider, SdkError> {
    let mut pipelines = LogPipelines::new(health, shutdown_timeout);
    let started = |r: std::io::Result<()>| r.map_err(|e| pipeline_error("logs", e));
    for e in &c.logs_exporters {
        match e {
            Exporter::Otlp => {
                let (exporter, context) = otlp::log_exporter(&OtlpParts {
                    signal: Signal::Logs,
                    config: &c.otlp_logs,
                    retry,
                    health,
                })?;
                started(pipelines.add(c.log_batch, exporter, context))?;
            }
            Exporter::Console => {
                let context = custom_context(health, Signal::Logs, "console_log_exporter");
                started(pipelines.add(c.log_batch, opentelemetry_stdout::LogExporter::default(), context))?;
            }
            Exporter::Prometheus => {}
        }
    }
    for add in extra_exporters {
        started(add(&mut pipelines, health, c.log_batch))?;
    }
    let mut b = SdkLoggerProvider::builder()
        .with_resource(resource)
        .with_log_processor(pipelines);
    for add in extra_processors {
        b = add(b);
    }
    Ok(b.build())
}

fn install_tracing_subscriber(guard: &TelemetryGuard) -> Result<(), SdkError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;
    let fmt = tracing_subscriber::fmt::layer().with_filter(tracing_subscriber::filter::LevelFilter::INFO);
    let registry = tracing_subscriber::registry().with(fmt).with(guard.tracing_layer());
    tracing::subscriber::set_global_default(registry).map_err(|e| SdkError::Subscriber(e.to_string()))
}
