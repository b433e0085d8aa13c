//! The framework-neutral state of one instrumented server request: span start with the
//! sampling-relevant attributes, response head, body progress, and the end of span and metrics in
//! [`Drop`]. The tower service and the actix-web middleware are translations into this.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::request::Parts;
use http::{Method, Response};
use opentelemetry::trace::{Link, Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT,
    URL_PATH, URL_QUERY, URL_SCHEME, USER_AGENT_ORIGINAL,
};
use otel_core::instruments::seconds;
use otel_core::status::{http_status_is_error, status_code_str, ERROR_TYPE_OTHER};

use super::{default_span_name, Shared, ERROR_TYPE_BODY_INCOMPLETE, ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};
use crate::attributes::{
    forwarded_client, header_text, peer_addr, protocol_version, redact_query, server_address, server_scheme,
    HeaderCapture, NormalizedMethod,
};
use crate::route::{route_at_start, HttpRoute, RouteHandle};

/// Everything one instrumented request carries from start to end. Dropping it ends the span,
/// records the duration and decrements the active-requests counter: every path (response body
/// finished or dropped, future dropped, panic, service error) goes through [`Drop`].
pub(crate) struct RequestState {
    shared: Arc<Shared>,
    pub(crate) cx: Context,
    start: Instant,
    method: NormalizedMethod,
    start_route: Option<StringValue>,
    route_handle: RouteHandle,
    response_route: Option<StringValue>,
    /// Attributes of the active-requests increment; extended for the duration at the end.
    metric_attrs: Vec<KeyValue>,
    protocol_version: Option<&'static str>,
    status: Option<u16>,
    /// Set when the request failed other than by a 5xx status.
    pub(crate) error_type: Option<Cow<'static, str>>,
    body_bytes: u64,
    /// False for responses that carry no body (HEAD, 1xx, 204, 304).
    body_expected: bool,
    /// The response body reached its end.
    pub(crate) body_complete: bool,
}

fn span_name(shared: &Shared, method: &str, route: Option<&str>) -> Cow<'static, str> {
    match (&shared.span_name, route) {
        (Some(f), _) => Cow::Owned(f(method, route)),
        (None, None) => match method {
            // The common case without a route needs no allocation.
            "GET" => Cow::Borrowed("GET"),
            "POST" => Cow::Borrowed("POST"),
            "PUT" => Cow::Borrowed("PUT"),
            "DELETE" => Cow::Borrowed("DELETE"),
            "PATCH" => Cow::Borrowed("PATCH"),
            "HEAD" => Cow::Borrowed("HEAD"),
            "OPTIONS" => Cow::Borrowed("OPTIONS"),
            "HTTP" => Cow::Borrowed("HTTP"),
            other => Cow::Owned(other.to_owned()),
        },
        (None, route) => Cow::Owned(default_span_name(method, route)),
    }
}

