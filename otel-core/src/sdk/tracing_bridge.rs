//! [`TracingBridge`]: `tracing` spans and events on the SDK's providers, in one switch.

use std::fmt;
use std::io::IsTerminal as _;
use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracer;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use super::{ConfigError, SdkError, TelemetryGuard, TraceIdFormat};

/// The `tracing-opentelemetry` release this release of otelrs-core is built with (the one built
/// on `opentelemetry` 0.33).
pub const TRACING_OPENTELEMETRY_VERSION: &str = "0.34";

/// Targets whose spans and events stay out of traces, logs and the console below `WARN` unless
/// the filter names them: the internals of the libraries the adapters wrap (an unfiltered bridge
/// exports hundreds of TRACE-level `h2` spans per gRPC call, some nested inside the user's
/// spans) and the OpenTelemetry crates themselves. A directive is a prefix: `hyper` covers
/// `hyper_util`, `tower` covers `tower_http`, `opentelemetry` covers `opentelemetry_sdk`.
pub const LIBRARY_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "tonic",
    "tower",
    "reqwest",
    "sqlx",
    "rustls",
    "tokio",
    "mio",
    "want",
    "redis",
    "deadpool",
    "lapin",
    "amq_protocol",
    "rdkafka",
    "async_nats",
    "opentelemetry",
];

/// `tracing` in the one-call setup: `#[instrument]` and `info_span!` spans exported on the SDK's
/// tracer provider through `tracing-opentelemetry`, events as log records, and a console
/// formatter whose lines carry trace and span ids, all filtered by `RUST_LOG`. Feature
/// `tracing-bridge`.
///
/// ```no_run
/// use otelrs_core::sdk::{SdkBuilder, TracingBridge};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let telemetry = SdkBuilder::from_env()?
///     .with_service_name("checkout")
///     .with_tracing_bridge(TracingBridge::default())
///     .install()?; // providers, propagator and the global `tracing` subscriber
///
/// #[tracing::instrument]
/// fn charge(order: u64) {
///     // Exported as a child of the span that was current when `charge` was called; a span
///     // started here by an adapter or the OpenTelemetry API is a child of `charge`.
///     tracing::info!("charged"); // a log record with charge's trace and span ids
/// }
/// charge(42);
/// # telemetry.shutdown()?; Ok(()) }
/// ```
///
/// # What it installs
///
/// | Layer | When |
/// | --- | --- |
/// | `tracing-opentelemetry` (spans) with context activation | traces are exported ([`TracingBridge::with_spans`]) |
/// | the log bridge ([`TelemetryGuard::tracing_layer`]) | logs are exported ([`TracingBridge::with_logs`]) |
/// | a console formatter ([`TraceIdFormat`]) on stdout | by default ([`TracingBridge::with_fmt`]) |
///
/// **Context activation** (on): entering a `tracing` span makes its OpenTelemetry context
/// current, so every adapter and [`opentelemetry::Context::current`] see it: a client call made
/// inside an `#[instrument]` function is that span's child, and a `tracing` span created while an
/// adapter's span is current (in a handler behind a server layer) is that span's child. Both
/// directions hold on any thread: `.instrument(span)` enters the span at every poll.
///
/// # Filtering
///
/// One `EnvFilter` per layer, from these directives, in order:
///
/// 1. `<target>=warn` for each of [`LIBRARY_TARGETS`] (unless
///    [`TracingBridge::with_library_spans`]`(true)`): library internals stay out of traces;
/// 2. the user's directives: [`TracingBridge::with_filter`] if set, else `RUST_LOG` if set and
///    not empty, else [`TracingBridge::with_default_filter`] (`info`).
///
/// A later directive for the same target replaces an earlier one, so `RUST_LOG=debug` keeps
/// `h2` at `warn` while `RUST_LOG=info,h2=trace` lets its spans through. An invalid `RUST_LOG`
/// is an error ([`SdkError::Config`] naming `RUST_LOG`), not silently ignored. The log bridge also
/// drops events of the `opentelemetry*` targets, so an export failure cannot feed itself.
///
/// # Versions
///
/// The bridge uses `tracing-opentelemetry` [`TRACING_OPENTELEMETRY_VERSION`] (0.34), the release
/// built on `opentelemetry` 0.33, re-exported as [`crate::tracing_opentelemetry`] for
/// `OpenTelemetrySpanExt` and the like. A `tracing-opentelemetry` built on another
/// `opentelemetry` (0.33.x is built on 0.32, 0.35 will be on 0.34) uses that version's own
/// context and globals: its layer does not accept this SDK's tracer (a type error), and with a
/// provider of its own its spans and the adapters' spans are **never** parent and child (two
/// disconnected traces per request), silently. Use the bridge or the re-export, not a separately
/// chosen release.
pub struct TracingBridge {
    spans: bool,
    logs: bool,
    fmt: bool,
    fmt_writer: Option<Arc<BoxMakeWriter>>,
    filter: Option<String>,
    default_filter: String,
    library_spans: bool,
}

