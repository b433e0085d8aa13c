//! The framework-neutral state of one instrumented server request: span start with the
//! sampling-relevant attributes, response head, body progress, and the end of span and metrics in
//! [`Drop`]. The tower service and the actix-web middleware are translations into this.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::request::Parts;
use http::{Method, Response};

use super::TraceResponseHeader;
use opentelemetry::metrics::BoundUpDownCounter;
use opentelemetry::trace::{Link, Span as _, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    CLIENT_ADDRESS, ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT,
    URL_PATH, URL_QUERY, URL_SCHEME, USER_AGENT_ORIGINAL,
};
use otelrs_core::hotpath::{bound_handle_with_last, record_with_last, LastBoundSlot};
use otelrs_core::instruments::seconds;
use otelrs_core::status::{http_status_is_error, status_code_str, ERROR_TYPE_OTHER};

use super::reuse::{interned, ip_string, route_and_name};
use super::{default_span_name, Shared, ERROR_TYPE_BODY_INCOMPLETE, ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};
use crate::attributes::{
    header_text, peer_addr, protocol_version, redact_query, HeaderCapture, NormalizedMethod, ServerHeaders,
};
use crate::route::{route_at_start, HttpRoute, RouteHandle, StartRoute};

/// The request body counter's value until a counting body is attached (which sets it to 0).
pub(crate) const REQUEST_BODY_UNCOUNTED: u64 = u64::MAX;

/// Everything one instrumented request carries from start to end. Dropping it ends the span,
/// records the duration and decrements the active-requests counter: every path (response body
/// finished or dropped, future dropped, panic, service error) goes through [`Drop`].
pub(crate) struct RequestState {
    shared: Arc<Shared>,
    pub(crate) cx: Context,
    start: Instant,
    method: NormalizedMethod,
    start_route: Option<StringValue>,
    route_handle: Option<RouteHandle>,
    response_route: Option<StringValue>,
    /// Identifies the attributes of the active-requests increment; the decrement and the
    /// duration's attributes start from it. Taken in `drop`.
    active_key: Option<ActiveKey>,
    /// The bound counter the increment went through, so the decrement hits the same stream.
    active_handle: Option<BoundUpDownCounter<i64>>,
    protocol_version: Option<&'static str>,
    status: Option<u16>,
    /// Set when the request failed other than by a 5xx status.
    pub(crate) error_type: Option<Cow<'static, str>>,
    body_bytes: u64,
    /// Request body bytes read by the application (`http.server.request.body.size`, opt-in),
    /// shared with the counting request body.
    request_body_bytes: Option<Arc<AtomicU64>>,
    /// False for responses that carry no body (HEAD, 1xx, 204, 304).
    body_expected: bool,
    /// The response body reached its end.
    pub(crate) body_complete: bool,
    /// Whether the span records (known at start; saves locking the span to ask at the end).
    recording: bool,
    /// What the application's metric-attributes hook added (empty without one).
    metric_attributes: Vec<KeyValue>,
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
        (None, Some(route)) => match route_and_name(shared, method, route) {
            Some((_, name)) => Cow::Borrowed(name),
            None => Cow::Owned(default_span_name(method, Some(route))),
        },
    }
}

impl RequestState {
    /// Starts the span (parent extracted from the headers) and increments the active requests.
    /// Inserts the request's [`RouteHandle`] into `parts.extensions` when the layer asks for one.
    pub(crate) fn start(shared: &Arc<Shared>, parts: &mut Parts) -> Box<Self> {
        let peer = peer_addr(&parts.extensions);
        Self::start_with_peer(shared, parts, peer)
    }

