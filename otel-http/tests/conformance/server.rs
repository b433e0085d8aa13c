//! The server attribute-conformance table, run by the axum, hyper and actix-web tests.
//!
//! Every row starts a fresh app (its own `TestTelemetry`, the row's layer options) serving
//! [`ROUTES`] on 127.0.0.1:0, sends one HTTP/1.1 request over a new loopback connection and
//! checks the exact outcome: span name, kind `SERVER`, status, parent, every attribute with its
//! type, the handler's view of the current context (and its child span), the one
//! `http.server.request.duration` point and `http.server.active_requests` back at 0.
//!
//! The adapter says how to serve the routes: every route accepts every method and answers with
//! [`Handler::respond`]; a path that matches no route gets the framework's own 404 without a
//! route. Routes use the `{param}` syntax of axum and actix-web (one path segment); a framework
//! without a router (plain hyper) matches with [`route_for`] and passes the route to the layer as
//! an `HttpRoute` request extension.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpInfo;
use opentelemetry::trace::{Span as _, SpanId, SpanKind, TraceContextExt, TraceId, Tracer as _};
use opentelemetry::{Array, Context, Key, KeyValue, StringValue, Value};
use otelrs_core::instruments::DURATION_BUCKETS;
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_http::attributes::KnownMethods;
use otelrs_http::{filter, Filter, HttpServerLayer, RouteHandle};

use super::{check_row, report, St, PARENT_ID, TRACEPARENT, TRACE_ID};
use crate::common::TIMEOUT;

const DURATION: &str = "http.server.request.duration";
const ACTIVE: &str = "http.server.active_requests";
/// The response header in which [`Handler::respond`] reports the span id current in the handler.
pub const HANDLER_SPAN_HEADER: &str = "x-handler-span";
/// The span every handler starts under the current context.
pub const HANDLER_SPAN: &str = "handler-work";

/// A route of the conformance app.
#[derive(Debug)]
pub struct Route {
    /// The template, in axum / actix-web syntax (`{param}` is one segment).
    pub template: &'static str,
    /// The status the handler answers with.
    pub status: u16,
    /// When set, the handler refines the route to this template through the request's
    /// [`RouteHandle`] (present only when the layer is built `with_route_handle(true)`).
    pub refine_to: Option<&'static str>,
}

/// The routes every adapter serves. Each accepts every method.
pub const ROUTES: &[Route] = &[
    Route {
        template: "/users/{id}",
        status: 200,
        refine_to: None,
    },
    Route {
        template: "/orders/{id}",
        status: 201,
        refine_to: None,
    },
    Route {
        template: "/bad",
        status: 400,
        refine_to: None,
    },
    Route {
        template: "/fail",
        status: 500,
        refine_to: None,
    },
    Route {
        template: "/down",
        status: 503,
        refine_to: None,
    },
    Route {
        template: "/files/{name}",
        status: 200,
        refine_to: Some("/files/{*path}"),
    },
];

/// The route of [`ROUTES`] matching `path`, for apps without a router.
pub fn route_for(path: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| {
        let want: Vec<&str> = r.template.split('/').collect();
        let got: Vec<&str> = path.split('/').collect();
        want.len() == got.len()
            && want
                .iter()
                .zip(&got)
                .all(|(w, g)| if w.starts_with('{') { !g.is_empty() } else { w == g })
    })
}

/// What every route's handler does, whatever the framework.
#[derive(Clone)]
pub struct Handler {
    instrumentation: Instrumentation,
}

/// A handler's response, for the adapter to turn into its framework's response type.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: &'static str,
}