impl Default for TracingBridge {
    fn default() -> Self {
        Self {
            spans: true,
            logs: true,
            fmt: true,
            fmt_writer: None,
            filter: None,
            default_filter: "info".to_owned(),
            library_spans: false,
        }
    }
}

impl fmt::Debug for TracingBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingBridge")
            .field("spans", &self.spans)
            .field("logs", &self.logs)
            .field("fmt", &self.fmt)
            .field("custom_fmt_writer", &self.fmt_writer.is_some())
            .field("filter", &self.filter)
            .field("default_filter", &self.default_filter)
            .field("library_spans", &self.library_spans)
            .finish()
    }
}

impl TracingBridge {
    /// Spans, log records and the console formatter, filtered by `RUST_LOG` (default `info`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `tracing` spans are exported (default `true`; only when traces are exported).
    pub fn with_spans(mut self, on: bool) -> Self {
        self.spans = on;
        self
    }

    /// Whether `tracing` events become OpenTelemetry log records (default `true`; only when logs
    /// are exported).
    pub fn with_logs(mut self, on: bool) -> Self {
        self.logs = on;
        self
    }

    /// Whether events are also printed, one [`TraceIdFormat`] line each (default `true`, on
    /// stdout).
    pub fn with_fmt(mut self, on: bool) -> Self {
        self.fmt = on;
        self
    }

    /// Prints console lines to `writer` instead of stdout, without colours (turns the console
    /// formatter on).
    ///
    /// ```
    /// use otelrs_core::sdk::TracingBridge;
    /// let bridge = TracingBridge::new().with_fmt_writer(std::io::stderr);
    /// # let _ = bridge;
    /// ```
    pub fn with_fmt_writer(mut self, writer: impl for<'a> MakeWriter<'a> + Send + Sync + 'static) -> Self {
        self.fmt = true;
        self.fmt_writer = Some(Arc::new(BoxMakeWriter::new(writer)));
        self
    }

    /// Uses these directives (`EnvFilter` syntax) instead of `RUST_LOG`.
    pub fn with_filter(mut self, directives: impl Into<String>) -> Self {
        self.filter = Some(directives.into());
        self
    }

    /// The directives used when `RUST_LOG` is not set or empty (default `info`).
    pub fn with_default_filter(mut self, directives: impl Into<String>) -> Self {
        self.default_filter = directives.into();
        self
    }

    /// `true`: do not add the `<target>=warn` directives of [`LIBRARY_TARGETS`] (default
    /// `false`).
    pub fn with_library_spans(mut self, on: bool) -> Self {
        self.library_spans = on;
        self
    }

    /// The directives one layer's filter is built from, given the value of `RUST_LOG`.
    fn directives(&self, rust_log: Option<&str>) -> Result<String, ConfigError> {
        let rust_log = rust_log.filter(|v| !v.trim().is_empty());
        let (user, variable) = match (&self.filter, rust_log) {
            (Some(f), _) => (f.as_str(), "TracingBridge::with_filter"),
            (None, Some(env)) => (env, "RUST_LOG"),
            (None, None) => (self.default_filter.as_str(), "TracingBridge::with_default_filter"),
        };
        if let Err(e) = EnvFilter::builder().parse(user) {
            return Err(ConfigError::new(variable, user, e.to_string()));
        }
        let mut directives = String::new();
        if !self.library_spans {
            for target in LIBRARY_TARGETS {
                directives.push_str(target);
                directives.push_str("=warn,");
            }
        }
        directives.push_str(user);
        Ok(directives)
    }

