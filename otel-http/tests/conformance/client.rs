//! The client attribute-conformance table, run by the tower `HttpClientLayer` (over hyper-util's
//! client) and reqwest `HttpClientMiddleware` tests.
//!
//! Every row gets its own `TestTelemetry`, a fresh instrumented client and a fresh plain
//! (uninstrumented) backend on a loopback address that answers `/status/{code}` with that code and
//! anything else with 200, and records the method, target and `traceparent` of every request it
//! receives. The runner checks the exact outcome: span name, kind `CLIENT`, status, parent, every
//! attribute with its type, the injected `traceparent` (its parent id is the client span), and
//! the one `http.client.request.duration` point.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, Key, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;

use super::{check_row, report, St};
use crate::common::TIMEOUT;

const DURATION: &str = "http.client.request.duration";
const CALLER: &str = "caller";

/// How a client adapter differs where the conventions leave room.
#[derive(Clone, Copy, Debug)]
pub struct ClientProfile {
    /// `error.type` of a refused connection.
    pub connect_error_type: &'static str,
    /// Whether the URL the middleware sees still has its userinfo (reqwest moves it into an
    /// `Authorization` header before any middleware runs).
    pub url_keeps_userinfo: bool,
}

/// One logical request for the client under test to send.
#[derive(Clone, Debug)]
pub struct ClientCall {
    pub method: http::Method,
    pub url: String,
    /// Set as the `UrlTemplate` extension.
    pub template: Option<&'static str>,
    /// Set as the `ResendCount` extension.
    pub resend_count: Option<u32>,
    /// How many times the request is sent, as one logical request (what a retry policy does):
    /// the client's own mechanism must number the attempts (`RequestAttempts`, a retry
    /// middleware in front of reqwest's).
    pub attempts: u32,
}

/// Where the backend listens.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    V4,
    /// `[::1]`; the row is skipped (with a note) where the machine has no IPv6 loopback.
    V6,
    /// A port nothing listens on.
    Refused,
}

/// An expected attribute value.
#[derive(Clone, Copy, Debug)]
pub enum V {
    S(&'static str),
    I(i64),
    /// The backend's IP address, as text.
    BackendAddress,
    /// The backend's port.
    BackendPort,
    /// `http://{backend address and port}{suffix}`.
    Url(&'static str),
    /// [`V::Url`] with `REDACTED:REDACTED@` userinfo when the client keeps the request's userinfo
    /// ([`ClientProfile::url_keeps_userinfo`]).
    UrlWithUserinfo(&'static str),
    /// [`ClientProfile::connect_error_type`].
    ConnectErrorType,
}

/// The span's parent.
#[derive(Clone, Copy, Debug)]
pub enum Parent {
    /// No current span: a new trace (and a new trace per attempt).
    Root,
    /// The request is sent with a local `caller` span current: the client span is its child.
    Caller,
}

pub struct ClientRow {
    pub name: &'static str,
    pub backend: Backend,
    pub method: &'static str,
    pub userinfo: Option<&'static str>,
    /// Path and query.
    pub target: &'static str,
    pub template: Option<&'static str>,
    pub resend_count: Option<u32>,
    /// Attempt `i` (from 0) of a row with several attempts carries
    /// `http.request.resend_count = i` from the second on, in addition to `attrs`.
    pub attempts: u32,
    pub parent: Parent,
    /// The status the caller receives; `None`: the request fails.
    pub response: Option<u16>,
    pub span_name: &'static str,
    pub status: St,
    /// The span's attributes, exactly (per attempt).
    pub attrs: &'static [(&'static str, V)],
    /// The attributes of the one `http.client.request.duration` point, exactly.
    pub duration: &'static [(&'static str, V)],
}

use V::{BackendAddress, BackendPort, ConnectErrorType, Url, UrlWithUserinfo, I, S};

