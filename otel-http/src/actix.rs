//! actix-web 4 middleware (feature `actix-web`): the same spans, attributes, metrics and
//! lifetimes as [`HttpServerLayer`], through the same request state.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use otelrs_http::actix::HttpServerMiddleware;
//!
//! # async fn run() -> std::io::Result<()> {
//! HttpServer::new(|| {
//!     App::new()
//!         .wrap(HttpServerMiddleware::new())
//!         .route("/users/{id}", web::get().to(|| async { "user" }))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! Per request, [`HttpServerMiddleware`] translates the actix request head into the shared
//! request description and then behaves exactly like the tower layer (see [`crate::server`] for
//! the rules and every `error.type` value):
//!
//! * `http.route` is an [`HttpRoute`] in the request extensions, else the app's resource pattern
//!   that matched (e.g. `/users/{id}`, [`HttpRequest::match_pattern`](actix_web::HttpRequest::match_pattern));
//!   a request no resource matches (the default service, 404) has no route and a span named
//!   `{method}`. actix routes inside the app, after this middleware, so the matched pattern is
//!   read from the routed request when the response head arrives (cheap then; asking before
//!   routing re-matches the path against every resource pattern) and the span, started as
//!   `{method}`, is renamed `{method} {route}`; a request that panics or is cancelled before
//!   its response gets the pattern by that re-match. An explicit [`HttpRoute`] in the request
//!   extensions is known at span start. A [`RouteHandle`] is put into the request extensions
//!   for late updates when enabled, and an [`HttpRoute`] in the response extensions is honoured.
//! * `http.server.request.body.size` (opt-in, [`HttpServerMiddleware::with_request_body_size`])
//!   counts the request payload bytes the application actually read (the payload is wrapped),
//!   up to the end of the request.
//! * `network.peer.*` (and `client.address` without forwarding headers) come from
//!   [`ServiceRequest::peer_addr`].
//! * The span and `http.server.request.duration` end when the response body has been streamed to
//!   its end or dropped ([`ResponseBody`] wraps the body; the response bytes are unchanged).
//! * The OTel context holding the server span is current while the inner service is called and
//!   its future polled. A panic ends the request with `error.type = panic` and is resumed; a
//!   dropped future ends it with `error.type = cancelled`; both decrement
//!   `http.server.active_requests`.
//! * When the inner service returns an `Err(actix_web::Error)`, actix answers with that error's
//!   response: the request ends with the error's status code (`error.type` = the code for 5xx,
//!   nothing for 4xx), exactly as if the handler had returned that response.

