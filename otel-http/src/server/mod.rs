//! HTTP server instrumentation as a tower [`Layer`].
//!
//! [`HttpServerLayer`] wraps any `Service<http::Request<B>, Response = http::Response<R>>`: an
//! axum `Router` (`Router::new()...layer(HttpServerLayer::new())`), a hyper service through
//! `hyper_util::service::TowerToHyperService`, or any tower stack.
//!
//! Per request it
//! * extracts the parent context from the headers with the configured propagator,
//! * starts a `SERVER` span named `{method} {http.route}` (or `{method}`; `HTTP` for `_OTHER`)
//!   with the sampling-relevant attributes of semconv §2.3,
//! * attaches the OTel [`Context`](opentelemetry::Context) holding that span while the inner
//!   service is called and polled, so `Context::current()` in handlers is the server span,
//! * ends the span and records `http.server.request.duration` when the response **body** has
//!   been sent completely (or dropped), not when the headers are returned,
//! * keeps `http.server.active_requests` (incremented and decremented with the same attributes).
//!
//! # `error.type` values
//!
//! | Value | When | Status code attribute |
//! | --- | --- | --- |
//! | the status code (`"500"`, `"503"`, ...) | the response status is 5xx | yes |
//! | [`ERROR_TYPE_PANIC`] (`panic`) | the inner service panicked while being called or polled; the panic is resumed unchanged after the span ends | no |
//! | [`ERROR_TYPE_CANCELLED`] (`cancelled`) | the response future was dropped before it produced a response (the client went away, an outer timeout fired) | no |
//! | [`ERROR_TYPE_BODY_INCOMPLETE`] (`response_body_incomplete`) | the response body was dropped before its end (client disconnected mid-response) | yes |
//! | an I/O kind (`connection_reset`, `broken_pipe`, `timeout`, ...) | the inner service or the response body failed with an error whose source chain holds a `std::io::Error` (see [`otelrs_core::conv::io_error_type`]) | body errors: yes |
//! | [`ERROR_TYPE_BODY_ERROR`] (`response_body_error`) | the response body failed with any other error | yes |
//! | `_OTHER` | the inner service returned any other error | no |
//!
//! A 4xx response is not an error on the server: the status stays Unset and no `error.type` is
//! set.
//!
//! The actix-web middleware (`otelrs_http::actix`, feature `actix-web`) shares this request state
//! (`state.rs`) and so these rules and values.

mod body;
mod future;
mod request_body;
mod reuse;
mod service;
pub(crate) mod state;
mod trace_response;

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use opentelemetry::metrics::{Histogram, UpDownCounter};
use opentelemetry_semantic_conventions::metric::{
    HTTP_SERVER_ACTIVE_REQUESTS, HTTP_SERVER_REQUEST_BODY_SIZE, HTTP_SERVER_REQUEST_DURATION,
    HTTP_SERVER_RESPONSE_BODY_SIZE,
};
use otelrs_core::hotpath::intern::Interner;
use otelrs_core::hotpath::BoundInstruments;
use otelrs_core::{instruments, AttributesFn, Instrumentation, Tracer};
use tower_layer::Layer;

use crate::attributes::{HeaderCapture, HeaderSide, KnownMethods};
use crate::filter::Filter;
use state::{ActiveKey, MetricKey};
use trace_response::TraceResponse;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub(crate) use request_body::RequestBodyCounter;
pub use request_body::{CountingBody, RequestBodySizeLayer, RequestBodySizeService};
pub use service::HttpServerService;
pub use trace_response::TraceResponseHeader;

// The outcomes every adapter shares are defined once in otelrs-core.
pub use otelrs_core::conv::{ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};
/// `error.type` of a response whose body was dropped before it was sent completely.
pub const ERROR_TYPE_BODY_INCOMPLETE: &str = "response_body_incomplete";
/// `error.type` of a response whose body failed with an error that is not an I/O error.
pub const ERROR_TYPE_BODY_ERROR: &str = "response_body_error";

/// Builds a span name from the `{method}` part (`GET`, or `HTTP` for `_OTHER`) and the route.
type SpanNameFn = dyn Fn(&str, Option<&str>) -> String + Send + Sync;

