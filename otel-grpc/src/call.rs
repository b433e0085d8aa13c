//! One call's telemetry state, the response future and the response body wrapper, shared by the
//! server and client layers.
//!
//! The state ends the span and records the duration exactly once: when the gRPC status is known
//! and the response stream is over, or when the future or body is dropped first.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, Response};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute::{
    RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_RESPONSE_STATUS_CODE, RPC_SYSTEM_NAME,
};
use otelrs_core::status::{grpc_code_is_error, grpc_code_name, record_failure_ref};
use pin_project_lite::pin_project;

use crate::attributes::{
    code_from_http_status, grpc_status, metadata_attribute, MethodPath, ServerAddress, OLD_RPC_GRPC_STATUS_CODE,
    OLD_RPC_SERVICE, OLD_RPC_SYSTEM, OTHER, RPC_SYSTEM_GRPC,
};
use crate::config::{DurationKey, Role, Shared};
use crate::error::{error_type_of, is_timeout_expired, status_code_in};

/// gRPC `CANCELLED`.
pub(crate) const CODE_CANCELLED: i32 = 1;
/// gRPC `UNKNOWN`.
pub(crate) const CODE_UNKNOWN: i32 = 2;
/// gRPC `DEADLINE_EXCEEDED`.
pub(crate) const CODE_DEADLINE_EXCEEDED: i32 = 4;
/// gRPC `UNIMPLEMENTED`.
pub(crate) const CODE_UNIMPLEMENTED: i32 = 12;

/// A call dropped within this margin of its deadline counts as having hit it: tonic's
/// `GrpcTimeout` starts its timer a moment before this layer reads the clock.
const DEADLINE_SLACK: Duration = Duration::from_millis(5);

/// Whether the method is recognised (semconv `rpc.method` vs `_OTHER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recognition {
    Yes,
    No,
    /// Server without a configured service list: decided at the end, a trailers-only
    /// UNIMPLEMENTED meaning the router did not know the method.
    Pending,
}

pub(crate) struct CallState {
    shared: Arc<Shared>,
    pub(crate) cx: Context,
    start: Instant,
    method: MethodPath,
    recognition: Recognition,
    server_address: Option<ServerAddress>,
    deadline: Option<Instant>,
    code: Option<i32>,
    code_from_headers: bool,
    error_type: Option<Cow<'static, str>>,
    /// Response metadata keys already captured from the headers (only when configured).
    response_metadata_seen: Vec<bool>,
    finished: bool,
    /// What the application's metric-attributes hook added (server; empty without one).
    pub(crate) metric_attributes: Vec<KeyValue>,
}

