//! The actix-web middleware on a real actix-web server over loopback sockets: the same spans,
//! attributes, metrics and lifetimes as the tower layer.

mod common;

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::{web, App, HttpMessage as _, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use http::StatusCode;
use opentelemetry::trace::{Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::{Array, Context, StringValue, Value};
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{filter, HttpServerMiddleware, RouteHandle};

use common::{client, get as get_req, send, TIMEOUT};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

fn middleware(t: &TestTelemetry) -> HttpServerMiddleware {
    HttpServerMiddleware::new()
        .with_instrumentation(t.instrumentation())
        .with_known_methods(KnownMethods::defaults())
}

/// Runs an actix-web server (one worker, its own actix system on a thread) with `mw` wrapping an
/// app configured by `cfg`; returns the bound loopback address.
fn serve_actix<C>(mw: HttpServerMiddleware, cfg: C) -> SocketAddr
where
    C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || App::new().wrap(mw.clone()).configure(cfg.clone()))
                .workers(1)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run()
                .await
                .expect("actix server");
        });
    });
    addr
}

fn peer_port(span: &opentelemetry_sdk::trace::SpanData) -> i64 {
    match span.attr("network.peer.port") {
        Some(Value::I64(p)) if (1..=65535).contains(p) => *p,
        other => panic!("network.peer.port must be an int port, got {other:?}"),
    }
}

fn active_requests(t: &TestTelemetry) -> Option<i64> {
    t.metrics().sum_i64(
        "http.server.active_requests",
        &[kv("http.request.method", "GET"), kv("url.scheme", "http")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routed_get_with_remote_parent_has_exact_span_and_metrics() {
    let t = TestTelemetry::new();
    let seen: Arc<Mutex<Option<SpanContext>>> = Arc::default();
    let seen2 = Arc::clone(&seen);
    let inst = t.instrumentation();
    let addr = serve_actix(middleware(&t), move |cfg| {
        let seen = Arc::clone(&seen2);
        let inst = inst.clone();
        cfg.route(
            "/users/{id}",
            web::get().to(move || {
                let seen = Arc::clone(&seen);
                let inst = inst.clone();
                async move {
                    // The server span is the current context inside the handler, across awaits.
                    tokio::task::yield_now().await;
                    *seen.lock().unwrap() = Some(Context::current().span().span_context().clone());
                    let tracer = inst.tracer(Instrumentation::scope("handler", "0"));
                    tracer.start("handler-work").end();
                    "user"
                }
            }),
        );
    });

    let tp = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let (status, _, body) = send(
        &client(),
        get_req(
            addr,
            "/users/42?sig=secret&x=1",
            &[("traceparent", &tp), ("user-agent", "test-agent/1.0")],
        ),
    )
    .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"user"[..]));

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
    let current = seen.lock().unwrap().clone().expect("handler ran");
    assert_eq!(
        current.span_id(),
        span.span_context.span_id(),
        "Context::current() is the server span"
    );
    t.span("handler-work").assert_child_of(&span);

    let m = t.metrics();
    m.assert_metric("http.server.request.duration", "s", "Duration of HTTP server requests.");
    let p = m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/users/{id}"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, DURATION_BUCKETS.to_vec());
    assert!(p.sum > 0.0 && p.sum < TIMEOUT.as_secs_f64());
    assert_eq!(m.histogram("http.server.request.duration").len(), 1);
    assert_eq!(active_requests(&t), Some(0));
    assert_eq!(m.is_monotonic("http.server.active_requests"), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_404_is_named_by_method_without_route() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t), |cfg| {
        cfg.route("/users/{id}", web::get().to(|| async { "user" }));
    });
    let (status, _, _) = send(&client(), get_req(addr, "/no/such/path", &[])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET")
        .assert_kind(SpanKind::Server)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_no_attr("http.route")
        .assert_no_attr("error.type")
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
async fn server_errors_set_error_status_and_type() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t), |cfg| {
        cfg.route(
            "/down",
            web::get().to(|| async { HttpResponse::ServiceUnavailable().body("down") }),
        )
        .route(
            "/err",
            web::get().to(|| async { Err::<HttpResponse, _>(actix_web::error::ErrorInternalServerError("boom")) }),
        )
        .route(
            "/bad",
            web::get().to(|| async { Err::<HttpResponse, _>(actix_web::error::ErrorBadRequest("bad")) }),
        );
    });
    let c = client();
    assert_eq!(
        send(&c, get_req(addr, "/down", &[])).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        send(&c, get_req(addr, "/err", &[])).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(send(&c, get_req(addr, "/bad", &[])).await.0, StatusCode::BAD_REQUEST);
    t.wait_for_spans(3, TIMEOUT);
    for (route, code) in [("/down", 503i64), ("/err", 500)] {
        t.span(&format!("GET {route}"))
            .assert_status(&Status::error(""))
            .assert_attr("error.type", code.to_string())
            .assert_attr("http.response.status_code", code);
        let p = t.metrics().assert_histogram_point(
            "http.server.request.duration",
            &[
                kv("http.request.method", "GET"),
                kv("url.scheme", "http"),
                kv("http.response.status_code", code),
                kv("http.route", route),
                kv("error.type", code.to_string()),
                kv("network.protocol.version", "1.1"),
            ],
        );
        assert_eq!(p.count, 1);
    }
    t.span("GET /bad")
        .assert_status(&Status::Unset)
        .assert_no_attr("error.type")
        .assert_attr("http.response.status_code", 400i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_ends_span_and_decrements_active_requests() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t), |cfg| {
        cfg.route(
            "/panic",
            web::get().to(|| async {
                tokio::task::yield_now().await;
                if true {
                    panic!("handler exploded");
                }
                "unreachable"
            }),
        )
        .route("/ok", web::get().to(|| async { "ok" }));
    });
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
    t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.route", "/panic"),
            kv("error.type", "panic"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(active_requests(&t), Some(0));
    let (status, _, _) = send(&client(), get_req(addr, "/ok", &[])).await;
    assert_eq!(status, StatusCode::OK, "the server keeps serving");
}