/// The default span name: `{method} {route}` or `{method}`.
pub fn default_span_name(method: &str, route: Option<&str>) -> String {
    match route {
        Some(r) => {
            let mut s = String::with_capacity(method.len() + 1 + r.len());
            s.push_str(method);
            s.push(' ');
            s.push_str(r);
            s
        }
        None => method.to_owned(),
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) instrumentation: Instrumentation,
    pub(crate) tracer: Tracer,
    pub(crate) duration: Arc<BoundInstruments<Histogram<f64>, MetricKey, f64>>,
    pub(crate) active: Arc<BoundInstruments<UpDownCounter<i64>, ActiveKey, i64>>,
    pub(crate) response_body_size: Arc<BoundInstruments<Histogram<u64>, MetricKey, u64>>,
    pub(crate) request_body_size: Arc<BoundInstruments<Histogram<u64>, MetricKey, u64>>,
    pub(crate) known_methods: KnownMethods,
    pub(crate) filter: Option<Filter>,
    pub(crate) span_name: Option<Arc<SpanNameFn>>,
    pub(crate) public_endpoint: bool,
    pub(crate) request_headers: HeaderCapture,
    pub(crate) response_headers: HeaderCapture,
    pub(crate) server_address_on_metrics: bool,
    pub(crate) record_response_body_size: bool,
    pub(crate) record_request_body_size: bool,
    pub(crate) route_handle: bool,
    pub(crate) trace_response: TraceResponse,
    pub(crate) span_attributes: Option<AttributesFn<Parts>>,
    pub(crate) response_span_attributes: Option<AttributesFn<http::response::Parts>>,
    pub(crate) metric_attributes: Option<AttributesFn<Parts>>,
    /// Span names `{method} {route}` interned as `&'static str` (bounded); the route value is
    /// the name's suffix, so one entry serves both.
    pub(crate) names: Arc<Interner<&'static str>>,
    /// Short, repeating request values (server host names, user agents) interned as
    /// `&'static str` (bounded).
    pub(crate) values: Arc<Interner<&'static str>>,
}

/// How many distinct routes and span names are interned per layer.
const INTERN_CAPACITY: usize = 1024;

impl Shared {
    /// The tracer and instruments of `instrumentation`, with default options.
    fn new(instrumentation: Instrumentation) -> Self {
        let (tracer, meter) = instrumentation.tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        let duration = instruments::duration_histogram(
            &meter,
            HTTP_SERVER_REQUEST_DURATION,
            "Duration of HTTP server requests.",
            &instruments::DURATION_BUCKETS,
        );
        let active = instruments::up_down_counter(
            &meter,
            HTTP_SERVER_ACTIVE_REQUESTS,
            "{request}",
            "Number of active HTTP server requests.",
        );
        let response_body_size = instruments::size_histogram(
            &meter,
            HTTP_SERVER_RESPONSE_BODY_SIZE,
            "Size of HTTP server response bodies.",
        );
        let request_body_size = instruments::size_histogram(
            &meter,
            HTTP_SERVER_REQUEST_BODY_SIZE,
            "Size of HTTP server request bodies.",
        );
        // Bound instruments per attribute combination skip the SDK's attribute hashing.
        let capacity = instrumentation.bound_instrument_capacity();
        Shared {
            instrumentation,
            tracer,
            duration: Arc::new(BoundInstruments::new(duration, capacity)),
            active: Arc::new(BoundInstruments::new(active, capacity)),
            response_body_size: Arc::new(BoundInstruments::new(response_body_size, capacity)),
            request_body_size: Arc::new(BoundInstruments::new(request_body_size, capacity)),
            known_methods: KnownMethods::from_env(),
            filter: None,
            span_name: None,
            public_endpoint: false,
            request_headers: HeaderCapture::default(),
            response_headers: HeaderCapture::default(),
            server_address_on_metrics: false,
            record_response_body_size: false,
            record_request_body_size: false,
            route_handle: false,
            trace_response: TraceResponse::default(),
            span_attributes: None,
            response_span_attributes: None,
            metric_attributes: None,
            names: Arc::new(Interner::new(INTERN_CAPACITY)),
            values: Arc::new(Interner::new(INTERN_CAPACITY)),
        }
    }
}

/// Instruments an HTTP server: spans, metrics and context propagation per semantic conventions
/// 1.42. See the [module docs](self) for the behaviour and the `error.type` values.
///
/// ```
/// use axum::{routing::get, Router};
/// use otelrs_http::HttpServerLayer;
///
/// let app: Router = Router::new()
///     .route("/users/{id}", get(|| async { "user" }))
///     .layer(HttpServerLayer::new());
/// ```
///
/// Options are builder methods; instruments and the tracer are created once, when the layer is
/// constructed ([`HttpServerLayer::new`] or [`HttpServerLayer::with_instrumentation`]).
#[derive(Clone)]
pub struct HttpServerLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for HttpServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerLayer")
            .field("instrumentation", &self.shared.instrumentation)
            .field("known_methods", &self.shared.known_methods)
            .field("filter", &self.shared.filter)
            .field("custom_span_name", &self.shared.span_name.is_some())
            .field("public_endpoint", &self.shared.public_endpoint)
            .field("request_headers", &self.shared.request_headers)
            .field("response_headers", &self.shared.response_headers)
            .field("server_address_on_metrics", &self.shared.server_address_on_metrics)
            .field("record_response_body_size", &self.shared.record_response_body_size)
            .field("record_request_body_size", &self.shared.record_request_body_size)
            .field("route_handle", &self.shared.route_handle)
            .finish()
    }
}