impl CallState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<Shared>,
        cx: Context,
        start: Instant,
        method: MethodPath,
        recognition: Recognition,
        server_address: Option<ServerAddress>,
        timeout: Option<Duration>,
    ) -> Self {
        let deadline = timeout.and_then(|t| start.checked_add(t));
        let response_metadata_seen = vec![false; shared.response_metadata.len()];
        Self {
            shared,
            cx,
            start,
            method,
            recognition,
            server_address,
            deadline,
            code: None,
            code_from_headers: false,
            error_type: None,
            response_metadata_seen,
            finished: false,
            metric_attributes: Vec::new(),
        }
    }

    fn kind(&self) -> SpanKind {
        match self.shared.role {
            Role::Server => SpanKind::Server,
            Role::Client => SpanKind::Client,
        }
    }

    /// Reads the response head: a trailers-only status, or one implied by a non-200 HTTP status,
    /// and the configured response metadata.
    fn on_response_head(&mut self, status: http::StatusCode, headers: &HeaderMap) {
        if let Some(code) = grpc_status(headers) {
            self.code = Some(code);
            self.code_from_headers = true;
        } else if status != http::StatusCode::OK {
            self.code = Some(code_from_http_status(status));
            self.code_from_headers = true;
        }
        self.capture_response_metadata(headers);
    }

    /// Adds what the application's response hook computes from the response head to the span.
    fn on_response_parts(&self, head: &http::response::Parts) {
        if let Some(hook) = &self.shared.hooks.response_span {
            let span = self.cx.span();
            if span.is_recording() {
                let mut attrs = Vec::new();
                hook.collect(head, &mut attrs);
                span.set_attributes(attrs);
            }
        }
    }

    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if self.code.is_none() {
            self.code = grpc_status(trailers);
        }
        self.capture_response_metadata(trailers);
    }

    fn capture_response_metadata(&mut self, headers: &HeaderMap) {
        if self.shared.response_metadata.is_empty() {
            return;
        }
        let span = self.cx.span();
        if !span.is_recording() {
            return;
        }
        for (key, seen) in self
            .shared
            .response_metadata
            .iter()
            .zip(self.response_metadata_seen.iter_mut())
        {
            if *seen {
                continue;
            }
            if let Some(kv) = metadata_attribute(headers, key) {
                *seen = true;
                span.set_attribute(kv);
            }
        }
    }

    /// The service (inner future) failed before producing a response.
    fn on_service_error<E: 'static>(&mut self, err: &E) {
        match (status_code_in(err), self.shared.role) {
            (Some(code), _) => self.code = Some(code),
            // tonic's server turns any other error into UNKNOWN (`RecoverError`).
            (None, Role::Server) => self.code = Some(CODE_UNKNOWN),
            // The channel enforces the deadline itself; gRPC calls that DEADLINE_EXCEEDED (tonic
            // hands the caller CANCELLED).
            (None, Role::Client) if is_timeout_expired(err) => self.code = Some(CODE_DEADLINE_EXCEEDED),
            (None, Role::Client) => self.error_type = Some(Cow::Borrowed(error_type_of(err, "transport"))),
        }
    }

    fn on_body_error<E: 'static>(&mut self, err: &E) {
        match status_code_in(err) {
            Some(code) => self.code = Some(code),
            None => self.error_type = Some(Cow::Borrowed(error_type_of(err, "body_error"))),
        }
    }

    /// The stream ended without trailers: a status from the head stands; otherwise the call ended
    /// with no status at all, which gRPC clients read as UNKNOWN.
    fn on_end_of_stream(&mut self) {
        if self.code.is_none() && self.error_type.is_none() {
            self.code = Some(CODE_UNKNOWN);
        }
    }

    /// The outcome of a call dropped before it had a status: DEADLINE_EXCEEDED if its deadline had
    /// passed, CANCELLED otherwise.
    fn dropped_code(&self, now: Instant) -> i32 {
        if self.deadline_passed(now) {
            CODE_DEADLINE_EXCEEDED
        } else {
            CODE_CANCELLED
        }
    }

    fn deadline_passed(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| now + DEADLINE_SLACK >= deadline)
    }

    pub(crate) fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(self.start);
        let kind = self.kind();
        let code = match (self.code, &self.error_type) {
            // tonic's server answers an expired `grpc-timeout` with CANCELLED; a client whose
            // deadline has passed records what it means, as it does when its own timer fires.
            (Some(CODE_CANCELLED), _) if self.shared.role == Role::Client && self.deadline_passed(now) => {
                Some(CODE_DEADLINE_EXCEEDED)
            }
            (Some(code), _) => Some(code),
            (None, Some(_)) => None,
            (None, None) => Some(self.dropped_code(now)),
        };
        let recognised = match self.recognition {
            Recognition::Yes => true,
            Recognition::No => false,
            Recognition::Pending => !(code == Some(CODE_UNIMPLEMENTED) && self.code_from_headers),
        };
        let method_value = if recognised {
            Value::from(self.method.full.clone())
        } else {
            Value::from(OTHER)
        };
        let dup = self.shared.dup();

        let span = self.cx.span();
        let recording = span.is_recording();
        if recording {
            if self.recognition == Recognition::Pending {
                span.set_attribute(KeyValue::new(RPC_METHOD, method_value.clone()));
                if recognised {
                    if dup {
                        if let Some(service) = self.method.service() {
                            span.set_attribute(KeyValue::new(OLD_RPC_SERVICE, service.to_owned()));
                        }
                    }
                } else {
                    span.set_attribute(KeyValue::new(RPC_METHOD_ORIGINAL, self.method.full.clone()));
                    span.update_name(RPC_SYSTEM_GRPC);
                }
            }
            if let Some(code) = code {
                span.set_attribute(KeyValue::new(RPC_RESPONSE_STATUS_CODE, grpc_code_name(code)));
                if dup {
                    span.set_attribute(KeyValue::new(OLD_RPC_GRPC_STATUS_CODE, i64::from(code)));
                }
            }
        }
        let error_type: Option<Cow<'static, str>> = match (self.error_type.take(), code) {
            (Some(e), _) => Some(e),
            (None, Some(code)) if grpc_code_is_error(code, &kind) => Some(Cow::Borrowed(grpc_code_name(code))),
            _ => None,
        };
        let error_kv = error_type.as_ref().map(|e| record_failure_ref(&span, e.clone(), None));
        span.end();

        // `server.*` is Opt-In on the server metric (not emitted) and Recommended on the client's.
        let server = match self.shared.role {
            Role::Client => self.server_address.as_ref(),
            Role::Server => None,
        };
        let key = DurationKey {
            method: recognised.then(|| self.method.full.clone()),
            code,
            error_type,
            server: server.map(|a| (a.address.clone(), a.port)),
        };
        let attributes = || {
            let mut attrs = Vec::with_capacity(7);
            attrs.push(KeyValue::new(RPC_SYSTEM_NAME, RPC_SYSTEM_GRPC));
            attrs.push(KeyValue::new(RPC_METHOD, method_value));
            if let Some(code) = code {
                attrs.push(KeyValue::new(RPC_RESPONSE_STATUS_CODE, grpc_code_name(code)));
            }
            if let Some(kv) = &error_kv {
                attrs.push(kv.clone());
            }
            if let Some(addr) = server {
                addr.push_attributes(&mut attrs);
            }
            attrs
        };
        if self.metric_attributes.is_empty() {
            self.shared.duration.record(&key, elapsed.as_secs_f64(), attributes);
        } else {
            self.shared
                .duration
                .record_extended(elapsed.as_secs_f64(), attributes(), &self.metric_attributes);
        }

        if let Some(old) = &self.shared.old_duration {
            let (service, method) = match (recognised, self.method.service(), self.method.method()) {
                (true, Some(s), Some(m)) => (Value::from(s.to_owned()), Value::from(m.to_owned())),
                _ => (Value::from(OTHER), Value::from(OTHER)),
            };
            let mut old_attrs = Vec::with_capacity(6);
            old_attrs.push(KeyValue::new(OLD_RPC_SYSTEM, RPC_SYSTEM_GRPC));
            old_attrs.push(KeyValue::new(OLD_RPC_SERVICE, service));
            old_attrs.push(KeyValue::new(RPC_METHOD, method));
            if let Some(code) = code {
                old_attrs.push(KeyValue::new(OLD_RPC_GRPC_STATUS_CODE, i64::from(code)));
            }
            if let Some(kv) = error_kv {
                old_attrs.push(kv);
            }
            if self.shared.role == Role::Client {
                if let Some(addr) = &self.server_address {
                    addr.push_attributes(&mut old_attrs);
                }
            }
            old.record(elapsed.as_secs_f64() * 1000.0, &old_attrs);
        }
    }
}

