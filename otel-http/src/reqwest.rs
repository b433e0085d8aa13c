//! reqwest instrumentation as a [`reqwest_middleware::Middleware`] (feature `reqwest`, reqwest
//! 0.13 through reqwest-middleware 0.5): the same `CLIENT` spans, attributes, propagation and
//! `http.client.request.duration` as [`HttpClientLayer`], through the
//! same client state.
//!
//! ```no_run
//! use otelrs_http::reqwest::HttpClientMiddleware;
//! use otelrs_http::UrlTemplate;
//!
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(HttpClientMiddleware::new())
//!     .build();
//! let response = client
//!     .get("http://127.0.0.1:8080/users/7")
//!     // Optional: names the span `GET /users/{id}` and sets `url.template`.
//!     .with_extension(UrlTemplate::new("/users/{id}"))
//!     .send()
//!     .await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! Per request (each attempt, when a retry middleware runs before this one) it starts a `CLIENT`
//! span under the current OTel context named `{method}` or `{method} {url.template}`, with
//! `http.request.method`, `server.address`, `server.port`, `url.full` (credentials and sensitive
//! query values redacted), `url.template` and `http.request.resend_count`; injects the span's
//! context into the request headers; and ends the span and records the duration when the
//! response headers arrive. The inner middlewares and the reqwest client run with the span's
//! context current.
//!
//! The [`UrlTemplate`], [`ResendCount`] and
//! [`RequestAttempts`] extensions are read from the middleware
//! extensions (`RequestBuilder::with_extension`). Without a [`RequestAttempts`],
//! one is added to the middleware extensions, which retry middlewares such as `reqwest-retry`
//! keep across attempts: the second attempt gets `http.request.resend_count = 1`.
//!
//! # Status and `error.type`
//!
//! | Outcome | Status | `error.type` |
//! | --- | --- | --- |
//! | 1xx–3xx | Unset | none |
//! | 4xx, 5xx | Error | the status code (`"404"`, `"503"`) |
//! | reqwest error, by its kind, in this order | Error (description: the error's causes, without the URL) | `timeout` ([`::reqwest::Error::is_timeout`]), `connect` (`is_connect`: refused, unreachable, DNS), `redirect` (`is_redirect`: redirect policy), `body` (`is_body`), `decode` (`is_decode`), `request` (`is_request`: sending the request failed), `builder` (`is_builder`) |
//! | any other reqwest error, or an error of an inner middleware | Error | the I/O kind of the first `std::io::Error` in its source chain (see [`otelrs_core::conv::io_error_type`]), else `_OTHER` |
//! | the future was dropped (the caller cancelled) | Unset | none; the duration is not recorded |

use std::borrow::Cow;
use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;

use ::reqwest::{Request, Response};
use http::{Extensions, Uri};
use opentelemetry::context::FutureExt as _;
use otelrs_core::status::ERROR_TYPE_OTHER;
use reqwest_middleware::{Middleware, Next};

use crate::attributes::{protocol_version, KnownMethods};
use crate::client::future::ClientState;
use crate::client::{RequestAttempts, ResendCount, Shared, UrlTemplate};
use crate::error::error_type_of_dyn;
use crate::HttpClientLayer;

/// `error.type` of a request that timed out.
pub const ERROR_TYPE_TIMEOUT: &str = "timeout";
/// `error.type` of a request that could not connect (refused, unreachable, DNS failure).
pub const ERROR_TYPE_CONNECT: &str = "connect";
/// `error.type` of a request that failed in the redirect policy.
pub const ERROR_TYPE_REDIRECT: &str = "redirect";
/// `error.type` of a request whose request or response body failed.
pub const ERROR_TYPE_BODY: &str = "body";
/// `error.type` of a response that could not be decoded.
pub const ERROR_TYPE_DECODE: &str = "decode";
/// `error.type` of a request that failed to be sent.
pub const ERROR_TYPE_REQUEST: &str = "request";
/// `error.type` of a request that could not be built.
pub const ERROR_TYPE_BUILDER: &str = "builder";

/// Instruments a reqwest client through reqwest-middleware. See the [module docs](self).
///
/// Instruments and the tracer are created once, when the middleware is constructed; an existing
/// [`HttpClientLayer`] converts with [`From`].
#[derive(Clone, Debug, Default)]
pub struct HttpClientMiddleware {
    layer: HttpClientLayer,
}

