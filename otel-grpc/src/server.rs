//! The server layer: a SERVER span and `rpc.server.call.duration` per call, from the request to
//! the end of the response stream.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use http_body::Body;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_SYSTEM_NAME};
use otelrs_core::conv::ServerAddress;
use otelrs_core::{AttributesFn, Instrumentation};
use tower_layer::Layer;
use tower_service::Service;

use crate::attributes::{
    metadata_attribute, parse_grpc_timeout, MethodPath, OLD_RPC_SERVICE, OLD_RPC_SYSTEM, OTHER, RPC_SYSTEM_GRPC,
};
use crate::call::{CallState, Recognition, ResponseBody, ResponseFuture};
use crate::config::{Options, Role, SemconvMode, Shared};
use crate::filter::Filter;

/// A tower [`Layer`] that instruments a tonic server:
/// `Server::builder().layer(GrpcServerLayer::new()).add_service(...)`.
///
/// Each call gets a SERVER span named after `rpc.method` (`package.Service/Method`, or `grpc` for
/// an unrecognised method), with the parent extracted from the request metadata, and one
/// `rpc.server.call.duration` measurement. Both end when the response stream ends (trailers
/// sent) or is dropped. See the crate documentation for the attributes and outcomes.
///
/// The tracer and instruments are created once, when the layer first wraps a service.
#[derive(Clone, Default)]
pub struct GrpcServerLayer {
    options: Options,
    shared: OnceLock<Arc<Shared>>,
}

impl fmt::Debug for GrpcServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerLayer")
            .field("options", &self.options)
            .finish()
    }
}

impl GrpcServerLayer {
    /// A layer using the global providers and propagator, instrumenting every call.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(&mut self.options);
        self.shared = OnceLock::new();
        self
    }

    /// Uses these providers and propagator instead of the globals.
    pub fn with_instrumentation(self, instrumentation: Instrumentation) -> Self {
        self.with(|o| o.instrumentation = instrumentation)
    }

    /// Instruments only the calls whose path (`/package.Service/Method`) passes `filter`; the
    /// others get no span and no metric. See [`filter`](crate::filter).
    pub fn with_filter(self, filter: Filter) -> Self {
        self.with(|o| o.filter = Some(filter))
    }

    /// The services this server registers (`NamedService::NAME`, e.g. `shop.v1.Orders`).
    ///
    /// With a list, a method is recognised iff its service is listed, decided when the call
    /// starts, so `rpc.method` is visible to samplers. Without one, `rpc.method` is decided when
    /// the call ends: a trailers-only `UNIMPLEMENTED` response (what tonic's router answers for
    /// unknown paths) marks the method unrecognised (`_OTHER`, span name `grpc`).
    pub fn with_services<I, S>(self, services: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set: HashSet<String> = services.into_iter().map(Into::into).collect();
        self.with(|o| o.known_services = Some(set))
    }

    /// Records these request metadata keys as `rpc.request.metadata.<key>` (string arrays). The
    /// values of sensitive keys (`authorization`, `cookie`, `x-api-key`, keys containing
    /// `token`, `secret`, `session`, ...: [`otelrs_core::conv::sensitive`]) are recorded as
    /// `REDACTED`, one per value, unless listed with `with_sensitive_metadata_exported`.
    /// Nothing is recorded unless configured.
    pub fn with_request_metadata<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        self.with(|o| o.request_metadata = keys)
    }

    /// Records these response metadata keys (from the response headers or trailers) as
    /// `rpc.response.metadata.<key>` (string arrays); sensitive keys as `REDACTED`, as for the
    /// request metadata.
    pub fn with_response_metadata<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        self.with(|o| o.response_metadata = keys)
    }

    /// Records the values of these sensitive metadata keys as sent when they are captured
    /// (request or response; case-insensitive). By default every captured sensitive key is
    /// recorded as `REDACTED`. What you give up: the credentials in these keys reach the
    /// telemetry backend; list only keys whose values are not secrets in your application.
    pub fn with_sensitive_metadata_exported<I, S>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        self.with(|o| o.sensitive_exported = keys)
    }

    /// Which semconv names to emit; by default read from `OTEL_SEMCONV_STABILITY_OPT_IN`
    /// ([`SemconvMode::from_env`]) when the layer is built.
    pub fn with_semconv_mode(self, mode: SemconvMode) -> Self {
        self.with(|o| o.mode = Some(mode))
    }

    /// The server-wide timeout given to `tonic::transport::Server::timeout`, if any. A call
    /// dropped at its deadline (the shorter of this and the client's `grpc-timeout`) is recorded
    /// as `DEADLINE_EXCEEDED` rather than `CANCELLED`.
    pub fn with_server_timeout(self, timeout: Duration) -> Self {
        self.with(|o| o.server_timeout = Some(timeout))
    }

    /// Adds the attributes `hook` computes from the request head (path, metadata as HTTP/2
    /// headers) to the call's span, at its start (so samplers see them). Bounded per call (see
    /// [`AttributesFn`]).
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use otelrs_core::AttributesFn;
    ///
    /// let layer = otelrs_grpc::GrpcServerLayer::new().with_span_attributes(AttributesFn::new(
    ///     |request: &http::request::Parts, out: &mut Vec<KeyValue>| {
    ///         if let Some(tenant) = request.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///             out.push(KeyValue::new("app.tenant", tenant.to_owned()));
    ///         }
    ///     },
    /// ));
    /// ```
    pub fn with_span_attributes(self, hook: AttributesFn<http::request::Parts>) -> Self {
        self.with(|o| o.hooks.span = Some(hook))
    }

    /// Adds the attributes `hook` computes from the response head (initial metadata as HTTP/2
    /// headers; the status usually follows in the trailers and is recorded by the layer) to the
    /// call's span. Bounded per call (see [`AttributesFn`]).
    pub fn with_response_span_attributes(self, hook: AttributesFn<http::response::Parts>) -> Self {
        self.with(|o| o.hooks.response_span = Some(hook))
    }

    /// Adds the attributes `hook` computes from the request head to the call's
    /// `rpc.server.call.duration` point, separately from the span.
    ///
    /// **Cardinality**: every distinct value makes its own time series. Return only values from
    /// a small fixed set (a tenant tier, a client kind), never ids or names. The SDK caps the
    /// series per instrument (then reports an overflow series), which bounds memory, not cost.
    pub fn with_metric_attributes(self, hook: AttributesFn<http::request::Parts>) -> Self {
        self.with(|o| o.hooks.metric = Some(hook))
    }

    fn shared(&self) -> Arc<Shared> {
        self.shared
            .get_or_init(|| Arc::new(Shared::new(Role::Server, &self.options)))
            .clone()
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcServerService {
            inner,
            shared: self.shared(),
        }
    }
}

