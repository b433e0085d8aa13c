//! Oversized and non-UTF-8 propagation headers: extraction does bounded work and allocation
//! (measured with a per-thread counting allocator), and a real axum server with
//! `HttpServerLayer` serves such requests normally, starting a new root trace.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::Context;
use otelrs_core::propagation::{HeaderExtractor, MessageExtractor, W3cPropagator};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_http::HttpServerLayer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counts bytes allocated by the current thread (tests run on their own threads).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated on this thread while running `f`, and how long it took.
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let before = ALLOCATED.with(Cell::get);
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    (out, ALLOCATED.with(Cell::get) - before, took)
}

/// One way of extracting a context from the headers under test.
type Extraction<'a> = Box<dyn Fn() -> Context + 'a>;

const MIB: usize = 1 << 20;
const VALID_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
/// Allocation allowed for extracting any one oversized header: the context, a bounded baggage
/// (64 members, 8 KiB) and bookkeeping; never proportional to the 1 MiB input.
const ALLOC_BOUND: usize = 64 * 1024;
/// Generous for a debug build on a loaded 2-core machine; the point is "linear and small", a
/// quadratic parser would take minutes on 1 MiB.
const TIME_BOUND: Duration = Duration::from_secs(1);

fn oversized_cases() -> Vec<(&'static str, &'static str, String)> {
    let members = (0..MIB / 8).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    vec![
        (
            "traceparent padded",
            "traceparent",
            format!("{VALID_TP}-{}", "a".repeat(MIB)),
        ),
        (
            "traceparent of spaces",
            "traceparent",
            format!("{}{VALID_TP}", " ".repeat(MIB)),
        ),
        ("tracestate one member", "tracestate", format!("k={}", "v".repeat(MIB))),
        ("tracestate many members", "tracestate", members.clone()),
        ("baggage one member", "baggage", format!("k={}", "v".repeat(MIB))),
        ("baggage many members", "baggage", members),
        (
            "baggage percent escapes",
            "baggage",
            format!("k={}", "%41".repeat(MIB / 3)),
        ),
    ]
}

/// 1 MiB `traceparent`, `tracestate` and `baggage` values (one member, many members, escapes),
/// through both `W3cPropagator` paths and a message carrier: rejected or cut to the W3C limits,
/// with allocation bounded by 64 KiB and time far below a second.
#[test]
fn one_mebibyte_headers_are_rejected_with_bounded_work() {
    let p = W3cPropagator::default();
    for (what, name, value) in oversized_cases() {
        assert!(value.len() >= MIB - 8, "{what}");
        let mut headers = http::HeaderMap::new();
        if name != "traceparent" {
            headers.insert("traceparent", VALID_TP.parse().unwrap());
        }
        headers.insert(name, value.parse().unwrap());
        let list: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap().to_owned()))
            .collect();

        let runs: [(&str, Extraction<'_>); 3] = [
            (
                "fast path",
                Box::new(|| p.extract_headers_with_context(&Context::new(), &headers)),
            ),
            (
                "HeaderExtractor",
                Box::new(|| p.extract_with_context(&Context::new(), &HeaderExtractor(&headers))),
            ),
            (
                "MessageExtractor",
                Box::new(|| p.extract_with_context(&Context::new(), &MessageExtractor(&list))),
            ),
        ];
        for (path, run) in runs {
            let (cx, allocated, took) = measure(run);
            assert!(
                allocated <= ALLOC_BOUND,
                "{what} via {path}: allocated {allocated} bytes"
            );
            assert!(took <= TIME_BOUND, "{what} via {path}: took {took:?}");
            let span = cx.span();
            let sc = span.span_context();
            match name {
                // Optional whitespace around a valid value is allowed by the spec (and skipped in
                // linear time); anything after the 55 characters of version 00 is not.
                "traceparent" if what.contains("spaces") => {
                    assert_eq!(
                        sc.trace_id().to_string(),
                        "0af7651916cd43dd8448eb211c80319c",
                        "{what} via {path}"
                    )
                }
                "traceparent" => assert!(!sc.is_valid(), "{what} via {path}: must be rejected"),
                "tracestate" => {
                    assert!(sc.is_valid(), "{what} via {path}: traceparent stays valid");
                    assert_eq!(sc.trace_state().header(), "", "{what} via {path}: tracestate discarded");
                }
                _ => {
                    assert!(cx.baggage().len() <= 64, "{what} via {path}");
                    let size: usize = cx
                        .baggage()
                        .iter()
                        .map(|(k, (v, _))| k.as_str().len() + 1 + v.as_str().len())
                        .sum();
                    assert!(size <= 8192, "{what} via {path}: {size} bytes of baggage");
                }
            }
            eprintln!("{what:<26} {path:<17} {allocated:>6} B allocated, {took:?}");
        }
    }
}

