//! The server layer on an axum router, over real loopback sockets: the server conformance table
//! (route from `MatchedPath`, the router's 404 fallback), and what the table does not cover:
//! streamed, dropped and panicking responses, cancellation, HTTP/2, propagation edge cases,
//! sampling, body sizes and a response `HttpRoute`.

mod common;
mod conformance;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use http::{Method, StatusCode};
use opentelemetry::trace::{Status, TraceId};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{HttpRoute, HttpServerLayer, RouteHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{client, get as get_req, h2_client, send, serve_axum, TIMEOUT};
use conformance::server::{self, Handler};
use conformance::{PARENT_ID, TRACEPARENT, TRACE_ID};

fn layer(t: &TestTelemetry) -> HttpServerLayer {
    HttpServerLayer::new()
        .with_instrumentation(t.instrumentation())
        .with_known_methods(KnownMethods::defaults())
}

/// The conformance app on axum: every route with `any`, the route from `MatchedPath`, the
/// router's own 404 fallback.
async fn start(layer: HttpServerLayer, handler: Handler) -> SocketAddr {
    let mut app = Router::new();
    for route in server::ROUTES {
        let handler = handler.clone();
        app = app.route(
            route.template,
            any(move |req: Request| {
                let handler = handler.clone();
                let handle = req.extensions().get::<RouteHandle>().cloned();
                async move { handler.respond(route, handle).await.into_http() }
            }),
        );
    }
    serve_axum(app.layer(layer)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    server::run("axum", start).await;
}

/// A body that yields `chunks` chunks, `gap` apart.
fn slow_body(chunks: usize, gap: Duration) -> Body {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, std::convert::Infallible>::new(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            if tx.send_data(Bytes::from_static(b"0123456789")).await.is_err() {
                return;
            }
        }
    });
    Body::new(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_is_timed_to_its_end_and_sized() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/stream", get(|| async { slow_body(5, Duration::from_millis(55)) }))
        .layer(layer(&t).with_response_body_size(true));
    let addr = serve_axum(app).await;
    let (status, _, body) = send(&client(), get_req(addr, "/stream", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 50);
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET /stream");
    span.assert_status(&Status::Unset).assert_no_attr("error.type");
    let span_secs = span
        .end_time
        .duration_since(span.start_time)
        .expect("end after start")
        .as_secs_f64();
    assert!(span_secs >= 0.2, "span covers the body: {span_secs}");
    let attrs = [
        kv("http.request.method", "GET"),
        kv("url.scheme", "http"),
        kv("http.response.status_code", 200i64),
        kv("http.route", "/stream"),
        kv("network.protocol.version", "1.1"),
    ];
    let m = t.metrics();
    let p = m.assert_histogram_point("http.server.request.duration", &attrs);
    assert_eq!(p.count, 1);
    assert!(p.sum >= 0.2, "duration covers the streamed body: {}", p.sum);
    m.assert_metric(
        "http.server.response.body.size",
        "By",
        "Size of HTTP server response bodies.",
    );
    let size = m.assert_histogram_point("http.server.response.body.size", &attrs);
    assert_eq!((size.count, size.sum), (1, 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_mid_response_ends_span_with_incomplete_body() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/forever",
            get(|| async { slow_body(usize::MAX, Duration::from_millis(10)) }),
        )
        .layer(layer(&t));
    let addr = serve_axum(app).await;

    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /forever HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Read until the first chunk arrived, then go away.
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("0123456789") {
        let n = tokio::time::timeout(TIMEOUT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "server closed early");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200 OK"));
    drop(stream);

    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /forever")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "response_body_incomplete")
        .assert_attr("http.response.status_code", 200i64);
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/forever"),
            kv("error.type", "response_body_incomplete"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[kv("http.request.method", "GET"), kv("url.scheme", "http")]
        ),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_ends_span_and_is_resumed() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/panic",
            get(|| async {
                tokio::task::yield_now().await;
                if true {
                    panic!("handler exploded");
                }
                "unreachable"
            }),
        )
        .route("/ok", get(|| async { "ok" }))
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    let res = tokio::time::timeout(TIMEOUT, client().request(get_req(addr, "/panic", &[])))
        .await
        .expect("answer in time");
    assert!(
        res.is_err(),
        "the panic is resumed: the connection dies without a response"
    );
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /panic")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "panic")
        .assert_no_attr("http.response.status_code");
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.route", "/panic"),
            kv("error.type", "panic"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[kv("http.request.method", "GET"), kv("url.scheme", "http")]
        ),
        Some(0)
    );
    // The server keeps serving.
    let (status, _, _) = send(&client(), get_req(addr, "/ok", &[])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_request_future_ends_span_as_cancelled() {
    use tower::ServiceExt as _;
    let t = TestTelemetry::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Arc::new(Mutex::new(Some(started_tx)));
    let app = Router::new()
        .route(
            "/slow",
            get(move || {
                let started_tx = Arc::clone(&started_tx);
                async move {
                    if let Some(tx) = started_tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        )
        .layer(layer(&t));
    let req = Request::builder().uri("/slow").body(Body::empty()).unwrap();
    let fut = app.oneshot(req);
    // Drive the request until the handler runs, then drop it (what hyper does when the client
    // goes away before the response).
    tokio::select! {
        _ = fut => panic!("the handler never completes"),
        _ = started_rx => {}
    }
    let span = t.span("GET /slow");
    span.assert_status(&Status::error(""))
        .assert_attr("error.type", "cancelled")
        .assert_no_attr("http.response.status_code")
        .assert_no_attr("server.address")
        .assert_no_attr("network.peer.address");
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.route", "/slow"),
            kv("error.type", "cancelled"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[kv("http.request.method", "GET"), kv("url.scheme", "http")]
        ),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_reports_protocol_version_2_and_authority() {
    let t = TestTelemetry::new();
    let app = Router::new().route("/h2", get(|| async { "two" })).layer(layer(&t));
    let addr = serve_axum(app).await;
    let (status, _, body) = send(&h2_client(), get_req(addr, "/h2", &[])).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"two"[..]));
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /h2")
        .assert_attr("network.protocol.version", "2")
        .assert_attr("server.address", "127.0.0.1")
        .assert_attr("server.port", i64::from(addr.port()))
        .assert_attr("url.scheme", "http");
    t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/h2"),
            kv("network.protocol.version", "2"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_propagation_headers_start_a_new_trace() {
    let t = TestTelemetry::new();
    let app = Router::new().route("/p", get(|| async { "p" })).layer(layer(&t));
    let addr = serve_axum(app).await;
    let huge_state: String = (0..64)
        .map(|i| format!("k{i}=v{}", "x".repeat(200)))
        .collect::<Vec<_>>()
        .join(",");
    let huge_baggage: String = (0..400)
        .map(|i| format!("key{i}={}", "v".repeat(100)))
        .collect::<Vec<_>>()
        .join(",");
    let tp = TRACEPARENT.to_owned();
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![("traceparent", "garbage".into())],
        vec![("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01-extra"))],
        vec![("traceparent", format!("ff-{TRACE_ID}-{PARENT_ID}-01"))],
        vec![("traceparent", format!("00-{}-{PARENT_ID}-01", "0".repeat(32)))],
        vec![("traceparent", format!("00-{TRACE_ID}-{}-01", "0".repeat(16)))],
        vec![("traceparent", format!("00-{}-{PARENT_ID}-01", "A".repeat(32)))],
        vec![(
            "traceparent",
            format!("00-{TRACE_ID}-{PARENT_ID}-01{}", "0".repeat(4000)),
        )],
        vec![("traceparent", tp.clone()), ("traceparent", tp.clone())],
        vec![("tracestate", huge_state.clone())],
        vec![("baggage", huge_baggage.clone())],
        vec![("baggage", "=;;==,,%%%".into()), ("tracestate", "@@@,,,=".into())],
    ];
    let c = client();
    for (i, headers) in cases.iter().enumerate() {
        let mut req = get_req(addr, "/p", &[]);
        for (k, v) in headers {
            req.headers_mut().append(*k, v.parse().unwrap());
        }
        let (status, _, body) = send(&c, req).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"p"[..]), "case {i} is served");
        t.wait_for_spans(i + 1, TIMEOUT);
    }
    let spans = t.spans();
    assert_eq!(spans.len(), cases.len());
    for (i, s) in spans.iter().enumerate() {
        s.assert_root();
        assert_ne!(
            s.span_context.trace_id(),
            TraceId::from_hex(TRACE_ID).unwrap(),
            "case {i}: invalid context must not be continued"
        );
        assert!(s.span_context.is_valid());
    }
}

/// A fallback that knows the route only after routing, telling it through an `HttpRoute` in the
/// response extensions (the `RouteHandle` source is a conformance row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_route_extension_renames_the_span() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/handle", get(|| async { "h" }))
        .fallback(|| async {
            let mut resp = axum::response::Response::new(Body::from("static"));
            resp.extensions_mut().insert(HttpRoute::new("/static/{*file}"));
            resp
        })
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    send(&client(), get_req(addr, "/static/app.js", &[])).await;
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /static/{*file}")
        .assert_attr("http.route", "/static/{*file}")
        .assert_attr("url.path", "/static/app.js");
    t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/static/{*file}"),
            kv("network.protocol.version", "1.1"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_requests_still_record_metrics() {
    use opentelemetry_sdk::trace::Sampler;
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let app = Router::new().route("/u", get(|| async { "u" })).layer(layer(&t));
    let addr = serve_axum(app).await;
    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    let (status, _, _) = send(&client(), get_req(addr, "/u", &[("traceparent", &tp)])).await;
    assert_eq!(status, StatusCode::OK);
    // A sampled request afterwards proves the first one's span would have been exported by now.
    send(&client(), get_req(addr, "/u", &[])).await;
    t.wait_for_spans(1, TIMEOUT);
    assert_eq!(t.spans().len(), 1, "the unsampled request exports no span");
    let p = t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/u"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 2, "both requests are measured");
}

fn post_req(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> http::Request<http_body_util::Full<Bytes>> {
    http::Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}{path}"))
        .body(http_body_util::Full::new(Bytes::from(body)))
        .expect("valid request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_size_counts_the_bytes_read() {
    use otelrs_http::server::RequestBodySizeLayer;
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/upload",
            axum::routing::post(|body: String| async move { body.len().to_string() }),
        )
        .route("/ignore", axum::routing::post(|| async { "ignored" }))
        .layer(RequestBodySizeLayer::new())
        .layer(layer(&t).with_request_body_size(true));
    let addr = serve_axum(app).await;
    let (status, _, body) = send(&client(), post_req(addr, "/upload", vec![b'x'; 1234])).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"1234"[..]));
    let (status, _, _) = send(&client(), post_req(addr, "/ignore", vec![b'y'; 99])).await;
    assert_eq!(status, StatusCode::OK);
    t.wait_for_spans(2, TIMEOUT);
    let m = t.metrics();
    m.assert_metric(
        "http.server.request.body.size",
        "By",
        "Size of HTTP server request bodies.",
    );
    let attrs = |route: &str| {
        [
            kv("http.request.method", "POST"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", route.to_owned()),
            kv("network.protocol.version", "1.1"),
        ]
    };
    let read = m.assert_histogram_point("http.server.request.body.size", &attrs("/upload"));
    assert_eq!((read.count, read.sum), (1, 1234.0));
    // A handler that never reads the body: nothing was streamed to the application.
    let unread = m.assert_histogram_point("http.server.request.body.size", &attrs("/ignore"));
    assert_eq!((unread.count, unread.sum), (1, 0.0));
    assert_eq!(m.histogram("http.server.request.body.size").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_size_is_not_recorded_without_the_counting_layer() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/upload",
            axum::routing::post(|body: String| async move { body.len().to_string() }),
        )
        .layer(layer(&t).with_request_body_size(true));
    let addr = serve_axum(app).await;
    let (status, _, _) = send(&client(), post_req(addr, "/upload", vec![b'x'; 10])).await;
    assert_eq!(status, StatusCode::OK);
    t.wait_for_spans(1, TIMEOUT);
    assert!(t.metrics().histogram("http.server.request.body.size").is_empty());
}