/// The service made by [`GrpcServerLayer`].
#[derive(Clone)]
pub struct GrpcServerService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcServerService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerService").field("inner", &self.inner).finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcServerService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
    ResB: Body,
    ResB::Error: 'static,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<WithContext<S::Future>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let shared = &self.shared;
        let path = req.uri().path();
        if !shared.instrumented(path) {
            let cx = Context::current();
            return ResponseFuture::new(self.inner.call(req).with_context(cx), None);
        }
        let start = Instant::now();
        let method = MethodPath::parse(path);
        let recognition = match (&shared.known_services, method.service()) {
            (Some(known), Some(service)) if known.contains(service) => Recognition::Yes,
            (Some(_), _) => Recognition::No,
            (None, Some(_)) => Recognition::Pending,
            (None, None) => Recognition::No,
        };
        let server_address = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()))
            .and_then(ServerAddress::parse);

        let parent = shared
            .instrumentation
            .extract_http_with_context(&Context::current(), req.headers());

        let name = match recognition {
            Recognition::No => std::borrow::Cow::Borrowed(RPC_SYSTEM_GRPC),
            _ => shared.span_name(&method.full),
        };
        let dup = shared.dup();
        let mut attrs = Vec::with_capacity(8 + shared.request_metadata.len());
        attrs.push(KeyValue::new(RPC_SYSTEM_NAME, RPC_SYSTEM_GRPC));
        match recognition {
            Recognition::Yes => attrs.push(KeyValue::new(RPC_METHOD, method.full.clone())),
            Recognition::No => {
                attrs.push(KeyValue::new(RPC_METHOD, OTHER));
                attrs.push(KeyValue::new(RPC_METHOD_ORIGINAL, method.full.clone()));
            }
            Recognition::Pending => {}
        }
        if dup {
            attrs.push(KeyValue::new(OLD_RPC_SYSTEM, RPC_SYSTEM_GRPC));
            if recognition == Recognition::Yes {
                if let Some(service) = method.service() {
                    attrs.push(KeyValue::new(OLD_RPC_SERVICE, service.to_owned()));
                }
            }
        }
        if let Some(addr) = &server_address {
            addr.push_attributes(&mut attrs);
        }
        for key in &shared.request_metadata {
            if let Some(kv) = metadata_attribute(req.headers(), key) {
                attrs.push(kv);
            }
        }
        let mut metric_attributes = Vec::new();
        let req = if shared.hooks.span.is_some() || shared.hooks.metric.is_some() {
            let (parts, body) = req.into_parts();
            if let Some(hook) = &shared.hooks.span {
                hook.collect(&parts, &mut attrs);
            }
            if let Some(hook) = &shared.hooks.metric {
                hook.collect(&parts, &mut metric_attributes);
            }
            Request::from_parts(parts, body)
        } else {
            req
        };
        #[allow(unused_mut)] // set only with the `transport` feature
        let mut span = shared.tracer.build_with_context(
            shared
                .tracer
                .span_builder(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attrs),
            &parent,
        );
        // Not sampling-relevant: formatted only for spans that record.
        #[cfg(feature = "transport")]
        if opentelemetry::trace::Span::is_recording(&span) {
            if let Some(peer) = req
                .extensions()
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|i| i.remote_addr())
            {
                use opentelemetry::trace::Span as _;
                use opentelemetry_semantic_conventions::attribute::{NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT};
                span.set_attribute(KeyValue::new(NETWORK_PEER_ADDRESS, peer.ip().to_string()));
                span.set_attribute(KeyValue::new(NETWORK_PEER_PORT, i64::from(peer.port())));
            }
        }
        let cx = parent.with_span(span);

        let timeout = match (parse_grpc_timeout(req.headers()), shared.server_timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut state = CallState::new(
            shared.clone(),
            cx.clone(),
            start,
            method,
            recognition,
            server_address,
            timeout,
        );
        state.metric_attributes = metric_attributes;
        ResponseFuture::new(self.inner.call(req).with_context(cx), Some(state))
    }
}