use std::cell::OnceCell;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{forward_ready, Payload, ResourceMap, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::HttpMessage as _;
use bytes::Bytes;
use pin_project_lite::pin_project;

use crate::attributes::KnownMethods;
use crate::filter::Filter;
use crate::route::{HttpRoute, RouteHandle};
use crate::server::state::{call_in_context, poll_in_context_or, RequestState};
use crate::server::{HttpServerLayer, Shared, ERROR_TYPE_BODY_ERROR};

/// Instruments an actix-web app: `App::new().wrap(HttpServerMiddleware::new())`. See the
/// [module docs](self).
///
/// The options are those of [`HttpServerLayer`] (an existing layer converts with
/// [`From`]); instruments and the tracer are created once, when the middleware is constructed.
#[derive(Clone, Debug, Default)]
pub struct HttpServerMiddleware {
    layer: HttpServerLayer,
}

impl From<HttpServerLayer> for HttpServerMiddleware {
    fn from(layer: HttpServerLayer) -> Self {
        Self { layer }
    }
}

impl HttpServerMiddleware {
    /// A middleware using the global tracer provider, meter provider and propagator.
    pub fn new() -> Self {
        HttpServerLayer::new().into()
    }

    /// See [`HttpServerLayer::with_instrumentation`].
    pub fn with_instrumentation(self, instrumentation: otelrs_core::Instrumentation) -> Self {
        self.map(|l| l.with_instrumentation(instrumentation))
    }

    fn map(self, f: impl FnOnce(HttpServerLayer) -> HttpServerLayer) -> Self {
        Self { layer: f(self.layer) }
    }

    /// See [`HttpServerLayer::with_filter`]. The filter sees the request head as
    /// `http::request::Parts`.
    pub fn with_filter(self, filter: Filter) -> Self {
        self.map(|l| l.with_filter(filter))
    }

    /// See [`HttpServerLayer::with_span_name_formatter`].
    pub fn with_span_name_formatter<F>(self, f: F) -> Self
    where
        F: Fn(&str, Option<&str>) -> String + Send + Sync + 'static,
    {
        self.map(|l| l.with_span_name_formatter(f))
    }

    /// See [`HttpServerLayer::with_public_endpoint`].
    pub fn with_public_endpoint(self, public: bool) -> Self {
        self.map(|l| l.with_public_endpoint(public))
    }

    /// See [`HttpServerLayer::with_request_headers`].
    pub fn with_request_headers<I, N>(self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.map(|l| l.with_request_headers(names))
    }

    /// See [`HttpServerLayer::with_response_headers`].
    pub fn with_response_headers<I, N>(self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.map(|l| l.with_response_headers(names))
    }

    /// See [`HttpServerLayer::with_sensitive_headers_exported`].
    pub fn with_sensitive_headers_exported<I, N>(self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.map(|l| l.with_sensitive_headers_exported(names))
    }

    /// See [`HttpServerLayer::with_known_methods`].
    pub fn with_known_methods(self, methods: KnownMethods) -> Self {
        self.map(|l| l.with_known_methods(methods))
    }

    /// See [`HttpServerLayer::with_server_address_on_metrics`].
    pub fn with_server_address_on_metrics(self, enabled: bool) -> Self {
        self.map(|l| l.with_server_address_on_metrics(enabled))
    }

    /// See [`HttpServerLayer::with_route_handle`].
    pub fn with_route_handle(self, enabled: bool) -> Self {
        self.map(|l| l.with_route_handle(enabled))
    }

    /// See [`HttpServerLayer::with_trace_response_header`].
    pub fn with_trace_response_header(self, header: crate::server::TraceResponseHeader) -> Self {
        self.map(|l| l.with_trace_response_header(header))
    }

    /// See [`HttpServerLayer::with_trace_response_unsampled`].
    pub fn with_trace_response_unsampled(self, enabled: bool) -> Self {
        self.map(|l| l.with_trace_response_unsampled(enabled))
    }

    /// See [`HttpServerLayer::with_span_attributes`]; the hook sees the request head as
    /// `http::request::Parts`.
    pub fn with_span_attributes(self, hook: otelrs_core::AttributesFn<http::request::Parts>) -> Self {
        self.map(|l| l.with_span_attributes(hook))
    }

    /// See [`HttpServerLayer::with_response_span_attributes`]; the hook sees the response head
    /// as `http::response::Parts` (converted from actix's types only when a hook is set).
    pub fn with_response_span_attributes(self, hook: otelrs_core::AttributesFn<http::response::Parts>) -> Self {
        self.map(|l| l.with_response_span_attributes(hook))
    }

    /// See [`HttpServerLayer::with_metric_attributes`] (and its cardinality warning).
    pub fn with_metric_attributes(self, hook: otelrs_core::AttributesFn<http::request::Parts>) -> Self {
        self.map(|l| l.with_metric_attributes(hook))
    }

    /// See [`HttpServerLayer::with_response_body_size`].
    pub fn with_response_body_size(self, enabled: bool) -> Self {
        self.map(|l| l.with_response_body_size(enabled))
    }

    /// Records `http.server.request.body.size` (opt-in): the request payload is wrapped and the
    /// bytes the application reads from it are counted, up to the end of the request (span
    /// end). See [`HttpServerLayer::with_request_body_size`].
    pub fn with_request_body_size(self, enabled: bool) -> Self {
        self.map(|l| l.with_request_body_size(enabled))
    }
}

impl<S, B> Transform<S, ServiceRequest> for HttpServerMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
    B::Error: 'static,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Transform = HttpServerMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let shared = Arc::clone(&self.layer.shared);
        ready(Ok(HttpServerMiddlewareService {
            service,
            headers: HeaderSelection::new(&shared),
            shared,
            resource_map: OnceCell::new(),
        }))
    }
}