impl Handler {
    /// After an await point: reports the current span (`x-handler-span`), starts and ends a
    /// child span, refines the route through `handle` if the route says so, and answers with the
    /// route's status, an `x-served-by: node-1` header and a body.
    pub async fn respond(&self, route: &'static Route, handle: Option<RouteHandle>) -> Reply {
        tokio::task::yield_now().await;
        let current = Context::current().span().span_context().span_id();
        self.instrumentation
            .tracer(Instrumentation::scope("handler", "0"))
            .start(HANDLER_SPAN)
            .end();
        if let (Some(refined), Some(handle)) = (route.refine_to, handle) {
            handle.set(refined);
        }
        Reply {
            status: route.status,
            headers: vec![
                ("x-served-by", "node-1".to_owned()),
                (HANDLER_SPAN_HEADER, current.to_string()),
            ],
            body: "ok",
        }
    }
}

impl Reply {
    /// As an `http` response (tower-based servers).
    pub fn into_http(self) -> http::Response<Full<Bytes>> {
        let mut b = http::Response::builder().status(self.status);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(Bytes::from_static(self.body.as_bytes())))
            .expect("valid response")
    }
}

/// Layer options of a row.
#[derive(Clone, Copy)]
pub struct Options {
    /// `with_known_methods(KnownMethods::new(..))`; `None`: the default list.
    pub known_methods: Option<&'static [&'static str]>,
    pub request_headers: &'static [&'static str],
    pub response_headers: &'static [&'static str],
    /// `with_sensitive_headers_exported`.
    pub sensitive_exported: &'static [&'static str],
    pub server_address_on_metrics: bool,
    pub route_handle: bool,
    pub public_endpoint: bool,
    pub filter: Option<fn() -> Filter>,
    pub span_name: Option<fn(&str, Option<&str>) -> String>,
}

impl Options {
    pub const DEFAULT: Options = Options {
        known_methods: None,
        request_headers: &[],
        response_headers: &[],
        sensitive_exported: &[],
        server_address_on_metrics: false,
        route_handle: false,
        public_endpoint: false,
        filter: None,
        span_name: None,
    };

    /// The layer of a row (actix-web converts it with `HttpServerMiddleware::from`).
    pub fn layer(&self, instrumentation: Instrumentation) -> HttpServerLayer {
        let mut l = HttpServerLayer::new()
            .with_instrumentation(instrumentation)
            .with_known_methods(match self.known_methods {
                Some(m) => KnownMethods::new(m.iter().copied()),
                None => KnownMethods::defaults(),
            })
            .with_server_address_on_metrics(self.server_address_on_metrics)
            .with_route_handle(self.route_handle)
            .with_public_endpoint(self.public_endpoint);
        if !self.request_headers.is_empty() {
            l = l.with_request_headers(self.request_headers.iter().copied());
        }
        if !self.response_headers.is_empty() {
            l = l.with_response_headers(self.response_headers.iter().copied());
        }
        if !self.sensitive_exported.is_empty() {
            l = l.with_sensitive_headers_exported(self.sensitive_exported.iter().copied());
        }
        if let Some(f) = self.filter {
            l = l.with_filter(f());
        }
        if let Some(f) = self.span_name {
            l = l.with_span_name_formatter(f);
        }
        l
    }
}

/// An expected attribute value.
#[derive(Clone, Copy, Debug)]
pub enum V {
    S(&'static str),
    I(i64),
    /// A string array (captured headers).
    Strs(&'static [&'static str]),
    /// The port the app listens on.
    AppPort,
    /// The client's port of the connection, i.e. the server's peer port.
    PeerPort,
}

/// Where the span's parent comes from.
#[derive(Clone, Copy, Debug)]
pub enum Parent {
    /// A new trace: no parent, not the trace of [`TRACEPARENT`], no links.
    Root,
    /// The remote parent of [`TRACEPARENT`].
    Remote,
    /// A new trace with one link to the remote context of [`TRACEPARENT`] (public endpoint).
    LinkedRoot,
}

