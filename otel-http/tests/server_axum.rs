//! The server layer on an axum router, over real loopback sockets.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::routing::{any, get};
use axum::Router;
use bytes::Bytes;
use http::{Method, StatusCode};
use opentelemetry::trace::{Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::{Array, Context, StringValue, Value};
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{filter, HttpRoute, HttpServerLayer, RouteHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{client, get as get_req, h2_client, request, send, serve_axum, TIMEOUT};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

fn traceparent() -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-01")
}

fn peer_port(span: &opentelemetry_sdk::trace::SpanData) -> i64 {
    match span.attr("network.peer.port") {
        Some(Value::I64(p)) if (1..=65535).contains(p) => *p,
        other => panic!("network.peer.port must be an int port, got {other:?}"),
    }
}

fn layer(t: &TestTelemetry) -> HttpServerLayer {
    HttpServerLayer::new()
        .with_instrumentation(t.instrumentation())
        .with_known_methods(KnownMethods::defaults())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_get_has_exact_span_attributes_parent_and_metrics() {
    let t = TestTelemetry::new();
    let seen: Arc<Mutex<Option<(SpanContext, SpanContext)>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let inst = t.instrumentation();
    let app = Router::new()
        .route(
            "/users/{id}",
            get(move || {
                let seen = Arc::clone(&seen2);
                let inst = inst.clone();
                async move {
                    // The server span is the current context inside the handler, across awaits.
                    tokio::task::yield_now().await;
                    let current = Context::current().span().span_context().clone();
                    let tracer = inst.tracer(Instrumentation::scope("handler", "0"));
                    let mut child = tracer.start("handler-work");
                    let child_sc = child.span_context().clone();
                    child.end();
                    *seen.lock().unwrap() = Some((current, child_sc));
                    "user"
                }
            }),
        )
        .layer(layer(&t));
    let addr = serve_axum(app).await;

    let tp = traceparent();
    let (status, _, body) = send(
        &client(),
        get_req(
            addr,
            "/users/42?sig=secret&x=1",
            &[("traceparent", &tp), ("user-agent", "test-agent/1.0")],
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user");

    t.wait_for_spans(2, TIMEOUT);
    let span = t.span("GET /users/{id}");
    let port = peer_port(&span);
    span.assert_kind(SpanKind::Server)
        .assert_status(&Status::Unset)
        .assert_parent_ids(
            TraceId::from_hex(TRACE_ID).unwrap(),
            SpanId::from_hex(PARENT_ID).unwrap(),
        )
        .assert_attrs(&[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("url.path", "/users/42"),
            kv("url.query", "sig=REDACTED&x=REDACTED"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            kv("client.address", "127.0.0.1"),
            kv("user_agent.original", "test-agent/1.0"),
            kv("network.protocol.version", "1.1"),
            kv("network.peer.address", "127.0.0.1"),
            kv("network.peer.port", port),
            kv("http.route", "/users/{id}"),
            kv("http.response.status_code", 200i64),
        ]);
    assert_eq!(span.instrumentation_scope.name(), "otelrs-http");
    assert!(span.span_context.is_sampled());

    let (current, child_sc) = seen.lock().unwrap().clone().expect("handler ran");
    assert_eq!(
        current.span_id(),
        span.span_context.span_id(),
        "Context::current() is the server span"
    );
    let child = t.span("handler-work");
    child.assert_child_of(&span);
    assert_eq!(child.span_context.span_id(), child_sc.span_id());

    let m = t.metrics();
    m.assert_metric("http.server.request.duration", "s", "Duration of HTTP server requests.");
    m.assert_metric(
        "http.server.active_requests",
        "{request}",
        "Number of active HTTP server requests.",
    );
    let point = m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/users/{id}"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(point.count, 1);
    assert_eq!(point.bounds, DURATION_BUCKETS.to_vec());
    assert!(point.sum > 0.0 && point.sum < TIMEOUT.as_secs_f64());
    assert_eq!(m.histogram("http.server.request.duration").len(), 1);
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[kv("http.request.method", "GET"), kv("url.scheme", "http")]
        ),
        Some(0)
    );
    assert_eq!(m.sums_i64("http.server.active_requests").len(), 1);
    assert_eq!(m.is_monotonic("http.server.active_requests"), Some(false));
    assert!(
        m.metric("http.server.response.body.size").is_none(),
        "body size is opt-in"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_404_has_no_route_and_is_not_an_error() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/users/{id}", get(|| async { "user" }))
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    let (status, _, _) = send(&client(), get_req(addr, "/no/such/path", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET");
    span.assert_kind(SpanKind::Server)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_no_attr("http.route")
        .assert_no_attr("error.type")
        .assert_no_attr("url.query")
        .assert_attr("url.path", "/no/such/path")
        .assert_attr("http.response.status_code", 404i64);
    t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 404i64),
            kv("network.protocol.version", "1.1"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_sets_error_status_and_type() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/fail", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }))
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    let (status, _, _) = send(&client(), get_req(addr, "/fail", &[])).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /fail")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "503")
        .assert_attr("http.response.status_code", 503i64);
    let p = t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 503i64),
            kv("http.route", "/fail"),
            kv("error.type", "503"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_is_other_with_original() {
    let t = TestTelemetry::new();
    let app = Router::new().route("/any", any(|| async { "ok" })).layer(layer(&t));
    let addr = serve_axum(app).await;
    let purge = Method::from_bytes(b"PURGE").unwrap();
    let (status, _, _) = send(&client(), request(purge.clone(), addr, "/any", &[])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        &client(),
        request(Method::from_bytes(b"get").unwrap(), addr, "/nowhere", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.wait_for_spans(2, TIMEOUT);
    t.span("HTTP /any")
        .assert_attr("http.request.method", "_OTHER")
        .assert_attr("http.request.method_original", "PURGE")
        .assert_attr("http.route", "/any");
    t.span("HTTP")
        .assert_attr("http.request.method", "_OTHER")
        .assert_attr("http.request.method_original", "get")
        .assert_no_attr("http.route");
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "_OTHER"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/any"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[kv("http.request.method", "_OTHER"), kv("url.scheme", "http")]
        ),
        Some(0)
    );

    // A custom list makes PURGE known.
    let t2 = TestTelemetry::new();
    let app = Router::new().route("/any", any(|| async { "ok" })).layer(
        HttpServerLayer::new()
            .with_instrumentation(t2.instrumentation())
            .with_known_methods(KnownMethods::new(["GET", "PURGE"])),
    );
    let addr = serve_axum(app).await;
    send(&client(), request(purge, addr, "/any", &[])).await;
    t2.wait_for_spans(1, TIMEOUT);
    t2.span("PURGE /any")
        .assert_attr("http.request.method", "PURGE")
        .assert_no_attr("http.request.method_original");
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
async fn filter_skips_traces_and_metrics() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics/prom", get(|| async { "m" }))
        .route("/work", get(|| async { "w" }))
        .layer(layer(&t).with_filter(filter::path("/healthz").or(filter::path_prefix("/metrics")).not()));
    let addr = serve_axum(app).await;
    let c = client();
    for path in ["/healthz", "/metrics/prom", "/work"] {
        let (status, _, _) = send(&c, get_req(addr, path, &[])).await;
        assert_eq!(status, StatusCode::OK);
    }
    t.wait_for_spans(1, TIMEOUT);
    let names: Vec<String> = t.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["GET /work"]);
    let points = t.metrics().histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert_eq!(points[0].count, 1);
    assert!(points[0].attributes.contains(&kv("http.route", "/work")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_capture_and_forwarding_headers() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/h",
            get(|| async { ([("x-served-by", "node-1"), ("content-type", "text/plain")], "h") }),
        )
        .layer(
            layer(&t)
                .with_request_headers(["X-Request-Id", "x-absent"])
                .with_response_headers(["x-served-by"])
                .with_server_address_on_metrics(true),
        );
    let addr = serve_axum(app).await;
    let mut req = get_req(
        addr,
        "/h",
        &[
            ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
            ("x-forwarded-host", "shop.example:8443"),
            ("x-forwarded-proto", "https"),
            ("x-request-id", "a"),
        ],
    );
    req.headers_mut().append("x-request-id", "b".parse().unwrap());
    send(&client(), req).await;
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET /h");
    span.assert_attr("client.address", "203.0.113.7")
        .assert_attr("network.peer.address", "127.0.0.1")
        .assert_attr("server.address", "shop.example")
        .assert_attr("server.port", 8443i64)
        .assert_attr("url.scheme", "https")
        .assert_attr(
            "http.request.header.x-request-id",
            Value::Array(Array::String(vec![StringValue::from("a"), StringValue::from("b")])),
        )
        .assert_attr(
            "http.response.header.x-served-by",
            Value::Array(Array::String(vec![StringValue::from("node-1")])),
        )
        .assert_no_attr("http.request.header.x-absent");
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "https"),
            kv("server.address", "shop.example"),
            kv("server.port", 8443i64),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/h"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(
        m.sum_i64(
            "http.server.active_requests",
            &[
                kv("http.request.method", "GET"),
                kv("url.scheme", "https"),
                kv("server.address", "shop.example"),
                kv("server.port", 8443i64),
            ]
        ),
        Some(0)
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
    let tp = traceparent();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_route_updates_rename_the_span() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/handle",
            get(|req: Request| async move {
                req.extensions()
                    .get::<RouteHandle>()
                    .expect("the layer inserts a route handle")
                    .set("/handle/{refined}");
                "h"
            }),
        )
        .fallback(|| async {
            let mut resp = axum::response::Response::new(Body::from("static"));
            resp.extensions_mut().insert(HttpRoute::new("/static/{*file}"));
            resp
        })
        .layer(layer(&t).with_route_handle(true));
    let addr = serve_axum(app).await;
    let c = client();
    send(&c, get_req(addr, "/handle", &[])).await;
    send(&c, get_req(addr, "/static/app.js", &[])).await;
    t.wait_for_spans(2, TIMEOUT);
    t.span("GET /handle/{refined}")
        .assert_attr("http.route", "/handle/{refined}");
    t.span("GET /static/{*file}")
        .assert_attr("http.route", "/static/{*file}")
        .assert_attr("url.path", "/static/app.js");
    let m = t.metrics();
    for route in ["/handle/{refined}", "/static/{*file}"] {
        m.assert_histogram_point(
            "http.server.request.duration",
            &[
                kv("http.request.method", "GET"),
                kv("url.scheme", "http"),
                kv("http.response.status_code", 200i64),
                kv("http.route", route),
                kv("network.protocol.version", "1.1"),
            ],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoint_starts_a_new_root_with_a_link() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/pub", get(|| async { "p" }))
        .layer(layer(&t).with_public_endpoint(true));
    let addr = serve_axum(app).await;
    let tp = traceparent();
    send(&client(), get_req(addr, "/pub", &[("traceparent", &tp)])).await;
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET /pub");
    span.assert_root();
    assert_ne!(span.span_context.trace_id(), TraceId::from_hex(TRACE_ID).unwrap());
    assert_eq!(span.links.links.len(), 1);
    let link = &span.links.links[0].span_context;
    assert_eq!(link.trace_id(), TraceId::from_hex(TRACE_ID).unwrap());
    assert_eq!(link.span_id(), SpanId::from_hex(PARENT_ID).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn span_name_formatter_is_used_at_start_and_end() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/f/{x}", get(|| async { "f" }))
        .layer(layer(&t).with_span_name_formatter(|m, r| format!("srv:{m}:{}", r.unwrap_or("-"))));
    let addr = serve_axum(app).await;
    let c = client();
    send(&c, get_req(addr, "/f/1", &[])).await;
    send(&c, get_req(addr, "/zzz", &[])).await;
    t.wait_for_spans(2, TIMEOUT);
    t.span("srv:GET:/f/{x}").assert_attr("http.route", "/f/{x}");
    t.span("srv:GET:-").assert_no_attr("http.route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_request_without_body_is_not_incomplete() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/r", get(|| async { "resource body" }))
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    let (status, _, body) = send(&client(), request(Method::HEAD, addr, "/r", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    t.wait_for_spans(1, TIMEOUT);
    t.span("HEAD /r")
        .assert_status(&Status::Unset)
        .assert_no_attr("error.type")
        .assert_attr("http.response.status_code", 200i64);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_handle_is_opt_in() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route(
            "/probe",
            get(|req: Request| async move {
                if req.extensions().get::<RouteHandle>().is_some() {
                    "present"
                } else {
                    "absent"
                }
            }),
        )
        .layer(layer(&t));
    let addr = serve_axum(app).await;
    let (status, _, body) = send(&client(), get_req(addr, "/probe", &[])).await;
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"absent");
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET /probe").assert_attr("http.route", "/probe");
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
