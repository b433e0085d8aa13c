//! The Prometheus scrape handler.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::task::{Context, Poll};

/// Renders the metrics of the Prometheus exporter in the text exposition format.
///
/// It is a `tower::Service` for any `http::Request`, so it mounts directly in tower-based
/// frameworks: `axum::Router::new().route_service("/metrics", handle)`. For other frameworks call
/// [`PrometheusHandle::render`] from a handler and answer with [`PrometheusHandle::CONTENT_TYPE`].
#[derive(Clone, Debug)]
pub struct PrometheusHandle {
    registry: prometheus::Registry,
}

impl PrometheusHandle {
    /// The `Content-Type` of [`PrometheusHandle::render`]'s output.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    pub(crate) fn new(registry: prometheus::Registry) -> Self {
        Self { registry }
    }

    /// The current metrics in the Prometheus text format. Encoding problems are reported as a
    /// comment line rather than failing the scrape.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let families = self.registry.gather();
        let mut buf = Vec::new();
        match prometheus::TextEncoder::new().encode(&families, &mut buf) {
            Ok(()) => String::from_utf8(buf).unwrap_or_else(|e| format!("# encoding error: {e}\n")),
            Err(e) => format!("# encoding error: {e}\n"),
        }
    }

    /// A complete `200 OK` response with the rendered metrics.
    pub fn response(&self) -> http::Response<String> {
        let mut res = http::Response::new(self.render());
        res.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(Self::CONTENT_TYPE),
        );
        res
    }
}

impl<B> tower_service::Service<http::Request<B>> for PrometheusHandle {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: http::Request<B>) -> Self::Future {
        ready(Ok(self.response()))
    }
}
