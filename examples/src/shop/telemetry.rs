//! Telemetry of the shop: one SDK per service through otelrs-core's [`SdkBuilder`] (so every
//! `OTEL_*` variable works and each service exports under its own `service.name`), plus an
//! in-process copy of every finished span so the demo can draw its waterfalls.
//!
//! The SDK's tracer provider cannot take extra processors once built, so each service's provider
//! is wrapped in a [`CapturingTracerProvider`]: spans are created by the SDK (ids, sampling and
//! export are the SDK's) and every change made through the span API is mirrored into a
//! [`FinishedSpan`] delivered to a shared [`SpanSink`] when the span ends. Metrics are read back
//! from each service's Prometheus registry (see [`super::metrics`]).

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    Link, Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::SdkTracerProvider;
use otelrs_core::sdk::{Exporter, PrometheusHandle, SdkBuilder, SdkError, TelemetryGuard};
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

/// A tracer provider whose spans are the SDK's, mirrored into a [`SpanSink`] when they end.
#[derive(Clone, Debug)]
pub struct CapturingTracerProvider {
    inner: SdkTracerProvider,
    service: &'static str,
    sink: SpanSink,
}

impl TracerProvider for CapturingTracerProvider {
    type Tracer = CapturingTracer;

    fn tracer_with_scope(&self, scope: InstrumentationScope) -> CapturingTracer {
        CapturingTracer {
            scope: Cow::Owned(scope.name().to_owned()),
            inner: self.inner.tracer_with_scope(scope),
            service: self.service,
            sink: self.sink.clone(),
        }
    }
}

/// The tracer of a [`CapturingTracerProvider`].
#[derive(Clone, Debug)]
pub struct CapturingTracer {
    inner: opentelemetry_sdk::trace::SdkTracer,
    scope: Cow<'static, str>,
    service: &'static str,
    sink: SpanSink,
}

impl opentelemetry::trace::Tracer for CapturingTracer {
    type Span = CapturingSpan;

    fn build_with_context(&self, mut builder: SpanBuilder, parent_cx: &Context) -> CapturingSpan {
        let start = *builder.start_time.get_or_insert_with(SystemTime::now);
        let parent = parent_cx.span().span_context().clone();
        let mirror = FinishedSpan {
            service: self.service,
            scope: self.scope.clone(),
            context: SpanContext::empty_context(),
            parent_span_id: parent.is_valid().then(|| parent.span_id()),
            parent_is_remote: parent.is_valid() && parent.is_remote(),
            kind: builder.span_kind.clone().unwrap_or(SpanKind::Internal),
            name: builder.name.clone(),
            start,
            end: start,
            status: Status::Unset,
            attributes: Vec::new(),
            links: builder
                .links
                .iter()
                .flatten()
                .map(|l: &Link| l.span_context.clone())
                .collect(),
            events: Vec::new(),
        };
        let mut mirror = mirror;
        for kv in builder.attributes.iter().flatten() {
            set_attr(&mut mirror.attributes, kv.clone());
        }
        let span = self.inner.build_with_context(builder, parent_cx);
        let mirror = span.is_recording().then(|| {
            mirror.context = span.span_context().clone();
            mirror
        });
        CapturingSpan {
            inner: span,
            mirror,
            sink: self.sink.clone(),
        }
    }
}

fn set_attr(attrs: &mut Vec<KeyValue>, kv: KeyValue) {
    match attrs.iter_mut().find(|a| a.key == kv.key) {
        Some(existing) => *existing = kv,
        None => attrs.push(kv),
    }
}

/// A span of a [`CapturingTracer`].
#[derive(Debug)]
pub struct CapturingSpan {
    inner: opentelemetry_sdk::trace::Span,
    mirror: Option<FinishedSpan>,
    sink: SpanSink,
}

impl CapturingSpan {
    fn finish(&mut self, end: SystemTime) {
        if let Some(mut mirror) = self.mirror.take() {
            mirror.end = end;
            self.sink.push(mirror);
        }
    }
}

impl Drop for CapturingSpan {
    fn drop(&mut self) {
        // The SDK ends a dropped span too; keep the copy in step.
        self.finish(SystemTime::now());
    }
}

impl opentelemetry::trace::Span for CapturingSpan {
    fn add_event_with_timestamp<T>(&mut self, name: T, timestamp: SystemTime, attributes: Vec<KeyValue>)
    where
        T: Into<Cow<'static, str>>,
    {
        let name = name.into();
        if let Some(m) = &mut self.mirror {
            m.events.push(name.clone());
        }
        self.inner.add_event_with_timestamp(name, timestamp, attributes);
    }

    fn span_context(&self) -> &SpanContext {
        self.inner.span_context()
    }

    fn is_recording(&self) -> bool {
        self.inner.is_recording()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(m) = &mut self.mirror {
            set_attr(&mut m.attributes, attribute.clone());
        }
        self.inner.set_attribute(attribute);
    }

    fn set_status(&mut self, status: Status) {
        if let Some(m) = &mut self.mirror {
            // The SDK's rule: `Ok` is final, `Unset` never overrides.
            match (&m.status, &status) {
                (Status::Ok, _) | (_, Status::Unset) => {}
                _ => m.status = status.clone(),
            }
        }
        self.inner.set_status(status);
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        let name = new_name.into();
        if let Some(m) = &mut self.mirror {
            m.name = name.clone();
        }
        self.inner.update_name(name);
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(m) = &mut self.mirror {
            m.links.push(span_context.clone());
        }
        self.inner.add_link(span_context, attributes);
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.inner.end_with_timestamp(timestamp);
        self.finish(timestamp);
    }
}

/// One service's SDK and the [`Instrumentation`] its adapters use.
#[derive(Debug)]
pub struct ServiceTelemetry {
    /// The service name (`service.name` of its resource).
    pub name: &'static str,
    guard: TelemetryGuard,
    instrumentation: Instrumentation,
}

impl ServiceTelemetry {
    /// The instrumentation every adapter of this service takes.
    pub fn instrumentation(&self) -> Instrumentation {
        self.instrumentation.clone()
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
            let mut builder = SdkBuilder::from_env()?.with_service_name(name);
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
            let sampler_config = builder.config().sampler;
            let guard = builder.build()?;
            let instrumentation = if guard.is_disabled() {
                guard.instrumentation()
            } else {
                // Spans are recorded even when nothing exports them: the demo draws them.
                let provider = guard.tracer_provider().cloned().unwrap_or_else(|| {
                    SdkTracerProvider::builder()
                        .with_sampler(sampler_config.to_sampler())
                        .build()
                });
                guard.instrumentation().with_tracer_provider(CapturingTracerProvider {
                    inner: provider,
                    service: name,
                    sink: sink.clone(),
                })
            };
            out.push(ServiceTelemetry {
                name,
                guard,
                instrumentation,
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