/// The table.
pub fn rows() -> Vec<ClientRow> {
    vec![
        ClientRow {
            name: "GET 200, no current span: a root span, query values redacted",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/status/200?sig=s3cr3t&page=2",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(200),
            span_name: "GET",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/200?sig=REDACTED&page=REDACTED")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "GET with a url.template under the caller's span",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/users/1",
            template: Some("/users/{id}"),
            resend_count: None,
            attempts: 1,
            parent: Parent::Caller,
            response: Some(200),
            span_name: "GET /users/{id}",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/users/1")),
                ("url.template", S("/users/{id}")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "POST answered 201, with a url.template",
            backend: Backend::V4,
            method: "POST",
            userinfo: None,
            target: "/status/201",
            template: Some("/status/{code}"),
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(201),
            span_name: "POST /status/{code}",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("POST")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/201")),
                ("url.template", S("/status/{code}")),
                ("http.response.status_code", I(201)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("POST")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(201)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "404 is an error on the client: status Error, error.type is the code",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/status/404",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(404),
            span_name: "GET",
            status: St::Error(""),
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/404")),
                ("http.response.status_code", I(404)),
                ("network.protocol.version", S("1.1")),
                ("error.type", S("404")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(404)),
                ("error.type", S("404")),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "500: status Error, error.type is the code",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/status/500",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(500),
            span_name: "GET",
            status: St::Error(""),
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/500")),
                ("http.response.status_code", I(500)),
                ("network.protocol.version", S("1.1")),
                ("error.type", S("500")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(500)),
                ("error.type", S("500")),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "DELETE answered 503: status Error, error.type is the code",
            backend: Backend::V4,
            method: "DELETE",
            userinfo: None,
            target: "/status/503",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(503),
            span_name: "DELETE",
            status: St::Error(""),
            attrs: &[
                ("http.request.method", S("DELETE")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/503")),
                ("http.response.status_code", I(503)),
                ("network.protocol.version", S("1.1")),
                ("error.type", S("503")),
            ],
            duration: &[
                ("http.request.method", S("DELETE")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(503)),
                ("error.type", S("503")),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "connection refused: the transport's error.type and message, no status code",
            backend: Backend::Refused,
            method: "GET",
            userinfo: None,
            target: "/x",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: None,
            span_name: "GET",
            status: St::ErrorWithMessage,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/x")),
                ("error.type", ConnectErrorType),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("error.type", ConnectErrorType),
            ],
        },
        ClientRow {
            name: "unknown method FOO: _OTHER, the original method, span named HTTP",
            backend: Backend::V4,
            method: "FOO",
            userinfo: None,
            target: "/status/200",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(200),
            span_name: "HTTP",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("_OTHER")),
                ("http.request.method_original", S("FOO")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/200")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("_OTHER")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "userinfo and a signature in the query are redacted in url.full",
            backend: Backend::V4,
            method: "GET",
            userinfo: Some("user:pa55"),
            target: "/items/9?X-Goog-Signature=zz&q=1",
            template: Some("/items/{id}"),
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(200),
            span_name: "GET /items/{id}",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                (
                    "url.full",
                    UrlWithUserinfo("/items/9?X-Goog-Signature=REDACTED&q=REDACTED"),
                ),
                ("url.template", S("/items/{id}")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "an explicit ResendCount",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/status/200",
            template: None,
            resend_count: Some(3),
            attempts: 1,
            parent: Parent::Root,
            response: Some(200),
            span_name: "GET",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/200")),
                ("http.request.resend_count", I(3)),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "a retried request: the second attempt has http.request.resend_count 1",
            backend: Backend::V4,
            method: "GET",
            userinfo: None,
            target: "/status/200",
            template: None,
            resend_count: None,
            attempts: 2,
            parent: Parent::Root,
            response: Some(200),
            span_name: "GET",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("url.full", Url("/status/200")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", BackendAddress),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
        ClientRow {
            name: "an IPv6 backend: server.address without brackets, url.full with",
            backend: Backend::V6,
            method: "GET",
            userinfo: None,
            target: "/status/200",
            template: None,
            resend_count: None,
            attempts: 1,
            parent: Parent::Root,
            response: Some(200),
            span_name: "GET",
            status: St::Unset,
            attrs: &[
                ("http.request.method", S("GET")),
                ("server.address", S("::1")),
                ("server.port", BackendPort),
                ("url.full", Url("/status/200")),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
            duration: &[
                ("http.request.method", S("GET")),
                ("server.address", S("::1")),
                ("server.port", BackendPort),
                ("http.response.status_code", I(200)),
                ("network.protocol.version", S("1.1")),
            ],
        },
    ]
}

/// A request the backend received.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    target: String,
    traceparent: Option<String>,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A plain hyper server on `ip` answering `/status/{code}` with that code and anything else
/// with 200, logging every request. `None` when `ip` cannot be bound.
async fn backend(ip: IpAddr) -> Option<(SocketAddr, Log)> {
    let log: Log = Arc::default();
    let log2 = Arc::clone(&log);
    let svc = tower::service_fn(move |req: Request<Incoming>| {
        let log = Arc::clone(&log2);
        async move {
            log.lock().unwrap().push(Received {
                method: req.method().to_string(),
                target: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
                traceparent: req
                    .headers()
                    .get("traceparent")
                    .map(|v| v.to_str().unwrap_or("(not text)").to_owned()),
            });
            let status = req
                .uri()
                .path()
                .strip_prefix("/status/")
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(200);
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(b"backend")))
                    .unwrap(),
            )
        }
    });
    let addr = crate::common::serve_hyper_at(SocketAddr::new(ip, 0), svc).await.ok()?;
    Some((addr, log))
}

fn resolve(attrs: &[(&'static str, V)], addr: SocketAddr, profile: ClientProfile) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| {
            let value = match *v {
                V::S(s) => Value::from(s),
                V::I(i) => Value::from(i),
                V::BackendAddress => Value::from(addr.ip().to_string()),
                V::BackendPort => Value::from(i64::from(addr.port())),
                V::Url(suffix) => Value::from(format!("http://{addr}{suffix}")),
                V::UrlWithUserinfo(suffix) if profile.url_keeps_userinfo => {
                    Value::from(format!("http://REDACTED:REDACTED@{addr}{suffix}"))
                }
                V::UrlWithUserinfo(suffix) => Value::from(format!("http://{addr}{suffix}")),
                V::ConnectErrorType => Value::from(profile.connect_error_type),
            };
            KeyValue::new(Key::from_static_str(k), value)
        })
        .collect()
}

impl ClientRow {
    fn check(
        &self,
        t: &TestTelemetry,
        profile: ClientProfile,
        addr: SocketAddr,
        url: &str,
        outcome: &Result<u16, String>,
        received: &[Received],
    ) {
        match (self.response, outcome) {
            (Some(want), Ok(got)) => assert_eq!(*got, want, "response status"),
            (None, Err(_)) => {}
            (want, got) => panic!("expected response {want:?}, got {got:?}"),
        }
        let attempts = self.attempts as usize;
        let with_caller = matches!(self.parent, Parent::Caller);
        let spans = t.wait_for_spans(attempts + usize::from(with_caller), TIMEOUT);
        let clients: Vec<&SpanData> = spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
        assert_eq!(
            spans.len(),
            attempts + usize::from(with_caller),
            "exactly the client spans{}: {:?}",
            if with_caller { " and the caller" } else { "" },
            spans.iter().map(|s| (&s.name, &s.span_kind)).collect::<Vec<_>>()
        );
        assert_eq!(clients.len(), attempts, "one client span per attempt");

        let attrs = resolve(self.attrs, addr, profile);
        for (i, span) in clients.iter().enumerate() {
            assert_eq!(span.name, self.span_name, "name of attempt {i}");
            span.assert_kind(SpanKind::Client);
            self.status.check(&span.status, Some(url));
            assert_eq!(span.instrumentation_scope.name(), "otelrs-http", "scope");
            assert!(span.span_context.is_sampled(), "sampled");
            let mut want = attrs.clone();
            if attempts > 1 && i > 0 {
                want.push(KeyValue::new("http.request.resend_count", i as i64));
            }
            span.assert_attrs(&want);
            match self.parent {
                Parent::Root => {
                    span.assert_root();
                }
                Parent::Caller => {
                    span.assert_child_of(&t.span(CALLER));
                }
            }
        }
        if matches!(self.parent, Parent::Root) {
            let traces: std::collections::HashSet<_> = clients.iter().map(|s| s.span_context.trace_id()).collect();
            assert_eq!(traces.len(), attempts, "each attempt starts its own trace");
        }

        // Context injection: the backend saw each attempt with the client span as its parent.
        if self.response.is_some() {
            assert_eq!(received.len(), attempts, "requests received: {received:?}");
            for (i, (got, span)) in received.iter().zip(&clients).enumerate() {
                assert_eq!(got.method, self.method, "method received (attempt {i})");
                assert_eq!(got.target, self.target, "target received (attempt {i})");
                assert_eq!(
                    got.traceparent,
                    Some(format!(
                        "00-{}-{}-01",
                        span.span_context.trace_id(),
                        span.span_context.span_id()
                    )),
                    "the injected traceparent names the client span (attempt {i})"
                );
            }
        } else {
            assert!(received.is_empty(), "nothing was received: {received:?}");
        }

        let m = t.metrics();
        m.assert_metric(DURATION, "s", "Duration of HTTP client requests.");
        let p = m.assert_histogram_point(DURATION, &resolve(self.duration, addr, profile));
        assert_eq!(p.count, self.attempts as u64, "one measurement per attempt");
        assert_eq!(p.bounds, DURATION_BUCKETS.to_vec(), "bucket boundaries");
        assert!(p.sum > 0.0 && p.sum < TIMEOUT.as_secs_f64(), "duration {}", p.sum);
        assert_eq!(m.histogram(DURATION).len(), 1, "one duration point");
    }
}

/// Runs every row of the table with the client `send` builds: `send(instrumentation, call)`
/// returns a future that builds a client instrumented with `instrumentation` (known methods: the
/// defaults), sends `call` (`attempts` times, as one logical request) when first polled, reads
/// the response, and gives the last status or the error's text. The runner polls that future
/// with the row's current context. Panics listing every failed row.
pub async fn run<C, F>(framework: &str, profile: ClientProfile, send: C)
where
    C: Fn(Instrumentation, ClientCall) -> F,
    F: Future<Output = Result<u16, String>>,
{
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        let t = TestTelemetry::new();
        let (addr, log) = match row.backend {
            Backend::V4 => backend(IpAddr::V4(Ipv4Addr::LOCALHOST)).await.expect("bind 127.0.0.1"),
            Backend::V6 => match backend(IpAddr::V6(Ipv6Addr::LOCALHOST)).await {
                Some(b) => b,
                None => {
                    eprintln!("[{framework}] row {:?} skipped: no IPv6 loopback here", row.name);
                    continue;
                }
            },
            Backend::Refused => {
                // A port that was just free: bind, read it, close.
                let addr = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("bind loopback");
                (addr, Log::default())
            }
        };
        let authority = match row.userinfo {
            Some(u) => format!("{u}@{addr}"),
            None => addr.to_string(),
        };
        let url = format!("http://{authority}{}", row.target);
        let call = ClientCall {
            method: http::Method::from_bytes(row.method.as_bytes()).expect("valid method"),
            url: url.clone(),
            template: row.template,
            resend_count: row.resend_count,
            attempts: row.attempts,
        };
        let fut = send(t.instrumentation(), call);
        let outcome = match row.parent {
            Parent::Root => tokio::time::timeout(TIMEOUT, fut).await,
            Parent::Caller => {
                let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
                let cx = Context::current_with_span(tracer.start(CALLER));
                let outcome = tokio::time::timeout(TIMEOUT, fut.with_context(cx.clone())).await;
                cx.span().end();
                outcome
            }
        }
        .unwrap_or_else(|_| panic!("[{framework}] row {:?}: no outcome in time", row.name));
        let received = log.lock().unwrap().clone();
        check_row(&mut failures, framework, row.name, || {
            row.check(&t, profile, addr, &url, &outcome, &received)
        });
    }
    report(framework, rows.len(), failures);
}
