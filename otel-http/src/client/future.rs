use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::Response;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{ERROR_TYPE, HTTP_RESPONSE_STATUS_CODE, NETWORK_PROTOCOL_VERSION};
use otel_core::instruments::seconds;
use otel_core::status::{http_status_is_error, status_code_str, ERROR_TYPE_OTHER};
use pin_project_lite::pin_project;

use super::Shared;
use crate::attributes::protocol_version;
use crate::error::{as_dyn_error, error_type_of_dyn};

pub(crate) struct ClientState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: Context,
    pub(crate) start: Instant,
    pub(crate) metric_attrs: Vec<KeyValue>,
}

impl ClientState {
    fn finish(
        mut self,
        status: Option<u16>,
        version: Option<&'static str>,
        error: Option<(Cow<'static, str>, String)>,
    ) {
        let elapsed = self.start.elapsed();
        let error_type = match (&error, status) {
            (Some((t, _)), _) => Some(t.clone()),
            (None, Some(s)) if http_status_is_error(s, &SpanKind::Client) => Some(status_code_str(s)),
            _ => None,
        };
        let attrs = &mut self.metric_attrs;
        if let Some(s) = status {
            attrs.push(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
        }
        if let Some(e) = &error_type {
            attrs.push(KeyValue::new(ERROR_TYPE, e.clone()));
        }
        if let Some(v) = version {
            attrs.push(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
        }
        self.shared.duration.record(seconds(elapsed), attrs);

        let span = self.cx.span();
        if span.is_recording() {
            if let Some(s) = status {
                span.set_attribute(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, i64::from(s)));
            }
            if let Some(v) = version {
                span.set_attribute(KeyValue::new(NETWORK_PROTOCOL_VERSION, v));
            }
            if let Some(e) = error_type {
                // The status code says it all for HTTP errors; transport errors get their message.
                let description = error.map(|(_, message)| message).unwrap_or_default();
                span.set_status(Status::error(description));
                span.set_attribute(KeyValue::new(ERROR_TYPE, e));
            }
        }
        span.end();
    }
}

pin_project! {
    /// The response future of [`HttpClientService`](super::HttpClientService). It ends the span
    /// when the response headers arrive or the request fails; dropped before that, it ends the
    /// span with status Unset and no `error.type`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<ClientState>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                // Cancelled by the caller: not a failure (semconv §2.2), and not a completed
                // request either, so no duration is recorded.
                state.cx.span().end();
            }
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: ClientState) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.state.as_ref() {
            Some(state) => {
                let _guard = state.cx.clone().attach();
                this.inner.poll(cx)
            }
            None => this.inner.poll(cx),
        };
        let Poll::Ready(result) = polled else {
            return Poll::Pending;
        };
        if let Some(state) = this.state.take() {
            match &result {
                Ok(response) => state.finish(
                    Some(response.status().as_u16()),
                    protocol_version(response.version()),
                    None,
                ),
                Err(err) => {
                    let error = match as_dyn_error(err) {
                        Some(e) => (Cow::Borrowed(error_type_of_dyn(e, ERROR_TYPE_OTHER)), e.to_string()),
                        None => (Cow::Borrowed(ERROR_TYPE_OTHER), String::new()),
                    };
                    state.finish(None, None, Some(error));
                }
            }
        }
        Poll::Ready(result)
    }
}
