//! One-call OpenTelemetry SDK setup from the standard `OTEL_*` environment variables.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Reads OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ... and installs
//! // the tracer, meter and logger providers and the propagator globally.
//! let telemetry = otel_core::sdk::init()?;
//! // ... run the application ...
//! telemetry.shutdown()?; // flushes, bounded by the shutdown timeout (also done on drop)
//! # Ok(()) }
//! ```
//!
//! Override any setting in code; code wins over the environment:
//!
//! ```no_run
//! use otel_core::sdk::{Exporter, OtlpProtocol, SdkBuilder};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = SdkBuilder::from_env()?
//!     .with_service_name("checkout")
//!     .with_traces_exporters([Exporter::Otlp])
//!     .with_metrics_exporters([Exporter::Prometheus])
//!     .with_otlp_endpoint("http://collector:4318")
//!     .with_otlp_protocol(OtlpProtocol::HttpProtobuf)
//!     .install()?;
//! let metrics_handler = telemetry.prometheus().expect("prometheus exporter configured");
//! // Mount it: axum::Router::new().route_service("/metrics", metrics_handler)
//! # let _ = metrics_handler; Ok(()) }
//! ```
//!
//! # Variables
//!
//! | Variable | Values (default) |
//! | --- | --- |
//! | `OTEL_SDK_DISABLED` | `true` / `false` (`false`): `true` installs nothing |
//! | `OTEL_SERVICE_NAME` | the service name (`unknown_service:<executable>`) |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...`, values percent-encoded |
//! | `OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER` | `otlp`, `console`, `none`, comma-separated (`otlp`) |
//! | `OTEL_METRICS_EXPORTER` | `otlp`, `console`, `prometheus`, `none` (`otlp`) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/<signal>` is appended for HTTP (`http://localhost:4318`, gRPC `http://localhost:4317`) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `grpc`, `http/protobuf`, `http/json` (`http/protobuf`) |
//! | `OTEL_EXPORTER_OTLP_HEADERS` | `key=value,...` |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION` | `gzip`, `none` (`none`) |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT` | milliseconds (`10000`) |
//! | `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*` | per-signal forms of the five above; a per-signal endpoint is used verbatim |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` (`parentbased_always_on`); ratio `0.0..=1.0` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `none` (`tracecontext,baggage`) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds (`60000`) |
//!
//! An invalid value is an error ([`ConfigError`]) naming the variable and the value.
//! `OTEL_BSP_*` / `OTEL_BLRP_*` batch settings are read by the SDK's batch processors themselves.
//!
//! # Behaviour when the collector is unreachable
//!
//! Spans and log records go through the SDK's batch processors, which export from their own
//! threads with bounded queues (2048 items by default; excess items are dropped, never queued
//! without limit). An unreachable or slow collector therefore never blocks or fails the
//! application. [`TelemetryGuard::shutdown`] flushes and shuts down on a separate thread and
//! waits at most the shutdown timeout (5 s by default).
//!
//! What is dropped is counted, not silently lost: every exporter the builder creates is wrapped
//! so that [`TelemetryGuard::export_stats`] reports spans, metric points and log records
//! delivered and lost (and spans dropped for a full queue); the same totals are exported as
//! the semconv counters `otel.sdk.exporter.span.exported`,
//! `otel.sdk.exporter.metric_data_point.exported` and `otel.sdk.exporter.log.exported` (with
//! `error.type` on failures), and a `tracing` warning (target `otel_core::sdk`) says when a
//! signal's exports start failing and how much was lost when they recover.
//!
//! # Logs and exceptions
//!
//! With a logs exporter configured, [`TelemetryGuard::tracing_layer`] returns a
//! `tracing-subscriber` layer that turns `tracing` events into OpenTelemetry log records carrying
//! the active trace and span ids. [`crate::status::emit_exception`] sends semconv exception events
//! through it. [`SdkBuilder::with_tracing_subscriber`] installs it (plus a console formatter) as
//! the global subscriber.

