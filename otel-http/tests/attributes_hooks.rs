//! Application-computed attributes on the server span and, separately, on the duration metric
//! (`with_span_attributes`, `with_response_span_attributes`, `with_metric_attributes`), on the
//! axum layer and the actix-web middleware, over real loopback sockets.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use opentelemetry::{KeyValue, Value};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::{AttributesFn, MAX_HOOK_ATTRIBUTES, MAX_HOOK_VALUE_LEN};
use otelrs_http::{HttpServerLayer, HttpServerMiddleware};

use common::{client, get as get_req, send, serve_actix, serve_axum, TIMEOUT};

const DURATION: &str = "http.server.request.duration";

fn tenant_hook() -> AttributesFn<http::request::Parts> {
    AttributesFn::new(|request: &http::request::Parts, out: &mut Vec<KeyValue>| {
        if let Some(tenant) = request.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
            out.push(KeyValue::new("app.tenant", tenant.to_owned()));
        }
    })
}

fn tier_hook() -> AttributesFn<http::request::Parts> {
    AttributesFn::new(|request: &http::request::Parts, out: &mut Vec<KeyValue>| {
        let gold = request
            .headers
            .get("x-tenant")
            .is_some_and(|v| v.as_bytes().starts_with(b"gold-"));
        out.push(KeyValue::new("app.tier", if gold { "gold" } else { "standard" }));
    })
}

fn cache_hook() -> AttributesFn<http::response::Parts> {
    AttributesFn::new(|response: &http::response::Parts, out: &mut Vec<KeyValue>| {
        let hit = response.headers.get("x-cache").is_some_and(|v| v == "hit");
        out.push(KeyValue::new("app.cache_hit", hit));
        out.push(KeyValue::new(
            "app.status_class",
            i64::from(response.status.as_u16() / 100),
        ));
    })
}

/// The duration point's attributes for `GET /users/{id}` answered 200 over HTTP/1.1, plus `extra`.
fn duration_attributes(extra: &[KeyValue]) -> Vec<KeyValue> {
    let mut attrs = vec![
        kv("http.request.method", "GET"),
        kv("url.scheme", "http"),
        kv("http.response.status_code", 200i64),
        kv("http.route", "/users/{id}"),
        kv("network.protocol.version", "1.1"),
    ];
    attrs.extend_from_slice(extra);
    attrs
}