    /// [`RequestState::start`] with the peer address given (a framework that knows it without
    /// the request extensions: putting it there costs three allocations).
    pub(crate) fn start_with_peer(
        shared: &Arc<Shared>,
        parts: &mut Parts,
        peer: Option<std::net::SocketAddr>,
    ) -> Box<Self> {
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

        let view = ServerHeaders::scan(&parts.headers);
        let scheme = view.scheme(&parts.uri);
        let server = view.server_address(&parts.uri, scheme);
        let (start_route, name) = match route_at_start(&parts.extensions) {
            // The common case (axum): one interner lookup gives the shared route string and the
            // span name, so neither is allocated per request.
            Some(StartRoute::Matched(route)) if shared.span_name.is_none() => {
                match route_and_name(shared, method.span_name(), route) {
                    Some((value, name)) => (Some(StringValue::from(value)), Cow::Borrowed(name)),
                    None => (
                        Some(StringValue::from(route.to_owned())),
                        Cow::Owned(default_span_name(method.span_name(), Some(route))),
                    ),
                }
            }
            Some(StartRoute::Matched(route)) => {
                let value = StringValue::from(route.to_owned());
                let name = span_name(shared, method.span_name(), Some(route));
                (Some(value), name)
            }
            Some(StartRoute::Explicit(value)) => {
                let name = span_name(shared, method.span_name(), Some(value.as_str()));
                (Some(value), name)
            }
            None => (None, span_name(shared, method.span_name(), None)),
        };

        // Sampling-relevant attributes: they must be on the builder, before the sampler runs.
        // Room for the attributes added at the end too, so the span's list never reallocates.
        let mut attrs = Vec::with_capacity(16);
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
            attrs.push(KeyValue::new(
                SERVER_ADDRESS,
                Value::String(interned(&shared.values, host)),
            ));
            if let Some(port) = port {
                attrs.push(KeyValue::new(SERVER_PORT, i64::from(port)));
            }
        }
        let peer_ip = peer.map(|p| ip_string(p.ip()));
        match view.client() {
            Some(client) => attrs.push(KeyValue::new(CLIENT_ADDRESS, client.to_owned())),
            None => {
                if let Some(ip) = &peer_ip {
                    attrs.push(KeyValue::new(CLIENT_ADDRESS, Value::String(ip.clone())));
                }
            }
        }
        if let Some(ua) = view.user_agent() {
            let value = match ua.to_str() {
                Ok(text) if !text.is_empty() => Some(interned(&shared.values, text)),
                _ => header_text(ua),
            };
            if let Some(v) = value {
                attrs.push(KeyValue::new(USER_AGENT_ORIGINAL, Value::String(v)));
            }
        }
        shared.request_headers.collect(&parts.headers, &mut attrs);
        if let Some(hook) = &shared.span_attributes {
            hook.collect(parts, &mut attrs);
        }
        let version = protocol_version(parts.version);
        if let Some(v) = version {
            attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
        }

