//! The server layer on a plain hyper (hyper-util) server, no framework: the server conformance
//! table (route from an `HttpRoute` request extension, peer address from `PeerAddr`), and
//! service errors.

mod common;
mod conformance;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::trace::Status;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::{HttpRoute, HttpServerLayer, RouteHandle};
use tower::{service_fn, ServiceBuilder};

use common::{client, get, serve_hyper, TIMEOUT};
use conformance::server::{self, Handler};

/// The conformance app on plain hyper: no router, so a framework-neutral matcher in front of
/// the layer tells it the route as an `HttpRoute` request extension; a path no route matches
/// gets a 404 without one.
async fn start(layer: HttpServerLayer, handler: Handler) -> SocketAddr {
    let svc = ServiceBuilder::new()
        .map_request(|mut r: Request<Incoming>| {
            if let Some(route) = server::route_for(r.uri().path()) {
                r.extensions_mut().insert(HttpRoute::new(route.template));
            }
            r
        })
        .layer(layer)
        .service(service_fn(move |req: Request<Incoming>| {
            let handler = handler.clone();
            let route = server::route_for(req.uri().path());
            let handle = req.extensions().get::<RouteHandle>().cloned();
            async move {
                Ok::<_, Infallible>(match route {
                    Some(route) => handler.respond(route, handle).await.into_http(),
                    None => Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                })
            }
        }));
    serve_hyper(svc).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    server::run("hyper", start).await;
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
