//! Bounded load runs over real loopback sockets: soak (axum `HttpServerLayer` and actix-web
//! `HttpServerMiddleware`), a cancellation storm, and the OTLP exporter pointed at a dead or
//! silent collector. Counts come from `RELIABILITY_REQUESTS` / `RELIABILITY_CANCELS` (defaults
//! sized for CI); figures are printed and recorded in `RELIABILITY.md`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::get;
use bytes::Bytes;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::{HttpServerLayer, HttpServerMiddleware};
use reliability::{drive, env_count, items_router, rss_kib, serve_axum, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn requests() -> usize {
    env_count("RELIABILITY_REQUESTS", 10_000)
}

fn active_requests(t: &TestTelemetry) -> Option<i64> {
    t.metrics().sum_i64(
        "http.server.active_requests",
        &[kv("http.request.method", "GET"), kv("url.scheme", "http")],
    )
}

/// Counts the exported spans (all, and those that are the expected root `GET /items/{id}` with
/// status 200) and drops them, so a soak of any length keeps no spans in memory and RSS measures
/// the instrumentation, not the test's store.
#[derive(Debug, Default, Clone)]
struct CountingExporter {
    total: Arc<AtomicUsize>,
    expected: Arc<AtomicUsize>,
}

impl opentelemetry_sdk::trace::SpanExporter for CountingExporter {
    async fn export(&self, batch: Vec<opentelemetry_sdk::trace::SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        let ok = batch
            .iter()
            .filter(|s| {
                s.name == "GET /items/{id}"
                    && s.parent_span_id == opentelemetry::trace::SpanId::INVALID
                    && s.attributes.iter().any(|kv| {
                        kv.key.as_str() == "http.response.status_code" && kv.value == opentelemetry::Value::I64(200)
                    })
            })
            .count();
        self.total.fetch_add(batch.len(), Ordering::Relaxed);
        self.expected.fetch_add(ok, Ordering::Relaxed);
        Ok(())
    }
}

/// A tracer provider exporting through `exporter` with a queue deep enough that no span is
/// dropped while the export thread catches up (each span must be counted).
fn counting_provider(exporter: CountingExporter) -> opentelemetry_sdk::trace::SdkTracerProvider {
    let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            opentelemetry_sdk::trace::BatchConfigBuilder::default()
                .with_max_queue_size(1 << 16)
                .build(),
        )
        .build();
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

/// Drives `n` requests in two parts (a tenth, then the rest) and returns the RSS after each.
async fn drive_measuring_rss(what: &str, addr: std::net::SocketAddr, n: usize) -> (u64, u64) {
    let warm = n / 10;
    let started = Instant::now();
    let mut latencies = drive(addr, warm).await;
    let rss_warm = rss_kib();
    latencies.extend(drive(addr, n - warm).await);
    let rss_end = rss_kib();
    latencies.sort();
    reliability::report(what, n, started.elapsed(), &latencies);
    eprintln!(
        "{what}: RSS {rss_warm} KiB after {warm} requests, {rss_end} KiB after {n} (+{} KiB)",
        rss_end.saturating_sub(rss_warm)
    );
    (rss_warm, rss_end)
}

/// RSS may grow at most this much from the end of the first tenth of a soak to its end.
const RSS_GROWTH_LIMIT_KIB: u64 = 64 * 1024;

/// `RELIABILITY_REQUESTS` requests through an axum router with `HttpServerLayer` over loopback
/// with 32 concurrent clients: every request answered, exactly one ended span per request (the
/// expected root span with status 200, counted by the exporter), the duration histogram counts
/// every request, `http.server.active_requests` is back to 0, and RSS stays flat (growth from
/// the first tenth of the load to its end below 64 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_axum_every_span_ends_and_active_requests_returns_to_zero() {
    let n = requests();
    let t = TestTelemetry::new();
    let exporter = CountingExporter::default();
    let provider = counting_provider(exporter.clone());
    let inst = t.instrumentation().with_tracer_provider(provider.clone());
    let addr = serve_axum(items_router().layer(HttpServerLayer::new().with_instrumentation(inst))).await;
    let (rss_warm, rss_end) = drive_measuring_rss("axum soak", addr, n).await;

    provider.force_flush().expect("flush");
    assert_eq!(
        exporter.total.load(Ordering::Relaxed),
        n,
        "exactly one span per request"
    );
    assert_eq!(
        exporter.expected.load(Ordering::Relaxed),
        n,
        "every span is the root `GET /items/{{id}}` with status 200"
    );
    assert_eq!(active_requests(&t), Some(0), "active requests back to 0");
    let point = t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/items/{id}"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(point.count, n as u64, "one duration per request");
    assert!(
        rss_end.saturating_sub(rss_warm) < RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_warm} to {rss_end} KiB"
    );
}

