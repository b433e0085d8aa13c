//! One-call OpenTelemetry SDK setup from the standard `OTEL_*` environment variables.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Reads OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ... and installs
//! // the tracer, meter and logger providers and the propagator globally.
//! let telemetry = otelrs_core::sdk::init()?;
//! // ... run the application ...
//! telemetry.shutdown()?; // flushes, bounded by the shutdown timeout (also done on drop)
//! # Ok(()) }
//! ```
//!
//! Override any setting in code; code wins over the environment:
//!
//! ```no_run
//! use otelrs_core::sdk::{Exporter, OtlpProtocol, SdkBuilder};
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
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE` | PEM file of the CA that signs the collector's certificate (only it is trusted) |
//! | `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `OTEL_EXPORTER_OTLP_CLIENT_KEY` | PEM files of the client certificate chain and key (mTLS) |
//! | `OTEL_EXPORTER_OTLP_INSECURE` | `true` / `false` (`false`): for gRPC endpoints written without a scheme, `true` means plain text |
//! | `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*` | per-signal forms of the variables above; a per-signal endpoint is used verbatim |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` (`parentbased_always_on`); ratio `0.0..=1.0` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `none` (`tracecontext,baggage`) |
//! | `OTEL_METRIC_EXPORT_INTERVAL` | milliseconds (`60000`) |
//! | `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | spans (`2048`, `512`) |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT` | milliseconds (`5000`, `30000`) |
//! | `OTEL_BSP_MAX_CONCURRENT_EXPORTS` | export requests in flight (`8`) |
//! | `OTEL_BLRP_*` | the same five for log records (schedule delay `1000`; `OTEL_BLRP_MAX_CONCURRENT_EXPORTS` is an otelrs-core variable) |
//!
//! An invalid value is an error ([`ConfigError`]) naming the variable and the value; so is a TLS
//! file that is missing, unreadable or not PEM (the error names the variable and the path). Every
//! variable has a builder equivalent ([`SdkBuilder::with_otlp_ca_certificate_pem`],
//! [`SdkBuilder::with_span_batch`], ...).
//!
//! # TLS
//!
//! An `https://` endpoint turns TLS on for either protocol (rustls, TLS 1.2 and 1.3). Without a
//! custom CA the collector is verified against the Mozilla root certificates compiled into the
//! binary (`webpki-roots`: works in scratch containers, updated with the crate); the
//! `tls-native-roots` feature uses the platform's certificate store instead. With
//! `OTEL_EXPORTER_OTLP_CERTIFICATE` (or [`SdkBuilder::with_otlp_ca_certificate_pem`]) only that
//! CA is trusted. mTLS presents `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE` and `..._CLIENT_KEY` (or
//! [`SdkBuilder::with_otlp_client_identity_pem`]). A TLS setting never silently falls back to
//! plain text: the scheme of the endpoint decides.
//!
//! ```no_run
//! use otelrs_core::sdk::{BatchConfig, OtlpCompression, OtlpProtocol, SdkBuilder};
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let telemetry = SdkBuilder::from_env()?
//!     .with_otlp_protocol(OtlpProtocol::Grpc)
//!     .with_otlp_endpoint("https://collector.internal:4317")
//!     .with_otlp_header("x-api-key", std::env::var("API_KEY")?)
//!     .with_otlp_compression(Some(OtlpCompression::Gzip))
//!     .with_otlp_ca_certificate_pem(std::fs::read("/etc/otel/ca.pem")?)
//!     .with_otlp_client_identity_pem(std::fs::read("/etc/otel/client.pem")?, std::fs::read("/etc/otel/client.key")?)
//!     .with_span_batch(BatchConfig::spans().with_max_concurrent_exports(8))
//!     .install()?;
//! # telemetry.shutdown()?; Ok(()) }
//! ```
//!
//! # Throughput
//!
//! Spans and log records go through otelrs-core's own batch pipeline ([`BatchConfig`]): a bounded
//! queue filled by the application (a push takes a lock and never waits for export), one thread
//! cutting batches and up to `max_concurrent_exports` export threads (started on demand), so
//! several batches are in flight when the collector is milliseconds away. With the defaults
//! (up to 8 concurrent exports of 512 spans) a collector 20 ms away received about 140-160k
//! spans/s on a 2-core machine (an export there takes the delay plus ~5 ms of encoding and
//! sending); one export at a time, as the SDK's batch processor does, gives about 20k spans/s.
//! Figures and the command in `BENCHMARKS.md`.
//!
//! # Retries
//!
//! Transient failures (unreachable collector, `429`/`502`/`503`/`504`/`408` with `Retry-After`
//! honoured, gRPC `UNAVAILABLE` and the other retryable codes, timeouts) are retried with capped
//! exponential backoff and jitter within the export timeout ([`RetryPolicy`]); permanent ones
//! (a certificate the client rejects or that the collector rejects, other `4xx`, `UNIMPLEMENTED`,
//! `UNAUTHENTICATED`, ...) fail at once and are counted. During shutdown nothing is retried, so
//! a dead collector cannot hold [`TelemetryGuard::shutdown`] past its timeout.
//!
//! # Behaviour when the collector is unreachable, slow or refusing
//!
//! The application never blocks on export and never fails because of it: a full queue drops the
//! new span (counted), a failed export drops its batch (counted). Nothing is lost silently:
//!
//! - [`TelemetryGuard::export_stats`] gives exported, failed, dropped (queue full, shutdown) and
//!   queued counts per signal; its `Display` shows them all;
//! - the SDK self-observability metrics of the semantic conventions are observed on the
//!   installed meter provider at every collection: `otel.sdk.span.started` and `.live`,
//!   `otel.sdk.processor.{span,log}.processed` (with `error.type` = `queue_full` or
//!   `already_shutdown`), `.queue.size`, `.queue.capacity`,
//!   `otel.sdk.exporter.{span,metric_data_point,log}.exported` (with `error.type`) and
//!   `.inflight`, `otel.sdk.exporter.operation.duration`, `otel.sdk.log.created`
//!   (`otel.sdk.metric_reader.collection.duration` is not: the SDK's periodic reader collects
//!   internally);
//! - the first loss prints a warning, then at most one summary a minute while losses continue and
//!   a last one at shutdown: through `tracing` (target `otelrs_core::sdk`) when a subscriber is
//!   installed, on stderr otherwise;
//! - [`TelemetryGuard::last_export_error`] and [`TelemetryGuard::last_export_error_of`] name
//!   the last failure (e.g. the rejected certificate).
//!
//! [`TelemetryGuard::shutdown`] stops retries, flushes, and waits at most the shutdown timeout
//! (5 s by default); what is still queued then is dropped and counted.
//!
//! # Adding your own parts
//!
//! [`SdkBuilder::with_span_processor`], [`SdkBuilder::with_span_exporter`],
//! [`SdkBuilder::with_metric_exporter`], [`SdkBuilder::with_metric_reader`],
//! [`SdkBuilder::with_log_processor`], [`SdkBuilder::with_log_exporter`] and
//! [`SdkBuilder::with_resource`] add to what the environment configures, so one extra piece
//! never means giving up `init()`'s setup. Exporters added this way get their own pipeline and
//! are counted like the built-in ones.
//!
//! # Logs and exceptions
//!
//! With a logs exporter configured, [`TelemetryGuard::tracing_layer`] returns a
//! `tracing-subscriber` layer that turns `tracing` events into OpenTelemetry log records carrying
//! the active trace and span ids. [`crate::status::emit_exception`] sends semconv exception events
//! through it. [`SdkBuilder::with_tracing_subscriber`] installs it (plus a console formatter) as
//! the global subscriber.
//!
//! # `tracing` spans
//!
//! With the `tracing-bridge` feature, `SdkBuilder::with_tracing_bridge` installs one
//! subscriber that exports `tracing` spans (`#[instrument]`, `info_span!`) on the same tracer
//! provider through `tracing-opentelemetry` 0.34 (the release built on `opentelemetry` 0.33),
//! with context activation so adapters' spans and `tracing` spans nest both ways, next to the
//! log bridge and a console formatter whose lines carry `trace_id`/`span_id`
//! ([`TraceIdFormat`]), all filtered by `RUST_LOG` with library internals (`h2`, `hyper`,
//! `tonic`, ...) kept out by default. See `TracingBridge` for the filter rules and what happens
//! with another `tracing-opentelemetry` release.

mod batch;
mod builder;
mod env;
mod guard;
mod health;
mod http_client;
mod otlp;
mod pipeline;
mod prometheus;
mod propagator;
mod resource;
mod retry;
mod tls;
mod trace_id_format;
#[cfg(feature = "tracing-bridge")]
mod tracing_bridge;

pub use builder::SdkBuilder;
pub use env::{
    BatchConfig, ConfigError, Exporter, OtlpCompression, OtlpConfig, OtlpProtocol, PemSource, PropagatorKind,
    SamplerConfig, SdkConfig, Signal, TlsFiles,
};
pub use guard::TelemetryGuard;
pub use health::ExportStats;
pub use prometheus::PrometheusHandle;
pub use retry::RetryPolicy;
pub use trace_id_format::TraceIdFormat;
#[cfg(feature = "tracing-bridge")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing-bridge")))]
pub use tracing_bridge::{TracingBridge, LIBRARY_TARGETS, TRACING_OPENTELEMETRY_VERSION};

/// Setting up the SDK failed.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// A configuration value is invalid (including a TLS file that cannot be used).
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
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a Tokio runtime: call otelrs_core::sdk::init() inside \
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Instrumentation;
    use opentelemetry::KeyValue;
    use std::time::Duration;

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