        let mut builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attrs);
        if let Some(link) = link {
            builder = builder.with_links(vec![link]);
        }
        let mut span = shared.tracer.build_with_context(builder, &parent);
        let recording = span.is_recording();
        if recording {
            if let (Some(peer), Some(ip)) = (peer, peer_ip) {
                span.set_attributes([
                    KeyValue::new(NETWORK_PEER_ADDRESS, Value::String(ip)),
                    KeyValue::new(NETWORK_PEER_PORT, i64::from(peer.port())),
                ]);
            }
        }

        // Metric attributes known at start: the active-requests increment and decrement use
        // exactly these.
        let active_key = ActiveKey::new(
            method.value.clone(),
            scheme,
            if shared.server_address_on_metrics {
                server.map(|(host, port)| (Box::from(host), port))
            } else {
                None
            },
        );
        let active_handle =
            bound_handle_with_last(&LAST_ACTIVE, &shared.active, &active_key, || active_key.attributes());
        match &active_handle {
            Some(h) => h.add(1),
            None => shared.active.instrument().add(1, &active_key.attributes()),
        }

        let route_handle = shared.route_handle.then(|| {
            let handle = RouteHandle::new();
            parts.extensions.insert(handle.clone());
            handle
        });

        // Boxed: the state travels inside the response future and body through every layer
        // above, and moving a pointer is cheaper than copying the state at each step.
        Box::new(Self {
            shared: Arc::clone(shared),
            cx: parent.with_span(span),
            start,
            body_expected: parts.method != Method::HEAD,
            method,
            start_route,
            route_handle,
            response_route: None,
            active_key: Some(active_key),
            active_handle,
            protocol_version: version,
            status: None,
            error_type: None,
            body_bytes: 0,
            request_body_bytes: shared
                .record_request_body_size
                .then(|| Arc::new(AtomicU64::new(REQUEST_BODY_UNCOUNTED))),
            body_complete: false,
            recording,
            metric_attributes: match &shared.metric_attributes {
                Some(hook) => {
                    let mut out = Vec::new();
                    hook.collect(parts, &mut out);
                    out
                }
                None => Vec::new(),
            },
        })
    }

    /// Records what the response head tells: status, response route, captured headers; adds
    /// the opt-in trace response header.
    pub(crate) fn on_response<B>(&mut self, mut response: Response<B>) -> Response<B> {
        self.add_trace_response_header(response.headers_mut());
        if self.wants_response_head() {
            let (parts, body) = response.into_parts();
            self.add_response_span_attributes(&parts);
            response = Response::from_parts(parts, body);
        }
        self.on_response_head(
            response.status().as_u16(),
            response.extensions().get::<HttpRoute>().map(HttpRoute::value),
            |capture, out| capture.collect(response.headers(), out),
        );
        response
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

    /// Adds the trace response header, when configured (see `TraceResponseHeader`).
    pub(crate) fn add_trace_response_header(&self, headers: &mut http::HeaderMap) {
        let trace_response = &self.shared.trace_response;
        if trace_response.header != TraceResponseHeader::Off {
            trace_response.insert(self.cx.span().span_context(), headers);
        }
    }

    /// Whether the application's response hook wants the response head of this request.
    pub(crate) fn wants_response_head(&self) -> bool {
        self.recording && self.shared.response_span_attributes.is_some()
    }

    /// Adds what the application's response hook computes from `head` to the span.
    pub(crate) fn add_response_span_attributes(&self, head: &http::response::Parts) {
        if let (Some(hook), true) = (&self.shared.response_span_attributes, self.recording) {
            let mut attrs = Vec::new();
            hook.collect(head, &mut attrs);
            self.cx.span().set_attributes(attrs);
        }
    }

    /// The trace response header as (name, value), for a framework with its own header map.
    pub(crate) fn trace_response_header(&self) -> Option<(&'static str, String)> {
        let trace_response = &self.shared.trace_response;
        if trace_response.header == TraceResponseHeader::Off {
            return None;
        }
        trace_response.header(self.cx.span().span_context())
    }

    /// Records an error of the inner service.
    pub(crate) fn on_service_error<E: 'static>(&mut self, err: &E) {
        self.error_type = Some(Cow::Borrowed(crate::error::error_type_of(err, ERROR_TYPE_OTHER)));
    }

    /// The counter of request body bytes, when `http.server.request.body.size` is recorded.
    pub(crate) fn request_body_counter(&self) -> Option<&Arc<AtomicU64>> {
        self.request_body_bytes.as_ref()
    }

    /// Whether the request started with a route (an explicit [`HttpRoute`] or a matched one).
    #[cfg_attr(not(feature = "actix-web"), allow(dead_code))]
    pub(crate) fn has_start_route(&self) -> bool {
        self.start_route.is_some()
    }

    /// Whether the response head carried a route.
    #[cfg_attr(not(feature = "actix-web"), allow(dead_code))]
    pub(crate) fn has_response_route(&self) -> bool {
        self.response_route.is_some()
    }

    /// Sets the route matched by the framework after routing (actix-web): interned per (method,
    /// route) like the start route, so neither the value nor the span name is allocated.
    #[cfg_attr(not(feature = "actix-web"), allow(dead_code))]
    pub(crate) fn set_matched_route(&mut self, route: &str) {
        self.response_route = Some(match route_and_name(&self.shared, self.method.span_name(), route) {
            Some((value, _)) => StringValue::from(value),
            None => StringValue::from(route.to_owned()),
        });
    }

    pub(crate) fn add_body_bytes(&mut self, n: usize) {
        self.body_bytes = self.body_bytes.saturating_add(n as u64);
    }

    /// Whether a body was expected but not sent to its end.
    pub(crate) fn body_incomplete(&self) -> bool {
        self.status.is_some() && self.body_expected && !self.body_complete
    }

    /// Ends a request whose response future was dropped before it produced a response.
    pub(crate) fn cancel(mut self: Box<Self>) {
        self.error_type = Some(Cow::Borrowed(ERROR_TYPE_CANCELLED));
    }

    /// Ends a request whose response body was dropped: `response_body_incomplete` unless the body
    /// reached its end (or was not expected) or another error was recorded.
    pub(crate) fn body_dropped(mut self: Box<Self>) {
        if self.error_type.is_none() && self.body_incomplete() {
            self.error_type = Some(Cow::Borrowed(ERROR_TYPE_BODY_INCOMPLETE));
        }
    }

    /// Ends a request whose inner service panicked.
    pub(crate) fn panicked(mut self: Box<Self>) {
        self.error_type = Some(Cow::Borrowed(ERROR_TYPE_PANIC));
    }
}