async fn axum_app(layer: HttpServerLayer) -> SocketAddr {
    serve_axum(
        Router::new()
            .route("/users/{id}", get(|| async { ([("x-cache", "hit")], "user") }))
            .layer(layer),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_span_and_metric_hooks_are_applied_separately() {
    let t = TestTelemetry::new();
    let addr = axum_app(
        HttpServerLayer::new()
            .with_instrumentation(t.instrumentation())
            .with_span_attributes(tenant_hook())
            .with_response_span_attributes(cache_hook())
            .with_metric_attributes(tier_hook()),
    )
    .await;
    let c = client();
    let (status, _, body) = send(&c, get_req(addr, "/users/1", &[("x-tenant", "gold-42")])).await;
    assert_eq!(
        (status.as_u16(), &body[..]),
        (200, &b"user"[..]),
        "the response is unchanged"
    );
    send(&c, get_req(addr, "/users/2", &[("x-tenant", "acme")])).await;
    send(&c, get_req(addr, "/users/3", &[])).await;

    let spans = t.wait_for_spans(3, TIMEOUT);
    spans[0]
        .assert_attr("app.tenant", "gold-42")
        .assert_attr("app.cache_hit", true)
        .assert_attr("app.status_class", 2i64);
    assert_eq!(spans[0].attr("app.tier"), None, "metric attributes stay off the span");
    assert_eq!(spans[2].attr("app.tenant"), None);
    spans[2].assert_attr("app.cache_hit", true);

    let m = t.metrics();
    let points = m.histogram(DURATION);
    assert_eq!(points.len(), 2, "one series per tier: {points:?}");
    let gold = m.assert_histogram_point(DURATION, &duration_attributes(&[kv("app.tier", "gold")]));
    assert_eq!(gold.count, 1);
    let standard = m.assert_histogram_point(DURATION, &duration_attributes(&[kv("app.tier", "standard")]));
    assert_eq!(standard.count, 2);
    for p in &points {
        assert!(
            p.attributes
                .iter()
                .all(|a| a.key.as_str() != "app.tenant" && a.key.as_str() != "app.cache_hit"),
            "span attributes stay off the metric: {:?}",
            p.attributes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_hook_is_bounded_on_the_span_and_on_the_metric() {
    let t = TestTelemetry::new();
    let flood = AttributesFn::new(|_: &http::request::Parts, out: &mut Vec<KeyValue>| {
        for i in 0..100 {
            out.push(KeyValue::new(format!("app.k{i}"), "x".repeat(10_000)));
        }
    });
    let n = Arc::new(AtomicU64::new(0));
    let n2 = Arc::clone(&n);
    // A hook that breaks the cardinality rule: a new value on every request.
    let unbounded = AttributesFn::new(move |_: &http::request::Parts, out: &mut Vec<KeyValue>| {
        out.push(KeyValue::new(
            "app.request_number",
            n2.fetch_add(1, Ordering::Relaxed) as i64,
        ));
    });
    let addr = axum_app(
        HttpServerLayer::new()
            .with_instrumentation(t.instrumentation())
            .with_span_attributes(flood)
            .with_metric_attributes(unbounded),
    )
    .await;
    let c = client();
    const REQUESTS: u64 = 2_100;
    for i in 0..REQUESTS {
        let (status, _, _) = send(&c, get_req(addr, &format!("/users/{i}"), &[])).await;
        assert_eq!(status, 200);
    }
    assert_eq!(n.load(Ordering::Relaxed), REQUESTS);

    let spans = t.wait_for_spans(REQUESTS as usize, TIMEOUT);
    let hook_attrs: Vec<&KeyValue> = spans[0]
        .attributes
        .iter()
        .filter(|a| a.key.as_str().starts_with("app.k"))
        .collect();
    assert_eq!(hook_attrs.len(), MAX_HOOK_ATTRIBUTES);
    for a in hook_attrs {
        match &a.value {
            Value::String(s) => assert_eq!(s.as_str().len(), MAX_HOOK_VALUE_LEN),
            other => panic!("{other:?}"),
        }
    }

    // The SDK's cardinality limit (2 000 series per instrument, then one overflow series)
    // bounds the metric whatever the hook returns.
    let m = t.metrics();
    let points = m.histogram(DURATION);
    assert!(points.len() <= 2_001, "{} series", points.len());
    let total: u64 = points.iter().map(|p| p.count).sum();
    assert_eq!(total, REQUESTS, "every request counted, overflow included");
    assert!(
        points
            .iter()
            .any(|p| p.attributes.contains(&KeyValue::new("otel.metric.overflow", true))),
        "an overflow series"
    );
}

fn serve_actix_users(mw: HttpServerMiddleware) -> SocketAddr {
    use actix_web::{web, HttpResponse};
    serve_actix(mw, |cfg| {
        cfg.route(
            "/users/{id}",
            web::get().to(|| async { HttpResponse::Ok().insert_header(("x-cache", "hit")).body("user") }),
        );
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actix_span_and_metric_hooks_are_applied_separately() {
    let t = TestTelemetry::new();
    let addr = serve_actix_users(
        HttpServerMiddleware::new()
            .with_instrumentation(t.instrumentation())
            .with_span_attributes(tenant_hook())
            .with_response_span_attributes(cache_hook())
            .with_metric_attributes(tier_hook()),
    );
    let (status, _, _) = send(&client(), get_req(addr, "/users/9", &[("x-tenant", "gold-7")])).await;
    assert_eq!(status, 200);
    let spans = t.wait_for_spans(1, TIMEOUT);
    spans[0]
        .assert_attr("app.tenant", "gold-7")
        .assert_attr("app.cache_hit", true)
        .assert_attr("app.status_class", 2i64);
    assert_eq!(spans[0].attr("app.tier"), None);
    let m = t.metrics();
    let p = m.assert_histogram_point(DURATION, &duration_attributes(&[kv("app.tier", "gold")]));
    assert_eq!(p.count, 1);
}
