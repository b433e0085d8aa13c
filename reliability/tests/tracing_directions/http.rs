//! HTTP: axum and plain hyper behind `HttpServerLayer`, actix-web behind `HttpServerMiddleware`;
//! `HttpClientLayer` over hyper-util's client and reqwest's `HttpClientMiddleware`.
//!
//! Each test is one call from a `tracing` span through a client adapter to a server adapter whose
//! handler opens a `tracing` span: caller (`tracing`) → CLIENT → SERVER → handler (`tracing`).
//! The handler answers with the `traceparent` it received, so the header on the wire is checked
//! too. The handlers make their `tracing` span in the three usual ways: an `#[instrument]` async
//! function (axum), a future instrumented inside the handler (actix-web), and the handler's future
//! returned `.instrument(info_span!(..))`, the span made when the service is called (hyper).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry::trace::SpanKind;
use otelrs_core::testing::SpanDataExt as _;
use otelrs_http::client::HttpClientService;
use otelrs_http::{HttpClientLayer, HttpClientMiddleware, HttpServerLayer, HttpServerMiddleware};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tower::{service_fn, ServiceBuilder, ServiceExt as _};
use tracing::Instrument as _;

use crate::support::{
    assert_from_tracing, assert_log_in, assert_remote_child_of, hop, instrumentation, span, span_in, TIMEOUT,
};

/// The `traceparent` a request carried, or `-` without one.
fn traceparent(headers: &HeaderMap) -> String {
    headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

/// The body of the actix-web handler: a log record in our server span, then a `tracing` span
/// made inside the handler's future (after hopping threads) with a log record in it.
async fn handler_body(prefix: &'static str, make_span: fn() -> tracing::Span) {
    tracing::info!("{prefix}: handler");
    async move {
        hop().await;
        tracing::info!("{prefix}: handler span");
    }
    .instrument(make_span())
    .await;
}

/// Asserts caller (`tracing`) → CLIENT → SERVER → handler (`tracing`) with exact parents, the
/// `traceparent` the server received, and the log records' ids.
#[track_caller]
fn assert_chain(prefix: &str, caller: &str, server_name: &str, handler: &str, seen_traceparent: &str) {
    let caller = span(caller);
    assert_from_tracing(&caller);
    caller.assert_root();
    let trace_id = caller.span_context.trace_id();

    // tracing → client: the adapter's CLIENT span is the caller's child.
    let client = span_in(trace_id, SpanKind::Client, "GET");
    client.assert_child_of(&caller);
    // ... and its context is what went on the wire.
    assert_eq!(
        seen_traceparent,
        format!("00-{trace_id}-{}-01", client.span_context.span_id()),
        "traceparent received by the server"
    );
    let server = span_in(trace_id, SpanKind::Server, server_name);
    assert_remote_child_of(&server, &client);

    // server → tracing: the handler's span is our server span's child.
    let handler = span(handler);
    assert_from_tracing(&handler);
    handler.assert_child_of(&server);

    assert_log_in(&format!("{prefix}: caller before"), &caller);
    assert_log_in(&format!("{prefix}: caller after"), &caller);
    assert_log_in(&format!("{prefix}: handler"), &server);
    assert_log_in(&format!("{prefix}: handler span"), &handler);
}

// --- axum server, hyper-util client -----------------------------------------------------------

type TracedHyperClient = HttpClientService<Client<HttpConnector, Full<Bytes>>>;

/// The axum handler's work, an `#[instrument]` async function (its span is made when the future
/// is first polled).
#[tracing::instrument(name = "dir.http.axum.handler", skip_all)]
async fn axum_work(headers: HeaderMap) -> String {
    hop().await;
    tracing::info!("dir.http.axum: handler span");
    traceparent(&headers)
}

#[tracing::instrument(name = "dir.http.hyper_util.caller", skip_all)]
async fn call_with_hyper_util(client: TracedHyperClient, url: String) -> String {
    tracing::info!("dir.http.axum: caller before");
    hop().await;
    let request = Request::get(url).body(Full::new(Bytes::new())).expect("request");
    let response = tokio::time::timeout(TIMEOUT, client.oneshot(request))
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.expect("body").to_bytes();
    hop().await;
    tracing::info!("dir.http.axum: caller after");
    String::from_utf8(body.to_vec()).expect("utf-8")
}

/// `#[instrument]` → `HttpClientLayer` over hyper-util → axum with `HttpServerLayer` → a
/// `tracing` span in the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_server_and_hyper_util_client() {
    let inst = instrumentation();
    let app = Router::new()
        .route(
            "/dir/axum/{id}",
            get(|headers: HeaderMap| async move {
                tracing::info!("dir.http.axum: handler");
                axum_work(headers).await
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(inst.clone()));
    let addr = reliability::serve_axum(app).await;
    let client = ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_instrumentation(inst))
        .service(Client::builder(TokioExecutor::new()).build_http());

    let seen = call_with_hyper_util(client, format!("http://{addr}/dir/axum/7")).await;

    assert_chain(
        "dir.http.axum",
        "dir.http.hyper_util.caller",
        "GET /dir/axum/{id}",
        "dir.http.axum.handler",
        &seen,
    );
}

// --- plain hyper server, reqwest client ---------------------------------------------------------

/// Serves a tower service with hyper's HTTP/1 connection builder, one task per connection (no
/// framework).
async fn serve_hyper<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = svc.clone();
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_util::service::TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

fn reqwest_client() -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(HttpClientMiddleware::new().with_instrumentation(instrumentation()))
        .build()
}