/// The same load through actix-web with `HttpServerMiddleware` (2 workers).
#[test]
fn soak_actix_every_span_ends_and_active_requests_returns_to_zero() {
    use actix_web::{web, App, HttpServer};
    let n = requests();
    let t = TestTelemetry::new();
    let exporter = CountingExporter::default();
    let provider = counting_provider(exporter.clone());
    let mw =
        HttpServerMiddleware::new().with_instrumentation(t.instrumentation().with_tracer_provider(provider.clone()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().wrap(mw.clone()).route(
                    "/items/{id}",
                    web::get().to(|id: web::Path<u64>| async move { format!("item {id}") }),
                )
            })
            .workers(2)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
            handle_tx.send(server.handle()).unwrap();
            server.await.expect("actix server");
        })
    });
    let handle = handle_rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (rss_warm, rss_end) = rt.block_on(drive_measuring_rss("actix soak", addr, n));

    provider.force_flush().expect("flush");
    assert_eq!(
        exporter.total.load(Ordering::Relaxed),
        n,
        "exactly one span per request"
    );
    assert_eq!(
        exporter.expected.load(Ordering::Relaxed),
        n,
        "every span is the root `GET /items/{{id}}` with status 200"
    );
    assert_eq!(active_requests(&t), Some(0), "active requests back to 0");
    rt.block_on(handle.stop(true));
    server.join().unwrap();
    assert!(
        rss_end.saturating_sub(rss_warm) < RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_warm} to {rss_end} KiB"
    );
}

/// A body that yields a chunk every `gap`, forever.
fn endless_body(gap: Duration) -> Body {
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::io::Error>(Bytes::from_static(b"0123456789")), i + 1))
    });
    Body::from_stream(stream)
}

/// `RELIABILITY_CANCELS` clients (default 2000, 16 at a time) that disconnect: half after the
/// first chunk of an endless streaming body, half before the response head (the handler is
/// still sleeping). Every request ends its span (count), mid-body ones as
/// `response_body_incomplete`, the gauge returns to 0 and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_storm_leaves_no_span_open_and_no_gauge_drift() {
    let n = env_count("RELIABILITY_CANCELS", 2_000);
    let t = TestTelemetry::new();
    let dispatched = Arc::new(AtomicUsize::new(0));
    let app = items_router()
        .route("/stream", get(|| async { endless_body(Duration::from_millis(5)) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "late"
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()))
        // Outermost: counts the requests the server actually dispatched. A client that goes away
        // before the server reads its request (possible when the machine is busy) never becomes
        // a request, so spans are compared with this count, not with the number of clients.
        .layer(axum::middleware::from_fn({
            let dispatched = dispatched.clone();
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let dispatched = dispatched.clone();
                async move {
                    dispatched.fetch_add(1, Ordering::Relaxed);
                    next.run(req).await
                }
            }
        }));
    let addr = serve_axum(app).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let path = if i.is_multiple_of(2) { "/stream" } else { "/slow" };
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                if path == "/stream" {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.windows(10).any(|w| w == b"0123456789") {
                        let k = tokio::time::timeout(TIMEOUT, s.read(&mut buf)).await.unwrap().unwrap();
                        assert!(k > 0, "server closed early");
                        got.extend_from_slice(&buf[..k]);
                    }
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                drop(s);
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    // Every dispatched request ends its span; wait until the counts meet and stay met (a busy
    // server may still be reading requests of clients that already left), or time out.
    let deadline = Instant::now() + TIMEOUT;
    let (spans, seen) = loop {
        let seen = dispatched.load(Ordering::Relaxed);
        let spans = t.spans();
        let settled = spans.len() == seen && active_requests(&t) == Some(0);
        if settled {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if dispatched.load(Ordering::Relaxed) == seen && t.spans().len() == seen {
                break (spans, seen);
            }
        } else if Instant::now() >= deadline {
            break (spans, seen);
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    eprintln!(
        "cancellation storm: {n} disconnects ({seen} dispatched) in {:.2?}, RSS {} KiB",
        started.elapsed(),
        rss_kib()
    );
    assert_eq!(
        spans.len(),
        seen,
        "exactly one ended span per dispatched request (stream spans {}, slow spans {})",
        spans.iter().filter(|s| s.name == "GET /stream").count(),
        spans.iter().filter(|s| s.name == "GET /slow").count()
    );
    assert!(seen >= n * 9 / 10, "only {seen} of {n} requests reached the server");
    let stream_spans: Vec<_> = spans.iter().filter(|s| s.name == "GET /stream").collect();
    // Streaming requests are always read (the client waits for the first chunk).
    assert_eq!(stream_spans.len(), n.div_ceil(2));
    for s in &stream_spans {
        s.assert_attr("error.type", "response_body_incomplete");
    }
    assert_eq!(
        spans.iter().filter(|s| s.name == "GET /slow").count(),
        seen - n.div_ceil(2)
    );
    assert_eq!(active_requests(&t), Some(0), "no gauge drift");
    // Still serving.
    let latencies = drive(addr, 10).await;
    assert_eq!(latencies.len(), 10);
}
