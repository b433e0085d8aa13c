//! Concurrency patterns with one trace each, on `otelrs_core::task`: a worker pool fed from a
//! request, a pipeline of stages over channels, fan-out/fan-in, a timeout and a cancellation.
//! `examples/examples/concurrency.rs` runs them and draws their waterfalls;
//! `tests/concurrency.rs` asserts every parent and link.
//!
//! | Pattern | Hand-off | Trace shape |
//! | --- | --- | --- |
//! | [`worker_pool`] | [`Traced`] jobs over an `mpsc` channel to long-lived workers | each job's span a child of the request that submitted it, even when it starts after the request ended |
//! | [`pipeline`] | [`Traced`] items through three stage tasks over channels | per item, a chain: source → parse → enrich → store |
//! | [`fan_out_fan_in`] | a `JoinSet` spawned with the current context | N shard spans children of the request; a merge span, also its child, links each shard |
//! | [`timeout`] | `tokio::time::timeout` around work [`InSpanExt::in_span`](otelrs_core::task::InSpanExt::in_span) | the caller's span ends with `error.type` = `timeout`, the abandoned work's span with `cancelled` |
//! | [`cancellation`] | hedged requests in a `JoinSet`; the slower one aborted | the loser's span ends with `error.type` = `cancelled` |

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{SpanKind, TraceContextExt as _, TraceId, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracer, SpanData, SpanProcessor};
use otelrs_core::conv::error::ERROR_TYPE_TIMEOUT;
use otelrs_core::status::record_failure_ref;
use otelrs_core::task::{links, FutureExt as _, InSpanExt as _, JoinSetExt as _, Traced};
use tokio::sync::mpsc;

use crate::shop::telemetry::FinishedSpan;

/// Workers of [`worker_pool`].
pub const WORKERS: usize = 2;
/// Jobs one request of [`worker_pool`] submits (more than [`WORKERS`]: the last waits for one).
pub const JOBS: i64 = 3;
/// Items [`pipeline`] pushes through its stages.
pub const ITEMS: i64 = 2;
/// Shards [`fan_out_fan_in`] queries.
pub const SHARDS: i64 = 4;
/// The deadline of [`timeout`]; the work behind it takes far longer.
pub const DEADLINE: Duration = Duration::from_millis(30);

/// Keeps every finished span in memory, for drawing and asserting.
#[derive(Clone, Debug, Default)]
pub struct SpanCapture(Arc<Mutex<Vec<SpanData>>>);

impl SpanCapture {
    /// The finished spans of `trace_id`, in the order they ended.
    pub fn trace(&self, trace_id: TraceId) -> Vec<SpanData> {
        let spans = self.0.lock().unwrap_or_else(|p| p.into_inner());
        spans
            .iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .cloned()
            .collect()
    }
}

impl SpanProcessor for SpanCapture {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// The spans in the shape the shop's waterfall renderer draws.
pub fn finished(spans: &[SpanData]) -> Vec<FinishedSpan> {
    spans
        .iter()
        .map(|s| FinishedSpan::from_span_data("app", s.clone()))
        .collect()
}

/// A root span standing for an incoming request.
fn request(tracer: &SdkTracer, name: &'static str) -> Context {
    Context::current_with_span(tracer.span_builder(name).with_kind(SpanKind::Server).start(tracer))
}

/// A span that is a child of the current context, with attributes.
fn child(tracer: &SdkTracer, name: &'static str, attributes: Vec<KeyValue>) -> Context {
    Context::current_with_span(tracer.span_builder(name).with_attributes(attributes).start(tracer))
}

/// A pool of [`WORKERS`] long-lived workers, started outside any trace, takes jobs from one
/// channel. A request submits [`JOBS`] jobs and answers at once; each `render report` span is a
/// child of the request, even for the job a worker picks up after the request ended.
pub async fn worker_pool(tracer: &SdkTracer) -> TraceId {
    let (tx, rx) = mpsc::channel::<Traced<i64>>(16);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            let (rx, tracer) = (rx.clone(), tracer.clone());
            // A plain `tokio::spawn`: the pool belongs to no trace; each job brings its own.
            tokio::spawn(async move {
                loop {
                    let Some(job) = rx.lock().await.recv().await else {
                        break;
                    };
                    job.in_context(|id| {
                        // Started with the submitter's context current: its child.
                        let span = child(
                            &tracer,
                            "render report",
                            vec![KeyValue::new("job.id", id), KeyValue::new("worker.id", worker as i64)],
                        );
                        async { tokio::time::sleep(Duration::from_millis(20)).await }.in_span(span)
                    })
                    .await;
                }
            })
        })
        .collect();

    let request = request(tracer, "POST /reports");
    async {
        for id in 0..JOBS {
            // `Traced::new` captures the current context: the request's.
            if tx.send(Traced::new(id)).await.is_err() {
                break;
            }
        }
    }
    .with_context(request.clone())
    .await;
    request.span().end(); // the response goes out; the jobs run on
    drop(tx);
    for worker in workers {
        let _ = worker.await;
    }
    request.span().span_context().trace_id()
}

