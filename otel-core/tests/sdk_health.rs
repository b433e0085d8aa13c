//! Nothing lost silently: a forced queue overflow shows up with exact values in the export
//! statistics, in the SDK self-observability metrics received by an OTLP collector, and on
//! stderr when no `tracing` subscriber is installed; retries follow the failure.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use otelrs_core::sdk::{
    BatchConfig, Exporter, OtlpProtocol, RetryPolicy, SdkBuilder, SdkConfig, Signal, TelemetryGuard,
};
use otlp_receiver::{Failure, Receiver, ReceiverOptions, Transport};

/// A span exporter that holds every export until released.
#[derive(Debug, Clone, Default)]
struct GatedExporter {
    gate: Arc<(Mutex<bool>, Condvar)>,
    exported: Arc<AtomicU64>,
}

impl GatedExporter {
    fn release(&self) {
        let (open, cv) = &*self.gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }
}

impl SpanExporter for GatedExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let (open, cv) = &*self.gate;
        let mut open = open.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
        self.exported.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Queue of 10, batches of 10, one export at a time held by the gate: 10 spans in flight, 10
/// held by the batcher, 10 queued, the next 5 dropped.
fn overflow(guard: &TelemetryGuard) {
    let tracer = guard.tracer_provider().expect("traces on").tracer("overflow");
    for round in 0..3 {
        for _ in 0..10 {
            tracer.start("queued").end();
        }
        if round < 2 {
            // The batcher takes the batch off the queue before the next round.
            wait_until("the batch to leave the queue", || {
                guard.export_stats().spans_queued == 0
            });
        }
    }
    // The batcher is blocked handing over its batch; give it a moment to be there for sure.
    std::thread::sleep(Duration::from_millis(50));
    for _ in 0..5 {
        tracer.start("dropped").end();
    }
}

fn overflow_builder(config: SdkConfig, exporter: GatedExporter) -> SdkBuilder {
    SdkBuilder::from_config(config)
        .with_service_name("overflow")
        .with_traces_exporters([])
        .with_logs_exporters([])
        .with_span_exporter(exporter)
        .with_span_batch(
            BatchConfig::spans()
                .with_max_queue_size(10)
                .with_max_export_batch_size(10)
                .with_max_concurrent_exports(1)
                .with_scheduled_delay(Duration::from_secs(3600)),
        )
        .with_metric_export_interval(Duration::from_secs(3600))
}

type Point = (Vec<(String, String)>, i64);

/// The points of one metric in the last request that has it.
fn points(receiver: &Receiver, name: &str) -> Vec<Point> {
    let Some(metric) = receiver
        .metrics()
        .into_iter()
        .flat_map(|r| r.resource_metrics)
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .rfind(|m| m.name == name)
    else {
        return Vec::new();
    };
    let data_points = match metric.data {
        Some(Data::Sum(s)) => s.data_points,
        Some(Data::Gauge(g)) => g.data_points,
        other => panic!("{name}: unexpected data {other:?}"),
    };
    let mut out: Vec<Point> = data_points
        .into_iter()
        .map(|p| {
            let mut attrs: Vec<(String, String)> = p
                .attributes
                .into_iter()
                .map(|kv| {
                    let v = match kv.value.and_then(|v| v.value) {
                        Some(AnyValue::StringValue(s)) => s,
                        other => format!("{other:?}"),
                    };
                    (kv.key, v)
                })
                .collect();
            attrs.sort();
            let v = match p.value {
                Some(Value::AsInt(i)) => i,
                other => panic!("{name}: not an integer point {other:?}"),
            };
            (attrs, v)
        })
        .collect();
    out.sort();
    out
}

fn sorted(mut points: Vec<Point>) -> Vec<Point> {
    points.sort();
    points
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    v.sort();
    v
}