/// What a row must produce.
pub struct Expect {
    pub span_name: &'static str,
    pub status: St,
    pub parent: Parent,
    /// Whether a route matched and its handler ran (then the handler saw the server span as the
    /// current context and its child span is exported too).
    pub handled: bool,
    /// The span's attributes, exactly.
    pub attrs: &'static [(&'static str, V)],
    /// The attributes of the one `http.server.request.duration` point, exactly.
    pub duration: &'static [(&'static str, V)],
    /// The attributes of the one `http.server.active_requests` stream (value 0), exactly.
    pub active: &'static [(&'static str, V)],
}

/// One row: inputs and the expected outcome.
pub struct ServerRow {
    pub name: &'static str,
    pub options: Options,
    pub method: &'static str,
    /// Path and query.
    pub target: &'static str,
    /// Request headers, in order (a name may repeat).
    pub headers: &'static [(&'static str, &'static str)],
    /// The response status the client receives.
    pub status: u16,
    /// `None`: the row's filter excludes the request (no span, no metric).
    pub expect: Option<Expect>,
}

use V::{AppPort, PeerPort, Strs, I, S};

const GET_HTTP: &[(&str, V)] = &[("http.request.method", S("GET")), ("url.scheme", S("http"))];

/// The request a filtered row's runner sends afterwards; it passes every row's filter.
const PROBE: &str = "/orders/1";

fn skip_health_and_users() -> Filter {
    filter::path("/healthz").or(filter::path_prefix("/users")).not()
}

fn formatter(method: &str, route: Option<&str>) -> String {
    format!("srv:{method}:{}", route.unwrap_or("-"))
}

