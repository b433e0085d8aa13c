use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::state::{call_in_context, RequestState};
use super::Shared;

/// The service produced by [`HttpServerLayer`](super::HttpServerLayer).
#[derive(Clone)]
pub struct HttpServerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for HttpServerService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServerService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> HttpServerService<S> {
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for HttpServerService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
    ResB: http_body::Body,
    ResB::Error: 'static,
{
    type Response = Response<super::ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        if let Some(filter) = &self.shared.filter {
            if !filter.matches(&parts) {
                return ResponseFuture::passthrough(self.inner.call(Request::from_parts(parts, body)));
            }
        }
        let state = RequestState::start(&self.shared, &mut parts);
        if let Some(counter) = state.request_body_counter() {
            parts.extensions.insert(super::RequestBodyCounter(Arc::clone(counter)));
        }
        let req = Request::from_parts(parts, body);
        let (fut, state) = call_in_context(state, || self.inner.call(req));
        ResponseFuture::instrumented(fut, state)
    }
}