/// A streaming body of `left` 10-byte chunks, `gap` apart.
struct SlowBody {
    left: usize,
    gap: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl MessageBody for SlowBody {
    type Error = std::io::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        if let Some(sleep) = self.sleep.as_mut() {
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.left -= 1;
        let gap = self.gap;
        self.sleep = Some(Box::pin(tokio::time::sleep(gap)));
        Poll::Ready(Some(Ok(Bytes::from_static(b"0123456789"))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_body_is_timed_to_its_end_and_sized() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t).with_response_body_size(true), |cfg| {
        cfg.route(
            "/stream",
            web::get().to(|| async {
                HttpResponse::Ok().body(SlowBody {
                    left: 5,
                    gap: Duration::from_millis(55),
                    sleep: None,
                })
            }),
        );
    });
    let (status, _, body) = send(&client(), get_req(addr, "/stream", &[])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), 50);
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET /stream");
    span.assert_status(&Status::Unset).assert_no_attr("error.type");
    let secs = span
        .end_time
        .duration_since(span.start_time)
        .expect("end after start")
        .as_secs_f64();
    assert!(secs >= 0.2, "span covers the body: {secs}");
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
    let size = m.assert_histogram_point("http.server.response.body.size", &attrs);
    assert_eq!((size.count, size.sum), (1, 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_capture_forwarding_headers_and_late_route() {
    let t = TestTelemetry::new();
    let mw = middleware(&t)
        .with_route_handle(true)
        .with_request_headers(["X-Request-Id", "x-absent"])
        .with_response_headers(["x-served-by"])
        .with_server_address_on_metrics(true);
    let addr = serve_actix(mw, |cfg| {
        cfg.route(
            "/h",
            web::get().to(|| async { HttpResponse::Ok().insert_header(("x-served-by", "node-1")).body("h") }),
        )
        .route(
            "/files/{tail:.*}",
            web::get().to(|req: HttpRequest| async move {
                req.extensions()
                    .get::<RouteHandle>()
                    .expect("the middleware inserts a route handle")
                    .set("/files/{*path}");
                "f"
            }),
        );
    });
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
    send(&client(), get_req(addr, "/files/a/b.txt", &[])).await;
    t.wait_for_spans(2, TIMEOUT);
    t.span("GET /h")
        .assert_attr("client.address", "203.0.113.7")
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
    t.span("GET /files/{*path}")
        .assert_attr("http.route", "/files/{*path}")
        .assert_attr("url.path", "/files/a/b.txt");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_and_span_name_formatter() {
    let t = TestTelemetry::new();
    let mw = middleware(&t)
        .with_filter(filter::path("/healthz").not())
        .with_span_name_formatter(|m, r| format!("srv:{m}:{}", r.unwrap_or("-")));
    let addr = serve_actix(mw, |cfg| {
        cfg.route("/healthz", web::get().to(|| async { "ok" }))
            .route("/work/{id}", web::get().to(|| async { "w" }));
    });
    let c = client();
    for path in ["/healthz", "/work/1"] {
        assert_eq!(send(&c, get_req(addr, path, &[])).await.0, StatusCode::OK);
    }
    t.wait_for_spans(1, TIMEOUT);
    let names: Vec<String> = t.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, vec!["srv:GET:/work/{id}"]);
    let points = t.metrics().histogram("http.server.request.duration");
    assert_eq!(points.len(), 1);
    assert!(points[0].attributes.contains(&kv("http.route", "/work/{id}")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_size_counts_the_payload_bytes_read() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t).with_request_body_size(true), |cfg| {
        cfg.route(
            "/upload",
            web::post().to(|body: web::Bytes| async move { body.len().to_string() }),
        );
    });
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("http://{addr}/upload"))
        .body(http_body_util::Full::new(Bytes::from(vec![b'x'; 1234])))
        .expect("valid request");
    let (status, _, body) = send(&client(), req).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"1234"[..]));
    t.wait_for_spans(1, TIMEOUT);
    t.span("POST /upload").assert_attr("http.route", "/upload");
    let m = t.metrics();
    m.assert_metric(
        "http.server.request.body.size",
        "By",
        "Size of HTTP server request bodies.",
    );
    let p = m.assert_histogram_point(
        "http.server.request.body.size",
        &[
            kv("http.request.method", "POST"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 200i64),
            kv("http.route", "/upload"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!((p.count, p.sum), (1, 1234.0));
    assert_eq!(m.histogram("http.server.request.body.size").len(), 1);
}
