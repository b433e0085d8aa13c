use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::future::{ClientState, ResponseFuture};
use super::{RequestAttempts, ResendCount, Shared, UrlTemplate};

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

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let template = parts.extensions.get::<UrlTemplate>().map(|t| t.0.clone());
        let resend = match parts.extensions.get::<RequestAttempts>() {
            Some(attempts) => attempts.next(),
            None => 0,
        }
        .max(parts.extensions.get::<ResendCount>().map_or(0, |r| r.0));
        let state = ClientState::start(
            &self.shared,
            &parts.method,
            &parts.uri,
            &mut parts.headers,
            template,
            resend,
        );
        let req = Request::from_parts(parts, body);
        let fut = {
            let _guard = state.cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(fut, state)
    }
}