mod env;
mod health;
mod prometheus;
mod resource;

pub use env::{
    ConfigError, Exporter, OtlpCompression, OtlpConfig, OtlpProtocol, PropagatorKind, SamplerConfig, SdkConfig, Signal,
};
pub use health::ExportStats;
pub use prometheus::PrometheusHandle;

use std::collections::HashMap;
use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::KeyValue;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, ShouldSample};
use opentelemetry_sdk::Resource;

use health::{
    CountingLogExporter, CountingMetricExporter, CountingSpanExporter, CountingSpanProcessor, ExportHealth, SignalKind,
};

use crate::propagation::{W3cBaggagePropagator, W3cPropagator, W3cTraceContextPropagator};
use crate::Instrumentation;

/// Setting up the SDK failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// A configuration value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An exporter could not be built.
    #[error("cannot build the {signal} exporter: {message}")]
    Exporter {
        /// `traces`, `metrics` or `logs`.
        signal: &'static str,
        /// The exporter's error.
        message: String,
    },
    /// OTLP over gRPC needs a Tokio runtime when the exporter is built.
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a Tokio runtime: call otel_core::sdk::init() inside \
         #[tokio::main] (or a runtime's enter()), or use http/protobuf"
    )]
    NoTokioRuntime,
    /// Installing the `tracing` subscriber failed (another one is already set).
    #[error("cannot install the tracing subscriber: {0}")]
    Subscriber(String),
    /// Flushing or shutting down did not finish.
    #[error("telemetry shutdown: {0}")]
    Shutdown(String),
}

/// Reads the environment and installs providers and propagator globally. Shorthand for
/// `SdkBuilder::from_env()?.install()`.
pub fn init() -> Result<TelemetryGuard, SdkError> {
    SdkBuilder::from_env()?.install()
}

/// Configures the SDK: starts from the environment (or defaults), overridden in code.
pub struct SdkBuilder {
    config: SdkConfig,
    service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    sampler: Option<Box<dyn ShouldSample>>,
    shutdown_timeout: Duration,
    tracing_subscriber: bool,
}

