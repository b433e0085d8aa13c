//! HTTP client instrumentation as a tower [`Layer`] for any
//! `Service<http::Request<B>, Response = http::Response<R>>`, such as hyper-util's legacy
//! `Client`.
//!
//! Per request it starts a `CLIENT` span named `{method}` (or `{method} {url.template}` when the
//! request carries a [`UrlTemplate`]) with `http.request.method`, `server.address`,
//! `server.port` and `url.full` (credentials and sensitive query values redacted) at creation,
//! injects the span's context into the outgoing headers with the configured propagator, and
//! ends the span and records `http.client.request.duration` when the response **headers**
//! arrive (semconv §2.3: reading the body is not part of the span).
//!
//! # Status and `error.type`
//!
//! | Outcome | Status | `error.type` |
//! | --- | --- | --- |
//! | 1xx–3xx | Unset | none |
//! | 4xx, 5xx | Error | the status code (`"404"`, `"503"`) |
//! | transport failure, error chain holds a `std::io::Error` | Error (description: the error message) | the I/O kind: `timeout`, `connection_refused`, `connection_reset`, `connection_aborted`, `broken_pipe`, `unexpected_eof`, `not_connected`, `address_not_available`, ... (see [`otelrs_core::conv::io_error_type`]), `io` for other kinds |
//! | transport failure of hyper / hyper-util (feature `hyper-util`) without an I/O cause | Error | `timeout`, `connect`, `connection_closed`, `incomplete_message`, `protocol_error`, `canceled` |
//! | any other error | Error | `_OTHER` |
//! | the response future was dropped (the caller cancelled) | Unset | none; the duration is not recorded |
//!
//! # Resends
//!
//! Each physical attempt gets its own span. `http.request.resend_count` is set when the request
//! carries a [`ResendCount`] greater than zero, or a [`RequestAttempts`] counter shared between
//! the attempts (put one in the request before a retry layer whose policy clones the request
//! with its extensions; the second attempt through this layer gets `resend_count = 1`, and so
//! on).

pub(crate) mod future;
mod service;

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use opentelemetry::metrics::Histogram;
use opentelemetry::StringValue;
use opentelemetry_semantic_conventions::metric::HTTP_CLIENT_REQUEST_DURATION;
use otelrs_core::{instruments, Instrumentation, Tracer};
use tower_layer::Layer;

use crate::attributes::KnownMethods;

pub use future::ResponseFuture;
pub use service::HttpClientService;

/// A low-cardinality URL template (`/users/{id}`) for the request, as a request extension: the
/// span is named `{method} {template}` and gets `url.template`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(pub(crate) StringValue);

impl UrlTemplate {
    /// A template; it must not be the raw path.
    pub fn new(template: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self(StringValue::from(template.into()))
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// The number of times this request has been sent before (request extension); `0` is the first
/// attempt and sets no attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResendCount(pub u32);

/// A counter shared by every attempt of one logical request (request extension). Each attempt
/// that passes through the client layer takes the next number; attempts after the first get
/// `http.request.resend_count`.
#[derive(Clone, Debug, Default)]
pub struct RequestAttempts(Arc<AtomicU32>);

impl RequestAttempts {
    /// A counter with no attempt yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many attempts have passed through the client layer.
    pub fn attempts(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    /// Registers an attempt and returns how many came before it.
    pub(crate) fn next(&self) -> u32 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) instrumentation: Instrumentation,
    pub(crate) tracer: Tracer,
    pub(crate) duration: Histogram<f64>,
    pub(crate) known_methods: KnownMethods,
}

/// Instruments an HTTP client service. See the [module docs](self).
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use otelrs_http::HttpClientLayer;
/// use tower::{ServiceBuilder, ServiceExt};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
/// let client = ServiceBuilder::new().layer(HttpClientLayer::new()).service(client);
/// let request = http::Request::get("http://127.0.0.1:8080/users/1").body(Full::new(Bytes::new()))?;
/// let response = client.oneshot(request).await?;
/// println!("{}", response.status());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct HttpClientLayer {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for HttpClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer")
            .field("instrumentation", &self.shared.instrumentation)
            .field("known_methods", &self.shared.known_methods)
            .finish()
    }
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClientLayer {
    /// A layer using the global tracer provider, meter provider and propagator.
    pub fn new() -> Self {
        let instrumentation = Instrumentation::new();
        let (tracer, duration) = instruments_of(&instrumentation);
        Self {
            shared: Arc::new(Shared {
                instrumentation,
                tracer,
                duration,
                known_methods: KnownMethods::from_env(),
            }),
        }
    }

    /// Uses the providers and propagator of `instrumentation` (globals for what it does not
    /// set) instead of the globals; the other options are kept.
    pub fn with_instrumentation(mut self, instrumentation: Instrumentation) -> Self {
        let (tracer, duration) = instruments_of(&instrumentation);
        let shared = Arc::make_mut(&mut self.shared);
        shared.instrumentation = instrumentation;
        shared.tracer = tracer;
        shared.duration = duration;
        self
    }

    /// Replaces the known methods (default: `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` or the
    /// semconv list).
    pub fn with_known_methods(mut self, methods: KnownMethods) -> Self {
        Arc::make_mut(&mut self.shared).known_methods = methods;
        self
    }
}

/// The tracer and `http.client.request.duration` of one layer, created once.
fn instruments_of(instrumentation: &Instrumentation) -> (Tracer, Histogram<f64>) {
    let (tracer, meter) = instrumentation.tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
    let duration = instruments::duration_histogram(
        &meter,
        HTTP_CLIENT_REQUEST_DURATION,
        "Duration of HTTP client requests.",
        &instruments::DURATION_BUCKETS,
    );
    (tracer, duration)
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpClientService::new(inner, Arc::clone(&self.shared))
    }
}