/// The service produced by [`HttpServerMiddleware`].
pub struct HttpServerMiddlewareService<S> {
    service: S,
    shared: Arc<Shared>,
    headers: HeaderSelection,
    /// The app's resource map (a shallow copy, taken at the first request), to find the route of
    /// a request that ends without a response.
    resource_map: OnceCell<Rc<ResourceMap>>,
}

/// The request headers the shared request code reads, as `http` 1 names: the server-address,
/// client-address and user-agent headers, the propagator's fields (read when the app is built)
/// and the captured headers. With a filter configured, every header (the filter may read any).
struct HeaderSelection {
    all: bool,
    names: Vec<http::HeaderName>,
}

impl HeaderSelection {
    fn new(shared: &Shared) -> Self {
        let mut names = vec![
            http::header::HOST,
            http::header::USER_AGENT,
            http::header::FORWARDED,
            http::HeaderName::from_static("x-forwarded-for"),
            http::HeaderName::from_static("x-forwarded-host"),
            http::HeaderName::from_static("x-forwarded-proto"),
        ];
        let fields = shared.instrumentation.propagation_fields();
        let extra = fields
            .iter()
            .filter_map(|f| http::HeaderName::from_bytes(f.as_bytes()).ok())
            .chain(shared.request_headers.names().cloned());
        for name in extra {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Self {
            // A filter or an attributes hook may read any header.
            all: shared.filter.is_some() || shared.span_attributes.is_some() || shared.metric_attributes.is_some(),
            names,
        }
    }

    /// The `http` 1 name to copy an actix header under, if the shared code reads it.
    fn select(&self, name: &actix_web::http::header::HeaderName) -> Option<http::HeaderName> {
        if self.all {
            return http::HeaderName::from_bytes(name.as_str().as_bytes()).ok();
        }
        let name = name.as_str();
        self.names.iter().find(|n| n.as_str() == name).cloned()
    }
}

impl<S> std::fmt::Debug for HttpServerMiddlewareService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerMiddlewareService").finish_non_exhaustive()
    }
}

thread_local! {
    /// An emptied header map kept between requests on this worker thread: converting a request
    /// head refills it instead of allocating a map per request.
    static SPARE_HEADERS: std::cell::Cell<Option<http::HeaderMap>> = const { std::cell::Cell::new(None) };
}

fn spare_headers() -> http::HeaderMap {
    SPARE_HEADERS
        .try_with(std::cell::Cell::take)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `headers`' storage for the thread's next request; a map grown by an unusually large
/// head is dropped instead, so what a thread keeps stays small.
fn recycle_headers(mut headers: http::HeaderMap) {
    if headers.capacity() <= 64 {
        headers.clear();
        let _ = SPARE_HEADERS.try_with(|s| s.set(Some(headers)));
    }
}

/// The request head as the shared `http` 1 description (actix-web 4 uses `http` 0.2), with only
/// the headers the shared code reads. `None` only if a method or URI that actix accepted does
/// not convert, which leaves the request uninstrumented rather than failing it.
fn request_parts(req: &ServiceRequest, selection: &HeaderSelection) -> Option<http::request::Parts> {
    let method = http::Method::from_bytes(req.method().as_str().as_bytes()).ok()?;
    let uri = req.uri();
    let uri = match (uri.scheme_str(), uri.authority()) {
        (None, None) => http::Uri::try_from(uri.path_and_query().map_or("/", |pq| pq.as_str())).ok()?,
        _ => http::Uri::try_from(uri.to_string()).ok()?,
    };
    let version = match req.version() {
        actix_web::http::Version::HTTP_09 => http::Version::HTTP_09,
        actix_web::http::Version::HTTP_10 => http::Version::HTTP_10,
        actix_web::http::Version::HTTP_2 => http::Version::HTTP_2,
        actix_web::http::Version::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    };
    let mut headers = spare_headers();
    for (name, value) in req.headers() {
        // Both sides validate with the same rules; anything that does not convert is skipped.
        if let Some(name) = selection.select(name) {
            if let Ok(value) = http::HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(name, value);
            }
        }
    }
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Some(parts)
}

