//! The `tracing` bridge of the one-call setup (`SdkBuilder::with_tracing_bridge`), installed
//! globally once for this binary, on multi-thread runtimes: `tracing` spans and OpenTelemetry-API
//! spans nest both ways with exact parents, whichever worker thread polls them; log records and
//! console lines carry the ids of the span they were emitted in; library internals stay out.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::trace::{FutureExt as _, Span as _, SpanId, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::logs::{InMemoryLogExporter, SimpleLogProcessor};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};
use otelrs_core::sdk::{SdkBuilder, SdkConfig, TelemetryGuard, TracingBridge};
use otelrs_core::testing::SpanDataExt as _;
use tracing::Instrument as _;

struct Setup {
    spans: InMemorySpanExporter,
    logs: InMemoryLogExporter,
    console: Arc<Mutex<Vec<u8>>>,
    guard: TelemetryGuard,
}

#[derive(Clone)]
struct Console(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One global installation for every test of this binary (a global subscriber can be set once);
/// each test names its spans uniquely.
fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let spans = InMemorySpanExporter::default();
        let logs = InMemoryLogExporter::default();
        let console = Arc::new(Mutex::new(Vec::new()));
        let writer = Console(console.clone());
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_traces_exporters([])
            .with_metrics_exporters([])
            .with_logs_exporters([])
            .with_span_processor(SimpleSpanProcessor::new(spans.clone()))
            .with_log_processor(SimpleLogProcessor::new(logs.clone()))
            // Everything the application emits, down to TRACE: library internals must still stay out.
            .with_tracing_bridge(
                TracingBridge::new()
                    .with_filter("trace")
                    .with_fmt_writer(move || writer.clone()),
            )
            .install()
            .expect("installs");
        Setup {
            spans,
            logs,
            console,
            guard,
        }
    })
}

fn tracer() -> opentelemetry_sdk::trace::SdkTracer {
    setup()
        .guard
        .tracer_provider()
        .expect("traces on")
        .tracer("bridge-test")
}

