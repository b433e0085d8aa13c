//! The concurrency example's traces, on a multi-thread runtime: every parent and link asserted
//! by span id, never by "same trace".

use std::collections::HashSet;

use examples::concurrency::{self, SpanCapture, DEADLINE, ITEMS, JOBS, SHARDS, WORKERS};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData};

fn setup() -> (SpanCapture, SdkTracerProvider, SdkTracer) {
    let capture = SpanCapture::default();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(capture.clone())
        .build();
    let tracer = provider.tracer("concurrency-test");
    (capture, provider, tracer)
}

fn named(spans: &[SpanData], name: &str) -> Vec<SpanData> {
    spans.iter().filter(|s| s.name == name).cloned().collect()
}

#[track_caller]
fn one(spans: &[SpanData], name: &str) -> SpanData {
    let mut found = named(spans, name);
    assert_eq!(found.len(), 1, "exactly one {name:?} in {:?}", names(spans));
    found.remove(0)
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[track_caller]
fn assert_root(span: &SpanData) {
    assert_eq!(span.parent_span_id, SpanId::INVALID, "{} is a root", span.name);
}

#[track_caller]
fn assert_child_of(span: &SpanData, parent: &SpanData) {
    assert_eq!(span.span_context.trace_id(), parent.span_context.trace_id());
    assert_eq!(
        span.parent_span_id,
        parent.span_context.span_id(),
        "{} should be a child of {}",
        span.name,
        parent.name
    );
    assert!(!span.parent_span_is_remote, "an in-process parent is not remote");
}

#[track_caller]
fn assert_error_type(span: &SpanData, error_type: &str) {
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{} status {:?}",
        span.name,
        span.status
    );
    assert_eq!(attr(span, "error.type"), Some(&Value::from(error_type.to_owned())));
}

#[track_caller]
fn assert_ok(span: &SpanData) {
    assert_eq!(span.status, Status::Unset, "{}", span.name);
    assert_eq!(attr(span, "error.type"), None, "{}", span.name);
}

