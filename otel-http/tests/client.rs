//! The client layer around hyper-util's legacy client over real loopback connections: the
//! client conformance table, and what it does not cover (a dropped request future, HTTP/2).

mod common;
mod conformance;

use std::convert::Infallible;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{SpanKind, Status};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_http::attributes::KnownMethods;
use otelrs_http::client::HttpClientService;
use otelrs_http::{HttpClientLayer, HttpServerLayer, RequestAttempts, ResendCount, UrlTemplate};
use tower::{service_fn, ServiceBuilder, ServiceExt};

use common::{serve_axum, serve_hyper, TIMEOUT};
use conformance::client::{ClientCall, ClientProfile};

type Traced = HttpClientService<Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>>;

fn traced_client(t: &TestTelemetry, http2: bool) -> Traced {
    let mut b = Client::builder(TokioExecutor::new());
    b.http2_only(http2);
    ServiceBuilder::new()
        .layer(
            HttpClientLayer::new()
                .with_instrumentation(t.instrumentation())
                .with_known_methods(KnownMethods::defaults()),
        )
        .service(b.build_http())
}

async fn call_svc(
    svc: &Traced,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), hyper_util::client::legacy::Error> {
    let resp = tokio::time::timeout(TIMEOUT, svc.clone().oneshot(req))
        .await
        .expect("in time")?;
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Ok((status, body))
}

/// A plain hyper server (with the server layer) answering `status` with `body`, echoing the
/// received `traceparent` in `x-seen-traceparent`.
async fn backend(t: &TestTelemetry, status: StatusCode) -> std::net::SocketAddr {
    let svc = ServiceBuilder::new()
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()))
        .service(service_fn(move |req: Request<Incoming>| async move {
            let seen = req.headers().get("traceparent").cloned();
            let mut resp = Response::builder().status(status);
            if let Some(tp) = seen {
                resp = resp.header("x-seen-traceparent", tp);
            }
            Ok::<_, Infallible>(resp.body(Full::new(Bytes::from_static(b"backend"))).unwrap())
        }));
    serve_hyper(svc).await
}

/// The client conformance table through the tower layer over hyper-util's client: a retry is
/// the same request (extensions cloned, so one `RequestAttempts`) sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_table() {
    let profile = ClientProfile {
        connect_error_type: "connection_refused",
        url_keeps_userinfo: true,
    };
    conformance::client::run("tower HttpClientLayer", profile, |inst, call: ClientCall| async move {
        let svc = ServiceBuilder::new()
            .layer(
                HttpClientLayer::new()
                    .with_instrumentation(inst)
                    .with_known_methods(KnownMethods::defaults()),
            )
            .service(Client::builder(TokioExecutor::new()).build_http());
        let attempts = RequestAttempts::new();
        let mut outcome = Err("not sent".to_owned());
        for _ in 0..call.attempts {
            let mut req = Request::builder()
                .method(call.method.clone())
                .uri(&call.url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            req.extensions_mut().insert(attempts.clone());
            if let Some(t) = call.template {
                req.extensions_mut().insert(UrlTemplate::new(t));
            }
            if let Some(n) = call.resend_count {
                req.extensions_mut().insert(ResendCount(n));
            }
            outcome = match call_svc(&svc, req).await {
                Ok((status, _)) => Ok(status.as_u16()),
                Err(e) => {
                    assert!(e.is_connect(), "the client's own error is returned unchanged: {e:?}");
                    Err(e.to_string())
                }
            };
        }
        assert_eq!(attempts.attempts(), call.attempts);
        outcome
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_client_future_is_unset_without_error_or_metric() {
    let t = TestTelemetry::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let app = Router::new().route(
        "/hang",
        get(move || {
            let tx = started_tx.clone();
            async move {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<&'static str>().await
            }
        }),
    );
    let addr = serve_axum(app).await;
    let traced = traced_client(&t, false);
    let req = Request::get(format!("http://{addr}/hang"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    tokio::select! {
        _ = traced.oneshot(req) => panic!("the server never answers"),
        _ = started_rx => {}
    }
    let span = t.span("GET");
    span.assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_no_attr("error.type")
        .assert_no_attr("http.response.status_code");
    assert!(t.metrics().histogram("http.client.request.duration").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_reports_protocol_version() {
    let t = TestTelemetry::new();
    let addr = backend(&t, StatusCode::OK).await;
    let traced = traced_client(&t, true);
    let req = Request::get(format!("http://{addr}/two"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, body) = call_svc(&traced, req).await.expect("h2 response");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"backend"[..]));
    t.wait_for_spans(2, TIMEOUT);
    let client_span = t.spans().into_iter().find(|s| s.span_kind == SpanKind::Client).unwrap();
    client_span.assert_attr("network.protocol.version", "2");
    let server_span = t.spans().into_iter().find(|s| s.span_kind == SpanKind::Server).unwrap();
    server_span
        .assert_attr("network.protocol.version", "2")
        .assert_child_of(&client_span);
}