    fn filter(directives: &str) -> Result<EnvFilter, SdkError> {
        EnvFilter::builder()
            .parse(directives)
            .map_err(|e| SdkError::Config(ConfigError::new("RUST_LOG", directives, e.to_string())))
    }

    /// The bridge's layers for a subscriber of your own (each with its own filter), bound to
    /// `guard`'s providers. Reads `RUST_LOG`.
    ///
    /// ```
    /// use otelrs_core::sdk::{Exporter, SdkBuilder, SdkConfig, TracingBridge};
    /// use tracing_subscriber::layer::SubscriberExt as _;
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let telemetry = SdkBuilder::from_config(SdkConfig::default())
    ///     .with_traces_exporters([Exporter::Console])
    ///     .with_metrics_exporters([])
    ///     .with_logs_exporters([])
    ///     .build()?;
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(TracingBridge::new().with_fmt(false).layer(&telemetry)?);
    /// tracing::subscriber::with_default(subscriber, || tracing::info_span!("work").in_scope(|| {}));
    /// # telemetry.shutdown()?; Ok(()) }
    /// ```
    pub fn layer<S>(&self, guard: &TelemetryGuard) -> Result<Box<dyn Layer<S> + Send + Sync + 'static>, SdkError>
    where
        S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let rust_log = std::env::var("RUST_LOG").ok();
        let directives = self.directives(rust_log.as_deref())?;
        let mut layers: Vec<Box<dyn Layer<S> + Send + Sync + 'static>> = Vec::new();
        if self.spans {
            if let Some(spans) = guard.tracing_span_layer::<S>() {
                layers.push(spans.with_filter(Self::filter(&directives)?).boxed());
            }
        }
        if self.logs {
            if let Some(logs) = guard.tracing_layer() {
                // No feedback loop: the SDK's own diagnostics are never exported as logs.
                let filter = Self::filter(&format!("{directives},opentelemetry=off"))?;
                layers.push(logs.with_filter(filter).boxed());
            }
        }
        if self.fmt {
            let fmt = tracing_subscriber::fmt::layer().event_format(TraceIdFormat::default());
            let layer = match &self.fmt_writer {
                Some(writer) => fmt
                    .with_ansi(false)
                    .with_writer(SharedWriter(writer.clone()))
                    .with_filter(Self::filter(&directives)?)
                    .boxed(),
                None => fmt
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(Self::filter(&directives)?)
                    .boxed(),
            };
            layers.push(layer);
        }
        Ok(layers.boxed())
    }

    /// A complete subscriber (a registry with [`TracingBridge::layer`]), e.g. for
    /// `tracing::subscriber::set_default` in a test.
    pub fn subscriber(
        &self,
        guard: &TelemetryGuard,
    ) -> Result<impl Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static, SdkError> {
        Ok(tracing_subscriber::registry().with(self.layer(guard)?))
    }

    /// Installs [`TracingBridge::subscriber`] as the global default subscriber. Fails when one is
    /// already set.
    pub fn install(&self, guard: &TelemetryGuard) -> Result<(), SdkError> {
        tracing::subscriber::set_global_default(self.subscriber(guard)?)
            .map_err(|e| SdkError::Subscriber(e.to_string()))
    }
}

/// A [`BoxMakeWriter`] shared by the layers built from one [`TracingBridge`] (it is not `Clone`).
struct SharedWriter(Arc<BoxMakeWriter>);

impl<'a> MakeWriter<'a> for SharedWriter {
    type Writer = Box<dyn std::io::Write + 'a>;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        self.0.make_writer_for(meta)
    }
}

