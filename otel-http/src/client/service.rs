use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{Request, Response};
use opentelemetry::trace::{SpanBuilder, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_REQUEST_RESEND_COUNT, SERVER_ADDRESS, SERVER_PORT,
    URL_FULL, URL_TEMPLATE,
};
use tower_service::Service;

use super::future::{ClientState, ResponseFuture};
use super::{RequestAttempts, ResendCount, Shared, UrlTemplate};
use crate::attributes::{client_server_address, redacted_url_full};

/// The service produced by [`HttpClientLayer`](super::HttpClientLayer).
#[derive(Clone)]
pub struct HttpClientService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for HttpClientService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> HttpClientService<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpClientService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let shared = &*self.shared;
        let start = Instant::now();
        let method = shared.known_methods.normalize(req.method());
        let template = req.extensions().get::<UrlTemplate>().map(|t| t.0.clone());
        let resend = match req.extensions().get::<RequestAttempts>() {
            Some(attempts) => attempts.next(),
            None => 0,
        }
        .max(req.extensions().get::<ResendCount>().map_or(0, |r| r.0));

        let server = client_server_address(req.uri(), req.headers());
        let mut attrs = Vec::with_capacity(7);
        attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, Value::String(method.value.clone())));
        if method.is_other {
            attrs.push(KeyValue::new(
                HTTP_REQUEST_METHOD_ORIGINAL,
                req.method().as_str().to_owned(),
            ));
        }
        let mut metric_attrs = Vec::with_capacity(7);
        metric_attrs.push(KeyValue::new(HTTP_REQUEST_METHOD, Value::String(method.value.clone())));
        if let Some((host, port)) = server {
            let host = KeyValue::new(SERVER_ADDRESS, host.to_owned());
            attrs.push(host.clone());
            metric_attrs.push(host);
            if let Some(port) = port {
                let port = KeyValue::new(SERVER_PORT, i64::from(port));
                attrs.push(port.clone());
                metric_attrs.push(port);
            }
        }
        if let Some(url) = redacted_url_full(req.uri(), req.headers()) {
            attrs.push(KeyValue::new(URL_FULL, url));
        }
        if let Some(t) = &template {
            attrs.push(KeyValue::new(URL_TEMPLATE, Value::String(t.clone())));
        }
        if resend > 0 {
            attrs.push(KeyValue::new(HTTP_REQUEST_RESEND_COUNT, i64::from(resend)));
        }
        let name = match &template {
            Some(t) => format!("{} {}", method.span_name(), t.as_str()),
            None => method.span_name().to_owned(),
        };
        let parent = Context::current();
        let span = shared.tracer.build_with_context(
            SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attrs),
            &parent,
        );
        let cx = parent.with_span(span);
        shared.instrumentation.inject_http(&cx, req.headers_mut());

        let fut = {
            let _guard = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(
            fut,
            ClientState {
                shared: Arc::clone(&self.shared),
                cx,
                start,
                metric_attrs,
            },
        )
    }
}