#[track_caller]
fn span(name: &str) -> SpanData {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let all = setup().spans.get_finished_spans().unwrap_or_default();
        let mut found: Vec<SpanData> = all.iter().filter(|s| s.name == name).cloned().collect();
        if found.len() == 1 {
            return found.remove(0);
        }
        assert!(found.len() < 2, "more than one span named {name:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "no span named {name:?}; finished: {:?}",
            all.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn span_names() -> Vec<String> {
    setup()
        .spans
        .get_finished_spans()
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect()
}

/// Hops to another worker thread (or at least yields to the scheduler) several times.
async fn hop() {
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
    }
}

#[tracing::instrument(name = "instrumented-handler", skip_all)]
async fn instrumented_handler() {
    hop().await;
    let tracer = tracer();
    let mut child = tracer.start("otel-child-of-instrument");
    child.end();
    hop().await;
    // A span made current by the OpenTelemetry API inside the `tracing` span: the usual shape of
    // an adapter's client call.
    async {
        hop().await;
        tracing::info!("inside the otel span");
    }
    .with_context(Context::current_with_span(tracer.start("otel-current-in-instrument")))
    .await;
    tracing::info!(order = 7, "charged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_api_span_inside_an_instrumented_function_is_its_child() {
    setup();
    let test_thread = std::thread::current().id();
    let root = tracer().start("bridge-root-1");
    let root_cx = Context::current_with_span(root);
    let on_worker = tokio::spawn(
        async move {
            assert_ne!(std::thread::current().id(), test_thread, "runs on a worker thread");
            instrumented_handler().await;
        }
        .with_context(root_cx.clone()),
    );
    on_worker.await.unwrap();
    root_cx.span().end();

    let root = span("bridge-root-1");
    let handler = span("instrumented-handler");
    handler.assert_child_of(&root);
    span("otel-child-of-instrument").assert_child_of(&handler);
    let current = span("otel-current-in-instrument");
    current.assert_child_of(&handler);

    // Log records carry the ids of the span they were emitted in.
    let logs = setup().logs.get_emitted_logs().unwrap();
    let ids_of = |body: &str| {
        let record = logs
            .iter()
            .find(|l| matches!(l.record.body(), Some(opentelemetry::logs::AnyValue::String(s)) if s.as_str() == body))
            .unwrap_or_else(|| panic!("no log record {body:?}"));
        let tc = record.record.trace_context().expect("trace context");
        (tc.trace_id, tc.span_id)
    };
    assert_eq!(
        ids_of("charged"),
        (handler.span_context.trace_id(), handler.span_context.span_id())
    );
    assert_eq!(
        ids_of("inside the otel span"),
        (current.span_context.trace_id(), current.span_context.span_id())
    );

    // So do console lines.
    let console = String::from_utf8(setup().console.lock().unwrap().clone()).unwrap();
    let line = console
        .lines()
        .find(|l| l.contains("charged"))
        .unwrap_or_else(|| panic!("no console line: {console}"));
    assert!(
        line.ends_with(&format!(
            "instrumented-handler: tracing_bridge: charged order=7 trace_id={} span_id={}",
            handler.span_context.trace_id(),
            handler.span_context.span_id()
        )),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_span_inside_an_otel_span_is_its_child() {
    setup();
    let tracer = tracer();
    let server = tracer.start("otel-server-2");
    let cx = Context::current_with_span(server);
    let test_thread = std::thread::current().id();
    tokio::spawn(
        async move {
            assert_ne!(std::thread::current().id(), test_thread);
            hop().await;
            tracing::info_span!("tracing-sync-2").in_scope(|| {});
            async {
                hop().await;
                tracing::debug_span!("tracing-nested-2").in_scope(|| {
                    let mut leaf = tracer.start("otel-leaf-2");
                    leaf.end();
                });
                hop().await;
            }
            .instrument(tracing::info_span!("tracing-async-2"))
            .await;
        }
        .with_context(cx.clone()),
    )
    .await
    .unwrap();
    cx.span().end();

    let server = span("otel-server-2");
    server.assert_root();
    span("tracing-sync-2").assert_child_of(&server);
    let outer = span("tracing-async-2");
    outer.assert_child_of(&server);
    let nested = span("tracing-nested-2");
    nested.assert_child_of(&outer);
    span("otel-leaf-2").assert_child_of(&nested);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_internals_stay_out_of_traces_by_default() {
    setup();
    async {
        hop().await;
        // A TRACE span of h2 (as an unfiltered bridge exports by the hundred) and of a user target.
        tracing::trace_span!(target: "h2::proto::streams", "h2-internal-3").in_scope(|| {
            tracing::trace!(target: "h2::codec", "frame-3");
            let mut call = tracer().start("otel-call-3");
            call.end();
        });
        tracing::trace_span!(target: "my_app", "app-trace-3").in_scope(|| {});
        tracing::warn!(target: "hyper_util::client", "pool-warning-3");
    }
    .instrument(tracing::info_span!("user-3"))
    .await;

    let user = span("user-3");
    assert!(!span_names().iter().any(|n| n == "h2-internal-3"), "{:?}", span_names());
    // The filtered-out span is transparent: the call made inside it is the user span's child.
    span("otel-call-3").assert_child_of(&user);
    span("app-trace-3").assert_child_of(&user);
    let logs = setup().logs.get_emitted_logs().unwrap();
    let bodies: Vec<String> = logs
        .iter()
        .filter_map(|l| match l.record.body() {
            Some(opentelemetry::logs::AnyValue::String(s)) => Some(s.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert!(!bodies.iter().any(|b| b == "frame-3"), "{bodies:?}");
    // Warnings of the same libraries still get through.
    let warning = logs
        .iter()
        .find(|l| matches!(l.record.body(), Some(opentelemetry::logs::AnyValue::String(s)) if s.as_str() == "pool-warning-3"))
        .expect("library warning logged");
    let tc = warning.record.trace_context().expect("trace context");
    assert_eq!(tc.span_id, user.span_context.span_id());
    assert_ne!(tc.span_id, SpanId::INVALID);
}