impl From<HttpClientLayer> for HttpClientMiddleware {
    fn from(layer: HttpClientLayer) -> Self {
        Self { layer }
    }
}

impl HttpClientMiddleware {
    /// A middleware using the global tracer provider, meter provider and propagator.
    pub fn new() -> Self {
        HttpClientLayer::new().into()
    }

    /// See [`HttpClientLayer::with_instrumentation`].
    pub fn with_instrumentation(self, instrumentation: otelrs_core::Instrumentation) -> Self {
        Self {
            layer: self.layer.with_instrumentation(instrumentation),
        }
    }

    /// See [`HttpClientLayer::with_known_methods`].
    pub fn with_known_methods(self, methods: KnownMethods) -> Self {
        Self {
            layer: self.layer.with_known_methods(methods),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.layer.shared
    }
}

/// The request URL as an `http` URI (without the fragment, which is never sent). Characters the
/// `url` crate leaves as they are but `http` rejects are percent-encoded.
fn request_uri(url: &::reqwest::Url) -> Option<Uri> {
    let s = url.as_str();
    let s = s.split_once('#').map_or(s, |(before, _)| before);
    if let Ok(uri) = Uri::try_from(s) {
        return Some(uri);
    }
    let mut encoded = String::with_capacity(s.len() + 16);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/?[]@!$&'()*+,;=%".contains(&b) {
            encoded.push(char::from(b));
        } else {
            let _ = write!(encoded, "%{b:02X}");
        }
    }
    Uri::try_from(encoded).ok()
}

/// The `error.type` of a failed request.
fn error_type(err: &reqwest_middleware::Error) -> &'static str {
    match err {
        reqwest_middleware::Error::Reqwest(e) => {
            if e.is_timeout() {
                ERROR_TYPE_TIMEOUT
            } else if e.is_connect() {
                ERROR_TYPE_CONNECT
            } else if e.is_redirect() {
                ERROR_TYPE_REDIRECT
            } else if e.is_body() {
                ERROR_TYPE_BODY
            } else if e.is_decode() {
                ERROR_TYPE_DECODE
            } else if e.is_request() {
                ERROR_TYPE_REQUEST
            } else if e.is_builder() {
                ERROR_TYPE_BUILDER
            } else {
                error_type_of_dyn(e, ERROR_TYPE_OTHER)
            }
        }
        reqwest_middleware::Error::Middleware(e) => {
            let e: &(dyn std::error::Error + 'static) = e.as_ref();
            error_type_of_dyn(e, ERROR_TYPE_OTHER)
        }
    }
}

/// The span status description of a failed request. reqwest's own message names the URL
/// unredacted, so only its causes are used.
fn error_description(err: &reqwest_middleware::Error) -> String {
    match err {
        reqwest_middleware::Error::Reqwest(e) => {
            let mut out = String::new();
            let mut source = e.source();
            while let Some(cause) = source {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                let _ = write!(out, "{cause}");
                source = cause.source();
            }
            out
        }
        reqwest_middleware::Error::Middleware(e) => e.to_string(),
    }
}

/// Ends the span as cancelled if the request future is dropped before the response.
struct Pending(Option<ClientState>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.cancel();
        }
    }
}

#[async_trait::async_trait]
impl Middleware for HttpClientMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(uri) = request_uri(req.url()) else {
            return next.run(req, extensions).await;
        };
        let template = extensions.get::<UrlTemplate>().map(|t| t.0.clone());
        let attempt = extensions.get_or_insert_default::<RequestAttempts>().next();
        let resend = attempt.max(extensions.get::<ResendCount>().map_or(0, |r| r.0));
        let method = req.method().clone();
        let state = ClientState::start(self.shared(), &method, &uri, req.headers_mut(), template, resend);
        let cx = state.cx.clone();
        let mut pending = Pending(Some(state));

        let result = next.run(req, extensions).with_context(cx).await;

        if let Some(state) = pending.0.take() {
            match &result {
                Ok(response) => state.finish(
                    Some(response.status().as_u16()),
                    protocol_version(response.version()),
                    None,
                ),
                Err(err) => state.finish(
                    None,
                    None,
                    Some((Cow::Borrowed(error_type(err)), error_description(err))),
                ),
            }
        }
        result
    }
}