impl RequestState {
    /// Starts the span (parent extracted from the headers) and increments the active requests.
    /// Inserts the request's [`RouteHandle`] into `parts.extensions`.
    pub(crate) fn start(shared: &Arc<Shared>, parts: &mut Parts) -> Self {
        let start = Instant::now();
        let method = shared.known_methods.normalize(&parts.method);
        let extracted = shared
            .instrumentation
            .extract_http_with_context(&Context::current(), &parts.headers);
        let (parent, link) = if shared.public_endpoint {
            let incoming = extracted.span().span_context().clone();
            // An invalid span context in the parent makes the SDK start a root span; baggage stays.
            let root = extracted.with_remote_span_context(SpanContext::empty_context());
            (root, incoming.is_valid().then(|| Link::with_context(incoming)))
        } else {
            (extracted, None)
        };

        let scheme = server_scheme(&parts.uri, &parts.headers);
        let server = server_address(&parts.uri, &parts.headers, scheme);
        let start_route = route_at_start(&parts.extensions);
        let name = span_name(
            shared,
            method.span_name(),
            start_route.as_ref().map(StringValue::as_str),
        );

        // Sampling-relevant attributes: they must be on the builder, before the sampler runs.
        let mut attrs = Vec::with_capacity(10);
        attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, Value::String(method.value.clone())));
        if method.is_other {
            attrs.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                parts.method.as_str().to_owned(),
            ));
        }
        attrs.push(KeyValue::new(URL_SCHEME, scheme));
        attrs.push(KeyValue::new(URL_PATH, parts.uri.path().to_owned()));
        if let Some(q) = parts.uri.query().filter(|q| !q.is_empty()) {
            attrs.push(KeyValue::new(URL_QUERY, redact_query(q).into_owned()));
        }
        if let Some((host, port)) = server {
            attrs.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
            if let Some(port) = port {
                attrs.push(KeyValue::new(SERVER_PORT, i64::from(port)));
            }
        }
        let peer = peer_addr(&parts.extensions);
        match forwarded_client(&parts.headers) {
            Some(client) => attrs.push(KeyValue::new(CLIENT_ADDRESS, client.to_owned())),
            None => {
                if let Some(peer) = peer {
                    attrs.push(KeyValue::new(CLIENT_ADDRESS, peer.ip().to_string()));
                }
            }
        }
        if let Some(ua) = parts.headers.get(http::header::USER_AGENT).and_then(header_text) {
            attrs.push(KeyValue::new(USER_AGENT_ORIGINAL, Value::String(ua)));
        }
        shared.request_headers.collect(&parts.headers, &mut attrs);

        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs);
        if let Some(link) = link {
            builder = builder.with_links(vec![link]);
        }
        let mut span = shared.tracer.build_with_context(builder, &parent);
        let version = protocol_version(parts.version);
        if span.is_recording() {
            if let Some(v) = version {
                span.set_attribute(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
            }
            if let Some(peer) = peer {
                span.set_attribute(KeyValue::new(NETWORK_PEER_ADDRESS, peer.ip().to_string()));
                span.set_attribute(KeyValue::new(NETWORK_PEER_PORT, i64::from(peer.port())));
            }
        }

        // Metric attributes known at start: the active-requests increment and decrement use
        // exactly these.
        let mut metric_attrs = Vec::with_capacity(9);
        metric_attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, Value::String(method.value.clone())));
        metric_attrs.push(KeyValue::new(URL_SCHEME, scheme));
        if shared.server_address_on_metrics {
            if let Some((host, port)) = server {
                metric_attrs.push(KeyValue::new(SERVER_ADDRESS, host.to_owned()));
                if let Some(port) = port {
                    metric_attrs.push(KeyValue::new(SERVER_PORT, i64::from(port)));
                }
            }
        }
        shared.active.add(1, &metric_attrs);

        let route_handle = RouteHandle::new();
        parts.extensions.insert(route_handle.clone());

        Self {
            shared: Arc::clone(shared),
            cx: parent.with_span(span),
            start,
            body_expected: parts.method != Method::HEAD,
            method,
            start_route,
            route_handle,
            response_route: None,
            metric_attrs,
            protocol_version: version,
            status: None,
            error_type: None,
            body_bytes: 0,
            body_complete: false,
        }
    }

    /// Records what the response head tells: status, response route, captured headers.
    pub(crate) fn on_response<B>(&mut self, response: &Response<B>) {
        self.on_response_head(
            response.status().as_u16(),
            response.extensions().get::<HttpRoute>().map(HttpRoute::value),
            |capture, out| capture.collect(response.headers(), out),
        );
    }

    /// [`RequestState::on_response`] for a framework with its own response type: the status, the
    /// [`HttpRoute`] of the response extensions, and `capture` to read the configured response
    /// headers with.
    pub(crate) fn on_response_head(
        &mut self,
        status: u16,
        route: Option<StringValue>,
        capture: impl FnOnce(&HeaderCapture, &mut Vec<KeyValue>),
    ) {
        self.status = Some(status);
        if status < 200 || status == 204 || status == 304 {
            self.body_expected = false;
        }
        self.response_route = route;
        if !self.shared.response_headers.is_empty() {
            let span = self.cx.span();
            if span.is_recording() {
                let mut attrs = Vec::new();
                capture(&self.shared.response_headers, &mut attrs);
                span.set_attributes(attrs);
            }
        }
    }

    /// Records an error of the inner service.
    pub(crate) fn on_service_error<E: 'static>(&mut self, err: &E) {
        self.error_type = Some(Cow::Borrowed(crate::error::error_type_of(err, ERROR_TYPE_OTHER)));
    }

    pub(crate) fn add_body_bytes(&mut self, n: usize) {
        self.body_bytes = self.body_bytes.saturating_add(n as u64);
    }

    /// Whether a body was expected but not sent to its end.
    pub(crate) fn body_incomplete(&self) -> bool {
        self.status.is_some() && self.body_expected && !self.body_complete
    }

    /// Ends a request whose response future was dropped before it produced a response.
    pub(crate) fn cancel(mut self) {
        self.error_type = Some(Cow::Borrowed(ERROR_TYPE_CANCELLED));
    }

    /// Ends a request whose response body was dropped: `response_body_incomplete` unless the body
    /// reached its end (or was not expected) or another error was recorded.
    pub(crate) fn body_dropped(mut self) {
        if self.error_type.is_none() && self.body_incomplete() {
            self.error_type = Some(Cow::Borrowed(ERROR_TYPE_BODY_INCOMPLETE));
        }
    }

    /// Ends a request whose inner service panicked.
    pub(crate) fn panicked(mut self) {
        self.error_type = Some(Cow::Borrowed(ERROR_TYPE_PANIC));
    }
}

