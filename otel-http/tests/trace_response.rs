//! The opt-in trace response header (`traceresponse` / `traceparent`) on the axum layer and the
//! actix-web middleware, over real loopback sockets.

mod common;

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use opentelemetry_sdk::trace::{Sampler, SpanData};
use otelrs_core::testing::TestTelemetry;
use otelrs_http::{filter, HttpServerLayer, HttpServerMiddleware, TraceResponseHeader};

use common::{client, get as get_req, send, serve_actix, serve_axum, TIMEOUT};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

fn traceparent(sampled: bool) -> String {
    format!("00-{TRACE_ID}-{PARENT_ID}-{}", if sampled { "01" } else { "00" })
}

/// Telemetry whose sampler follows the caller's sampled flag, as the SDK's default does.
fn parent_based() -> TestTelemetry {
    TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
}

/// The header value the server span `span` must produce.
fn expected(span: &SpanData, flags: &str) -> String {
    format!(
        "00-{}-{}-{flags}",
        span.span_context.trace_id(),
        span.span_context.span_id()
    )
}

async fn axum_app(layer: HttpServerLayer) -> SocketAddr {
    serve_axum(
        Router::new()
            .route("/users/{id}", get(|| async { "user" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/own", get(|| async { ([("traceresponse", "set-by-the-app")], "own") }))
            .layer(layer),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_traceresponse_names_the_server_span_of_sampled_requests_only() {
    let t = parent_based();
    let addr = axum_app(
        HttpServerLayer::new()
            .with_instrumentation(t.instrumentation())
            .with_filter(filter::path("/healthz").not())
            .with_trace_response_header(TraceResponseHeader::TraceResponse),
    )
    .await;
    let c = client();

    // Sampled, with a remote parent: the header names the server span in the caller's trace.
    let (status, headers, _) = send(&c, get_req(addr, "/users/1", &[("traceparent", &traceparent(true))])).await;
    assert_eq!(status, 200);
    let spans = t.wait_for_spans(1, TIMEOUT);
    let server = &spans[0];
    assert_eq!(server.span_context.trace_id().to_string(), TRACE_ID);
    assert_eq!(
        headers.get("traceresponse").map(|v| v.to_str().unwrap().to_owned()),
        Some(expected(server, "01"))
    );
    assert!(headers.get("traceparent").is_none());
    t.reset();

    // A new root (no traceparent) is sampled too.
    let (_, headers, _) = send(&c, get_req(addr, "/users/2", &[])).await;
    let spans = t.wait_for_spans(1, TIMEOUT);
    assert_eq!(
        headers.get("traceresponse").map(|v| v.to_str().unwrap().to_owned()),
        Some(expected(&spans[0], "01"))
    );
    t.reset();

    // Not sampled (the caller said so): no header.
    let (status, headers, _) = send(&c, get_req(addr, "/users/3", &[("traceparent", &traceparent(false))])).await;
    assert_eq!(status, 200);
    assert!(headers.get("traceresponse").is_none(), "{headers:?}");

    // Filtered out: no span, no header.
    let (status, headers, _) = send(&c, get_req(addr, "/healthz", &[("traceparent", &traceparent(true))])).await;
    assert_eq!(status, 200);
    assert!(headers.get("traceresponse").is_none(), "{headers:?}");

    // The application's own header wins.
    let (_, headers, _) = send(&c, get_req(addr, "/own", &[])).await;
    assert_eq!(
        headers
            .get_all("traceresponse")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect::<Vec<_>>(),
        ["set-by-the-app"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_traceparent_variant_and_unsampled_opt_in() {
    let t = parent_based();
    let addr = axum_app(
        HttpServerLayer::new()
            .with_instrumentation(t.instrumentation())
            .with_trace_response_header(TraceResponseHeader::TraceParent)
            .with_trace_response_unsampled(true),
    )
    .await;
    let c = client();
    let (_, headers, _) = send(&c, get_req(addr, "/users/1", &[("traceparent", &traceparent(false))])).await;
    let value = headers
        .get("traceparent")
        .expect("traceparent response header")
        .to_str()
        .unwrap()
        .to_owned();
    // Unsampled: nothing exported, but the header carries the caller's trace, a new span id of
    // the server and flags 00.
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE_ID, "00"));
    assert_eq!(parts[2].len(), 16);
    assert_ne!(parts[2], PARENT_ID);
    assert!(headers.get("traceresponse").is_none());
    assert!(t.spans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layer_without_the_option_sends_no_header() {
    let t = TestTelemetry::new();
    let addr = axum_app(HttpServerLayer::new().with_instrumentation(t.instrumentation())).await;
    let (_, headers, _) = send(
        &client(),
        get_req(addr, "/users/1", &[("traceparent", &traceparent(true))]),
    )
    .await;
    assert!(headers.get("traceresponse").is_none() && headers.get("traceparent").is_none());
    assert_eq!(t.wait_for_spans(1, TIMEOUT).len(), 1);
}

fn serve_actix_users(mw: HttpServerMiddleware) -> SocketAddr {
    use actix_web::{web, HttpResponse};
    serve_actix(mw, |cfg| {
        cfg.route(
            "/users/{id}",
            web::get().to(|| async { HttpResponse::Ok().body("user") }),
        );
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_traceresponse_names_the_server_span() {
    let t = parent_based();
    let addr = serve_actix_users(
        HttpServerMiddleware::new()
            .with_instrumentation(t.instrumentation())
            .with_trace_response_header(TraceResponseHeader::TraceResponse),
    );
    let c = client();
    let (status, headers, _) = send(&c, get_req(addr, "/users/7", &[("traceparent", &traceparent(true))])).await;
    assert_eq!(status, 200);
    let spans = t.wait_for_spans(1, TIMEOUT);
    assert_eq!(spans[0].name, "GET /users/{id}");
    assert_eq!(
        headers.get("traceresponse").map(|v| v.to_str().unwrap().to_owned()),
        Some(expected(&spans[0], "01"))
    );
    let (_, headers, _) = send(&c, get_req(addr, "/users/8", &[("traceparent", &traceparent(false))])).await;
    assert!(headers.get("traceresponse").is_none(), "{headers:?}");
}
