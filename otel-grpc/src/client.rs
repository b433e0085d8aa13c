//! The client layer: a CLIENT span and `rpc.client.call.duration` per call, context injected into
//! the request metadata, ending when the response stream ends.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use http::{Request, Response};
use http_body::Body;
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{RPC_METHOD, RPC_METHOD_ORIGINAL, RPC_SYSTEM_NAME};
use otelrs_core::conv::ServerAddress;
use otelrs_core::Instrumentation;
use tower_layer::Layer;
use tower_service::Service;

use crate::attributes::{
    metadata_attribute, parse_grpc_timeout, MethodPath, OLD_RPC_SERVICE, OLD_RPC_SYSTEM, OTHER, RPC_SYSTEM_GRPC,
};
use crate::call::{CallState, Recognition, ResponseBody, ResponseFuture};
use crate::config::{Options, Role, SemconvMode, Shared};
use crate::filter::Filter;

/// A tower [`Layer`] that instruments a tonic client channel:
/// `ServiceBuilder::new().layer(GrpcClientLayer::new().with_target("http://[::1]:50051")).service(channel)`.
///
/// Each call gets a CLIENT span named after `rpc.method`, a child of the current context, whose
/// context is injected into the request metadata; and one `rpc.client.call.duration`
/// measurement. Both end when the response stream ends or is dropped. Every non-OK status is an
/// error (semconv's client rule).
///
/// tonic's generated clients send only the path through the layer (the channel adds scheme and
/// authority below it), so give the channel target with [`GrpcClientLayer::with_target`] or
/// [`GrpcClientLayer::with_endpoint`] to get `server.address` / `server.port`. A request URI that
/// does carry an authority (`with_origin`) is used when no target is configured.
#[derive(Clone, Default)]
pub struct GrpcClientLayer {
    options: Options,
    shared: OnceLock<Arc<Shared>>,
}

impl fmt::Debug for GrpcClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientLayer")
            .field("options", &self.options)
            .finish()
    }
}

impl GrpcClientLayer {
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

    /// The channel target, for `server.address` / `server.port` (semconv §4.1): `host:port`,
    /// `http(s)://host[:port]`, `dns://[authority]/host:port`, `unix:///path`; any other form is
    /// recorded whole as `server.address`, without a port.
    pub fn with_target(self, target: impl Into<String>) -> Self {
        let target = target.into();
        self.with(|o| o.target = Some(target))
    }

    /// The channel target taken from a tonic [`Endpoint`](tonic::transport::Endpoint).
    #[cfg(feature = "transport")]
    #[cfg_attr(docsrs, doc(cfg(feature = "transport")))]
    pub fn with_endpoint(self, endpoint: &tonic::transport::Endpoint) -> Self {
        self.with_target(endpoint.uri().to_string())
    }

    /// Instruments only the calls whose path (`/package.Service/Method`) passes `filter`; the
    /// others get no span and no metric, and no context is injected.
    pub fn with_filter(self, filter: Filter) -> Self {
        self.with(|o| o.filter = Some(filter))
    }

    /// Records these request metadata keys as `rpc.request.metadata.<key>` (string arrays). The
    /// values of sensitive keys (`authorization`, `cookie`, `x-api-key`, keys containing
    /// `token`, `secret`, `session`, ...: [`otelrs_core::conv::sensitive`]) are recorded as
    /// `REDACTED`, one per value, unless listed with `with_sensitive_metadata_exported`.
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

    fn shared(&self) -> Arc<Shared> {
        self.shared
            .get_or_init(|| Arc::new(Shared::new(Role::Client, &self.options)))
            .clone()
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcClientService {
            inner,
            shared: self.shared(),
        }
    }
}

/// The service made by [`GrpcClientLayer`].
#[derive(Clone)]
pub struct GrpcClientService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcClientService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientService").field("inner", &self.inner).finish()
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for GrpcClientService<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    S::Error: 'static,
    ResB: Body,
    ResB::Error: 'static,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let shared = &self.shared;
        if !shared.instrumented(req.uri().path()) {
            return ResponseFuture::new(self.inner.call(req), None);
        }
        let start = Instant::now();
        let method = MethodPath::parse(req.uri().path());
        let recognition = if method.is_well_formed() {
            Recognition::Yes
        } else {
            Recognition::No
        };
        let server_address = shared
            .target
            .clone()
            .or_else(|| req.uri().authority().and_then(|a| ServerAddress::parse(a.as_str())));

        let parent = Context::current();
        let dup = shared.dup();
        let mut attrs = Vec::with_capacity(8 + shared.request_metadata.len());
        attrs.push(KeyValue::new(RPC_SYSTEM_NAME, RPC_SYSTEM_GRPC));
        let name = if recognition == Recognition::Yes {
            attrs.push(KeyValue::new(RPC_METHOD, method.full.clone()));
            shared.span_name(&method.full)
        } else {
            attrs.push(KeyValue::new(RPC_METHOD, OTHER));
            attrs.push(KeyValue::new(RPC_METHOD_ORIGINAL, method.full.clone()));
            std::borrow::Cow::Borrowed(RPC_SYSTEM_GRPC)
        };
        if dup {
            attrs.push(KeyValue::new(OLD_RPC_SYSTEM, RPC_SYSTEM_GRPC));
            if let Some(service) = method.service() {
                attrs.push(KeyValue::new(OLD_RPC_SERVICE, service.to_owned()));
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
        let span = shared.tracer.build_with_context(
            shared
                .tracer
                .span_builder(name)
                .with_kind(SpanKind::Client)
                .with_attributes(attrs),
            &parent,
        );
        let cx = parent.with_span(span);
        shared.instrumentation.inject_http(&cx, req.headers_mut());

        let timeout = parse_grpc_timeout(req.headers());
        let state = CallState::new(shared.clone(), cx, start, method, recognition, server_address, timeout);
        ResponseFuture::new(self.inner.call(req), Some(state))
    }
}