/// Thousands of repeated header lines: two `traceparent` lines already invalidate the context;
/// 10 000 `tracestate` / `baggage` lines are bounded like one long line.
#[test]
fn ten_thousand_header_lines_are_bounded() {
    let p = W3cPropagator::default();
    for name in ["traceparent", "tracestate", "baggage"] {
        let mut headers = http::HeaderMap::new();
        if name != "traceparent" {
            headers.insert("traceparent", VALID_TP.parse().unwrap());
        }
        for i in 0..10_000 {
            let v = if name == "traceparent" {
                VALID_TP.to_owned()
            } else {
                format!("k{i}=v{i}")
            };
            headers.append(name, v.parse().unwrap());
        }
        let (cx, allocated, took) = measure(|| p.extract_headers_with_context(&Context::new(), &headers));
        assert!(allocated <= ALLOC_BOUND, "{name}: {allocated} bytes");
        assert!(took <= TIME_BOUND, "{name}: {took:?}");
        let span = cx.span();
        match name {
            "traceparent" => assert!(!span.span_context().is_valid(), "repeated traceparent is invalid"),
            "tracestate" => assert_eq!(span.span_context().trace_state().header(), "", "over 32 members"),
            _ => assert_eq!(cx.baggage().len(), 64, "the first 64 members are kept"),
        }
    }
}

/// The extractor path (`HeaderExtractor`, what any non-`W3cPropagator` propagator and
/// `Instrumentation` with a custom propagator use) and the fast path must agree that two
/// `traceparent` lines are invalid even when one of them is not ASCII.
#[test]
fn garbled_second_traceparent_line_invalidates_on_both_paths() {
    let p = W3cPropagator::default();
    let mut headers = http::HeaderMap::new();
    headers.append("traceparent", VALID_TP.parse().unwrap());
    headers.append("traceparent", http::HeaderValue::from_bytes(b"00-\xff\xfe").unwrap());
    let fast = p.extract_headers_with_context(&Context::new(), &headers);
    assert!(
        !fast.span().span_context().is_valid(),
        "fast path: two lines are invalid"
    );
    let slow = p.extract_with_context(&Context::new(), &HeaderExtractor(&headers));
    assert!(
        !slow.span().span_context().is_valid(),
        "HeaderExtractor path accepted a request carrying two traceparent lines"
    );
}

// --- Through a real axum server ---------------------------------------------------------------

async fn serve(t: &TestTelemetry) -> SocketAddr {
    // The handler reports what context it runs in: the trace id and the baggage size.
    let app = Router::new()
        .route(
            "/echo",
            get(|| async {
                let cx = Context::current();
                format!(
                    "trace={} baggage={}",
                    cx.span().span_context().trace_id(),
                    cx.baggage().len()
                )
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Sends raw bytes (so header values can be anything hyper accepts, including obs-text) and
/// reads the whole response (`Connection: close`).
async fn raw_request(addr: SocketAddr, extra_headers: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
    req.extend_from_slice(extra_headers);
    req.extend_from_slice(b"\r\n");
    s.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("response in time")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Oversized (64 KiB, within hyper's header limit) and non-UTF-8 `traceparent`, `tracestate`
/// and `baggage` headers reach the instrumented axum service: the request is served (200), the
/// handler runs in a new root trace with no baggage, and exactly one root SERVER span ends per
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_non_utf8_headers_are_ignored_by_a_real_server() {
    let t = TestTelemetry::new();
    let addr = serve(&t).await;
    let big = "a".repeat(64 * 1024);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "64 KiB traceparent",
            format!("traceparent: {VALID_TP}-{big}\r\n").into_bytes(),
        ),
        (
            "64 KiB baggage and tracestate, bad traceparent",
            format!("traceparent: 00-zz\r\ntracestate: k={big}\r\nbaggage: k={big}\r\n").into_bytes(),
        ),
        ("non-UTF-8 traceparent", b"traceparent: 00-\xff\xfe\xfd-01\r\n".to_vec()),
        (
            "non-UTF-8 baggage, no traceparent",
            b"baggage: k=\xc3\x28,user=\xe2\x82\r\ntracestate: a=\xff\r\n".to_vec(),
        ),
        (
            "valid then non-UTF-8 traceparent line",
            [
                format!("traceparent: {VALID_TP}\r\n").as_bytes(),
                b"traceparent: \xff\xff\r\n",
            ]
            .concat(),
        ),
    ];
    for (i, (what, headers)) in cases.iter().enumerate() {
        let response = raw_request(addr, headers).await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{what}: {response:.200}");
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        assert!(body.ends_with("baggage=0"), "{what}: {body}");
        assert!(
            !body.contains("0af7651916cd43dd8448eb211c80319c"),
            "{what}: joined the remote trace: {body}"
        );
        let spans = t.wait_for_spans(i + 1, Duration::from_secs(20));
        assert_eq!(spans.len(), i + 1, "{what}: one span per request");
        let span = &spans[i];
        span.assert_kind(SpanKind::Server)
            .assert_root()
            .assert_attr("http.response.status_code", 200i64);
        assert!(
            body.contains(&format!("trace={}", span.span_context.trace_id())),
            "{what}: {body}"
        );
    }
    // Header lines beyond hyper's limit never reach the layer: hyper answers 431 itself, and the
    // server keeps serving.
    let huge = format!("baggage: k={}\r\n", "v".repeat(1 << 20));
    let response = raw_request(addr, huge.as_bytes()).await;
    assert!(
        response.is_empty() || response.starts_with("HTTP/1.1 431"),
        "1 MiB header: {response:.200}"
    );
    let response = raw_request(addr, b"").await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "served after a 1 MiB header");
    assert_eq!(
        t.wait_for_spans(cases.len() + 1, Duration::from_secs(20)).len(),
        cases.len() + 1
    );
}
