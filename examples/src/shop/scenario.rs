//! The scripted scenario, driven through the gateway by a plain (uninstrumented) HTTP caller.

use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use serde_json::{json, Value};

use super::orders::DECLINED_CARD;
use super::telemetry::FinishedSpan;
use super::Shop;

/// What one step did and the trace it produced.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// What the step shows.
    pub title: &'static str,
    /// `POST /users` etc.
    pub request: String,
    /// The gateway's response status.
    pub status: u16,
    /// The gateway's response body.
    pub body: String,
    /// The trace id the caller sent in `traceparent`, if it sent one.
    pub caller_trace_id: Option<TraceId>,
    /// The parent span id the caller sent in `traceparent`, if it sent one.
    pub caller_span_id: Option<SpanId>,
    /// The trace the gateway's server span belongs to (none if nothing was recorded).
    pub trace_id: Option<TraceId>,
    /// Every span of that trace, in the order they ended.
    pub spans: Vec<FinishedSpan>,
}

/// The scenario could not be driven.
#[derive(Debug)]
pub struct ScenarioError(pub String);

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScenarioError {}

/// The card the successful order uses.
pub const GOOD_CARD: &str = "4242 4242 4242 4242";

/// A user id no user has.
pub const MISSING_USER: i64 = 999_999;

/// Whether a trace is complete once the gateway answered, or only when the notifier processed it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    Response,
    Notified,
}

struct Driver<'a> {
    shop: &'a Shop,
    http: reqwest::Client,
    base: String,
}

impl Driver<'_> {
    async fn step(
        &self,
        title: &'static str,
        method: reqwest::Method,
        path: String,
        body: Option<Value>,
        traceparent: Option<(TraceId, SpanId)>,
        until: Until,
    ) -> Result<Outcome, ScenarioError> {
        let sink = self.shop.telemetry.spans();
        let marker = sink.len();
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        if let Some((trace_id, span_id)) = traceparent {
            request = request.header("traceparent", format!("00-{trace_id}-{span_id}-01"));
        }
        let response = request
            .send()
            .await
            .map_err(|e| ScenarioError(format!("{title}: the gateway did not answer: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| ScenarioError(format!("{title}: reading the gateway's response: {e}")))?;

        // The gateway's server span ends once the response body is done; find its trace.
        let is_entry = |s: &FinishedSpan| s.service == "gateway" && s.kind == SpanKind::Server;
        let mut trace_id = None;
        for _ in 0..300 {
            if let Some(s) = sink.since(marker).into_iter().find(is_entry) {
                trace_id = Some(s.trace_id());
                break;
            }
            if self.shop.telemetry.is_disabled() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let spans = match trace_id {
            Some(id) if until == Until::Notified && (200..300).contains(&status) => {
                sink.wait_trace(id, Duration::from_secs(20), |spans| {
                    spans
                        .iter()
                        .any(|s| s.service == "notifier" && s.kind == SpanKind::Consumer)
                })
                .await
            }
            Some(id) => sink.trace(id),
            None => Vec::new(),
        };
        Ok(Outcome {
            title,
            request: format!("{method} {path}"),
            status,
            body,
            caller_trace_id: traceparent.map(|(t, _)| t),
            caller_span_id: traceparent.map(|(_, s)| s),
            trace_id,
            spans,
        })
    }
}

/// Runs the scenario: create a user, read it twice (cache miss then hit), place an order, an
/// order whose payment is declined, a read of a missing user, and a read carrying the caller's
/// `traceparent`.
pub async fn run(shop: &Shop) -> Result<Vec<Outcome>, ScenarioError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ScenarioError(format!("cannot build the HTTP caller: {e}")))?;
    let d = Driver {
        shop,
        http,
        base: format!("http://{}", shop.gateway_addr()),
    };
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let mut out = Vec::new();

    let created = d
        .step(
            "create a user",
            post.clone(),
            "/users".into(),
            Some(json!({ "name": "Ada Lovelace", "email": "ada@example.com" })),
            None,
            Until::Response,
        )
        .await?;
    let user_id = serde_json::from_str::<Value>(&created.body)
        .ok()
        .and_then(|v| v["id"].as_i64())
        .ok_or_else(|| {
            ScenarioError(format!(
                "creating a user answered {} {:?}, without an id",
                created.status, created.body
            ))
        })?;
    out.push(created);
    let user = format!("/users/{user_id}");
    out.push(
        d.step(
            "read the user (cache miss)",
            get.clone(),
            user.clone(),
            None,
            None,
            Until::Response,
        )
        .await?,
    );
    out.push(
        d.step(
            "read it again (cache hit)",
            get.clone(),
            user.clone(),
            None,
            None,
            Until::Response,
        )
        .await?,
    );
    out.push(
        d.step(
            "place an order",
            post.clone(),
            "/orders".into(),
            Some(json!({ "user_id": user_id, "item": "keyboard", "quantity": 1, "card": GOOD_CARD })),
            None,
            Until::Notified,
        )
        .await?,
    );
    out.push(
        d.step(
            "an order whose payment is declined",
            post,
            "/orders".into(),
            Some(json!({ "user_id": user_id, "item": "piano", "quantity": 1, "card": DECLINED_CARD })),
            None,
            Until::Response,
        )
        .await?,
    );
    out.push(
        d.step(
            "a user that does not exist",
            get.clone(),
            format!("/users/{MISSING_USER}"),
            None,
            None,
            Until::Response,
        )
        .await?,
    );
    let caller = (TraceId::from_bytes(rand_bytes()), SpanId::from_bytes(rand_bytes()));
    out.push(
        d.step(
            "a request carrying the caller's traceparent",
            get,
            user,
            None,
            Some(caller),
            Until::Response,
        )
        .await?,
    );
    Ok(out)
}

/// Random bytes for the caller's ids, from the standard library's randomly seeded hasher.
fn rand_bytes<const N: usize>() -> [u8; N] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed);
        let bytes = h.finish().to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    if out.iter().all(|b| *b == 0) {
        out[N - 1] = 1; // all-zero ids are invalid
    }
    out
}