impl fmt::Debug for SdkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SdkBuilder")
            .field("config", &self.config)
            .field("service_name", &self.service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("custom_sampler", &self.sampler.is_some())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("tracing_subscriber", &self.tracing_subscriber)
            .finish()
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

    /// Enables or disables the whole SDK (`OTEL_SDK_DISABLED`).
    pub fn with_disabled(mut self, disabled: bool) -> Self {
        self.config.disabled = disabled;
        self
    }

    /// Trace exporters (empty: traces off).
    pub fn with_traces_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.traces_exporters = exporters.into_iter().collect();
        self
    }

    /// Metric exporters (empty: metrics off).
    pub fn with_metrics_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.metrics_exporters = exporters.into_iter().collect();
        self
    }

    /// Log exporters (empty: logs off).
    pub fn with_logs_exporters(mut self, exporters: impl IntoIterator<Item = Exporter>) -> Self {
        self.config.logs_exporters = exporters.into_iter().collect();
        self
    }

    /// OTLP base endpoint for all signals (`/v1/<signal>` is appended for HTTP).
    pub fn with_otlp_endpoint(mut self, base: impl AsRef<str>) -> Self {
        let base = base.as_ref().trim_end_matches('/');
        for (cfg, path) in [
            (&mut self.config.otlp_traces, "v1/traces"),
            (&mut self.config.otlp_metrics, "v1/metrics"),
            (&mut self.config.otlp_logs, "v1/logs"),
        ] {
            cfg.endpoint = match cfg.protocol {
                OtlpProtocol::Grpc => base.to_owned(),
                _ => format!("{base}/{path}"),
            };
        }
        self
    }

    /// OTLP transport for all signals. Call before [`SdkBuilder::with_otlp_endpoint`].
    pub fn with_otlp_protocol(mut self, protocol: OtlpProtocol) -> Self {
        for cfg in [
            &mut self.config.otlp_traces,
            &mut self.config.otlp_metrics,
            &mut self.config.otlp_logs,
        ] {
            cfg.protocol = protocol;
        }
        self
    }

    /// OTLP export timeout for all signals.
    pub fn with_otlp_timeout(mut self, timeout: Duration) -> Self {
        for cfg in [
            &mut self.config.otlp_traces,
            &mut self.config.otlp_metrics,
            &mut self.config.otlp_logs,
        ] {
            cfg.timeout = timeout;
        }
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

    /// Builds the providers and installs them, and the propagator, globally.
    pub fn install(self) -> Result<TelemetryGuard, SdkError> {
        let install_subscriber = self.tracing_subscriber;
        let guard = self.build()?;
        if let Some(tp) = &guard.inner.tracer_provider {
            opentelemetry::global::set_tracer_provider(tp.clone());
        }
        if let Some(mp) = &guard.inner.meter_provider {
            opentelemetry::global::set_meter_provider(mp.clone());
        }
        if !guard.inner.disabled {
            opentelemetry::global::set_text_map_propagator(PropagatorSet(guard.inner.propagator.clone()));
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
        if self.config.disabled {
            return Ok(TelemetryGuard::new(Inner {
                health,
                disabled: true,
                tracer_provider: None,
                meter_provider: None,
                logger_provider: None,
                prometheus: None,
                propagator,
                shutdown_timeout: self.shutdown_timeout,
                shut_down: Mutex::new(false),
            }));
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

        let tracer_provider = if c.traces_exporters.is_empty() {
            None
        } else {
            Some(build_tracer_provider(c, resource.clone(), self.sampler, &health)?)
        };
        let mut prometheus = None;
        let meter_provider = if c.metrics_exporters.is_empty() {
            None
        } else {
            let (mp, prom) = build_meter_provider(c, resource.clone(), &health)?;
            prometheus = prom;
            health.register_metrics(&opentelemetry::metrics::MeterProvider::meter_with_scope(
                &mp,
                opentelemetry::InstrumentationScope::builder("otel-core")
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            ));
            Some(mp)
        };
        let logger_provider = if c.logs_exporters.is_empty() {
            None
        } else {
            Some(build_logger_provider(c, resource, &health)?)
        };
        Ok(TelemetryGuard::new(Inner {
            health,
            disabled: false,
            tracer_provider,
            meter_provider,
            logger_provider,
            prometheus,
            propagator,
            shutdown_timeout: self.shutdown_timeout,
            shut_down: Mutex::new(false),
        }))
    }
}

/// The configured propagators; `W3cPropagator` when both W3C formats are selected so that
/// [`Instrumentation`] can use its fast path.
#[derive(Clone, Debug)]
enum Propagation {
    W3c(W3cPropagator),
    TraceContext(W3cTraceContextPropagator),
    Baggage(W3cBaggagePropagator),
    None,
}

fn build_propagator(kinds: &[PropagatorKind]) -> Propagation {
    let tc = kinds.contains(&PropagatorKind::TraceContext);
    let bg = kinds.contains(&PropagatorKind::Baggage);
    match (tc, bg) {
        (true, true) => Propagation::W3c(W3cPropagator::default()),
        (true, false) => Propagation::TraceContext(W3cTraceContextPropagator::new()),
        (false, true) => Propagation::Baggage(W3cBaggagePropagator::new()),
        (false, false) => Propagation::None,
    }
}

/// The propagator installed globally.
#[derive(Debug)]
struct PropagatorSet(Propagation);

impl TextMapPropagator for PropagatorSet {
    fn inject_context(&self, cx: &opentelemetry::Context, injector: &mut dyn opentelemetry::propagation::Injector) {
        match &self.0 {
            Propagation::W3c(p) => p.inject_context(cx, injector),
            Propagation::TraceContext(p) => p.inject_context(cx, injector),
            Propagation::Baggage(p) => p.inject_context(cx, injector),
            Propagation::None => {}
        }
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        match &self.0 {
            Propagation::W3c(p) => p.extract_with_context(cx, extractor),
            Propagation::TraceContext(p) => p.extract_with_context(cx, extractor),
            Propagation::Baggage(p) => p.extract_with_context(cx, extractor),
            Propagation::None => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        match &self.0 {
            Propagation::W3c(p) => p.fields(),
            Propagation::TraceContext(p) => p.fields(),
            Propagation::Baggage(p) => p.fields(),
            Propagation::None => opentelemetry::propagation::text_map_propagator::FieldIter::new(&[]),
        }
    }
}

fn sampler_from(config: SamplerConfig) -> Sampler {
    match config {
        SamplerConfig::AlwaysOn => Sampler::AlwaysOn,
        SamplerConfig::AlwaysOff => Sampler::AlwaysOff,
        SamplerConfig::TraceIdRatio(r) => Sampler::TraceIdRatioBased(r),
        SamplerConfig::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        SamplerConfig::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerConfig::ParentBasedTraceIdRatio(r) => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r))),
    }
}

