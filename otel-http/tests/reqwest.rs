//! The reqwest middleware against real loopback servers instrumented with the server layer and
//! the actix-web middleware: client and server spans in one trace, status and error rules.

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use axum::routing::get;
use axum::Router;
use http::{Extensions, StatusCode};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::Context;
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{HttpClientMiddleware, HttpServerLayer, HttpServerMiddleware, UrlTemplate};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Next};

use common::{serve_axum, TIMEOUT};

fn traced_client(t: &TestTelemetry) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(
            HttpClientMiddleware::new()
                .with_instrumentation(t.instrumentation())
                .with_known_methods(KnownMethods::defaults()),
        )
        .build()
}

/// An axum backend behind the server layer: `/back/{id}` answers 200, `/status/{code}` answers
/// that code.
async fn axum_backend(t: &TestTelemetry) -> SocketAddr {
    let app = Router::new()
        .route("/back/{id}", get(|| async { "backend" }))
        .route(
            "/status/{code}",
            get(|axum::extract::Path(code): axum::extract::Path<u16>| async move {
                StatusCode::from_u16(code).unwrap_or(StatusCode::IM_A_TEAPOT)
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    serve_axum(app).await
}

fn client_spans(t: &TestTelemetry) -> Vec<opentelemetry_sdk::trace::SpanData> {
    t.spans()
        .into_iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_to_axum_is_one_trace_with_exact_redacted_client_span() {
    let t = TestTelemetry::new();
    let addr = axum_backend(&t).await;
    let client = traced_client(&t);

    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let root = tracer.start("caller");
    let cx = Context::current_with_span(root);
    let response = tokio::time::timeout(
        TIMEOUT,
        client
            .get(format!("http://user:pw@{addr}/back/1?sig=s3cr3t&page=2"))
            .with_extension(UrlTemplate::new("/back/{id}"))
            .send()
            // The caller's context is current while the request future is polled.
            .with_context(cx.clone()),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.expect("body"), "backend");
    cx.span().end();

    t.wait_for_spans(3, TIMEOUT);
    let caller = t.span("caller");
    let clients = client_spans(&t);
    assert_eq!(clients.len(), 1);
    let client_span = clients[0].clone();
    assert_eq!(client_span.name, "GET /back/{id}");
    let server_span = t
        .spans()
        .into_iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server span");
    assert_eq!(server_span.name, "GET /back/{id}");
    client_span
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_child_of(&caller)
        .assert_attrs(&[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            // reqwest moves `user:pw@` into an `Authorization` header before any middleware runs,
            // so the URL carries no credentials; the sensitive query value is redacted.
            kv("url.full", format!("http://{addr}/back/1?sig=REDACTED&page=REDACTED")),
            kv("url.template", "/back/{id}"),
            kv("http.response.status_code", 200i64),
            kv("network.protocol.version", "1.1"),
        ]);
    assert_eq!(client_span.instrumentation_scope.name(), "otelrs-http");
    server_span
        .assert_child_of(&client_span)
        .assert_attr("url.query", "sig=REDACTED&page=REDACTED");

    let m = t.metrics();
    m.assert_metric("http.client.request.duration", "s", "Duration of HTTP client requests.");
    let p = m.assert_histogram_point(
        "http.client.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            kv("http.response.status_code", 200i64),
            kv("network.protocol.version", "1.1"),
        ],
    );
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, DURATION_BUCKETS.to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_to_actix_continues_the_trace() {
    let t = TestTelemetry::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mw = HttpServerMiddleware::new().with_instrumentation(t.instrumentation());
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            actix_web::HttpServer::new(move || {
                actix_web::App::new()
                    .wrap(mw.clone())
                    .route("/items/{id}", actix_web::web::get().to(|| async { "item" }))
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
    let response = tokio::time::timeout(TIMEOUT, traced_client(&t).get(format!("http://{addr}/items/3")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    t.wait_for_spans(2, TIMEOUT);
    let client_span = t.span("GET");
    client_span.assert_kind(SpanKind::Client).assert_root();
    t.span("GET /items/{id}")
        .assert_kind(SpanKind::Server)
        .assert_child_of(&client_span)
        .assert_attr("http.route", "/items/{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_4xx_and_5xx_are_errors() {
    let t = TestTelemetry::new();
    let addr = axum_backend(&t).await;
    let client = traced_client(&t);
    for code in [404i64, 503] {
        let response = tokio::time::timeout(TIMEOUT, client.get(format!("http://{addr}/status/{code}")).send())
            .await
            .expect("in time")
            .expect("response");
        assert_eq!(i64::from(response.status().as_u16()), code);
    }
    t.wait_for_spans(4, TIMEOUT);
    let clients = client_spans(&t);
    assert_eq!(clients.len(), 2);
    for (span, code) in clients.iter().zip([404i64, 503]) {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_connect_error() {
    let t = TestTelemetry::new();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = tokio::time::timeout(TIMEOUT, traced_client(&t).get(format!("http://{addr}/x")).send())
        .await
        .expect("in time")
        .expect_err("nothing listens there");
    assert!(err.is_connect(), "{err}");
    let span = t.span("GET");
    span.assert_kind(SpanKind::Client).assert_attrs(&[
        kv("http.request.method", "GET"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", i64::from(addr.port())),
        kv("url.full", format!("http://{addr}/x")),
        kv("error.type", "connect"),
    ]);
    match &span.status {
        Status::Error { description } => assert!(!description.contains("http://"), "no URL: {description}"),
        other => panic!("expected an error status, got {other:?}"),
    }
    let p = t.metrics().assert_histogram_point(
        "http.client.request.duration",
        &[
            kv("http.request.method", "GET"),
            kv("server.address", "127.0.0.1"),
            kv("server.port", i64::from(addr.port())),
            kv("error.type", "connect"),
        ],
    );
    assert_eq!(p.count, 1);
}

/// A retry middleware stand-in: sends every request twice, returning the second result.
fn send_twice<'a>(
    req: reqwest::Request,
    extensions: &'a mut Extensions,
    next: Next<'a>,
) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<reqwest::Response>> + Send + 'a>> {
    Box::pin(async move {
        let first = req.try_clone().expect("cloneable request");
        next.clone().run(first, &mut *extensions).await?;
        next.run(req, extensions).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resends_through_a_retry_middleware_are_counted() {
    let t = TestTelemetry::new();
    let addr = axum_backend(&t).await;
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(send_twice)
        .with(HttpClientMiddleware::new().with_instrumentation(t.instrumentation()))
        .build();
    let response = tokio::time::timeout(TIMEOUT, client.get(format!("http://{addr}/back/1")).send())
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    t.wait_for_spans(4, TIMEOUT);
    let clients = client_spans(&t);
    assert_eq!(clients.len(), 2);
    clients[0].assert_no_attr("http.request.resend_count");
    clients[1].assert_attr("http.request.resend_count", 1i64);
    assert_ne!(clients[0].span_context.trace_id(), clients[1].span_context.trace_id());
}
