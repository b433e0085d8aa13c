//! # reliability
//!
//! The reliability suite of the `otelrs-*` family (issue 9): nothing the instrumentation does may
//! be the reason a service fails, slows down or leaks a secret. Everything runs against
//! `127.0.0.1`, is bounded in count and time, and stops by itself.
//!
//! The tests live in `tests/`; this library only holds the helpers they share (loopback
//! servers, an RSS reader, latency percentiles). Figures and the commands that produce them are
//! in `RELIABILITY.md` at the workspace root.
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use opentelemetry::trace::Status;
use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use otelrs_core::testing::TestTelemetry;

/// Every piece of text the test providers exported, each labelled with where it came from: span
/// names, span attribute values, status descriptions, event names and attributes, link
/// attributes, metric names and every metric data point's attribute keys and values.
pub fn exported_text(t: &TestTelemetry) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for span in t.spans() {
        let at = |what: &str| format!("span {:?} {what}", span.name);
        out.push((at("name"), span.name.to_string()));
        for kv in &span.attributes {
            out.push((at(&format!("attribute {}", kv.key)), value_text(&kv.value)));
        }
        if let Status::Error { description } = &span.status {
            out.push((at("status description"), description.to_string()));
        }
        for event in span.events.iter() {
            out.push((at("event name"), event.name.to_string()));
            for kv in &event.attributes {
                out.push((at(&format!("event attribute {}", kv.key)), value_text(&kv.value)));
            }
        }
        for link in span.links.iter() {
            for kv in &link.attributes {
                out.push((at(&format!("link attribute {}", kv.key)), value_text(&kv.value)));
            }
        }
    }
    let metrics = t.metrics();
    for (_, metric) in metrics.all() {
        let name = metric.name().to_owned();
        out.push((format!("metric {name}"), name.clone()));
        let mut attrs: Vec<opentelemetry::KeyValue> = Vec::new();
        macro_rules! points {
            ($data:expr) => {
                match $data {
                    MetricData::Gauge(g) => g
                        .data_points()
                        .for_each(|p| attrs.extend(p.attributes().cloned())),
                    MetricData::Sum(s) => s
                        .data_points()
                        .for_each(|p| attrs.extend(p.attributes().cloned())),
                    MetricData::Histogram(h) => h
                        .data_points()
                        .for_each(|p| attrs.extend(p.attributes().cloned())),
                    MetricData::ExponentialHistogram(h) => h
                        .data_points()
                        .for_each(|p| attrs.extend(p.attributes().cloned())),
                }
            };
        }
        match metric.data() {
            AggregatedMetrics::F64(d) => points!(d),
            AggregatedMetrics::U64(d) => points!(d),
            AggregatedMetrics::I64(d) => points!(d),
        }
        for kv in attrs {
            out.push((format!("metric {name} attribute key"), kv.key.to_string()));
            out.push((format!("metric {name} attribute {}", kv.key), value_text(&kv.value)));
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

/// Asserts that none of `secrets` occurs (case-insensitively) in anything `t` exported, listing
/// every occurrence otherwise. Returns how many text items were checked.
#[track_caller]
pub fn assert_no_secrets(t: &TestTelemetry, secrets: &[&str]) -> usize {
    let texts = exported_text(t);
    let mut leaks = Vec::new();
    for (at, text) in &texts {
        let lower = text.to_lowercase();
        for s in secrets {
            if lower.contains(&s.to_lowercase()) {
                leaks.push(format!("{s:?} in {at}: {text:?}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets exported:\n  {}", leaks.join("\n  "));
    texts.len()
}

/// The resident set size of this process in KiB (`VmRSS` of `/proc/self/status`).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// The `p`-th percentile (0..=100, nearest rank) of `sorted` (ascending).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    assert!(!sorted.is_empty(), "percentile of nothing");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Serves `router` on an ephemeral 127.0.0.1 port (with the peer address available) and returns
/// the address. The server runs until the runtime stops.
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

/// Reads an environment variable as a count, with a default.
pub fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) => default,
    }
}

/// Per-request timeout of the load runs (generous: the machine may be loaded).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent client tasks of the load runs.
pub const CONCURRENCY: usize = 32;

/// A plain (uninstrumented) pooled HTTP/1 client.
pub type PlainClient = Client<HttpConnector, Empty<Bytes>>;

/// A plain client keeping up to [`CONCURRENCY`] idle connections.
pub fn client() -> PlainClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY)
        .build_http()
}

/// Sends `n` GETs to `addr` from `CONCURRENCY` tasks; returns every latency (sorted) and
/// panics on any failed request or non-200 answer.
pub async fn drive(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let client = client();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, next) = (client.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return latencies;
                }
                let uri: http::Uri = format!("http://{addr}/items/{i}").parse().unwrap();
                let started = Instant::now();
                let resp = tokio::time::timeout(TIMEOUT, client.get(uri))
                    .await
                    .unwrap_or_else(|_| panic!("request {i} timed out"))
                    .unwrap_or_else(|e| panic!("request {i} failed: {e}"));
                assert_eq!(resp.status(), 200, "request {i}");
                let body = resp.into_body().collect().await.expect("body").to_bytes();
                latencies.push(started.elapsed());
                assert_eq!(body, format!("item {i}"), "request {i}");
            }
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    assert_eq!(all.len(), n, "every request answered");
    all.sort_unstable();
    all
}

/// `GET /items/{id}` answering `item {id}`.
pub fn items_router() -> Router {
    Router::new().route(
        "/items/{id}",
        get(|axum::extract::Path(id): axum::extract::Path<u64>| async move { format!("item {id}") }),
    )
}

/// Prints throughput, p50 / p99 latency and RSS of a run.
pub fn report(what: &str, n: usize, took: Duration, latencies: &[Duration]) {
    eprintln!(
        "{what}: {n} requests in {took:.2?} ({:.0} req/s), p50 {:?}, p99 {:?}, RSS {} KiB",
        n as f64 / took.as_secs_f64(),
        percentile(latencies, 50.0),
        percentile(latencies, 99.0),
        rss_kib()
    );
}

/// The secrets corpus shared by `tests/secrets.rs` and `tests/secrets_adapters.rs`.
pub mod secrets {
    /// An e-mail address.
    pub const EMAIL: &str = "alice.secret@example.com";
    /// A password.
    pub const PASSWORD: &str = "hunter2-Pa55w0rd";
    /// A second password (for updates).
    pub const NEW_PASSWORD: &str = "n3w-S3cretPw";
    /// A card number as typed.
    pub const CARD_SPACED: &str = "4111 1111 1111 1111";
    /// A card number as digits.
    pub const CARD: &str = "4111111111111111";
    /// An API token.
    pub const TOKEN: &str = "tok_live_9f8e7d6c5b4a";

    /// Fragments that must not appear anywhere: the secrets and recognisable parts of them.
    pub const SECRETS: &[&str] = &[
        EMAIL,
        "alice.secret",
        "example.com",
        PASSWORD,
        "hunter2",
        NEW_PASSWORD,
        CARD_SPACED,
        CARD,
        "4111",
        TOKEN,
        "tok_live",
    ];
}