/// Three stage tasks connected by channels (parse → enrich → store). Each stage processes an
/// item in a span that is a child of the previous stage's span for that item, and passes its
/// output on with its own context: per item, one chain under the `import` span.
pub async fn pipeline(tracer: &SdkTracer) -> TraceId {
    let (source, parse_rx) = mpsc::channel::<Traced<i64>>(4);
    let (parse_tx, enrich_rx) = mpsc::channel::<Traced<i64>>(4);
    let (enrich_tx, store_rx) = mpsc::channel::<Traced<i64>>(4);
    let stages = [
        stage(tracer, "parse", parse_rx, Some(parse_tx)),
        stage(tracer, "enrich", enrich_rx, Some(enrich_tx)),
        stage(tracer, "store", store_rx, None),
    ];

    let import = request(tracer, "POST /import");
    async {
        for item in 0..ITEMS {
            if source.send(Traced::new(item)).await.is_err() {
                break;
            }
        }
    }
    .with_context(import.clone())
    .await;
    drop(source);
    for stage in stages {
        let _ = stage.await;
    }
    import.span().end();
    import.span().span_context().trace_id()
}

/// One pipeline stage: a task that lives as long as its input channel.
fn stage(
    tracer: &SdkTracer,
    name: &'static str,
    mut input: mpsc::Receiver<Traced<i64>>,
    output: Option<mpsc::Sender<Traced<i64>>>,
) -> tokio::task::JoinHandle<()> {
    let tracer = tracer.clone();
    tokio::spawn(async move {
        while let Some(item) = input.recv().await {
            let output = output.clone();
            item.in_context(|value| {
                let span = child(&tracer, name, vec![KeyValue::new("item", value)]);
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    if let Some(output) = output {
                        // Captured inside this stage's span: the next stage's parent.
                        let _ = output.send(Traced::new(value)).await;
                    }
                }
                .in_span(span)
            })
            .await;
        }
    })
}

/// A request queries [`SHARDS`] shards concurrently (a `JoinSet`, each task spawned with the
/// request's context), then merges: `query shard` spans are the request's children, and the
/// `merge results` span (its child too) links to each of them.
pub async fn fan_out_fan_in(tracer: &SdkTracer) -> TraceId {
    let search = request(tracer, "GET /search");
    let mut shards = tokio::task::JoinSet::new();
    {
        let _current = search.clone().attach(); // only while spawning; never across an await
        for shard in 0..SHARDS {
            let tracer = tracer.clone();
            let span = child(&tracer, "query shard", vec![KeyValue::new("shard", shard)]);
            shards.spawn_with_current_context(
                async move {
                    tokio::time::sleep(Duration::from_millis(5 + 5 * shard as u64)).await;
                    // The result carries the shard span's context, for the merge's links.
                    Traced::new(shard * 10)
                }
                .in_span(span),
            );
        }
    }
    let results = shards.join_all().await;
    let merge = tracer
        .span_builder("merge results")
        .with_links(links(&results))
        .start_with_context(tracer, &search);
    let merge = Context::current_with_span(merge);
    async {
        let hits: i64 = results.iter().map(|r| *r.get_ref()).sum();
        merge.span().set_attribute(KeyValue::new("hits", hits));
    }
    .in_span(merge.clone())
    .await;
    search.span().end();
    search.span().span_context().trace_id()
}