fn headers_map(cfg: &OtlpConfig) -> HashMap<String, String> {
    cfg.headers.iter().cloned().collect()
}

fn metadata(cfg: &OtlpConfig) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        // Validated when the configuration was parsed.
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(h)
}

fn protocol(p: OtlpProtocol) -> opentelemetry_otlp::Protocol {
    match p {
        OtlpProtocol::Grpc => opentelemetry_otlp::Protocol::Grpc,
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    }
}

/// Builds an OTLP exporter of one signal with either transport; `$builder` is
/// `SpanExporter::builder()` etc.
macro_rules! otlp_exporter {
    ($builder:expr, $cfg:expr, $signal:literal) => {{
        let cfg: &OtlpConfig = $cfg;
        let result = match cfg.protocol {
            OtlpProtocol::Grpc => {
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_metadata(metadata(cfg));
                if cfg.compression == Some(OtlpCompression::Gzip) {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build()
            }
            p => {
                let mut b = $builder
                    .with_http()
                    .with_protocol(protocol(p))
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_headers(headers_map(cfg));
                if cfg.compression == Some(OtlpCompression::Gzip) {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build()
            }
        };
        result.map_err(|e| SdkError::Exporter {
            signal: $signal,
            message: e.to_string(),
        })
    }};
}

fn build_tracer_provider(
    c: &SdkConfig,
    resource: Resource,
    sampler: Option<Box<dyn ShouldSample>>,
    health: &ExportHealth,
) -> Result<SdkTracerProvider, SdkError> {
    // Every exporter is wrapped so that what it delivers and loses is counted (health.rs).
    fn counted(
        b: opentelemetry_sdk::trace::TracerProviderBuilder,
        health: &ExportHealth,
        component_type: &'static str,
        exporter: impl opentelemetry_sdk::trace::SpanExporter + 'static,
    ) -> opentelemetry_sdk::trace::TracerProviderBuilder {
        let stats = health.component(SignalKind::Traces, component_type);
        let exporter = CountingSpanExporter {
            inner: exporter,
            stats: stats.clone(),
            health: health.clone(),
        };
        b.with_span_processor(CountingSpanProcessor {
            inner: opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build(),
            stats,
        })
    }
    let mut b = SdkTracerProvider::builder().with_resource(resource);
    b = match sampler {
        Some(s) => b.with_sampler(BoxedSampler(s)),
        None => b.with_sampler(sampler_from(c.sampler)),
    };
    for e in &c.traces_exporters {
        b = match e {
            Exporter::Otlp => counted(
                b,
                health,
                match c.otlp_traces.protocol {
                    OtlpProtocol::Grpc => "otlp_grpc_span_exporter",
                    OtlpProtocol::HttpProtobuf => "otlp_http_span_exporter",
                    OtlpProtocol::HttpJson => "otlp_http_json_span_exporter",
                },
                otlp_exporter!(opentelemetry_otlp::SpanExporter::builder(), &c.otlp_traces, "traces")?,
            ),
            Exporter::Console => counted(
                b,
                health,
                "console_span_exporter",
                opentelemetry_stdout::SpanExporter::default(),
            ),
            // Rejected by the parser for traces; nothing to export to.
            Exporter::Prometheus => b,
        };
    }
    Ok(b.build())
}

/// Lets a boxed custom sampler be passed where `ShouldSample + 'static` is expected.
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
) -> Result<(SdkMeterProvider, Option<PrometheusHandle>), SdkError> {
    let counted = |component_type, exporter| CountingMetricExporter {
        inner: exporter,
        stats: health.component(SignalKind::Metrics, component_type),
        health: health.clone(),
    };
    let mut b = SdkMeterProvider::builder().with_resource(resource);
    let mut prometheus = None;
    for e in &c.metrics_exporters {
        b = match e {
            Exporter::Otlp => {
                let exporter = otlp_exporter!(
                    opentelemetry_otlp::MetricExporter::builder(),
                    &c.otlp_metrics,
                    "metrics"
                )?;
                let component_type = match c.otlp_metrics.protocol {
                    OtlpProtocol::Grpc => "otlp_grpc_metric_exporter",
                    OtlpProtocol::HttpProtobuf => "otlp_http_metric_exporter",
                    OtlpProtocol::HttpJson => "otlp_http_json_metric_exporter",
                };
                b.with_reader(
                    PeriodicReader::builder(counted(component_type, exporter))
                        .with_interval(c.metric_export_interval)
                        .build(),
                )
            }
            Exporter::Console => b.with_reader(
                PeriodicReader::builder(CountingMetricExporter {
                    inner: opentelemetry_stdout::MetricExporter::default(),
                    stats: health.component(SignalKind::Metrics, "console_metric_exporter"),
                    health: health.clone(),
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
    Ok((b.build(), prometheus))
}

fn build_logger_provider(
    c: &SdkConfig,
    resource: Resource,
    health: &ExportHealth,
) -> Result<SdkLoggerProvider, SdkError> {
    let mut b = SdkLoggerProvider::builder().with_resource(resource);
    for e in &c.logs_exporters {
        b = match e {
            Exporter::Otlp => b.with_batch_exporter(CountingLogExporter {
                inner: otlp_exporter!(opentelemetry_otlp::LogExporter::builder(), &c.otlp_logs, "logs")?,
                stats: health.component(
                    SignalKind::Logs,
                    match c.otlp_logs.protocol {
                        OtlpProtocol::Grpc => "otlp_grpc_log_exporter",
                        OtlpProtocol::HttpProtobuf => "otlp_http_log_exporter",
                        OtlpProtocol::HttpJson => "otlp_http_json_log_exporter",
                    },
                ),
                health: health.clone(),
            }),
            Exporter::Console => b.with_batch_exporter(CountingLogExporter {
                inner: opentelemetry_stdout::LogExporter::default(),
                stats: health.component(SignalKind::Logs, "console_log_exporter"),
                health: health.clone(),
            }),
            Exporter::Prometheus => b,
        };
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

struct Inner {
    health: ExportHealth,
    disabled: bool,
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    logger_provider: Option<SdkLoggerProvider>,
    prometheus: Option<PrometheusHandle>,
    propagator: Propagation,
    shutdown_timeout: Duration,
    shut_down: Mutex<bool>,
}

/// Owns the providers built by [`SdkBuilder`]. [`TelemetryGuard::shutdown`] (or dropping the
/// guard) flushes everything and shuts the providers down, waiting at most the shutdown timeout.
pub struct TelemetryGuard {
    inner: Arc<Inner>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("disabled", &self.inner.disabled)
            .field("traces", &self.inner.tracer_provider.is_some())
            .field("metrics", &self.inner.meter_provider.is_some())
            .field("logs", &self.inner.logger_provider.is_some())
            .field("prometheus", &self.inner.prometheus.is_some())
            .field("propagator", &self.inner.propagator)
            .finish()
    }
}

impl TelemetryGuard {
    fn new(inner: Inner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    /// Whether `OTEL_SDK_DISABLED` turned everything off.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// The tracer provider, when traces are exported.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.tracer_provider.as_ref()
    }

    /// The meter provider, when metrics are exported.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.inner.meter_provider.as_ref()
    }

    /// The logger provider, when logs are exported.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.inner.logger_provider.as_ref()
    }

    /// What the exporters delivered and lost so far: spans, metric data points and log records
    /// in failed exports (collector down, rejected, timed out), and spans still queued or dropped
    /// for a full queue. The same totals are exported as the semconv SDK self-observability
    /// counters `otel.sdk.exporter.{span,metric_data_point,log}.exported` (failures with
    /// `error.type` = `timeout` or `export_failed`), and a `tracing` warning (target
    /// `otel_core::sdk`) is emitted when a signal's exports start failing.
    pub fn export_stats(&self) -> ExportStats {
        self.inner.health.snapshot()
    }

    /// The most recent export error (`<exporter>/<n>: <error>`), if any export ever failed.
    pub fn last_export_error(&self) -> Option<String> {
        self.inner.health.last_error()
    }

    /// The Prometheus scrape handler, when `OTEL_METRICS_EXPORTER` includes `prometheus`.
    pub fn prometheus(&self) -> Option<PrometheusHandle> {
        self.inner.prometheus.clone()
    }

    /// An [`Instrumentation`] bound to these providers and propagator (signals that are off use
    /// no-op providers rather than the globals).
    pub fn instrumentation(&self) -> Instrumentation {
        let mut inst = Instrumentation::new();
        inst = match &self.inner.tracer_provider {
            Some(tp) => inst.with_tracer_provider(tp.clone()),
            None => inst.with_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new()),
        };
        inst = match &self.inner.meter_provider {
            Some(mp) => inst.with_meter_provider(mp.clone()),
            None => inst.with_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new()),
        };
        match &self.inner.propagator {
            Propagation::W3c(p) => inst.with_propagator(*p),
            other => inst.with_propagator(PropagatorSet(other.clone())),
        }
    }

    /// A `tracing-subscriber` layer that turns `tracing` events into OpenTelemetry log records
    /// (with the active trace and span ids). `None` when logs are not exported.
    pub fn tracing_layer(&self) -> Option<OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>> {
        self.inner.logger_provider.as_ref().map(OpenTelemetryTracingBridge::new)
    }

    /// Exports everything buffered so far (blocking, bounded by the exporters' timeouts).
    pub fn force_flush(&self) -> Result<(), SdkError> {
        let mut errors = Vec::new();
        if let Some(tp) = &self.inner.tracer_provider {
            if let Err(e) = tp.force_flush() {
                errors.push(format!("traces: {e}"));
            }
        }
        if let Some(mp) = &self.inner.meter_provider {
            if let Err(e) = mp.force_flush() {
                errors.push(format!("metrics: {e}"));
            }
        }
        if let Some(lp) = &self.inner.logger_provider {
            if let Err(e) = lp.force_flush() {
                errors.push(format!("logs: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SdkError::Shutdown(errors.join("; ")))
        }
    }

    /// Flushes and shuts down every provider, waiting at most the shutdown timeout. Calling it
    /// again (or dropping the guard afterwards) does nothing.
    pub fn shutdown(&self) -> Result<(), SdkError> {
        {
            let mut done = self.inner.shut_down.lock().unwrap_or_else(|p| p.into_inner());
            if *done {
                return Ok(());
            }
            *done = true;
        }
        if self.inner.disabled {
            return Ok(());
        }
        let inner = self.inner.clone();
        let timeout = self.inner.shutdown_timeout;
        let (tx, rx) = mpsc::channel();
        // Shutting down runs on its own thread so a hung exporter cannot hold the caller past
        // the timeout (some SDK shutdowns ignore their timeout argument).
        let spawned = std::thread::Builder::new().name("otel-shutdown".into()).spawn(move || {
            let mut errors = Vec::new();
            if let Some(tp) = &inner.tracer_provider {
                if let Err(e) = tp.shutdown_with_timeout(timeout) {
                    errors.push(format!("traces: {e}"));
                }
            }
            if let Some(mp) = &inner.meter_provider {
                if let Err(e) = mp.shutdown_with_timeout(timeout) {
                    errors.push(format!("metrics: {e}"));
                }
            }
            if let Some(lp) = &inner.logger_provider {
                if let Err(e) = lp.shutdown_with_timeout(timeout) {
                    errors.push(format!("logs: {e}"));
                }
            }
            let _ = tx.send(errors);
        });
        if let Err(e) = spawned {
            return Err(SdkError::Shutdown(format!("cannot start the shutdown thread: {e}")));
        }
        match rx.recv_timeout(timeout) {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(SdkError::Shutdown(errors.join("; "))),
            Err(_) => Err(SdkError::Shutdown(format!(
                "not finished within {timeout:?}; remaining telemetry is dropped"
            ))),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            // Nothing else can report it at this point.
            eprintln!("otel-core: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_installs_nothing_and_shuts_down_instantly() {
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_disabled(true)
            .build()
            .unwrap();
        assert!(guard.is_disabled());
        assert!(guard.tracer_provider().is_none());
        assert!(guard.meter_provider().is_none());
        assert!(guard.tracing_layer().is_none());
        guard.shutdown().unwrap();
        guard.shutdown().unwrap();
    }

    #[test]
    fn grpc_without_runtime_is_a_clear_error() {
        let err = SdkBuilder::from_config(SdkConfig::default())
            .with_otlp_protocol(OtlpProtocol::Grpc)
            .with_otlp_endpoint("http://127.0.0.1:4317")
            .build()
            .unwrap_err();
        assert!(matches!(err, SdkError::NoTokioRuntime));
        assert!(err.to_string().contains("Tokio runtime"));
    }

    #[tokio::test]
    async fn grpc_exporters_build_inside_a_runtime() {
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_otlp_protocol(OtlpProtocol::Grpc)
            .with_otlp_endpoint("http://127.0.0.1:9")
            .with_logs_exporters([])
            .with_shutdown_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        assert!(guard.tracer_provider().is_some());
        assert!(guard.meter_provider().is_some());
        let _ = guard.shutdown();
    }

    #[test]
    fn console_and_prometheus_build_and_instrumentation_uses_them() {
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_service_name("unit")
            .with_traces_exporters([Exporter::Console])
            .with_metrics_exporters([Exporter::Prometheus])
            .with_logs_exporters([Exporter::Console])
            .with_propagators([PropagatorKind::TraceContext])
            .build()
            .unwrap();
        let inst = guard.instrumentation();
        let meter = inst.meter(Instrumentation::scope("unit", "1"));
        meter
            .u64_counter("unit.things")
            .build()
            .add(2, &[KeyValue::new("k", "v")]);
        let text = guard.prometheus().unwrap().render();
        assert!(text.contains("unit_things_total{"), "{text}");
        assert!(text.contains("k=\"v\""), "{text}");
        assert!(guard.tracing_layer().is_some());
        assert_eq!(inst.propagation_fields(), vec!["traceparent", "tracestate"]);
        guard.shutdown().unwrap();
    }
}
