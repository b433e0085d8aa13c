//! `http.server.request.body.size` for the tower layer: [`RequestBodySizeLayer`] wraps the request
//! body in a [`CountingBody`] that adds the bytes the application reads to the request's counter.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};

use bytes::Buf;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

/// The request's body-byte counter, put into the request extensions by
/// [`HttpServerLayer`](super::HttpServerLayer) when `with_request_body_size(true)` is set.
#[derive(Clone, Debug)]
pub(crate) struct RequestBodyCounter(pub(crate) Arc<AtomicU64>);

/// Counts request body bytes for `http.server.request.body.size` (opt-in). Place it **inside**
/// an [`HttpServerLayer`](super::HttpServerLayer) built with
/// [`with_request_body_size(true)`](super::HttpServerLayer::with_request_body_size):
///
/// ```
/// use axum::{routing::post, Router};
/// use otelrs_http::server::RequestBodySizeLayer;
/// use otelrs_http::HttpServerLayer;
///
/// let app: Router = Router::new()
///     .route("/upload", post(|body: String| async move { body.len().to_string() }))
///     .layer(RequestBodySizeLayer::new())
///     .layer(HttpServerLayer::new().with_request_body_size(true));
/// ```
///
/// It changes the request body type to [`CountingBody<B>`], which is why it is a layer of its
/// own: the inner service must accept that body (axum's routes accept any `http_body::Body`;
/// `axum::body::Body::new` converts for services that want axum's `Body`). The bytes the
/// application reads up to the end of the request (the end of the response body) are recorded;
/// a request outside an [`HttpServerLayer`](super::HttpServerLayer) that records body sizes
/// passes through uncounted.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestBodySizeLayer {
    _private: (),
}

impl RequestBodySizeLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for RequestBodySizeLayer {
    type Service = RequestBodySizeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestBodySizeService { inner }
    }
}

/// The service produced by [`RequestBodySizeLayer`].
#[derive(Clone, Debug)]
pub struct RequestBodySizeService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RequestBodySizeService<S>
where
    S: Service<Request<CountingBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let counter = req.extensions_mut().remove::<RequestBodyCounter>().map(|c| {
            // Attached: the request's body size is recorded from now on.
            c.0.store(0, Ordering::Relaxed);
            c.0
        });
        self.inner.call(req.map(|inner| CountingBody { inner, counter }))
    }
}

pin_project! {
    /// A request body whose data bytes are counted as they are read; otherwise the inner body,
    /// unchanged.
    pub struct CountingBody<B> {
        #[pin]
        inner: B,
        counter: Option<Arc<AtomicU64>>,
    }
}

impl<B> CountingBody<B> {
    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body> Body for CountingBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let (Some(counter), Some(Ok(frame))) = (this.counter.as_ref(), &frame) {
            if let Some(data) = frame.data_ref() {
                counter.fetch_add(data.remaining() as u64, Ordering::Relaxed);
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