async fn get_text(client: &ClientWithMiddleware, url: String) -> String {
    let response = tokio::time::timeout(TIMEOUT, client.get(url).send())
        .await
        .expect("response in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

/// A future instrumented with an `info_span!` → reqwest with `HttpClientMiddleware` → a plain
/// hyper server with `HttpServerLayer` → a `tracing` span in the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_server_and_reqwest_client() {
    let inst = instrumentation();
    let svc = ServiceBuilder::new()
        .layer(HttpServerLayer::new().with_instrumentation(inst))
        .service(service_fn(|req: Request<Incoming>| {
            // The common way: the handler returns its future `.instrument(info_span!(..))`, so the
            // `tracing` span is made when the service is called, before the future is polled.
            tracing::info!("dir.http.hyper: handler");
            async move {
                hop().await;
                tracing::info!("dir.http.hyper: handler span");
                let body = Full::new(Bytes::from(traceparent(req.headers())));
                Ok::<_, Infallible>(Response::new(body))
            }
            .instrument(tracing::info_span!("dir.http.hyper.handler"))
        }));
    let addr = serve_hyper(svc).await;
    let client = reqwest_client();

    let seen = async {
        tracing::info!("dir.http.hyper: caller before");
        hop().await;
        let seen = get_text(&client, format!("http://{addr}/dir/hyper")).await;
        hop().await;
        tracing::info!("dir.http.hyper: caller after");
        seen
    }
    .instrument(tracing::info_span!("dir.http.reqwest.caller"))
    .await;

    assert_chain(
        "dir.http.hyper",
        "dir.http.reqwest.caller",
        "GET",
        "dir.http.hyper.handler",
        &seen,
    );
}

// --- actix-web server, reqwest client -------------------------------------------------------

/// Runs an actix-web server (one worker, its own actix system on its own thread) with the
/// middleware; returns its loopback address.
fn serve_actix() -> SocketAddr {
    use actix_web::{web, App, HttpRequest, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let middleware = HttpServerMiddleware::new().with_instrumentation(instrumentation());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            HttpServer::new(move || {
                App::new().wrap(middleware.clone()).route(
                    "/dir/actix/{id}",
                    web::get().to(|req: HttpRequest| async move {
                        handler_body("dir.http.actix", || tracing::info_span!("dir.http.actix.handler")).await;
                        req.headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    }),
                )
            })
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

#[tracing::instrument(name = "dir.http.actix.caller", skip_all)]
async fn call_actix_with_reqwest(client: &ClientWithMiddleware, url: String) -> String {
    tracing::info!("dir.http.actix: caller before");
    hop().await;
    let seen = get_text(client, url).await;
    hop().await;
    tracing::info!("dir.http.actix: caller after");
    seen
}

/// `#[instrument]` → reqwest with `HttpClientMiddleware` → actix-web with
/// `HttpServerMiddleware` (on actix's own worker thread) → a `tracing` span in the handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_server_and_reqwest_client() {
    let _ = instrumentation();
    let addr = serve_actix();
    let client = reqwest_client();

    let seen = call_actix_with_reqwest(&client, format!("http://{addr}/dir/actix/7")).await;

    assert_chain(
        "dir.http.actix",
        "dir.http.actix.caller",
        "GET /dir/actix/{id}",
        "dir.http.actix.handler",
        &seen,
    );
}