impl TelemetryGuard {
    /// A `tracing-opentelemetry` layer exporting `tracing` spans on this guard's tracer provider,
    /// with context activation on (see [`TracingBridge`]); `None` when traces are not exported.
    /// No filter: add one (library internals otherwise end up in traces). Feature
    /// `tracing-bridge`.
    pub fn tracing_span_layer<S>(&self) -> Option<OpenTelemetryLayer<S, SdkTracer>>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let provider = self.tracer_provider()?;
        let scope = opentelemetry::InstrumentationScope::builder("tracing-opentelemetry")
            .with_version(TRACING_OPENTELEMETRY_VERSION)
            .build();
        Some(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer_with_scope(scope))
                .with_context_activation(true),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    /// Which of (h2 TRACE, h2 WARN, app TRACE, app DEBUG, app INFO) `directives` enable.
    fn verdicts(directives: &str) -> [bool; 5] {
        let filter = TracingBridge::filter(directives).unwrap();
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            [
                tracing::enabled!(target: "h2::proto", Level::TRACE),
                tracing::enabled!(target: "h2::proto", Level::WARN),
                tracing::enabled!(target: "app", Level::TRACE),
                tracing::enabled!(target: "app", Level::DEBUG),
                tracing::enabled!(target: "app", Level::INFO),
            ]
        })
    }

    #[test]
    fn the_default_is_info_with_library_internals_at_warn() {
        let bridge = TracingBridge::new();
        for unset in [None, Some(""), Some("  ")] {
            let d = bridge.directives(unset).unwrap();
            assert!(d.starts_with("h2=warn,hyper=warn,tonic=warn,"), "{d}");
            assert!(d.ends_with(",opentelemetry=warn,info"), "{d}");
            assert_eq!(verdicts(&d), [false, true, false, false, true]);
        }
    }

    #[test]
    fn rust_log_raises_the_level_but_not_for_library_internals_unless_named() {
        let bridge = TracingBridge::new();
        assert_eq!(
            verdicts(&bridge.directives(Some("trace")).unwrap()),
            [false, true, true, true, true]
        );
        assert_eq!(
            verdicts(&bridge.directives(Some("debug")).unwrap()),
            [false, true, false, true, true]
        );
        // A directive for the same target replaces the default one.
        assert_eq!(
            verdicts(&bridge.directives(Some("info,h2=trace")).unwrap()),
            [true, true, false, false, true]
        );
        assert_eq!(
            verdicts(
                &TracingBridge::new()
                    .with_library_spans(true)
                    .directives(Some("trace"))
                    .unwrap()
            ),
            [true; 5]
        );
    }

    #[test]
    fn code_wins_over_rust_log_and_the_default_applies_only_without_it() {
        let code = TracingBridge::new().with_filter("warn");
        assert_eq!(
            verdicts(&code.directives(Some("trace")).unwrap()),
            [false, true, false, false, false]
        );
        let default = TracingBridge::new().with_default_filter("debug");
        assert_eq!(
            verdicts(&default.directives(None).unwrap()),
            [false, true, false, true, true]
        );
        assert_eq!(
            verdicts(&default.directives(Some("info")).unwrap()),
            [false, true, false, false, true]
        );
    }

    #[test]
    fn an_invalid_filter_is_an_error_naming_its_source() {
        let err = TracingBridge::new().directives(Some("app=loud")).unwrap_err();
        assert_eq!((err.variable.as_str(), err.value.as_str()), ("RUST_LOG", "app=loud"));
        let err = TracingBridge::new()
            .with_filter("app=loud")
            .directives(None)
            .unwrap_err();
        assert_eq!(err.variable, "TracingBridge::with_filter");
    }

    #[test]
    fn no_tracer_provider_means_no_span_layer() {
        let guard = super::super::SdkBuilder::from_config(super::super::SdkConfig::default())
            .with_traces_exporters([])
            .with_metrics_exporters([])
            .with_logs_exporters([])
            .build()
            .unwrap();
        assert!(guard.tracing_span_layer::<tracing_subscriber::Registry>().is_none());
        // The bridge still builds: the console formatter alone.
        let subscriber = TracingBridge::new()
            .with_filter("info")
            .with_fmt_writer(std::io::sink)
            .subscriber(&guard)
            .unwrap();
        tracing::subscriber::with_default(subscriber, || tracing::info!("printed to nowhere"));
    }
}
