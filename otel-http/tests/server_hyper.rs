//! The server layer on a plain hyper (hyper-util) server, no framework: route from an
//! `HttpRoute` request extension, peer address from `PeerAddr`, service errors.

mod common;

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::trace::{SpanKind, Status};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::{HttpRoute, HttpServerLayer};
use tower::{service_fn, ServiceBuilder};

use common::{client, get, send, serve_hyper, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_hyper_server_with_route_extension() {
    let t = TestTelemetry::new();
    let svc = ServiceBuilder::new()
        // A framework-neutral router in front of the layer tells it the route.
        .map_request(|mut r: Request<Incoming>| {
            if r.uri().path().starts_with("/orders/") {
                r.extensions_mut().insert(HttpRoute::new("/orders/{id}"));
            }
            r
        })
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()))
        .service(service_fn(|req: Request<Incoming>| async move {
            let status = if req.uri().path().starts_with("/orders/") {
                StatusCode::CREATED
            } else {
                StatusCode::NOT_FOUND
            };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(b"order")))
                    .unwrap(),
            )
        }));
    let addr = serve_hyper(svc).await;
    let (status, _, body) = send(&client(), get(addr, "/orders/7?X-Amz-Credential=abc", &[])).await;
    assert_eq!((status, &body[..]), (StatusCode::CREATED, &b"order"[..]));
    t.wait_for_spans(1, TIMEOUT);
    let span = t.span("GET /orders/{id}");
    let peer_port = match span.attr("network.peer.port") {
        Some(opentelemetry::Value::I64(p)) => *p,
        other => panic!("peer port {other:?}"),
    };
    span.assert_kind(SpanKind::Server)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("url.path", "/orders/7"),
            kv("url.query", "X-Amz-Credential=REDACTED"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            kv("client.address", "127.0.0.1"),
            kv("network.protocol.version", "1.1"),
            kv("network.peer.address", "127.0.0.1"),
            kv("network.peer.port", peer_port),
            kv("http.route", "/orders/{id}"),
            kv("http.response.status_code", 201i64),
        ]);
    let p = t.metrics().assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("http.response.status_code", 201i64),
            kv("http.route", "/orders/{id}"),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_error_is_classified_and_passed_through() {
    let t = TestTelemetry::new();
    let svc = ServiceBuilder::new()
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()))
        .service(service_fn(|_req: Request<Incoming>| async move {
            Err::<Response<Full<Bytes>>, _>(io::Error::new(io::ErrorKind::ConnectionReset, "backend reset"))
        }));
    let addr = serve_hyper(svc).await;
    let res = tokio::time::timeout(TIMEOUT, client().request(get(addr, "/x", &[])))
        .await
        .expect("in time");
    assert!(res.is_err(), "hyper closes the connection on a service error");
    t.wait_for_spans(1, TIMEOUT);
    t.span("GET")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "connection_reset")
        .assert_no_attr("http.response.status_code");
    let m = t.metrics();
    m.assert_histogram_point(
        "http.server.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("url.scheme", "http"),
            kv("error.type", "connection_reset"),
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
