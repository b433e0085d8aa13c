//! Shared helpers of the integration tests: real loopback servers and clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Generous: the machine may be loaded.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on 127.0.0.1 (an ephemeral port) with the peer address available, returning
/// the bound address.
pub async fn serve_axum(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .expect("axum serve");
    });
    addr
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A plain (uninstrumented) HTTP/1 client.
pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A plain HTTP/2 (prior knowledge, h2c) client.
pub fn h2_client() -> TestClient {
    Client::builder(TokioExecutor::new()).http2_only(true).build_http()
}

/// Sends `req` and reads the whole response body.
pub async fn send(client: &TestClient, req: http::Request<Full<Bytes>>) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .expect("response in time")
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .expect("body in time")
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

/// A GET request to `addr` + `path_and_query` with extra headers.
pub fn get(addr: SocketAddr, path_and_query: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    request(http::Method::GET, addr, path_and_query, headers)
}

pub fn request(
    method: http::Method,
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> http::Request<Full<Bytes>> {
    let mut b = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path_and_query}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).expect("valid request")
}

/// Serves a tower service with hyper-util (HTTP/1 and HTTP/2), inserting the peer address as
/// [`otelrs_http::attributes::PeerAddr`], the way a plain hyper server would.
pub async fn serve_hyper<S, B>(svc: S) -> SocketAddr
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    serve_hyper_at(SocketAddr::from(([127, 0, 0, 1], 0)), svc)
        .await
        .expect("bind loopback")
}

/// [`serve_hyper`] on `bind` (e.g. `[::1]:0`); the error when it cannot be bound.
pub async fn serve_hyper_at<S, B>(bind: SocketAddr, svc: S) -> std::io::Result<SocketAddr>
where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use hyper_util::rt::TokioIo;
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceBuilder;

    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = ServiceBuilder::new()
                .map_request(move |mut r: http::Request<hyper::body::Incoming>| {
                    r.extensions_mut().insert(otelrs_http::attributes::PeerAddr(peer));
                    r
                })
                .service(svc.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    Ok(addr)
}

/// Runs an actix-web server (one worker, its own actix system on a thread) with `mw` wrapping an
/// app configured by `cfg`; returns the bound loopback address.
#[cfg(feature = "actix-web")]
pub fn serve_actix<C>(mw: otelrs_http::HttpServerMiddleware, cfg: C) -> SocketAddr
where
    C: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    use actix_web::{App, HttpServer};
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
