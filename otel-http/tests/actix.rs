//! The actix-web middleware on a real actix-web server over loopback sockets: the server
//! conformance table (the same spans, attributes and metrics as the tower layer), and what is
//! actix's own: handler `Err` responses, panics, streamed bodies, the request payload size.

mod common;
mod conformance;

use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::{web, HttpMessage as _, HttpRequest, HttpResponse};
use bytes::Bytes;
use http::StatusCode;
use opentelemetry::trace::Status;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{HttpServerLayer, HttpServerMiddleware, RouteHandle};

use common::{client, get as get_req, send, serve_actix, TIMEOUT};
use conformance::server::{self, Handler};

fn middleware(t: &TestTelemetry) -> HttpServerMiddleware {
    HttpServerMiddleware::new()
        .with_instrumentation(t.instrumentation())
        .with_known_methods(KnownMethods::defaults())
}

fn active_requests(t: &TestTelemetry) -> Option<i64> {
    t.metrics().sum_i64(
        "http.server.active_requests",
        &[kv("http.request.method", "GET"), kv("url.scheme", "http")],
    )
}

/// The conformance app on actix-web: every route with `web::route()` (any method), the route
/// from `match_pattern()`, actix's default 404.
fn start(layer: HttpServerLayer, handler: Handler) -> SocketAddr {
    serve_actix(HttpServerMiddleware::from(layer), move |cfg| {
        for route in server::ROUTES {
            let handler = handler.clone();
            cfg.route(
                route.template,
                web::route().to(move |req: HttpRequest| {
                    let handler = handler.clone();
                    let handle = req.extensions().get::<RouteHandle>().cloned();
                    async move {
                        let reply = handler.respond(route, handle).await;
                        let status = actix_web::http::StatusCode::from_u16(reply.status).unwrap();
                        let mut resp = HttpResponse::build(status);
                        for (k, v) in reply.headers {
                            resp.insert_header((k, v));
                        }
                        resp.body(reply.body)
                    }
                }),
            );
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    server::run("actix-web", |layer, handler| std::future::ready(start(layer, handler))).await;
}

/// A handler's `Err(actix_web::Error)` ends the request with the error's response status: 5xx is
/// an error, 4xx is not (the same statuses as responses are conformance rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_errors_end_with_their_response_status() {
    let t = TestTelemetry::new();
    let addr = serve_actix(middleware(&t), |cfg| {
        cfg.route(
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
        send(&c, get_req(addr, "/err", &[])).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(send(&c, get_req(addr, "/bad", &[])).await.0, StatusCode::BAD_REQUEST);
    t.wait_for_spans(2, TIMEOUT);
    t.span("GET /err")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "500")
        .assert_attr("http.response.status_code", 500i64);
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 500i64),
            kv("http.route", "/err"),
            kv("error.type", "500"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
    t.span("GET /bad")
        .assert_status(&Status::Unset)
        .assert_no_attr("error.type")
        .assert_attr("http.response.status_code", 400i64);
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 400i64),
            kv("http.route", "/bad"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(active_requests(&t), Some(0));
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
