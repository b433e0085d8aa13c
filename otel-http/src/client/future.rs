use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{HeaderMap, Method, Response, Uri};
use opentelemetry::trace::{SpanBuilder, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_REQUEST_METHOD_ORIGINAL, HTTP_REQUEST_RESEND_COUNT,
    HTTP_RESPONSE_STATUS_CODE, NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_TEMPLATE,
};
use otelrs_core::instruments::seconds;
use otelrs_core::status::{http_status_is_error, status_code_str, ERROR_TYPE_OTHER};
use pin_project_lite::pin_project;

use super::Shared;
use crate::attributes::{client_server_address, protocol_version, redacted_url_full};
use crate::error::{as_dyn_error, error_type_of_dyn};

pub(crate) struct ClientState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: Context,
    pub(crate) start: Instant,
    pub(crate) metric_attrs: Vec<KeyValue>,
}

impl ClientState {
    /// Starts the `CLIENT` span under the current context with the sampling-relevant attributes
    /// and injects its context into `headers`.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        method: &Method,
        uri: &Uri,
        headers: &mut HeaderMap,
        template: Option<StringValue>,
        resend: u32,
    ) -> Self {
        let start = Instant::now();
        let method_name = shared.known_methods.normalize(method);

        let server = client_server_address(uri, headers);
        let mut attrs = Vec::with_capacity(7);
        attrs.push(KeyValue::new(
            HTTP_REQUEST_METHOD,
            Value::String(method_name.value.clone()),
        ));
        if method_name.is_other {
            attrs.push(KeyValue::new(HTTP_REQUEST_METHOD_ORIGINAL, method.as_str().to_owned()));
        }
        let mut metric_attrs = Vec::with_capacity(7);
        metric_attrs.push(KeyValue::new(
            HTTP_REQUEST_METHOD,
            Value::String(method_name.value.clone()),
        ));
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
        if let Some(url) = redacted_url_full(uri, headers) {
            attrs.push(KeyValue::new(URL_FULL, url));
        }
        if let Some(t) = &template {
            attrs.push(KeyValue::new(URL_TEMPLATE, Value::String(t.clone())));
        }
        if resend > 0 {
            attrs.push(KeyValue::new(HTTP_REQUEST_RESEND_COUNT, i64::from(resend)));
        }
        let name = match &template {
            Some(t) => format!("{} {}", method_name.span_name(), t.as_str()),
            None => method_name.span_name().to_owned(),
        };
        let parent = Context::current();
        let span = shared.tracer.build_with_context(
            SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attrs),
            &parent,
        );
        let cx = parent.with_span(span);
        shared.instrumentation.inject_http(&cx, headers);

        Self {
            shared: Arc::clone(shared),
            cx,
            start,
            metric_attrs,
        }
    }

    /// Ends the span of a request whose future was dropped before the response arrived: not
    /// a failure (semconv §2.2) and not a completed request, so no duration is recorded.
    pub(crate) fn cancel(self) {
        self.cx.span().end();
    }

    /// Ends the span and records the duration: the response status and protocol version, or the
    /// transport error's `error.type` and message.
    pub(crate) fn finish(
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
                state.cancel();
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