/// Polls `inner` with the request's context attached (when `state` holds one). A panic of the
/// inner future ends the request with `error.type = panic` and is resumed unchanged.
pub(crate) fn poll_in_context<F: Future>(
    state: &mut Option<Box<RequestState>>,
    inner: Pin<&mut F>,
    cx: &mut TaskContext<'_>,
) -> Poll<F::Output> {
    poll_in_context_or(state, inner, cx, |_| {})
}

/// [`poll_in_context`], calling `on_panic` with the state before a panic ends the request.
pub(crate) fn poll_in_context_or<F: Future>(
    state: &mut Option<Box<RequestState>>,
    inner: Pin<&mut F>,
    cx: &mut TaskContext<'_>,
    on_panic: impl FnOnce(&mut RequestState),
) -> Poll<F::Output> {
    /// Ends the request as panicked if dropped while armed, i.e. while unwinding out of the
    /// inner poll. The panic itself is never caught: it continues unchanged.
    struct PanicGuard<'s, P: FnOnce(&mut RequestState)> {
        state: &'s mut Option<Box<RequestState>>,
        on_panic: Option<P>,
    }
    impl<P: FnOnce(&mut RequestState)> Drop for PanicGuard<'_, P> {
        fn drop(&mut self) {
            // Disarmed (`on_panic` taken) once the poll returned: the state stays.
            if let Some(on_panic) = self.on_panic.take() {
                if let Some(mut s) = self.state.take() {
                    on_panic(&mut s);
                    s.panicked();
                }
            }
        }
    }

    let Some(s) = state.as_ref() else {
        return inner.poll(cx);
    };
    // Detached after the guard has run (locals drop in reverse order).
    let _attached = s.cx.clone().attach();
    let mut guard = PanicGuard {
        state,
        on_panic: Some(on_panic),
    };
    let poll = inner.poll(cx);
    guard.on_panic = None;
    poll
}

/// Calls `f` (the inner service's `call`) with the request's context attached. A panic ends the
/// request with `error.type = panic` and continues unchanged (it is not caught).
/// The state comes back as `Some` whenever `f` returns.
pub(crate) fn call_in_context<T>(state: Box<RequestState>, f: impl FnOnce() -> T) -> (T, Option<Box<RequestState>>) {
    /// Holds the state while `f` runs; dropped still holding it only when `f` unwinds.
    struct PanicGuard(Option<Box<RequestState>>);
    impl Drop for PanicGuard {
        fn drop(&mut self) {
            if let Some(s) = self.0.take() {
                s.panicked();
            }
        }
    }

    let attached = state.cx.clone().attach();
    let mut guard = PanicGuard(Some(state));
    let out = f();
    drop(attached);
    (out, guard.0.take())
}

impl Drop for RequestState {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        let route = self
            .route_handle
            .as_ref()
            .and_then(RouteHandle::value)
            .or_else(|| self.response_route.take())
            .or_else(|| self.start_route.clone());
        let error = self.error_type.take().or_else(|| {
            self.status
                .filter(|s| http_status_is_error(*s, &SpanKind::Server))
                .map(status_code_str)
        });

        // Metrics first: once the span is exported, the request's metrics are recorded too.
        let shared = &*self.shared;
        if let Some(active) = self.active_key.take() {
            match &self.active_handle {
                Some(h) => h.add(-1),
                None => shared.active.instrument().add(-1, &active.attributes()),
            }
            let key = MetricKey {
                active,
                status: self.status,
                route: route.clone(),
                error: error.clone(),
                version: self.protocol_version,
            };
            let request_body_bytes = self
                .request_body_bytes
                .as_ref()
                .map(|read| read.load(Ordering::Relaxed))
                // Not recorded when nothing wrapped the body (no `RequestBodySizeLayer`).
                .filter(|read| *read != REQUEST_BODY_UNCOUNTED);
            if self.metric_attributes.is_empty() {
                record_with_last(&LAST_DURATION, &shared.duration, &key, seconds(elapsed), || {
                    key.attributes()
                });
                if shared.record_response_body_size {
                    shared
                        .response_body_size
                        .record(&key, self.body_bytes, || key.attributes());
                }
                if let Some(read) = request_body_bytes {
                    shared.request_body_size.record(&key, read, || key.attributes());
                }
            } else {
                let extra = &self.metric_attributes;
                shared
                    .duration
                    .record_extended(seconds(elapsed), key.attributes(), extra);
                if shared.record_response_body_size {
                    shared
                        .response_body_size
                        .record_extended(self.body_bytes, key.attributes(), extra);
                }
                if let Some(read) = request_body_bytes {
                    shared.request_body_size.record_extended(read, key.attributes(), extra);
                }
            }
        }