impl Drop for CallState {
    fn drop(&mut self) {
        self.finish();
    }
}

pin_project! {
    /// The response future of [`GrpcServerService`](crate::GrpcServerService) and
    /// [`GrpcClientService`](crate::GrpcClientService): the inner future, whose response is
    /// returned unchanged apart from its body being wrapped in [`ResponseBody`].
    ///
    /// Dropping it before it completes ends the call as cancelled (see the crate docs).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        state: Option<CallState>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, state: Option<CallState>) -> Self {
        Self { inner, state }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    B::Error: 'static,
    E: 'static,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(mut state) = this.state.take() else {
            return Poll::Ready(result.map(|res| res.map(ResponseBody::passthrough)));
        };
        match result {
            Ok(res) => {
                state.on_response_head(res.status(), res.headers());
                let (parts, body) = res.into_parts();
                state.on_response_parts(&parts);
                let body = if state.code_from_headers && body.is_end_stream() {
                    // Trailers-only response with an empty body: the call is over.
                    state.finish();
                    ResponseBody::passthrough(body)
                } else {
                    ResponseBody::new(body, state)
                };
                Poll::Ready(Ok(Response::from_parts(parts, body)))
            }
            Err(err) => {
                state.on_service_error(&err);
                state.finish();
                Poll::Ready(Err(err))
            }
        }
    }
}

pin_project! {
    /// The response body of the instrumented services: the inner body, unchanged, whose end
    /// (trailers, end of stream, error or drop) ends the call's span and duration.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<CallState>,
    }
}

impl<B> ResponseBody<B> {
    fn new(inner: B, state: CallState) -> Self {
        Self {
            inner,
            state: Some(state),
        }
    }

    fn passthrough(inner: B) -> Self {
        Self { inner, state: None }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("instrumented", &self.state.is_some())
            .finish_non_exhaustive()
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
        let frame = match this.state.as_ref() {
            // On a server, polling the body runs the handler's response stream: keep the call's
            // context current so spans it starts are children of the server span.
            Some(state) if state.shared.role == Role::Server => {
                let _guard = state.cx.clone().attach();
                ready!(this.inner.as_mut().poll_frame(cx))
            }
            _ => ready!(this.inner.as_mut().poll_frame(cx)),
        };
        if let Some(state) = this.state.as_mut() {
            let over = match &frame {
                Some(Ok(f)) => {
                    if let Some(trailers) = f.trailers_ref() {
                        state.on_trailers(trailers);
                    }
                    // Trailers are the last frame of a gRPC response.
                    f.is_trailers() || this.inner.is_end_stream()
                }
                Some(Err(err)) => {
                    state.on_body_error(err);
                    true
                }
                None => {
                    state.on_end_of_stream();
                    true
                }
            };
            if over {
                if let Some(mut state) = this.state.take() {
                    if state.code.is_none() && state.error_type.is_none() {
                        state.on_end_of_stream();
                    }
                    state.finish();
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