#[test]
fn a_forced_queue_overflow_arrives_as_exact_self_observability_metrics() {
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
    let exporter = GatedExporter::default();
    let guard = overflow_builder(SdkConfig::default(), exporter.clone())
        .with_metrics_exporters([Exporter::Otlp])
        .with_otlp_protocol(OtlpProtocol::HttpProtobuf)
        .with_otlp_endpoint(receiver.endpoint())
        .build()
        .expect("builds");
    overflow(&guard);

    let stats = guard.export_stats();
    assert_eq!(
        (
            stats.spans_ended,
            stats.spans_dropped_queue_full,
            stats.spans_queued,
            stats.spans_exported
        ),
        (35, 5, 10, 0),
        "{stats}"
    );
    assert!(stats.to_string().contains("5 dropped (queue full)"), "{stats}");

    // A collection while the gate holds everything.
    guard
        .meter_provider()
        .unwrap()
        .force_flush()
        .expect("metrics delivered");
    let processor = [
        ("otel.component.name", "batching_span_processor/0"),
        ("otel.component.type", "batching_span_processor"),
    ];
    let exporter_attrs = [
        ("otel.component.name", "custom_span_exporter/0"),
        ("otel.component.type", "custom_span_exporter"),
    ];
    let with = |base: &[(&str, &str)], extra: &[(&str, &str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        kv(&all)
    };
    assert_eq!(
        points(&receiver, "otel.sdk.processor.span.processed"),
        sorted(vec![
            (kv(&processor), 20),
            (with(&processor, &[("error.type", "queue_full")]), 5)
        ])
    );
    assert_eq!(
        points(&receiver, "otel.sdk.processor.span.queue.size"),
        vec![(kv(&processor), 10)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.processor.span.queue.capacity"),
        vec![(kv(&processor), 10)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.exporter.span.inflight"),
        vec![(kv(&exporter_attrs), 10)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.exporter.span.exported"),
        vec![(kv(&exporter_attrs), 0)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.span.started"),
        vec![(
            kv(&[
                ("otel.span.parent.origin", "none"),
                ("otel.span.sampling_result", "RECORD_AND_SAMPLE")
            ]),
            35
        )]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.span.live"),
        vec![(kv(&[("otel.span.sampling_result", "RECORD_AND_SAMPLE")]), 0)]
    );

    // Released: everything accepted is delivered, and the next collection says so.
    exporter.release();
    guard.tracer_provider().unwrap().force_flush().expect("flushed");
    assert_eq!(exporter.exported.load(Ordering::SeqCst), 30);
    guard
        .meter_provider()
        .unwrap()
        .force_flush()
        .expect("metrics delivered");
    assert_eq!(
        points(&receiver, "otel.sdk.processor.span.processed"),
        sorted(vec![
            (kv(&processor), 30),
            (with(&processor, &[("error.type", "queue_full")]), 5)
        ])
    );
    assert_eq!(
        points(&receiver, "otel.sdk.exporter.span.exported"),
        vec![(kv(&exporter_attrs), 30)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.exporter.span.inflight"),
        vec![(kv(&exporter_attrs), 0)]
    );
    assert_eq!(
        points(&receiver, "otel.sdk.processor.span.queue.size"),
        vec![(kv(&processor), 0)]
    );
    guard.shutdown().expect("clean shutdown");
    let stats = guard.export_stats();
    assert_eq!((stats.spans_exported, stats.lost()), (30, 5), "{stats}");
}

/// Run as a child process (see the test below) so that its stderr can be read.
#[test]
fn child_overflow_without_a_subscriber() {
    if std::env::var_os("OTEL_CORE_LOSS_CHILD").is_none() {
        return;
    }
    let exporter = GatedExporter::default();
    let guard = overflow_builder(SdkConfig::default(), exporter.clone())
        .with_metrics_exporters([])
        .build()
        .expect("builds");
    overflow(&guard);
    exporter.release();
    guard.tracer_provider().unwrap().force_flush().expect("flushed");
    guard.shutdown().expect("clean shutdown");
}

#[test]
fn losses_are_reported_on_stderr_when_no_tracing_subscriber_is_installed() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_overflow_without_a_subscriber",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OTEL_CORE_LOSS_CHILD", "1")
        .output()
        .expect("run the child test");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed: {stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("otelrs-core: ")).collect();
    assert_eq!(warnings.len(), 1, "one warning, no repeats within the minute: {stderr}");
    assert!(warnings[0].contains("telemetry is being lost"), "{stderr}");
    assert!(warnings[0].contains("5 dropped (queue full)"), "{stderr}");
}

fn http_guard(receiver: &Receiver, retry: RetryPolicy) -> TelemetryGuard {
    SdkBuilder::from_config(SdkConfig::default())
        .with_traces_exporters([Exporter::Otlp])
        .with_metrics_exporters([])
        .with_logs_exporters([])
        .with_otlp_endpoint(receiver.endpoint())
        .with_retry(retry)
        .build()
        .expect("builds")
}

fn one_span(guard: &TelemetryGuard) {
    guard.tracer_provider().unwrap().tracer("retry").start("once").end();
    let _ = guard.force_flush();
}

#[test]
fn transient_failures_are_retried_and_permanent_ones_are_not() {
    let fast = RetryPolicy::default().with_initial_backoff(Duration::from_millis(10));
    // 503 with Retry-After: 0, twice, then accepted: delivered, not counted as failed.
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_fail_first(
        2,
        Failure::Http {
            status: 503,
            retry_after: Some(0),
        },
    ));
    let guard = http_guard(&receiver, fast);
    one_span(&guard);
    let stats = guard.export_stats();
    assert_eq!((stats.spans_exported, stats.spans_failed), (1, 0), "{stats}");
    let counts = receiver.counts();
    assert_eq!((counts.failed_requests, counts.spans), (2, 1), "{counts:?}");

    // 400: one attempt, counted, named.
    let receiver = Receiver::start(ReceiverOptions::new(Transport::Http).with_fail_first(
        5,
        Failure::Http {
            status: 400,
            retry_after: None,
        },
    ));
    let guard = http_guard(&receiver, fast);
    one_span(&guard);
    let stats = guard.export_stats();
    assert_eq!((stats.spans_exported, stats.spans_failed), (0, 1), "{stats}");
    assert_eq!(receiver.counts().failed_requests, 1);
    let error = guard.last_export_error_of(Signal::Traces).unwrap();
    assert!(error.contains("400"), "{error}");

    // gRPC: UNAVAILABLE is retried, UNIMPLEMENTED is not.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _entered = rt.enter();
    for (code, delivered, attempts) in [(14, 1, 3), (12, 0, 1)] {
        let receiver =
            Receiver::start(ReceiverOptions::new(Transport::Grpc).with_fail_first(2, Failure::Grpc { code }));
        let guard = SdkBuilder::from_config(SdkConfig::default())
            .with_traces_exporters([Exporter::Otlp])
            .with_metrics_exporters([])
            .with_logs_exporters([])
            .with_otlp_protocol(OtlpProtocol::Grpc)
            .with_otlp_endpoint(receiver.endpoint())
            .with_retry(fast)
            .build()
            .expect("builds");
        one_span(&guard);
        let stats = guard.export_stats();
        assert_eq!(stats.spans_exported, delivered, "code {code}: {stats}");
        let counts = receiver.counts();
        assert_eq!(
            counts.failed_requests + counts.trace_requests,
            attempts,
            "code {code}: {counts:?}"
        );
        let _ = guard.shutdown();
    }
}

#[test]
fn shutdown_with_a_dead_collector_is_bounded_and_counts_the_loss() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let guard = SdkBuilder::from_config(SdkConfig::default())
        .with_traces_exporters([Exporter::Otlp])
        .with_metrics_exporters([Exporter::Otlp])
        .with_logs_exporters([])
        .with_otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .with_shutdown_timeout(Duration::from_secs(3))
        .build()
        .expect("builds");
    let tracer = guard.tracer_provider().unwrap().tracer("dead");
    for _ in 0..100 {
        tracer.start("lost").end();
    }
    let start = Instant::now();
    let _ = guard.shutdown();
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    let stats = guard.export_stats();
    assert_eq!(stats.spans_ended, 100, "{stats}");
    assert_eq!(stats.spans_failed + stats.spans_dropped_shutdown, 100, "{stats}");
    let error = guard.last_export_error_of(Signal::Traces).expect("named");
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
}