impl<S, B> Service<ServiceRequest> for HttpServerMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
    B::Error: 'static,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let Some(mut parts) = request_parts(&req, &self.headers) else {
            return ResponseFuture::passthrough(self.service.call(req));
        };
        if let Some(filter) = &self.shared.filter {
            if !filter.matches(&parts) {
                recycle_headers(parts.headers);
                return ResponseFuture::passthrough(self.service.call(req));
            }
        }
        // The matched pattern is read after routing (see the module docs); an explicit route
        // is known now.
        if let Some(route) = req.extensions().get::<HttpRoute>().cloned() {
            parts.extensions.insert(route);
        }
        let state = RequestState::start_with_peer(&self.shared, &mut parts, req.peer_addr());
        recycle_headers(std::mem::take(&mut parts.headers));
        if let Some(handle) = parts.extensions.remove::<RouteHandle>() {
            req.extensions_mut().insert(handle);
        }
        if let Some(counter) = state.request_body_counter() {
            counter.store(0, Ordering::Relaxed);
            let payload = req.take_payload();
            req.set_payload(Payload::Stream {
                payload: Box::pin(CountingPayload {
                    inner: payload,
                    counter: Arc::clone(counter),
                }),
            });
        }
        let fallback = (!state.has_start_route()).then(|| RouteFallback {
            map: Rc::clone(self.resource_map.get_or_init(|| Rc::new(req.resource_map().clone()))),
            path: req.uri().clone(),
        });
        let (fut, state) = call_in_context(state, || self.service.call(req));
        ResponseFuture::instrumented(fut, state, fallback)
    }
}

/// Counts the request payload bytes the application reads.
struct CountingPayload {
    inner: Payload,
    counter: Arc<AtomicU64>,
}

