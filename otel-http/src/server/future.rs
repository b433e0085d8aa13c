use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use http::Response;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::state::{poll_in_context, RequestState};

pin_project! {
    /// The response future of [`HttpServerService`](super::HttpServerService).
    ///
    /// While the inner future is polled, the request's OTel context (holding the server span) is
    /// the current context. A panic of the inner future ends the span with `error.type = panic`
    /// and is then resumed unchanged; dropping this future before it completes ends the span with
    /// `error.type = cancelled`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<Box<RequestState>>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                state.cancel();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn instrumented(inner: F, state: Option<Box<RequestState>>) -> Self {
        Self { inner, state }
    }

    pub(crate) fn passthrough(inner: F) -> Self {
        Self { inner, state: None }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
    B: http_body::Body,
    B::Error: 'static,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.state.is_none() {
            // Not instrumented (filtered out), or already completed.
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(ResponseBody::passthrough)));
        }
        match poll_in_context(this.state, this.inner.as_mut(), cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(response)) => match this.state.take() {
                Some(mut state) => {
                    let response = state.on_response(response);
                    Poll::Ready(Ok(response.map(|body| ResponseBody::new(body, state))))
                }
                None => Poll::Ready(Ok(response.map(ResponseBody::passthrough))),
            },
            Poll::Ready(Err(err)) => {
                if let Some(mut state) = this.state.take() {
                    state.on_service_error(&err);
                }
                Poll::Ready(Err(err))
            }
        }
    }
}