/// A call with a deadline: `tokio::time::timeout` gives up after [`DEADLINE`]. The caller's
/// `reserve stock` span ends with `error.type` = `timeout`; the abandoned `inventory lookup`
/// (dropped by the timeout) still ends, with `error.type` = `cancelled`.
pub async fn timeout(tracer: &SdkTracer) -> TraceId {
    let checkout = request(tracer, "POST /checkout");
    async {
        let call = child(tracer, "reserve stock", Vec::new());
        let lookup = {
            let _current = call.clone().attach();
            child(tracer, "inventory lookup", Vec::new())
        };
        let work = async { tokio::time::sleep(Duration::from_secs(5)).await }.in_span(lookup);
        if tokio::time::timeout(DEADLINE, work).await.is_err() {
            record_failure_ref(&call.span(), ERROR_TYPE_TIMEOUT, None);
        }
        call.span().end();
    }
    .with_context(checkout.clone())
    .await;
    checkout.span().end();
    checkout.span().span_context().trace_id()
}

/// Hedged requests: the same price asked of two replicas at once; the first answer wins and the
/// other request is aborted. Its `fetch price` span ends with `error.type` = `cancelled`.
pub async fn cancellation(tracer: &SdkTracer) -> TraceId {
    let quote = request(tracer, "GET /price");
    let mut replicas = tokio::task::JoinSet::new();
    {
        let _current = quote.clone().attach();
        for (replica, delay) in [("a", 10), ("b", 2_000)] {
            let span = child(tracer, "fetch price", vec![KeyValue::new("replica", replica)]);
            replicas.spawn_with_current_context(
                async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    replica
                }
                .in_span(span),
            );
        }
    }
    let winner = replicas.join_next().await;
    // Aborts the slower request and waits until it is gone (its span ended).
    replicas.shutdown().await;
    if let Some(Ok(winner)) = winner {
        quote.span().set_attribute(KeyValue::new("winner", winner));
    }
    quote.span().end();
    quote.span().span_context().trace_id()
}

/// One pattern's run: what it shows and the trace it made.
#[derive(Clone, Debug)]
pub struct Pattern {
    /// Its heading.
    pub title: &'static str,
    /// What to look for in the waterfall.
    pub shows: &'static str,
    /// The trace it made.
    pub trace_id: TraceId,
}

/// Every pattern, in order.
pub async fn run_all(tracer: &SdkTracer) -> Vec<Pattern> {
    vec![
        Pattern {
            title: "Worker pool: jobs submitted by a request",
            shows: "each job a child of the request, the last one picked up after the request answered",
            trace_id: worker_pool(tracer).await,
        },
        Pattern {
            title: "Pipeline: stages over channels",
            shows: "per item, parse → enrich → store, each stage the child of the previous one",
            trace_id: pipeline(tracer).await,
        },
        Pattern {
            title: "Fan-out/fan-in: shards and a merge",
            shows: "the shard queries children of the request; the merge links to each of them",
            trace_id: fan_out_fan_in(tracer).await,
        },
        Pattern {
            title: "Timeout: the caller gives up",
            shows: "error.type=timeout on the caller; the dropped work still ends, error.type=cancelled",
            trace_id: timeout(tracer).await,
        },
        Pattern {
            title: "Cancellation: hedged requests",
            shows: "the slower request aborted once the first answered: error.type=cancelled",
            trace_id: cancellation(tracer).await,
        },
    ]
}
