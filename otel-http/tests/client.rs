//! The client layer around hyper-util's legacy client, against real loopback servers
//! instrumented with the server layer: one trace across server → client → server.

mod common;

use std::convert::Infallible;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_http::attributes::KnownMethods;
use otelrs_http::client::HttpClientService;
use otelrs_http::{HttpClientLayer, HttpServerLayer, RequestAttempts, ResendCount, UrlTemplate};
use tower::{service_fn, Service, ServiceBuilder, ServiceExt};

use common::{client, get as get_req, serve_axum, serve_hyper, TIMEOUT};

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

async fn call(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_client_server_is_one_trace_with_exact_client_span() {
    let t = TestTelemetry::new();
    let backend_addr = backend(&t, StatusCode::OK).await;
    let traced = traced_client(&t, false);
    let frontend = Router::new()
        .route(
            "/front",
            get(move || {
                let traced = traced.clone();
                async move {
                    let url = format!("http://{backend_addr}/back/1?sig=s3cr3t&page=2");
                    let req = Request::get(url).body(Full::new(Bytes::new())).unwrap();
                    let resp = traced.oneshot(req).await.expect("backend answers");
                    resp.headers()
                        .get("x-seen-traceparent")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned()
                }
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    let front_addr = serve_axum(frontend).await;

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let tp = format!("00-{trace_id}-{parent}-01");
    let (status, _, seen) = common::send(&client(), get_req(front_addr, "/front", &[("traceparent", &tp)])).await;
    assert_eq!(status, StatusCode::OK);

    t.wait_for_spans(3, TIMEOUT);
    let front = t.span("GET /front");
    let spans = t.spans();
    let clients: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
    assert_eq!(clients.len(), 1);
    let client_span = clients[0].clone();
    assert_eq!(client_span.name, "GET");
    let back = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server && s.name != "GET /front")
        .expect("backend span")
        .clone();
    front.assert_parent_ids(TraceId::from_hex(trace_id).unwrap(), SpanId::from_hex(parent).unwrap());
    client_span.assert_kind(SpanKind::Client).assert_child_of(&front);
    back.assert_child_of(&client_span).assert_kind(SpanKind::Server);
    assert_eq!(
        String::from_utf8_lossy(&seen),
        format!("00-{trace_id}-{}-01", client_span.span_context.span_id()),
        "the injected traceparent carries the client span"
    );

    client_span.assert_status(&Status::Unset).assert_attrs(&[
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", i64::from(backend_addr.port())),
        kv(
            "url.full",
            format!("http://{backend_addr}/back/1?sig=REDACTED&page=REDACTED"),
        ),
        kv("http.response.status_code", 200i64),
        kv("network.protocol.version", "1.1"),
    ]);
    assert_eq!(client_span.instrumentation_scope.name(), "otelrs-http");

    let m = t.metrics();
    m.assert_metric("http.client.request.duration", "s", "Duration of HTTP client requests.");
    let p = m.assert_histogram_point(
        "http.client.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(backend_addr.port())),
            kv("http.response.status_code", 200i64),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, DURATION_BUCKETS.to_vec());
    assert_eq!(m.histogram("http.server.request.duration").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_4xx_and_5xx_are_errors() {
    let t = TestTelemetry::new();
    let not_found = backend(&t, StatusCode::NOT_FOUND).await;
    let unavailable = backend(&t, StatusCode::SERVICE_UNAVAILABLE).await;
    let traced = traced_client(&t, false);
    for (addr, code) in [(not_found, 404i64), (unavailable, 503)] {
        let req = Request::get(format!("http://{addr}/x"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, _) = call(&traced, req).await.expect("response");
        assert_eq!(i64::from(status.as_u16()), code);
        t.wait_for_spans(if code == 404 { 2 } else { 4 }, TIMEOUT);
        let span = t
            .spans()
            .into_iter()
            .find(|s| s.span_kind == SpanKind::Client && s.attr("http.response.status_code") == Some(&code.into()))
            .expect("client span");
        span.assert_status(&Status::error(""))
            .assert_attr("error.type", code.to_string())
            .assert_attr("http.response.status_code", code);
        t.metrics().assert_histogram_point(
            "http.client.request.duration",
            &[
                kv("http.request.method", "GET"),
                kv("server.address", "127.0.0.1"),
                kv("server.port", i64::from(addr.port())),
                kv("http.response.status_code", code),
                kv("error.type", code.to_string()),
                kv("network.protocol.version", "1.1"),
            ],
        );
    }
    // On the server side a 404 is not an error, a 503 is.
    let servers: Vec<_> = t
        .spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Server)
        .collect();
    let s404 = servers
        .iter()
        .find(|s| s.attr("http.response.status_code") == Some(&404i64.into()))
        .unwrap();
    s404.assert_status(&Status::Unset).assert_no_attr("error.type");
    let s503 = servers
        .iter()
        .find(|s| s.attr("http.response.status_code") == Some(&503i64.into()))
        .unwrap();
    s503.assert_status(&Status::error("")).assert_attr("error.type", "503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_low_cardinality_error_type() {
    let t = TestTelemetry::new();
    // A port that was just free: bind, read it, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let traced = traced_client(&t, false);
    let req = Request::get(format!("http://{addr}/x"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = call(&traced, req).await.expect_err("nothing listens");
    assert!(
        err.is_connect(),
        "the client's own error is returned unchanged: {err:?}"
    );
    let span = t.span("GET");
    span.assert_kind(SpanKind::Client)
        .assert_attr("error.type", "connection_refused")
        .assert_no_attr("http.response.status_code")
        .assert_no_attr("network.protocol.version")
        .assert_attr("server.port", i64::from(addr.port()));
    match &span.status {
        Status::Error { description } => assert!(!description.is_empty(), "transport errors carry their message"),
        other => panic!("expected an error status, got {other:?}"),
    }
    t.metrics().assert_histogram_point(
        "http.client.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            kv("error.type", "connection_refused"),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_resends_credentials_and_unknown_methods() {
    let t = TestTelemetry::new();
    // An in-process inner service: what matters here is the request the layer builds.
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let tp = req.headers().get("traceparent").is_some();
        Ok::<_, std::io::Error>(
            Response::builder()
                .status(if tp { 200 } else { 500 })
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
    });
    let mut svc = ServiceBuilder::new()
        .layer(
            HttpClientLayer::new()
                .with_instrumentation(t.instrumentation())
                .with_known_methods(KnownMethods::defaults()),
        )
        .service(inner);

    let mut req = Request::get("https://user:pa55@api.example.com/items/9?X-Goog-Signature=zz&q=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(UrlTemplate::new("/items/{id}"));
    let attempts = RequestAttempts::new();
    req.extensions_mut().insert(attempts.clone());
    // Two attempts of the same logical request (what a retry policy cloning extensions does).
    for _ in 0..2 {
        let mut again = Request::get(req.uri().clone()).body(Full::new(Bytes::new())).unwrap();
        *again.extensions_mut() = req.extensions().clone();
        let resp = svc.ready().await.unwrap().call(again).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "context was injected");
    }
    assert_eq!(attempts.attempts(), 2);
    let spans = t.spans_named("GET /items/{id}");
    assert_eq!(spans.len(), 2);
    let expected = |resend: Option<i64>| {
        let mut v = vec![
            kv("http.request.method", "GET"),
            kv("server.address", "api.example.com"),
            kv("server.port", 443i64),
            kv(
                "url.full",
                "https://REDACTED:REDACTED@api.example.com/items/9?X-Goog-Signature=REDACTED&q=REDACTED",
            ),
            kv("url.template", "/items/{id}"),
            kv("http.response.status_code", 200i64),
            kv("network.protocol.version", "1.1"),
        ];
        if let Some(r) = resend {
            v.push(kv("http.request.resend_count", r));
        }
        v
    };
    spans[0].assert_attrs(&expected(None)).assert_root();
    spans[1].assert_attrs(&expected(Some(1)));

    // Explicit resend count, unknown method.
    let mut req = Request::builder()
        .method(Method::from_bytes(b"PURGE").unwrap())
        .uri("http://[::1]:8081/cache")
        .body(Full::new(Bytes::new()))
        .unwrap();
    req.extensions_mut().insert(ResendCount(3));
    svc.ready().await.unwrap().call(req).await.unwrap();
    t.span("HTTP").assert_attrs(&[
        kv("http.request.method", "_OTHER"),
        kv("http.request.method_original", "PURGE"),
        kv("server.address", "::1"),
        kv("server.port", 8081i64),
        kv("url.full", "http://[::1]:8081/cache"),
        kv("http.request.resend_count", 3i64),
        kv("http.response.status_code", 200i64),
        kv("network.protocol.version", "1.1"),
    ]);
    t.metrics().assert_histogram_point(
        "http.client.request.duration",
        &[
            kv("http.request.method", "_OTHER"),
            kv("server.address", "::1"),
            kv("server.port", 8081i64),
            kv("http.response.status_code", 200i64),
            kv("network.protocol.version", "1.1"),
        ],
    );
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
    let (status, body) = call(&traced, req).await.expect("h2 response");
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"backend"[..]));
    t.wait_for_spans(2, TIMEOUT);
    let client_span = t.spans().into_iter().find(|s| s.span_kind == SpanKind::Client).unwrap();
    client_span.assert_attr("network.protocol.version", "2");
    let server_span = t.spans().into_iter().find(|s| s.span_kind == SpanKind::Server).unwrap();
    server_span
        .assert_attr("network.protocol.version", "2")
        .assert_child_of(&client_span);
}