/// Polls `inner` with the request's context attached (when `state` holds one). A panic of the
/// inner future ends the request with `error.type = panic` and is resumed unchanged.
pub(crate) fn poll_in_context<F: Future>(
    state: &mut Option<RequestState>,
    inner: Pin<&mut F>,
    cx: &mut TaskContext<'_>,
) -> Poll<F::Output> {
    let Some(s) = state.as_ref() else {
        return inner.poll(cx);
    };
    let polled = {
        let _guard = s.cx.clone().attach();
        panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
    };
    match polled {
        Ok(poll) => poll,
        Err(payload) => {
            if let Some(s) = state.take() {
                s.panicked();
            }
            panic::resume_unwind(payload)
        }
    }
}

/// Calls `f` (the inner service's `call`) with the request's context attached. A panic ends the
/// request with `error.type = panic` and is resumed unchanged.
pub(crate) fn call_in_context<T>(state: RequestState, f: impl FnOnce() -> T) -> (T, RequestState) {
    let called = {
        let _guard = state.cx.clone().attach();
        panic::catch_unwind(AssertUnwindSafe(f))
    };
    match called {
        Ok(out) => (out, state),
        Err(payload) => {
            state.panicked();
            panic::resume_unwind(payload)
        }
    }
}

impl Drop for RequestState {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let route = self
            .route_handle
            .value()
            .or_else(|| self.response_route.take())
            .or_else(|| self.start_route.clone());
        let error = self.error_type.take().or_else(|| {
            self.status
                .filter(|s| http_status_is_error(*s, &SpanKind::Server))
                .map(status_code_str)
        });

        // Metrics first: once the span is exported, the request's metrics are recorded too.
        let shared = &*self.shared;
        shared.active.add(-1, &self.metric_attrs);
        let attrs = &mut self.metric_attrs;
        if let Some(s) = self.status {
            attrs.push(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
        }
        if let Some(r) = &route {
            attrs.push(KeyValue::new(HTTP_ROUTE, Value::String(r.clone())));
        }
        if let Some(e) = &error {
            attrs.push(KeyValue::new(ERROR_TYPE, e.clone()));
        }
        if let Some(v) = self.protocol_version {
            attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
        }
        shared.duration.record(seconds(elapsed), attrs);
        if shared.record_response_body_size {
            shared.response_body_size.record(self.body_bytes, attrs);
        }

        let span = self.cx.span();
        if span.is_recording() {
            if route != self.start_route {
                span.update_name(span_name(
                    shared,
                    self.method.span_name(),
                    route.as_ref().map(StringValue::as_str),
                ));
            }
            if let Some(r) = route {
                span.set_attribute(KeyValue::new(HTTP_ROUTE, Value::String(r)));
            }
            if let Some(s) = self.status {
                span.set_attribute(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
            }
            if let Some(e) = error {
                span.set_status(Status::error(""));
                span.set_attribute(KeyValue::new(ERROR_TYPE, e));
            }
        }
        span.end();
    }
}
