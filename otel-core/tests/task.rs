//! `otelrs_core::task` on a multi-thread runtime, with tasks moved between worker threads while
//! they wait: every span's parent and link is asserted exactly.

use std::collections::HashSet;
use std::thread::ThreadId;
use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanId, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::trace::SdkTracer;
use otelrs_core::task::{self, links, FutureExt as _, JoinSetExt as _, Traced};
use otelrs_core::testing::{SpanDataExt as _, TestTelemetry};

const TIMEOUT: Duration = Duration::from_secs(10);

fn tracer(t: &TestTelemetry) -> SdkTracer {
    t.tracer_provider.tracer("task-test")
}

/// Suspends the calling task and makes it resume on another worker thread: the worker it runs on
/// is kept busy (a blocking task placed in that worker's next-to-run slot) while its timer
/// fires, so the other worker resumes it. Returns the threads before and after.
async fn migrate() -> (ThreadId, ThreadId) {
    let before = std::thread::current().id();
    let _blocker = tokio::spawn(async { std::thread::sleep(Duration::from_millis(250)) });
    tokio::time::sleep(Duration::from_millis(10)).await;
    (before, std::thread::current().id())
}

#[track_caller]
fn assert_moved((before, after): (ThreadId, ThreadId)) {
    assert_ne!(before, after, "the task should have resumed on another worker thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_with_context_keeps_it_when_it_moves_between_threads() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let request = Context::current_with_span(tracer.start("request"));
    let test_thread = std::thread::current().id();
    let moved = tokio::spawn(
        {
            let tracer = tracer.clone();
            async move {
                assert_ne!(std::thread::current().id(), test_thread);
                let moved = migrate().await;
                tracer.start("after-move").end();
                moved
            }
        }
        .with_context(request.clone()),
    )
    .await
    .unwrap();
    assert_moved(moved);
    request.span().end();
    let request = t.span("request");
    t.span("after-move").assert_child_of(&request);
    // The context was attached only while polled: it never leaked into this thread.
    assert!(!Context::current().span().span_context().is_valid());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_carries_the_callers_context_and_plain_tokio_spawn_does_not() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let request = Context::current_with_span(tracer.start("request"));
    let (helper, plain) = {
        let _current = request.clone().attach();
        let helper = task::spawn({
            let tracer = tracer.clone();
            async move {
                let moved = migrate().await;
                tracer.start("spawned-child").end();
                moved
            }
        });
        let plain = tokio::spawn({
            let tracer = tracer.clone();
            async move { tracer.start("plain-spawn").end() }
        });
        (helper, plain)
    };
    assert_moved(helper.await.unwrap());
    plain.await.unwrap();
    request.span().end();
    let request = t.span("request");
    t.span("spawned-child").assert_child_of(&request);
    // What the helper is for: without it the hand-off starts a new trace.
    t.span("plain-spawn").assert_root();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_runs_the_closure_with_the_callers_context() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let request = Context::current_with_span(tracer.start("request"));
    let test_thread = std::thread::current().id();
    let handle = {
        let _current = request.clone().attach();
        let tracer = tracer.clone();
        task::spawn_blocking(move || {
            assert_ne!(std::thread::current().id(), test_thread);
            tracer.start("blocking-child").end();
        })
    };
    handle.await.unwrap();
    // The blocking thread's context is restored once the closure returns.
    let leaked = tokio::task::spawn_blocking(|| Context::current().span().span_context().is_valid());
    assert!(!leaked.await.unwrap());
    request.span().end();
    t.span("blocking-child").assert_child_of(&t.span("request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_set_fan_out_children_and_a_join_span_linking_each_of_them() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let fan_out = Context::current_with_span(tracer.start("fan-out"));
    let mut set = tokio::task::JoinSet::new();
    {
        let _current = fan_out.clone().attach();
        for shard in 0..4_i64 {
            let tracer = tracer.clone();
            set.spawn_with_current_context(async move {
                migrate().await;
                let span = tracer
                    .span_builder("shard")
                    .with_attributes([opentelemetry::KeyValue::new("shard", shard)])
                    .start(&tracer);
                let cx = Context::current_with_span(span);
                // The result carries the context of the span that made it.
                let result = Traced::from_parts(shard, cx.clone());
                cx.span().end();
                result
            });
        }
        let tracer = tracer.clone();
        set.spawn_blocking_with_current_context(move || {
            let cx = Context::current_with_span(tracer.start("shard-blocking"));
            let result = Traced::from_parts(100, cx.clone());
            cx.span().end();
            result
        });
    }
    let results = set.join_all().await;
    let join = tracer
        .span_builder("join")
        .with_links(links(&results))
        .start_with_context(&tracer, &fan_out);
    let sum: i64 = results.iter().map(|r| *r.get_ref()).sum();
    assert_eq!(sum, 106);
    drop(join);
    fan_out.span().end();

    let fan_out = t.span("fan-out");
    let shards = t.spans_named("shard");
    assert_eq!(shards.len(), 4);
    let mut children: HashSet<SpanId> = HashSet::new();
    for shard in shards.iter().chain([&t.span("shard-blocking")]) {
        shard.assert_child_of(&fan_out);
        children.insert(shard.span_context.span_id());
    }
    let join = t.span("join");
    join.assert_child_of(&fan_out);
    let linked: HashSet<SpanId> = join.links.iter().map(|l| l.span_context.span_id()).collect();
    assert_eq!(linked, children);
    assert_eq!(join.links.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpsc_worker_pool_each_job_is_a_child_of_its_submitter() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let (tx, rx) = tokio::sync::mpsc::channel::<Traced<&'static str>>(8);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    // Two workers started outside any trace.
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let rx = rx.clone();
            let tracer = tracer.clone();
            tokio::spawn(async move {
                loop {
                    let Some(job) = rx.lock().await.recv().await else { break };
                    let tracer = tracer.clone();
                    job.in_context(|name| async move {
                        migrate().await;
                        // Span started after the move: still the submitter's child.
                        let span = tracer.start(format!("process {name}"));
                        Context::current_with_span(span).span().end();
                    })
                    .await;
                }
            })
        })
        .collect();
    for name in ["a", "b", "c"] {
        let request = Context::current_with_span(tracer.start(format!("request {name}")));
        async { tx.send(Traced::new(name)).await.unwrap() }
            .with_context(request.clone())
            .await;
        request.span().end();
    }
    drop(tx);
    for w in workers {
        w.await.unwrap();
    }
    for name in ["a", "b", "c"] {
        let request = t.span(&format!("request {name}"));
        request.assert_root();
        t.span(&format!("process {name}")).assert_child_of(&request);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_every_receiver_is_a_child_and_a_batch_links_each_sender() {
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let (tx, _) = tokio::sync::broadcast::channel::<Traced<u32>>(8);
    let receivers: Vec<_> = (0..2)
        .map(|r| {
            let mut rx = tx.subscribe();
            let tracer = tracer.clone();
            tokio::spawn(async move {
                let mut batch = Vec::new();
                while let Ok(message) = rx.recv().await {
                    // One message: a child of its sender.
                    message
                        .clone()
                        .in_context(|n| {
                            let tracer = tracer.clone();
                            async move {
                                migrate().await;
                                tracer.start(format!("receiver {r} got {n}")).end();
                            }
                        })
                        .await;
                    batch.push(message);
                }
                // The batch: one span linking every sender, parent-less here.
                let mut span = tracer
                    .span_builder(format!("receiver {r} batch"))
                    .with_links(links(&batch))
                    .start_with_context(&tracer, &Context::new());
                span.end();
            })
        })
        .collect();
    for n in 0..3_u32 {
        let sender = Context::current_with_span(tracer.start(format!("send {n}")));
        {
            let _current = sender.clone().attach();
            tx.send(Traced::new(n)).unwrap();
        }
        sender.span().end();
    }
    drop(tx);
    for r in receivers {
        r.await.unwrap();
    }
    let senders: Vec<_> = (0..3).map(|n| t.span(&format!("send {n}"))).collect();
    for r in 0..2 {
        for (n, sender) in senders.iter().enumerate() {
            t.span(&format!("receiver {r} got {n}")).assert_child_of(sender);
        }
        let batch = t.span(&format!("receiver {r} batch"));
        batch.assert_root();
        let linked: Vec<SpanId> = batch.links.iter().map(|l| l.span_context.span_id()).collect();
        let expected: Vec<SpanId> = senders.iter().map(|s| s.span_context.span_id()).collect();
        assert_eq!(linked, expected, "one link per sender, in order");
    }
}

#[test]
fn a_thread_receiving_over_std_mpsc_attaches_the_senders_context() {
    // The same envelope for crossbeam and flume receivers: any channel that moves a value.
    let t = TestTelemetry::new();
    let tracer = tracer(&t);
    let (tx, rx) = std::sync::mpsc::channel::<Traced<u8>>();
    let worker = std::thread::spawn({
        let tracer = tracer.clone();
        move || {
            for message in rx {
                let _guard = message.attach();
                tracer.start(format!("thread job {}", message.get_ref())).end();
            }
            assert!(!Context::current().span().span_context().is_valid());
        }
    });
    let request = Context::current_with_span(tracer.start("submit"));
    {
        let _current = request.clone().attach();
        tx.send(Traced::new(1)).unwrap();
    }
    tx.send(Traced::new(2)).unwrap();
    drop(tx);
    worker.join().unwrap();
    request.span().end();
    t.wait_for_spans(3, TIMEOUT);
    t.span("thread job 1").assert_child_of(&t.span("submit"));
    t.span("thread job 2").assert_root();
}
