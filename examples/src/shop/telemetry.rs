//! Telemetry of the shop: one SDK per service through otelrs-core's [`SdkBuilder`] (so every
//! `OTEL_*` variable works and each service exports under its own `service.name`), each with the
//! `tracing` bridge ([`TracingBridge`]), plus an in-process copy of every finished span so the
//! demo can draw its waterfalls.
//!
//! Each service's SDK gets a span processor of the demo's that turns every span it ends into a
//! [`FinishedSpan`] in a shared [`SpanSink`]: the adapters' spans and the `tracing` spans
//! (`#[instrument]`) the bridge exports on the same tracer provider. Metrics are read back from
//! each service's Prometheus registry (see [`super::metrics`]).
//!
//! **`tracing`, one subscriber per service.** A service on its own would install the bridge as
//! the global subscriber (`SdkBuilder::with_tracing_bridge(..).install()`). Here four services
//! share one process (and the demo's test starts several shops in one process), so each service
//! gets the bridge's subscriber as a [`tracing::Dispatch`] of its own
//! ([`ServiceTelemetry::tracing_dispatch`]) and runs its request handling under it
//! (`orders` does: [`super::orders`]); its `tracing` spans are exported under its own
//! `service.name`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
use otelrs_core::sdk::{Exporter, PrometheusHandle, SdkBuilder, SdkError, TelemetryGuard, TracingBridge};
use otelrs_core::Instrumentation;

/// A finished span as the demo renders and the test asserts it.
#[derive(Clone, Debug)]
pub struct FinishedSpan {
    /// The shop service that recorded it (`gateway`, `users`, `orders`, `notifier`).
    pub service: &'static str,
    /// The instrumentation scope (the crate that made the span).
    pub scope: Cow<'static, str>,
    /// The span's own context.
    pub context: SpanContext,
    /// The parent span id, if the span has a valid parent.
    pub parent_span_id: Option<SpanId>,
    /// Whether that parent came from another process (an incoming `traceparent`, a message).
    pub parent_is_remote: bool,
    /// Span kind.
    pub kind: SpanKind,
    /// Span name.
    pub name: Cow<'static, str>,
    /// Start time.
    pub start: SystemTime,
    /// End time.
    pub end: SystemTime,
    /// Final status.
    pub status: Status,
    /// Attributes, last value per key.
    pub attributes: Vec<KeyValue>,
    /// Span contexts this span links to.
    pub links: Vec<SpanContext>,
    /// Names of the events recorded on the span.
    pub events: Vec<Cow<'static, str>>,
}

impl FinishedSpan {
    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.context.trace_id()
    }

    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.context.span_id()
    }

    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&opentelemetry::Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    /// The value of attribute `key` rendered as text.
    pub fn attr_string(&self, key: &str) -> Option<String> {
        self.attr(key).map(|v| v.as_str().into_owned())
    }

    /// Duration (zero if the clock went backwards).
    pub fn duration(&self) -> Duration {
        self.end.duration_since(self.start).unwrap_or_default()
    }

    /// Whether the status is `Error`.
    pub fn is_error(&self) -> bool {
        matches!(self.status, Status::Error { .. })
    }
}

/// Where finished spans of every service go, in the order they end.
#[derive(Clone, Debug, Default)]
pub struct SpanSink {
    spans: Arc<Mutex<Vec<FinishedSpan>>>,
}