impl Default for HttpServerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpServerLayer {
    /// A layer using the global tracer provider, meter provider and propagator.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new(Instrumentation::new())),
        }
    }

    /// Uses the providers and propagator of `instrumentation` (globals for what it does not
    /// set) instead of the globals. Creates the tracer and instruments again; the other options
    /// are kept.
    pub fn with_instrumentation(mut self, instrumentation: Instrumentation) -> Self {
        let fresh = Shared::new(instrumentation);
        let shared = self.shared_mut();
        shared.instrumentation = fresh.instrumentation;
        shared.tracer = fresh.tracer;
        shared.duration = fresh.duration;
        shared.active = fresh.active;
        shared.response_body_size = fresh.response_body_size;
        shared.request_body_size = fresh.request_body_size;
        self
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Instruments only the requests `filter` matches; the others get neither span nor metrics.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.shared_mut().filter = Some(filter);
        self
    }

    /// Names spans with `f(method, route)` instead of `{method} {route}` / `{method}`. `method` is
    /// already normalised (`HTTP` for unknown methods); `route` is a template or `None`, never a
    /// raw path. Called at span start and again at the end if the route changed.
    pub fn with_span_name_formatter<F>(mut self, f: F) -> Self
    where
        F: Fn(&str, Option<&str>) -> String + Send + Sync + 'static,
    {
        self.shared_mut().span_name = Some(Arc::new(f));
        self
    }

    /// Public-endpoint mode: the incoming trace context is not trusted as parent. Each request
    /// starts a new root span with a link to the incoming span context (if valid); baggage is
    /// still extracted.
    pub fn with_public_endpoint(mut self, public: bool) -> Self {
        self.shared_mut().public_endpoint = public;
        self
    }

    /// Captures these request headers as `http.request.header.<name>` string arrays (opt-in).
    /// They are set at span start, so samplers see them. The values of sensitive headers
    /// (`Authorization`, `Cookie`, `X-API-Key`, names containing `token`, `secret`, `session`,
    /// ...: [`otelrs_core::conv::sensitive`]) are recorded as `REDACTED`, one per value, unless
    /// listed with [`HttpServerLayer::with_sensitive_headers_exported`].
    pub fn with_request_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.shared_mut().request_headers.set_names(HeaderSide::Request, names);
        self
    }

    /// Captures these response headers as `http.response.header.<name>` string arrays (opt-in);
    /// sensitive ones (`Set-Cookie`, `WWW-Authenticate`, ...) as `REDACTED`, as for
    /// [`HttpServerLayer::with_request_headers`].
    pub fn with_response_headers<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        self.shared_mut()
            .response_headers
            .set_names(HeaderSide::Response, names);
        self
    }

    /// Records the values of these sensitive headers as sent when they are captured (request or
    /// response; case-insensitive). By default every captured sensitive header is recorded as
    /// `REDACTED`. What you give up: the credentials, cookies or keys in these headers reach the
    /// telemetry backend; list only names whose values are not secrets in your application.
    pub fn with_sensitive_headers_exported<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
        let shared = self.shared_mut();
        shared.request_headers.set_sensitive_exported(&names);
        shared.response_headers.set_sensitive_exported(&names);
        self
    }

    /// Replaces the known methods (default: `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` or the
    /// semconv list).
    pub fn with_known_methods(mut self, methods: KnownMethods) -> Self {
        self.shared_mut().known_methods = methods;
        self
    }

    /// Adds `server.address` and `server.port` to the metrics (opt-in: they come from request
    /// headers, so a client can inflate the metric cardinality).
    pub fn with_server_address_on_metrics(mut self, enabled: bool) -> Self {
        self.shared_mut().server_address_on_metrics = enabled;
        self
    }

    /// Records `http.server.response.body.size` (opt-in), counted from the body bytes actually
    /// streamed to the client.
    pub fn with_response_body_size(mut self, enabled: bool) -> Self {
        self.shared_mut().record_response_body_size = enabled;
        self
    }

    /// Records `http.server.request.body.size` (opt-in), counted from the request body bytes the
    /// application actually reads, up to the end of the request. The actix-web middleware counts
    /// by itself; with tower, add a [`RequestBodySizeLayer`] inside this layer (it wraps the
    /// request body, which changes the body type the inner service receives, so it cannot be
    /// done by this layer without changing its service bounds). Without that layer nothing
    /// is recorded.
    pub fn with_request_body_size(mut self, enabled: bool) -> Self {
        self.shared_mut().record_request_body_size = enabled;
        self
    }

    /// Puts a [`RouteHandle`](crate::RouteHandle) into the extensions of every request, so a
    /// handler can refine the route after routing (off by default: it costs two allocations per
    /// request). Setting an [`HttpRoute`](crate::HttpRoute) in the response extensions works
    /// without it.
    pub fn with_route_handle(mut self, enabled: bool) -> Self {
        self.shared_mut().route_handle = enabled;
        self
    }

    /// Sends the server span's trace context back in a response header (off by default): W3C
    /// Trace Context Level 2 `traceresponse`, or `traceparent`; see [`TraceResponseHeader`].
    /// Only for sampled requests unless [`with_trace_response_unsampled`](Self::with_trace_response_unsampled);
    /// never for requests the filter skips (they have no span). A header of that name set by
    /// the application is kept.
    pub fn with_trace_response_header(mut self, header: TraceResponseHeader) -> Self {
        self.shared_mut().trace_response.header = header;
        self
    }

    /// Also sends the header of [`with_trace_response_header`](Self::with_trace_response_header)
    /// for requests whose span is not sampled (its flags are then `00`).
    pub fn with_trace_response_unsampled(mut self, enabled: bool) -> Self {
        self.shared_mut().trace_response.unsampled = enabled;
        self
    }

    /// Adds the attributes `hook` computes from the request head to the span, at its start (so
    /// samplers see them). Bounded per request (see [`AttributesFn`]).
    ///
    /// ```
    /// use opentelemetry::KeyValue;
    /// use otelrs_core::AttributesFn;
    ///
    /// let layer = otelrs_http::HttpServerLayer::new().with_span_attributes(AttributesFn::new(
    ///     |request: &http::request::Parts, out: &mut Vec<KeyValue>| {
    ///         if let Some(tenant) = request.headers.get("x-tenant").and_then(|v| v.to_str().ok()) {
    ///             out.push(KeyValue::new("app.tenant", tenant.to_owned()));
    ///         }
    ///     },
    /// ));
    /// ```
    pub fn with_span_attributes(mut self, hook: AttributesFn<Parts>) -> Self {
        self.shared_mut().span_attributes = Some(hook);
        self
    }

    /// Adds the attributes `hook` computes from the response head (status and headers, before
    /// the body) to the span. Bounded per request (see [`AttributesFn`]).
    pub fn with_response_span_attributes(mut self, hook: AttributesFn<http::response::Parts>) -> Self {
        self.shared_mut().response_span_attributes = Some(hook);
        self
    }

    /// Adds the attributes `hook` computes from the request head to the request's
    /// `http.server.request.duration` (and body-size) points, separately from the span.
    ///
    /// **Cardinality**: every distinct value makes its own time series. Return only values from
    /// a small fixed set (a tenant tier, an API version), never ids, names or paths. The SDK caps
    /// the series per instrument (then reports an overflow series), which bounds memory, not
    /// cost. Points with hook attributes are recorded through the SDK's attribute path, not the
    /// layer's bound handles.
    pub fn with_metric_attributes(mut self, hook: AttributesFn<Parts>) -> Self {
        self.shared_mut().metric_attributes = Some(hook);
        self
    }
}

impl<S> Layer<S> for HttpServerLayer {
    type Service = HttpServerService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpServerService::new(inner, Arc::clone(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_instrumentation_keeps_the_options_set_before_it() {
        let layer = HttpServerLayer::new()
            .with_filter(crate::filter::path("/healthz").not())
            .with_public_endpoint(true)
            .with_request_headers(["x-tenant"])
            .with_route_handle(true)
            .with_instrumentation(Instrumentation::new());
        let shared = &layer.shared;
        assert!(shared.filter.is_some());
        assert!(shared.public_endpoint);
        assert!(!shared.request_headers.is_empty());
        assert!(shared.route_handle);
        let fresh = HttpServerLayer::new().with_instrumentation(Instrumentation::new());
        assert!(fresh.shared.filter.is_none() && !fresh.shared.public_endpoint);
    }
}