        let span = self.cx.span();
        if self.recording {
            if route != self.start_route {
                span.update_name(span_name(
                    shared,
                    self.method.span_name(),
                    route.as_ref().map(StringValue::as_str),
                ));
            }
            if error.is_some() {
                span.set_status(Status::error(""));
            }
            // One call (one lock of the span) for everything the end adds. The route is set
            // here, not at start, because it may still change (`RouteHandle`, a response
            // `HttpRoute`) and the SDK keeps every value of a key set twice.
            let route = route.map(|r| KeyValue::new(HTTP_ROUTE, Value::String(r)));
            let status = self
                .status
                .map(|s| KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
            let error = error.map(|e| KeyValue::new(ERROR_TYPE, e));
            match (route, status, error) {
                // The common cases as arrays: cheaper to iterate than the chain of options.
                (Some(route), Some(status), None) => span.set_attributes([route, status]),
                (None, Some(status), None) => span.set_attribute(status),
                (route, status, error) => span.set_attributes(route.into_iter().chain(status).chain(error)),
            }
        }
        span.end();
    }
}

// What the metrics are keyed by, and the per-thread last-handle slots that skip the
// bound-instrument cache when consecutive requests share their attributes.

/// The attributes of `http.server.active_requests`: method, scheme and (opt-in) server address.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ActiveKey {
    method: StringValue,
    scheme: &'static str,
    server: Option<(Box<str>, Option<u16>)>,
    /// The hash of the three fields, computed once: the key is hashed twice per request (the
    /// active-requests handle, then inside the duration's [`MetricKey`]).
    hash: u64,
}

impl std::hash::Hash for ActiveKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl ActiveKey {
    fn new(method: StringValue, scheme: &'static str, server: Option<(Box<str>, Option<u16>)>) -> Self {
        use std::hash::{BuildHasher, Hash, Hasher};
        let mut h = otelrs_core::hotpath::FxBuildHasher.build_hasher();
        method.as_str().hash(&mut h);
        scheme.hash(&mut h);
        server.hash(&mut h);
        Self {
            hash: h.finish(),
            method,
            scheme,
            server,
        }
    }

    pub(crate) fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(8);
        attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, Value::String(self.method.clone())));
        attrs.push(KeyValue::new(URL_SCHEME, self.scheme));
        if let Some((host, port)) = &self.server {
            attrs.push(KeyValue::new(SERVER_ADDRESS, host.to_string()));
            if let Some(port) = port {
                attrs.push(KeyValue::new(SERVER_PORT, i64::from(*port)));
            }
        }
        attrs
    }
}

/// The attributes of `http.server.request.duration` (and the body size): the active-requests
/// attributes plus status, route, `error.type` and protocol version. Every part is
/// low-cardinality, which keeps the bound-instrument cache small.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct MetricKey {
    active: ActiveKey,
    status: Option<u16>,
    route: Option<StringValue>,
    error: Option<Cow<'static, str>>,
    version: Option<&'static str>,
}

impl MetricKey {
    fn attributes(&self) -> Vec<KeyValue> {
        let mut attrs = self.active.attributes();
        if let Some(s) = self.status {
            attrs.push(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
        }
        if let Some(r) = &self.route {
            attrs.push(KeyValue::new(HTTP_ROUTE, Value::String(r.clone())));
        }
        if let Some(e) = &self.error {
            attrs.push(KeyValue::new(ERROR_TYPE, e.clone()));
        }
        if let Some(v) = self.version {
            attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
        }
        attrs
    }
}

thread_local! {
    /// Consecutive requests on a thread mostly share their metric attributes (same route, status
    /// and protocol): comparing the key with the previous one skips the bound-instrument cache's
    /// hash, lock and probe. The entry holds its `BoundInstruments`, so the pointer comparison
    /// cannot match a different, later layer.
    static LAST_DURATION: LastBoundSlot<opentelemetry::metrics::Histogram<f64>, MetricKey, f64> = const { std::cell::RefCell::new(None) };
    static LAST_ACTIVE: LastBoundSlot<opentelemetry::metrics::UpDownCounter<i64>, ActiveKey, i64> = const { std::cell::RefCell::new(None) };
}
