//! The OTLP/HTTP exporter (otelrs-core `SdkBuilder`) pointed at a healthy in-process receiver, a
//! closed port and a listener that accepts but never answers, under the same bounded load
//! through an instrumented axum service. Its own test binary, so RSS is this run's alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use otelrs_core::sdk::{ExportStats, Exporter, OtlpProtocol, SdkBuilder, SdkConfig};
use otelrs_core::Instrumentation;
use otelrs_http::HttpServerLayer;
use reliability::{drive, env_count, items_router, percentile, report, rss_kib, serve_axum};

/// A minimal OTLP/HTTP receiver: reads each request (headers + Content-Length body) and
/// answers `200` with an empty body. Counts requests.
fn healthy_receiver() -> (u16, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut writer = conn.try_clone().unwrap();
                let mut reader = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = writer.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    (port, count)
}

/// A listener that accepts connections and never reads or answers.
fn silent_listener() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in listener.incoming().flatten() {
            held.push(c);
        }
    });
    port
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Phase {
    name: &'static str,
    p50: Duration,
    p99: Duration,
    rss_after_warmup: u64,
    rss_kib: u64,
    /// Requests served in the phase (warm-up included): one sampled server span each.
    requests: u64,
    stats: ExportStats,
    last_error: Option<String>,
}

async fn run_phase(name: &'static str, port: u16, n: usize) -> Phase {
    let guard = SdkBuilder::from_config(SdkConfig::default())
        .with_service_name("reliability")
        .with_traces_exporters([Exporter::Otlp])
        .with_metrics_exporters([Exporter::Otlp])
        .with_logs_exporters([])
        .with_otlp_protocol(OtlpProtocol::HttpProtobuf)
        .with_otlp_endpoint(format!("http://127.0.0.1:{port}"))
        .with_otlp_timeout(Duration::from_secs(2))
        .with_metric_export_interval(Duration::from_millis(500))
        .with_shutdown_timeout(Duration::from_secs(2))
        .build()
        .expect("SDK");
    let inst: Instrumentation = guard.instrumentation();
    let addr = serve_axum(items_router().layer(HttpServerLayer::new().with_instrumentation(inst))).await;
    // Warm-up: the first tenth of the load; RSS after it is the baseline of this phase.
    drive(addr, n / 10).await;
    let rss_after_warmup = rss_kib();
    let started = Instant::now();
    let latencies = drive(addr, n).await;
    report(name, n, started.elapsed(), &latencies);
    let (p50, p99, rss_kib) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0), rss_kib());
    let shutdown_started = Instant::now();
    let (result, guard) = tokio::task::spawn_blocking(move || (guard.shutdown(), guard))
        .await
        .unwrap();
    let waited = shutdown_started.elapsed();
    eprintln!("{name}: shutdown {result:?} after {waited:.2?}");
    assert!(waited < Duration::from_secs(10), "{name}: shutdown waited {waited:?}");
    // What was lost is counted and visible (otelrs-core's export health).
    let stats = guard.export_stats();
    let last_error = guard.last_export_error();
    eprintln!("{name}: export stats: {stats}; last error: {last_error:?}");
    Phase {
        name,
        p50,
        p99,
        rss_after_warmup,
        rss_kib,
        requests: (n + n / 10) as u64,
        stats,
        last_error,
    }
}

/// The OTLP/HTTP exporter pointed at a healthy in-process receiver, a closed port and a
/// listener that never answers: every request of the same bounded load is served (200) in
/// each phase (`drive` panics otherwise), median latency stays within 3x of the healthy run, and
/// RSS grows by less than 64 MiB from the end of each phase's warm-up (a tenth of the load) to
/// its end: the exporter's queues are bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_or_silent_keeps_serving_with_bounded_latency_and_memory() {
    let n = env_count("RELIABILITY_REQUESTS", 10_000);
    let rss_start = rss_kib();
    let (healthy_port, received) = healthy_receiver();
    let healthy = run_phase("exporter healthy", healthy_port, n).await;
    eprintln!("healthy receiver: {} export requests", received.load(Ordering::Relaxed));
    assert!(received.load(Ordering::Relaxed) > 0, "the healthy receiver got exports");
    assert_eq!(healthy.stats.spans_ended, healthy.requests, "{}", healthy.stats);
    assert_eq!(healthy.stats.spans_exported, healthy.requests, "{}", healthy.stats);
    assert_eq!(healthy.stats.failed(), 0, "{}", healthy.stats);
    let closed = run_phase("exporter closed port", closed_port(), n).await;
    let silent = run_phase("exporter silent listener", silent_listener(), n).await;
    // Dropped telemetry is counted: every span of the dead-collector phases is either in a failed
    // export or still queued / dropped for a full queue, none is reported as delivered, and the
    // cause is visible.
    for phase in [&closed, &silent] {
        let s = &phase.stats;
        assert_eq!(s.spans_ended, phase.requests, "{}: {s}", phase.name);
        assert_eq!(s.spans_exported, 0, "{}: {s}", phase.name);
        assert_eq!(
            s.spans_failed + s.spans_pending_or_dropped(),
            phase.requests,
            "{}: {s}",
            phase.name
        );
    }
    assert!(closed.stats.spans_failed > 0, "{}", closed.stats);
    assert!(closed.stats.metric_points_failed > 0, "{}", closed.stats);
    assert!(
        closed
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("otlp_http_")),
        "{:?}",
        closed.last_error
    );
    for phase in [&closed, &silent] {
        let p50_ratio = phase.p50.as_secs_f64() / healthy.p50.as_secs_f64();
        let p99_ratio = phase.p99.as_secs_f64() / healthy.p99.as_secs_f64();
        eprintln!(
            "{}: p50 {:?} ({p50_ratio:.2}x healthy), p99 {:?} ({p99_ratio:.2}x healthy)",
            phase.name, phase.p50, phase.p99
        );
        assert!(
            p50_ratio < 3.0,
            "{}: median latency {p50_ratio:.2}x the healthy run",
            phase.name
        );
        let growth = phase.rss_kib.saturating_sub(phase.rss_after_warmup);
        eprintln!(
            "{}: RSS {} KiB after warm-up, {} KiB at the end (+{growth} KiB); {rss_start} KiB at start",
            phase.name, phase.rss_after_warmup, phase.rss_kib
        );
        assert!(
            growth < 64 * 1024,
            "{}: RSS grew {growth} KiB during the run",
            phase.name
        );
    }
}