/// The table.
pub fn rows() -> Vec<ServerRow> {
    vec![
        ServerRow {
            name: "routed GET with a remote parent, a user agent and a query",
            options: Options::DEFAULT,
            method: "GET",
            target: "/users/42?sig=secret&x=1",
            headers: &[("traceparent", TRACEPARENT), ("user-agent", "test-agent/1.0")],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::Remote,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/42")),
                    ("url.query", S("sig=REDACTED&x=REDACTED")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("user_agent.original", S("test-agent/1.0")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "POST answered 201, credential-looking query values redacted",
            options: Options::DEFAULT,
            method: "POST",
            target: "/orders/7?X-Amz-Credential=abc&token=s3cr3t",
            headers: &[],
            status: 201,
            expect: Some(Expect {
                span_name: "POST /orders/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("POST")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/orders/7")),
                    ("url.query", S("X-Amz-Credential=REDACTED&token=REDACTED")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/orders/{id}")),
                    ("http.response.status_code", I(201)),
                ],
                duration: &[
                    ("http.request.method", S("POST")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(201)),
                    ("http.route", S("/orders/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("POST")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "unmatched path: the framework's 404, no route, not an error",
            options: Options::DEFAULT,
            method: "GET",
            target: "/no/such/path",
            headers: &[],
            status: 404,
            expect: Some(Expect {
                span_name: "GET",
                status: St::Unset,
                parent: Parent::Root,
                handled: false,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/no/such/path")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.response.status_code", I(404)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(404)),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "a routed 4xx is not a server error",
            options: Options::DEFAULT,
            method: "GET",
            target: "/bad",
            headers: &[],
            status: 400,
            expect: Some(Expect {
                span_name: "GET /bad",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/bad")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/bad")),
                    ("http.response.status_code", I(400)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(400)),
                    ("http.route", S("/bad")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "500: status Error, error.type is the code",
            options: Options::DEFAULT,
            method: "GET",
            target: "/fail",
            headers: &[],
            status: 500,
            expect: Some(Expect {
                span_name: "GET /fail",
                status: St::Error(""),
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/fail")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/fail")),
                    ("http.response.status_code", I(500)),
                    ("error.type", S("500")),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(500)),
                    ("http.route", S("/fail")),
                    ("error.type", S("500")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "DELETE answered 503: status Error, error.type is the code",
            options: Options::DEFAULT,
            method: "DELETE",
            target: "/down",
            headers: &[],
            status: 503,
            expect: Some(Expect {
                span_name: "DELETE /down",
                status: St::Error(""),
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("DELETE")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/down")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/down")),
                    ("http.response.status_code", I(503)),
                    ("error.type", S("503")),
                ],
                duration: &[
                    ("http.request.method", S("DELETE")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(503)),
                    ("http.route", S("/down")),
                    ("error.type", S("503")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("DELETE")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "unknown method FOO on a route: _OTHER, the original method, span named HTTP",
            options: Options::DEFAULT,
            method: "FOO",
            target: "/users/7",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "HTTP /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("_OTHER")),
                    ("http.request.method_original", S("FOO")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/7")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("_OTHER")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("_OTHER")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "methods are case-sensitive: unrouted `get` is _OTHER, span named HTTP",
            options: Options::DEFAULT,
            method: "get",
            target: "/nowhere",
            headers: &[],
            status: 404,
            expect: Some(Expect {
                span_name: "HTTP",
                status: St::Unset,
                parent: Parent::Root,
                handled: false,
                attrs: &[
                    ("http.request.method", S("_OTHER")),
                    ("http.request.method_original", S("get")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/nowhere")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.response.status_code", I(404)),
                ],
                duration: &[
                    ("http.request.method", S("_OTHER")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(404)),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("_OTHER")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "a custom known-methods list makes PURGE known",
            options: Options {
                known_methods: Some(&["GET", "PURGE"]),
                ..Options::DEFAULT
            },
            method: "PURGE",
            target: "/users/7",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "PURGE /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("PURGE")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/7")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("PURGE")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("PURGE")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "HEAD: no body is not an incomplete body",
            options: Options::DEFAULT,
            method: "HEAD",
            target: "/users/1",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "HEAD /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("HEAD")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("HEAD")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("HEAD")), ("url.scheme", S("http"))],
            }),
        },
        ServerRow {
            name: "X-Forwarded-For/-Host/-Proto give client.address, server.* and url.scheme",
            options: Options::DEFAULT,
            method: "GET",
            target: "/users/1",
            headers: &[
                ("x-forwarded-for", "203.0.113.7, 10.0.0.1"),
                ("x-forwarded-host", "shop.example:8443"),
                ("x-forwarded-proto", "https"),
            ],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("shop.example")),
                    ("server.port", I(8443)),
                    ("client.address", S("203.0.113.7")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("GET")), ("url.scheme", S("https"))],
            }),
        },
        ServerRow {
            name: "Forwarded (RFC 7239) wins over X-Forwarded-*; https default port",
            options: Options::DEFAULT,
            method: "GET",
            target: "/users/1",
            headers: &[
                (
                    "forwarded",
                    "for=\"[2001:db8:cafe::17]:4711\";proto=https;host=api.example, for=10.0.0.1",
                ),
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-host", "shop.example:8443"),
                ("x-forwarded-proto", "http"),
            ],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("api.example")),
                    ("server.port", I(443)),
                    ("client.address", S("2001:db8:cafe::17")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[("http.request.method", S("GET")), ("url.scheme", S("https"))],
            }),
        },
        ServerRow {
            name: "header capture (every value in order, sensitive ones redacted unless exported, absent ones omitted), forwarded server.* on metrics",
            options: Options {
                request_headers: &["X-Request-Id", "x-absent", "Authorization", "X-Api-Key"],
                response_headers: &["x-served-by"],
                sensitive_exported: &["x-api-key"],
                server_address_on_metrics: true,
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/users/1",
            headers: &[
                ("x-forwarded-host", "shop.example:8443"),
                ("x-forwarded-proto", "https"),
                ("x-request-id", "a"),
                ("x-request-id", "b"),
                ("authorization", "Bearer s3cr3t"),
                ("x-api-key", "k1"),
            ],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("shop.example")),
                    ("server.port", I(8443)),
                    ("client.address", S("127.0.0.1")),
                    ("http.request.header.x-request-id", Strs(&["a", "b"])),
                    ("http.request.header.authorization", Strs(&["REDACTED"])),
                    ("http.request.header.x-api-key", Strs(&["k1"])),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.response.header.x-served-by", Strs(&["node-1"])),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("server.address", S("shop.example")),
                    ("server.port", I(8443)),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("https")),
                    ("server.address", S("shop.example")),
                    ("server.port", I(8443)),
                ],
            }),
        },
        ServerRow {
            name: "an invalid traceparent starts a new trace",
            options: Options::DEFAULT,
            method: "GET",
            target: "/users/1",
            headers: &[("traceparent", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "public endpoint: a new root linked to the incoming context",
            options: Options {
                public_endpoint: true,
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/users/1",
            headers: &[("traceparent", TRACEPARENT)],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /users/{id}",
                status: St::Unset,
                parent: Parent::LinkedRoot,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "a RouteHandle set by the handler renames the span and routes the metric",
            options: Options {
                route_handle: true,
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/files/a.txt",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /files/{*path}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/files/a.txt")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/files/{*path}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/files/{*path}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "the RouteHandle is opt-in: without it the matched route stays",
            options: Options::DEFAULT,
            method: "GET",
            target: "/files/a.txt",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "GET /files/{name}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/files/a.txt")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/files/{name}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/files/{name}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "span name formatter, routed",
            options: Options {
                span_name: Some(formatter),
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/users/1",
            headers: &[],
            status: 200,
            expect: Some(Expect {
                span_name: "srv:GET:/users/{id}",
                status: St::Unset,
                parent: Parent::Root,
                handled: true,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/users/1")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.route", S("/users/{id}")),
                    ("http.response.status_code", I(200)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(200)),
                    ("http.route", S("/users/{id}")),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "span name formatter, unrouted",
            options: Options {
                span_name: Some(formatter),
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/zzz",
            headers: &[],
            status: 404,
            expect: Some(Expect {
                span_name: "srv:GET:-",
                status: St::Unset,
                parent: Parent::Root,
                handled: false,
                attrs: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("url.path", S("/zzz")),
                    ("server.address", S("127.0.0.1")),
                    ("server.port", AppPort),
                    ("client.address", S("127.0.0.1")),
                    ("network.protocol.version", S("1.1")),
                    ("network.peer.address", S("127.0.0.1")),
                    ("network.peer.port", PeerPort),
                    ("http.response.status_code", I(404)),
                ],
                duration: &[
                    ("http.request.method", S("GET")),
                    ("url.scheme", S("http")),
                    ("http.response.status_code", I(404)),
                    ("network.protocol.version", S("1.1")),
                ],
                active: GET_HTTP,
            }),
        },
        ServerRow {
            name: "a filtered-out request has no span and no metrics (unrouted)",
            options: Options {
                filter: Some(skip_health_and_users),
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/healthz",
            headers: &[],
            status: 404,
            expect: None,
        },
        ServerRow {
            name: "a filtered-out request has no span and no metrics (routed)",
            options: Options {
                filter: Some(skip_health_and_users),
                ..Options::DEFAULT
            },
            method: "GET",
            target: "/users/1",
            headers: &[("traceparent", TRACEPARENT)],
            status: 200,
            expect: None,
        },
    ]
}

fn resolve(attrs: &[(&'static str, V)], app: SocketAddr, peer: SocketAddr) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| {
            let value = match *v {
                V::S(s) => Value::from(s),
                V::I(i) => Value::from(i),
                V::Strs(list) => Value::Array(Array::String(list.iter().map(|s| StringValue::from(*s)).collect())),
                V::AppPort => Value::from(i64::from(app.port())),
                V::PeerPort => Value::from(i64::from(peer.port())),
            };
            KeyValue::new(Key::from_static_str(k), value)
        })
        .collect()
}

/// What the client saw.
struct Sent {
    status: u16,
    headers: HeaderMap,
    /// The client's end of the connection.
    local: SocketAddr,
}

async fn send(row: &str, addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Sent {
    let mut b = http::Request::builder()
        .method(http::Method::from_bytes(method.as_bytes()).expect("valid method"))
        .uri(format!("http://{addr}{target}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::new())).expect("valid request");
    let resp = tokio::time::timeout(TIMEOUT, crate::common::client().request(req))
        .await
        .unwrap_or_else(|_| panic!("row {row:?}: no response in time"))
        .unwrap_or_else(|e| panic!("row {row:?}: request failed: {e:?}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let local = resp
        .extensions()
        .get::<HttpInfo>()
        .unwrap_or_else(|| panic!("row {row:?}: the client reports its connection"))
        .local_addr();
    tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("row {row:?}: no body in time"))
        .unwrap_or_else(|e| panic!("row {row:?}: body failed: {e:?}"));
    Sent { status, headers, local }
}

fn span_names(t: &TestTelemetry) -> Vec<String> {
    let mut names: Vec<String> = t.spans().iter().map(|s| s.name.to_string()).collect();
    names.sort();
    names
}

fn check_metrics_meta(m: &otelrs_core::testing::MetricsSnapshot) {
    m.assert_metric(DURATION, "s", "Duration of HTTP server requests.");
    m.assert_metric(ACTIVE, "{request}", "Number of active HTTP server requests.");
    assert_eq!(m.is_monotonic(ACTIVE), Some(false), "{ACTIVE} is an up/down counter");
    for opt_in in ["http.server.response.body.size", "http.server.request.body.size"] {
        assert!(m.metric(opt_in).is_none(), "{opt_in} is opt-in");
    }
}

impl ServerRow {
    fn check(&self, t: &TestTelemetry, app: SocketAddr, sent: &Sent) {
        assert_eq!(sent.status, self.status, "response status");
        let Some(e) = &self.expect else {
            return self.check_filtered(t, sent);
        };
        let want_spans = 1 + usize::from(e.handled);
        t.wait_for_spans(want_spans, TIMEOUT);
        let mut names = vec![e.span_name.to_owned()];
        if e.handled {
            names.push(HANDLER_SPAN.to_owned());
        }
        names.sort();
        assert_eq!(span_names(t), names, "exactly these spans");

        let span = t.span(e.span_name);
        span.assert_kind(SpanKind::Server);
        e.status.check(&span.status, None);
        assert_eq!(span.instrumentation_scope.name(), "otelrs-http", "scope");
        assert!(span.span_context.is_sampled(), "sampled");
        let remote_trace = TraceId::from_hex(TRACE_ID).unwrap();
        let remote_parent = SpanId::from_hex(PARENT_ID).unwrap();
        match e.parent {
            Parent::Root | Parent::LinkedRoot => {
                span.assert_root();
                assert_ne!(span.span_context.trace_id(), remote_trace, "a new trace");
            }
            Parent::Remote => {
                span.assert_parent_ids(remote_trace, remote_parent);
            }
        }
        match e.parent {
            Parent::LinkedRoot => {
                assert_eq!(span.links.links.len(), 1, "one link");
                let link = &span.links.links[0].span_context;
                assert_eq!(
                    (link.trace_id(), link.span_id()),
                    (remote_trace, remote_parent),
                    "the link is the incoming context"
                );
            }
            _ => assert!(span.links.links.is_empty(), "no links"),
        }
        span.assert_attrs(&resolve(e.attrs, app, sent.local));

        let seen = sent
            .headers
            .get(HANDLER_SPAN_HEADER)
            .map(|v| v.to_str().unwrap().to_owned());
        if e.handled {
            assert_eq!(
                seen,
                Some(span.span_context.span_id().to_string()),
                "Context::current() in the handler is the server span"
            );
            t.span(HANDLER_SPAN).assert_child_of(&span);
        } else {
            assert_eq!(seen, None, "no handler ran");
        }

        let m = t.metrics();
        check_metrics_meta(&m);
        let p = m.assert_histogram_point(DURATION, &resolve(e.duration, app, sent.local));
        assert_eq!(p.count, 1, "one measurement");
        assert_eq!(p.bounds, DURATION_BUCKETS.to_vec(), "bucket boundaries");
        assert!(p.sum > 0.0 && p.sum < TIMEOUT.as_secs_f64(), "duration {}", p.sum);
        assert_eq!(m.histogram(DURATION).len(), 1, "one duration point");
        let active = resolve(e.active, app, sent.local);
        assert_eq!(
            m.sum_i64(ACTIVE, &active),
            Some(0),
            "{ACTIVE} {active:?} is back at 0; points: {:?}",
            m.sums_i64(ACTIVE)
        );
        assert_eq!(m.sums_i64(ACTIVE).len(), 1, "one {ACTIVE} stream");
    }

    /// After the filtered request, the runner sent [`PROBE`]: only the probe is instrumented;
    /// the filtered request's handler ran without a server span (its child span is a root).
    fn check_filtered(&self, t: &TestTelemetry, sent: &Sent) {
        let path = self.target.split('?').next().unwrap_or_default();
        let handled = route_for(path).is_some();
        t.wait_for_spans(2 + usize::from(handled), TIMEOUT);
        let mut want = vec!["GET /orders/{id}".to_owned(), HANDLER_SPAN.to_owned()];
        if handled {
            want.push(HANDLER_SPAN.to_owned());
        }
        want.sort();
        assert_eq!(span_names(t), want, "only the probe request has a server span");
        let probe = t.span("GET /orders/{id}");
        let handler_spans = t.spans_named(HANDLER_SPAN);
        assert_eq!(
            handler_spans
                .iter()
                .filter(|s| s.parent_span_id == probe.span_context.span_id())
                .count(),
            1,
            "one handler span is the probe's"
        );
        if handled {
            assert_eq!(
                handler_spans
                    .iter()
                    .filter(|s| s.parent_span_id == SpanId::INVALID)
                    .count(),
                1,
                "the filtered request's handler span is a root"
            );
            assert_eq!(
                sent.headers.get(HANDLER_SPAN_HEADER).and_then(|v| v.to_str().ok()),
                Some(SpanId::INVALID.to_string().as_str()),
                "no span is current in the filtered request's handler"
            );
        }
        let m = t.metrics();
        check_metrics_meta(&m);
        let points = m.histogram(DURATION);
        assert_eq!(points.len(), 1, "only the probe is measured: {points:?}");
        assert_eq!(points[0].count, 1);
        assert!(
            points[0]
                .attributes
                .contains(&KeyValue::new("http.route", "/orders/{id}")),
            "the probe's point: {points:?}"
        );
        assert_eq!(m.sums_i64(ACTIVE).len(), 1, "only the probe is counted");
    }
}

/// Runs every row of the table against the app `start` serves: `start(layer, handler)` must
/// serve [`ROUTES`] on 127.0.0.1:0 behind `layer` (actix-web: converted to its middleware),
/// every route answering any method with `handler.respond(route, route_handle)`, and return the
/// bound address. Panics listing every failed row.
pub async fn run<S, F>(framework: &str, start: S)
where
    S: Fn(HttpServerLayer, Handler) -> F,
    F: Future<Output = SocketAddr>,
{
    let rows = rows();
    let mut failures = Vec::new();
    for row in &rows {
        let t = TestTelemetry::new();
        let handler = Handler {
            instrumentation: t.instrumentation(),
        };
        let addr = start(row.options.layer(t.instrumentation()), handler).await;
        let sent = send(row.name, addr, row.method, row.target, row.headers).await;
        if row.expect.is_none() {
            let probe = send(row.name, addr, "GET", PROBE, &[]).await;
            assert_eq!(probe.status, 201, "row {:?}: the probe is served", row.name);
        }
        check_row(&mut failures, framework, row.name, || row.check(&t, addr, &sent));
    }
    report(framework, rows.len(), failures);
}