impl SpanSink {
    fn push(&self, span: FinishedSpan) {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).push(span);
    }

    /// Number of spans finished so far (a marker for [`SpanSink::since`]).
    pub fn len(&self) -> usize {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no span finished yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Spans finished after `marker` (a value of [`SpanSink::len`]).
    pub fn since(&self, marker: usize) -> Vec<FinishedSpan> {
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        spans.get(marker..).map(<[FinishedSpan]>::to_vec).unwrap_or_default()
    }

    /// Every span of trace `trace_id` finished so far.
    pub fn trace(&self, trace_id: TraceId) -> Vec<FinishedSpan> {
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        spans.iter().filter(|s| s.trace_id() == trace_id).cloned().collect()
    }

    /// Waits up to `timeout` until `done` holds for the spans of `trace_id`; returns them either way.
    pub async fn wait_trace(
        &self,
        trace_id: TraceId,
        timeout: Duration,
        done: impl Fn(&[FinishedSpan]) -> bool,
    ) -> Vec<FinishedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.trace(trace_id);
            if done(&spans) || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl FinishedSpan {
    /// A span the SDK of `service` finished (attributes: the last value per key).
    pub fn from_span_data(service: &'static str, span: SpanData) -> Self {
        let mut attributes = Vec::with_capacity(span.attributes.len());
        for kv in span.attributes {
            set_attr(&mut attributes, kv);
        }
        let has_parent = span.parent_span_id != SpanId::INVALID;
        Self {
            service,
            scope: Cow::Owned(span.instrumentation_scope.name().to_owned()),
            context: span.span_context,
            parent_span_id: has_parent.then_some(span.parent_span_id),
            parent_is_remote: has_parent && span.parent_span_is_remote,
            kind: span.span_kind,
            name: span.name,
            start: span.start_time,
            end: span.end_time,
            status: span.status,
            attributes,
            links: span.links.iter().map(|l| l.span_context.clone()).collect(),
            events: span.events.iter().map(|e| e.name.clone()).collect(),
        }
    }
}

fn set_attr(attrs: &mut Vec<KeyValue>, kv: KeyValue) {
    match attrs.iter_mut().find(|a| a.key == kv.key) {
        Some(existing) => *existing = kv,
        None => attrs.push(kv),
    }
}

/// A span processor of one service's SDK that copies every span it ends into the [`SpanSink`]:
/// the spans the adapters make and the `tracing` spans the bridge exports on the same provider.
#[derive(Debug)]
struct SinkProcessor {
    service: &'static str,
    sink: SpanSink,
}

impl SpanProcessor for SinkProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.sink.push(FinishedSpan::from_span_data(self.service, span));
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// One service's SDK and the [`Instrumentation`] its adapters use.
#[derive(Debug)]
pub struct ServiceTelemetry {
    /// The service name (`service.name` of its resource).
    pub name: &'static str,
    guard: TelemetryGuard,
    instrumentation: Instrumentation,
    tracing: tracing::Dispatch,
}

impl ServiceTelemetry {
    /// The instrumentation every adapter of this service takes.
    pub fn instrumentation(&self) -> Instrumentation {
        self.instrumentation.clone()
    }

    /// The service's `tracing` subscriber: the bridge ([`TracingBridge`], no console output)
    /// on this service's providers, filtered by `RUST_LOG` (default `info`, library internals
    /// kept out). Run the service's code under it (`WithSubscriber::with_subscriber`) and its
    /// `#[instrument]` spans are exported and drawn with its other spans.
    pub fn tracing_dispatch(&self) -> tracing::Dispatch {
        self.tracing.clone()
    }

    /// The service's Prometheus registry (absent only when the SDK is disabled).
    pub fn prometheus(&self) -> Option<PrometheusHandle> {
        self.guard.prometheus()
    }
}

/// The SDKs of all shop services and the captured spans.
#[derive(Debug)]
pub struct ShopTelemetry {
    services: Vec<ServiceTelemetry>,
    sink: SpanSink,
    exports: Vec<String>,
}

fn is_set(var: &str) -> bool {
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}

impl ShopTelemetry {
    /// Sets up one SDK per service from the `OTEL_*` environment.
    ///
    /// Differences from otelrs-core's defaults, so that a bare `cargo run` needs no collector:
    /// traces and metrics are exported over OTLP only when `OTEL_TRACES_EXPORTER` /
    /// `OTEL_METRICS_EXPORTER` or an `OTEL_EXPORTER_OTLP_*ENDPOINT` is set, and logs only when
    /// `OTEL_LOGS_EXPORTER` is. A Prometheus reader is always added to the metrics pipeline: the
    /// RED table and the gateway's `/metrics` read it.
    pub fn from_env(services: &[&'static str]) -> Result<Self, SdkError> {
        let sink = SpanSink::default();
        let mut out = Vec::new();
        let mut exports = Vec::new();
        let traces_configured = is_set("OTEL_TRACES_EXPORTER")
            || is_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || is_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics_configured = is_set("OTEL_METRICS_EXPORTER")
            || is_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || is_set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        for &name in services {
            // Spans are recorded even when nothing exports them: the demo draws them.
            let mut builder = SdkBuilder::from_env()?
                .with_service_name(name)
                .with_span_processor(SinkProcessor {
                    service: name,
                    sink: sink.clone(),
                });
            if !traces_configured {
                builder = builder.with_traces_exporters([]);
            }
            let mut metrics: Vec<Exporter> = if metrics_configured {
                builder.config().metrics_exporters.clone()
            } else {
                Vec::new()
            };
            if !metrics.contains(&Exporter::Prometheus) {
                metrics.push(Exporter::Prometheus);
            }
            builder = builder.with_metrics_exporters(metrics);
            if !is_set("OTEL_LOGS_EXPORTER") {
                builder = builder.with_logs_exporters([]);
            }
            if exports.is_empty() {
                let c = builder.config();
                if !c.disabled {
                    for (signal, exporters, otlp) in [
                        ("traces", &c.traces_exporters, &c.otlp_traces),
                        ("metrics", &c.metrics_exporters, &c.otlp_metrics),
                    ] {
                        for e in exporters {
                            match e {
                                Exporter::Otlp => {
                                    exports.push(format!("{signal} → OTLP {} ({:?})", otlp.endpoint, otlp.protocol))
                                }
                                Exporter::Console => exports.push(format!("{signal} → console")),
                                Exporter::Prometheus => {}
                            }
                        }
                    }
                }
            }
            let guard = builder.build()?;
            let instrumentation = guard.instrumentation();
            let tracing = tracing::Dispatch::new(TracingBridge::new().with_fmt(false).subscriber(&guard)?);
            out.push(ServiceTelemetry {
                name,
                guard,
                instrumentation,
                tracing,
            });
        }
        Ok(Self {
            services: out,
            sink,
            exports,
        })
    }

    /// The telemetry of service `name`.
    ///
    /// # Panics
    ///
    /// If `name` is not one of the services given to [`ShopTelemetry::from_env`] (a programming error).
    pub fn service(&self, name: &str) -> &ServiceTelemetry {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no telemetry for service {name}"))
    }

    /// All services.
    pub fn services(&self) -> &[ServiceTelemetry] {
        &self.services
    }

    /// The captured spans.
    pub fn spans(&self) -> &SpanSink {
        &self.sink
    }

    /// Where signals are exported besides the demo's own output, one description per exporter.
    pub fn exports(&self) -> &[String] {
        &self.exports
    }

    /// Whether `OTEL_SDK_DISABLED` turned telemetry off.
    pub fn is_disabled(&self) -> bool {
        self.services.first().is_some_and(|s| s.guard.is_disabled())
    }

    /// Flushes and shuts down every service's SDK (bounded by the shutdown timeout each).
    pub fn shutdown(&self) -> Result<(), SdkError> {
        let mut first_error = None;
        for s in &self.services {
            if let Err(e) = s.guard.shutdown() {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