fn trace(capture: &SpanCapture, trace_id: TraceId) -> Vec<SpanData> {
    capture.trace(trace_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_pool_jobs_are_children_of_the_request_even_when_picked_up_later() {
    let (capture, _provider, tracer) = setup();
    let spans = trace(&capture, concurrency::worker_pool(&tracer).await);
    let request = one(&spans, "POST /reports");
    assert_root(&request);
    assert_eq!(request.span_kind, SpanKind::Server);
    let jobs = named(&spans, "render report");
    assert_eq!(jobs.len(), JOBS as usize, "{:?}", names(&spans));
    let mut ids = HashSet::new();
    for job in &jobs {
        assert_child_of(job, &request);
        assert_ok(job);
        ids.insert(attr(job, "job.id").cloned().map(|v| v.as_str().into_owned()));
    }
    assert_eq!(ids.len(), JOBS as usize, "each job once");
    // More jobs than workers: the last one started only when a worker was free, after the
    // request had answered. It is still the request's child.
    assert!(JOBS as usize > WORKERS);
    let last = jobs.iter().max_by_key(|j| j.start_time).unwrap();
    assert!(last.start_time >= request.end_time, "a job ran after the request ended");
    assert_eq!(spans.len(), 1 + JOBS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_each_item_is_a_chain_of_its_stages() {
    let (capture, _provider, tracer) = setup();
    let spans = trace(&capture, concurrency::pipeline(&tracer).await);
    let import = one(&spans, "POST /import");
    assert_root(&import);
    for item in 0..ITEMS {
        let of_item = |name: &str| {
            let found: Vec<SpanData> = named(&spans, name)
                .into_iter()
                .filter(|s| attr(s, "item") == Some(&Value::I64(item)))
                .collect();
            assert_eq!(found.len(), 1, "one {name} for item {item}");
            found[0].clone()
        };
        let (parse, enrich, store) = (of_item("parse"), of_item("enrich"), of_item("store"));
        assert_child_of(&parse, &import);
        assert_child_of(&enrich, &parse);
        assert_child_of(&store, &enrich);
    }
    assert_eq!(spans.len(), 1 + 3 * ITEMS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_children_and_a_merge_linking_each_of_them() {
    let (capture, _provider, tracer) = setup();
    let spans = trace(&capture, concurrency::fan_out_fan_in(&tracer).await);
    let search = one(&spans, "GET /search");
    assert_root(&search);
    let shards = named(&spans, "query shard");
    assert_eq!(shards.len(), SHARDS as usize);
    for shard in &shards {
        assert_child_of(shard, &search);
    }
    let merge = one(&spans, "merge results");
    assert_child_of(&merge, &search);
    let linked: Vec<SpanId> = merge.links.iter().map(|l| l.span_context.span_id()).collect();
    let shard_ids: HashSet<SpanId> = shards.iter().map(|s| s.span_context.span_id()).collect();
    assert_eq!(linked.len(), SHARDS as usize);
    assert_eq!(linked.iter().copied().collect::<HashSet<_>>(), shard_ids);
    assert_eq!(
        attr(&merge, "hits"),
        Some(&Value::I64((0..SHARDS).map(|s| s * 10).sum()))
    );
    assert_eq!(spans.len(), 2 + SHARDS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_the_caller_with_timeout_and_the_abandoned_work_cancelled() {
    let (capture, _provider, tracer) = setup();
    let spans = trace(&capture, concurrency::timeout(&tracer).await);
    let checkout = one(&spans, "POST /checkout");
    assert_root(&checkout);
    let call = one(&spans, "reserve stock");
    assert_child_of(&call, &checkout);
    assert_error_type(&call, "timeout");
    let lookup = one(&spans, "inventory lookup");
    assert_child_of(&lookup, &call);
    assert_error_type(&lookup, "cancelled");
    // The abandoned work ended when it was dropped, at the deadline, not when it would have
    // finished.
    let lookup_duration = lookup.end_time.duration_since(lookup.start_time).unwrap();
    assert!(lookup_duration >= DEADLINE, "{lookup_duration:?}");
    assert!(lookup_duration < DEADLINE * 30, "{lookup_duration:?}");
    assert!(lookup.end_time <= call.end_time);
    assert_eq!(spans.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_the_aborted_request_still_ends_cancelled() {
    let (capture, _provider, tracer) = setup();
    let spans = trace(&capture, concurrency::cancellation(&tracer).await);
    let quote = one(&spans, "GET /price");
    assert_root(&quote);
    assert_eq!(attr(&quote, "winner"), Some(&Value::from("a")));
    let fetches = named(&spans, "fetch price");
    assert_eq!(fetches.len(), 2);
    for fetch in &fetches {
        assert_child_of(fetch, &quote);
        match attr(fetch, "replica").map(|v| v.as_str().into_owned()).as_deref() {
            Some("a") => assert_ok(fetch),
            Some("b") => {
                assert_error_type(fetch, "cancelled");
                assert!(fetch.end_time <= quote.end_time, "ended before the request answered");
            }
            other => panic!("unexpected replica {other:?}"),
        }
    }
    assert_eq!(spans.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pattern_is_its_own_trace_and_renders() {
    let (capture, _provider, tracer) = setup();
    let traces = concurrency::run_all(&tracer).await;
    assert_eq!(traces.len(), 5);
    let distinct: HashSet<TraceId> = traces.iter().map(|p| p.trace_id).collect();
    assert_eq!(distinct.len(), 5);
    for pattern in traces {
        let spans = concurrency::finished(&capture.trace(pattern.trace_id));
        let drawn = examples::shop::render::waterfall(&spans, examples::shop::render::Style { color: false });
        assert_eq!(drawn.lines().count(), spans.len(), "{}:\n{drawn}", pattern.title);
    }
}
