//! actix-web 4 middleware (feature `actix-web`): the same spans, attributes, metrics and
//! lifetimes as [`HttpServerLayer`], through the same request state.
//!
//! ```no_run
//! use actix_web::{web, App, HttpServer};
//! use otel_http::actix::HttpServerMiddleware;
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
//! * `http.route` is an [`HttpRoute`] in the request extensions, else
//!   [`ServiceRequest::match_pattern`] (the app's resource pattern, e.g. `/users/{id}`); a request
//!   no resource matches (the default service, 404) has no route and a span named `{method}`. A
//!   [`RouteHandle`] is put into the request extensions for late updates, and
//!   an [`HttpRoute`] in the response extensions is honoured.
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

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::HttpMessage as _;
use bytes::Bytes;
use pin_project_lite::pin_project;

use crate::attributes::{KnownMethods, PeerAddr};
use crate::filter::Filter;
use crate::route::{HttpRoute, RouteHandle};
use crate::server::state::{call_in_context, poll_in_context, RequestState};
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

    /// A middleware using the providers and propagator of `instrumentation` (globals for what it
    /// does not set).
    pub fn with_instrumentation(instrumentation: otel_core::Instrumentation) -> Self {
        HttpServerLayer::with_instrumentation(instrumentation).into()
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

    /// See [`HttpServerLayer::with_response_body_size`].
    pub fn with_response_body_size(self, enabled: bool) -> Self {
        self.map(|l| l.with_response_body_size(enabled))
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
        ready(Ok(HttpServerMiddlewareService {
            service,
            shared: Arc::clone(&self.layer.shared),
        }))
    }
}

/// The service produced by [`HttpServerMiddleware`].
pub struct HttpServerMiddlewareService<S> {
    service: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for HttpServerMiddlewareService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerMiddlewareService").finish_non_exhaustive()
    }
}

/// The request head as the shared `http` 1 description (actix-web 4 uses `http` 0.2). `None` only
/// if a method or URI that actix accepted does not convert, which leaves the request
/// uninstrumented rather than failing it.
fn request_parts(req: &ServiceRequest) -> Option<http::request::Parts> {
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
    let mut headers = http::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        // Both sides validate with the same rules; anything that does not convert is skipped.
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
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

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let Some(mut parts) = request_parts(&req) else {
            return ResponseFuture::passthrough(self.service.call(req));
        };
        if let Some(filter) = &self.shared.filter {
            if !filter.matches(&parts) {
                return ResponseFuture::passthrough(self.service.call(req));
            }
        }
        let route = req.extensions().get::<HttpRoute>().cloned();
        if let Some(route) = route.or_else(|| req.match_pattern().map(HttpRoute::new)) {
            parts.extensions.insert(route);
        }
        if let Some(peer) = req.peer_addr() {
            parts.extensions.insert(PeerAddr(peer));
        }
        let state = RequestState::start(&self.shared, &mut parts);
        if let Some(handle) = parts.extensions.remove::<RouteHandle>() {
            req.extensions_mut().insert(handle);
        }
        let (fut, state) = call_in_context(state, || self.service.call(req));
        ResponseFuture::instrumented(fut, state)
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
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(state) = this.project().state.take() {
                state.cancel();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    fn instrumented(inner: F, state: Box<RequestState>) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }

    fn passthrough(inner: F) -> Self {
        Self { inner, state: None }
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
        let result = ready!(poll_in_context(this.state, this.inner, cx));
        let Some(mut state) = this.state.take() else {
            return Poll::Ready(result.map(|res| res.map_body(|_, body| ResponseBody::passthrough(body))));
        };
        match result {
            Ok(res) => {
                let route = res.response().extensions().get::<HttpRoute>().map(HttpRoute::value);
                state.on_response_head(res.status().as_u16(), route, |capture, out| {
                    capture.collect_with(|name| res.headers().get_all(name.as_str()).map(|v| v.as_bytes()), out)
                });
                Poll::Ready(Ok(res.map_body(|_, body| ResponseBody::new(body, state))))
            }
            Err(err) => {
                // actix answers with the error's response; its body is not ours to watch.
                let status = err.as_response_error().status_code().as_u16();
                state.on_response_head(status, None, |_, _| {});
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