impl futures_core::Stream for CountingPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(Pin::new(&mut self.inner).poll_next(cx));
        if let Some(Ok(chunk)) = &item {
            self.counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Poll::Ready(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// What finds the route of a request that ends without a response (panic, cancellation): the
/// app's resource map and the request path, matched then.
struct RouteFallback {
    map: Rc<ResourceMap>,
    path: actix_web::http::Uri,
}

impl RouteFallback {
    fn apply(&self, state: &mut RequestState) {
        if let Some(route) = self.map.match_pattern(self.path.path()) {
            state.set_matched_route(&route);
        }
    }
}

pin_project! {
    /// The response future of [`HttpServerMiddlewareService`]: polls the inner future with the
    /// request's OTel context attached; a panic ends the request with `error.type = panic` and
    /// is resumed; dropping it before the response ends the request with
    /// `error.type = cancelled`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Box<RequestState>>,
        fallback: Option<RouteFallback>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(mut state) = this.state.take() {
                if let Some(fallback) = this.fallback {
                    fallback.apply(&mut state);
                }
                state.cancel();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    fn instrumented(inner: F, state: Option<Box<RequestState>>, fallback: Option<RouteFallback>) -> Self {
        Self { inner, state, fallback }
    }

    fn passthrough(inner: F) -> Self {
        Self {
            inner,
            state: None,
            fallback: None,
        }
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(poll_in_context_or(this.state, this.inner, cx, |state| {
            if let Some(fallback) = this.fallback.as_ref() {
                fallback.apply(state);
            }
        }));
        let fallback = this.fallback.take();
        let Some(mut state) = this.state.take() else {
            return Poll::Ready(result.map(|res| res.map_body(|_, body| ResponseBody::passthrough(body))));
        };
        match result {
            Ok(mut res) => {
                if let Some((name, value)) = state.trace_response_header() {
                    let name = actix_web::http::header::HeaderName::from_static(name);
                    if !res.headers().contains_key(&name) {
                        if let Ok(value) = actix_web::http::header::HeaderValue::try_from(value) {
                            res.headers_mut().insert(name, value);
                        }
                    }
                }
                if state.wants_response_head() {
                    state.add_response_span_attributes(&response_head(res.response()));
                }
                let route = res.response().extensions().get::<HttpRoute>().map(HttpRoute::value);
                state.on_response_head(res.status().as_u16(), route, |capture, out| {
                    capture.collect_with(|name| res.headers().get_all(name.as_str()).map(|v| v.as_bytes()), out)
                });
                if fallback.is_some() && !state.has_response_route() {
                    // Routed now: the pattern comes from the resource the request matched.
                    if let Some(route) = res.request().match_pattern() {
                        state.set_matched_route(&route);
                    }
                }
                Poll::Ready(Ok(res.map_body(|_, body| ResponseBody::new(body, state))))
            }
            Err(err) => {
                // actix answers with the error's response; its body is not ours to watch.
                let status = err.as_response_error().status_code().as_u16();
                state.on_response_head(status, None, |_, _| {});
                if let Some(fallback) = &fallback {
                    fallback.apply(&mut state);
                }
                state.body_complete = true;
                drop(state);
                Poll::Ready(Err(err))
            }
        }
    }
}

pin_project! {
    /// The response body of [`HttpServerMiddleware`]: the inner body, unchanged, whose end (last
    /// chunk, error or drop) ends the request's span and duration.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<RequestState>>,
        // Bytes still to come for a body of known size.
        remaining: Option<u64>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                state.body_dropped();
            }
        }
    }
}

impl<B: MessageBody> ResponseBody<B> {
    fn new(inner: B, mut state: Box<RequestState>) -> Self {
        let remaining = match inner.size() {
            BodySize::None | BodySize::Sized(0) => {
                // Nothing to stream: actix drops the body after the head.
                state.body_complete = true;
                None
            }
            BodySize::Sized(n) => Some(n),
            BodySize::Stream => None,
        };
        Self {
            inner,
            state: Some(state),
            remaining,
        }
    }

    fn passthrough(inner: B) -> Self {
        Self {
            inner,
            state: None,
            remaining: None,
        }
    }
}

impl<B> ResponseBody<B> {
    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> MessageBody for ResponseBody<B>
where
    B: MessageBody,
    B::Error: 'static,
{
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let item = ready!(this.inner.poll_next(cx));
        if let Some(state) = this.state.as_mut() {
            match &item {
                Some(Ok(chunk)) => {
                    state.add_body_bytes(chunk.len());
                    if let Some(remaining) = this.remaining.as_mut() {
                        *remaining = remaining.saturating_sub(chunk.len() as u64);
                        if *remaining == 0 {
                            // All announced bytes are out: end now rather than when actix drops us.
                            state.body_complete = true;
                            this.state.take();
                        }
                    }
                }
                Some(Err(err)) => {
                    if let Some(mut state) = this.state.take() {
                        state.error_type = Some(std::borrow::Cow::Borrowed(crate::error::error_type_of(
                            err,
                            ERROR_TYPE_BODY_ERROR,
                        )));
                    }
                }
                None => {
                    if let Some(mut state) = this.state.take() {
                        state.body_complete = true;
                    }
                }
            }
        }
        Poll::Ready(item)
    }
}

/// The response head as `http` types, for the application's response-attributes hook (built
/// only when one is set).
fn response_head<B>(res: &actix_web::HttpResponse<B>) -> http::response::Parts {
    let (mut head, ()) = http::Response::new(()).into_parts();
    head.status = http::StatusCode::from_u16(res.status().as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in res.headers() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            head.headers.append(name, value);
        }
    }
    head
}
