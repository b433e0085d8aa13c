use std::borrow::Cow;
use std::pin::Pin;
use std::task::{ready, Context as TaskContext, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::state::RequestState;
use super::ERROR_TYPE_BODY_ERROR;

pin_project! {
    /// The response body of [`HttpServerService`](super::HttpServerService): the inner body,
    /// unchanged, whose end (last frame, error or drop) ends the request's span and duration.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<Box<RequestState>>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                state.body_dropped();
            }
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn new(inner: B, mut state: Box<RequestState>) -> Self {
        if inner.is_end_stream() {
            state.body_complete = true;
        }
        Self {
            inner,
            state: Some(state),
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        Self { inner, state: None }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if this.state.is_some() {
            match &frame {
                Some(Ok(f)) => {
                    let end = this.inner.is_end_stream();
                    if let Some(state) = this.state.as_mut() {
                        if let Some(data) = f.data_ref() {
                            state.add_body_bytes(data.remaining());
                        }
                        if end {
                            state.body_complete = true;
                        }
                    }
                    if end {
                        // Ends the span now rather than when the server gets round to dropping us.
                        this.state.take();
                    }
                }
                Some(Err(err)) => {
                    if let Some(mut state) = this.state.take() {
                        state.error_type = Some(Cow::Borrowed(crate::error::error_type_of(err, ERROR_TYPE_BODY_ERROR)));
                    }
                }
                None => {
                    if let Some(mut state) = this.state.take() {
                        state.body_complete = true;
                    }
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
