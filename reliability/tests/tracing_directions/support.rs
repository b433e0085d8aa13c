//! The shared setup (one global bridge per test binary) and exact lookups.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::logs::{InMemoryLogExporter, SimpleLogProcessor};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use otelrs_core::sdk::{SdkBuilder, SdkConfig, TelemetryGuard, TracingBridge};
use otelrs_core::testing::SpanDataExt as _;
use otelrs_core::Instrumentation;

/// Generous: the machine may be loaded.
pub const TIMEOUT: Duration = Duration::from_secs(20);

struct Setup {
    spans: InMemorySpanExporter,
    logs: InMemoryLogExporter,
    guard: TelemetryGuard,
}

/// The one-call setup with the tracing bridge, installed globally once for this binary: `tracing`
/// spans, adapter spans and log records all go to the same in-memory exporters.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let logs = InMemoryLogExporter::default();
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_traces_exporters([])
            .with_metrics_exporters([])
            .with_logs_exporters([])
            .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
            .with_log_processor(SimpleLogProcessor::new(logs.clone()))
            // The application's INFO spans and events, whatever RUST_LOG says; library internals
            // (h2, hyper, tonic, sqlx, lapin, ...) stay out by the bridge's default.
            .with_tracing_bridge(TracingBridge::new().with_filter("info").with_fmt(false))
            .install()
            .expect("the SDK and the global tracing subscriber install");
        Setup { spans, logs, guard }
    })
}

/// The adapters' instrumentation: the bridge's tracer provider and propagator.
pub fn instrumentation() -> Instrumentation {
    setup().guard.instrumentation()
}

/// A name unique to this process and call (routes, queues, topics, subjects, tables, keys).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Yields to the scheduler and sleeps a few times, so the task is likely to resume on another
/// worker thread.
pub async fn hop() {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
    }
}

/// Fails the test with a message naming the URL and how to start the service.
#[track_caller]
pub fn unreachable_service(url: &str, service: &str, variable: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach {service} at {url}: {err}\n\
         start it with `docker compose up -d {service}` (or set {variable} to a reachable server)"
    )
}

fn finished() -> Vec<SpanData> {
    setup().spans.get_finished_spans().unwrap_or_default()
}

/// Waits until exactly one finished span satisfies `pred`; fails if two do, or none in time.
#[track_caller]
fn wait_one(what: &str, pred: impl Fn(&SpanData) -> bool) -> SpanData {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let all = finished();
        let mut found: Vec<SpanData> = all.iter().filter(|s| pred(s)).cloned().collect();
        assert!(found.len() < 2, "more than one {what}: {found:#?}");
        if let Some(span) = found.pop() {
            return span;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} within {TIMEOUT:?}; finished: {:?}",
            all.iter()
                .map(|s| (s.name.as_ref(), s.span_context.trace_id()))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The one span named `name` (a `tracing` span, or an adapter span named after a unique route,
/// queue or subject).
#[track_caller]
pub fn span(name: &str) -> SpanData {
    wait_one(&format!("span named {name:?}"), |s| s.name == name)
}

/// The one span of `trace_id` with this kind and name.
#[track_caller]
pub fn span_in(trace_id: TraceId, kind: SpanKind, name: &str) -> SpanData {
    wait_one(&format!("{kind:?} span {name:?} in trace {trace_id}"), |s| {
        s.span_context.trace_id() == trace_id && s.span_kind == kind && s.name == name
    })
}

/// Every finished span of `trace_id` with this kind, in the order they ended (at least `count`,
/// waiting for them).
#[track_caller]
pub fn spans_in(trace_id: TraceId, kind: SpanKind, count: usize) -> Vec<SpanData> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let found: Vec<SpanData> = finished()
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace_id && s.span_kind == kind)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} {kind:?} spans in trace {trace_id}, found {:?}",
            found.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that `span` was made by the `tracing` bridge (not by an adapter).
#[track_caller]
pub fn assert_from_tracing(span: &SpanData) {
    assert_eq!(
        span.instrumentation_scope.name(),
        "tracing-opentelemetry",
        "scope of span {:?}",
        span.name
    );
    span.assert_kind(SpanKind::Internal);
}

/// Asserts that `child`'s parent is `parent` and that the parent came over the wire (a
/// `traceparent` header, gRPC metadata or message headers), i.e. `child` is on the other side.
#[track_caller]
pub fn assert_remote_child_of(child: &SpanData, parent: &SpanData) {
    child.assert_child_of(parent);
    assert!(
        child.parent_span_is_remote,
        "span {:?} should continue {:?} from the wire (remote parent)",
        child.name, parent.name
    );
}

/// Asserts that `span` has exactly one link, to `to` (trace id and span id).
#[track_caller]
pub fn assert_links_only_to(span: &SpanData, to: &SpanData) {
    let links: Vec<(TraceId, SpanId)> = span
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect();
    assert_eq!(
        links,
        [(to.span_context.trace_id(), to.span_context.span_id())],
        "links of span {:?} (expected one, to {:?})",
        span.name,
        to.name
    );
}

/// The trace and span ids of the one log record whose body is `body`.
#[track_caller]
fn log_ids(body: &str) -> (TraceId, SpanId) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let logs = setup().logs.get_emitted_logs().unwrap_or_default();
        let found: Vec<_> = logs
            .iter()
            .filter(|l| matches!(l.record.body(), Some(AnyValue::String(s)) if s.as_str() == body))
            .collect();
        assert!(found.len() < 2, "more than one log record {body:?}");
        if let Some(record) = found.first() {
            let tc = record
                .record
                .trace_context()
                .unwrap_or_else(|| panic!("log record {body:?} has no trace context"));
            return (tc.trace_id, tc.span_id);
        }
        assert!(Instant::now() < deadline, "no log record {body:?} within {TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts that the log record `body` carries `span`'s trace id and span id.
#[track_caller]
pub fn assert_log_in(body: &str, span: &SpanData) {
    assert_eq!(
        log_ids(body),
        (span.span_context.trace_id(), span.span_context.span_id()),
        "trace and span ids of log record {body:?} (expected those of span {:?})",
        span.name
    );
}
