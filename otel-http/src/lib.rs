//! # otelrs-http
//!
//! OpenTelemetry instrumentation for HTTP servers and clients built on tower (axum, hyper,
//! hyper-util), actix-web and reqwest, following semantic conventions 1.42 (`opentelemetry` 0.33) on top of
//! [`otelrs_core`].
//!
//! Quickstarts: [`axum`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/axum.rs), [`actix_web`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/actix_web.rs),
//! [`hyper_client`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/hyper_client.rs), [`reqwest`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/reqwest.rs)
//! (`cargo run -p examples --example <name>`).
//!
//! | Item | What it does |
//! | --- | --- |
//! | [`HttpServerLayer`] | `SERVER` spans named `{method} {http.route}`, W3C context extraction, `http.server.request.duration` / `http.server.active_requests` (and opt-in `http.server.response.body.size`), timed to the end of the response body |
//! | [`HttpClientLayer`] | `CLIENT` spans named `{method}` (or `{method} {url.template}`), context injection, redacted `url.full`, `http.client.request.duration` |
//! | [`HttpRoute`], [`RouteHandle`] | route sources for frameworks without axum's `MatchedPath`, and late route updates ([`route`] docs) |
//! | `HttpServerMiddleware` ([`actix`], feature `actix-web`) | the server layer's spans, metrics and lifetimes for actix-web 4: `App::new().wrap(HttpServerMiddleware::new())` |
//! | `HttpClientMiddleware` ([`reqwest`](mod@reqwest), feature `reqwest`) | the client layer's spans, propagation and metrics as a `reqwest-middleware` middleware |
//! | [`Filter`] | which requests are instrumented at all |
//! | [`attributes`] | the request → attribute rules (method normalisation, redaction, forwarding headers), shared by all adapters |
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `axum` | no | `http.route` from axum's `MatchedPath`; peer address from `ConnectInfo<SocketAddr>` |
//! | `hyper-util` | no | precise `error.type` values for hyper / hyper-util client errors (`connect`, `connection_closed`, ...) |
//! | `actix-web` | no | [`actix::HttpServerMiddleware`] for actix-web 4: route from `match_pattern()`, peer address from the connection |
//! | `reqwest` | no | [`reqwest::HttpClientMiddleware`] for reqwest 0.13 via reqwest-middleware 0.5; reqwest error kinds as `error.type` |
//!
//! ## Server (axum)
//!
//! ```
//! use axum::{routing::get, Router};
//! use otelrs_core::testing::{SpanDataExt, TestTelemetry};
//! use otelrs_http::HttpServerLayer;
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let telemetry = TestTelemetry::new(); // in an application: `Instrumentation::new()` / the globals
//! let app = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     .layer(HttpServerLayer::new().with_instrumentation(telemetry.instrumentation()));
//!
//! let request = http::Request::get("/users/7").body(axum::body::Body::empty()).unwrap();
//! let response = app.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 200);
//! drop(response); // the span ends when the body is done
//!
//! // The route comes from axum's `MatchedPath` with the `axum` feature.
//! # #[cfg(feature = "axum")]
//! telemetry
//!     .span("GET /users/{id}")
//!     .assert_attr("http.route", "/users/{id}")
//!     .assert_attr("http.response.status_code", 200i64);
//! # }
//! ```
//!
//! Options: [`HttpServerLayer::with_filter`], [`HttpServerLayer::with_span_name_formatter`],
//! [`HttpServerLayer::with_public_endpoint`], [`HttpServerLayer::with_request_headers`] /
//! [`HttpServerLayer::with_response_headers`], [`HttpServerLayer::with_known_methods`],
//! [`HttpServerLayer::with_server_address_on_metrics`],
//! [`HttpServerLayer::with_response_body_size`], [`HttpServerLayer::with_request_body_size`]
//! (the opt-in `http.server.request.body.size` metric; with tower, add a
//! [`server::RequestBodySizeLayer`] inside this layer), [`HttpServerLayer::with_route_handle`],
//! [`HttpServerLayer::with_trace_response_header`] (W3C `traceresponse` or a `traceparent`
//! response header naming the server span; opt-in, sampled requests only unless
//! [`HttpServerLayer::with_trace_response_unsampled`]).
//! The `error.type` values are listed in [`server`].
//!
//! What is hidden, on the server and both clients alike: every query value in `url.query` and
//! `url.full` becomes `REDACTED`, and a parameter without a value (no `=`, an empty value, or
//! only `=` padding as in a base64 token `?dGhpcy1pcy1hLXRva2Vu=`) becomes `REDACTED` whole
//! ([`attributes::redact_query`]); URL credentials become `REDACTED:REDACTED`. Captured
//! sensitive headers (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`,
//! `X-API-Key`, names containing `token`, `secret`, `session`, `auth`, ...:
//! [`otelrs_core::conv::sensitive`]) are recorded as `REDACTED`, one per value, unless listed
//! with [`HttpServerLayer::with_sensitive_headers_exported`].
//!
//! ## Client (any `Service<http::Request<B>>`)
//!
//! ```
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use otelrs_core::testing::{SpanDataExt, TestTelemetry};
//! use otelrs_http::{HttpClientLayer, UrlTemplate};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let telemetry = TestTelemetry::new();
//! // Stands in for hyper-util's `Client`; the layer injects `traceparent` into the request.
//! let inner = service_fn(|req: http::Request<Full<Bytes>>| async move {
//!     assert!(req.headers().contains_key("traceparent"));
//!     Ok::<_, std::io::Error>(http::Response::new(Full::new(Bytes::new())))
//! });
//! let client = ServiceBuilder::new()
//!     .layer(HttpClientLayer::new().with_instrumentation(telemetry.instrumentation()))
//!     .service(inner);
//!
//! let mut request = http::Request::get("https://user:pw@api.example.com/items/9?sig=abc")
//!     .body(Full::new(Bytes::new()))
//!     .unwrap();
//! request.extensions_mut().insert(UrlTemplate::new("/items/{id}"));
//! client.oneshot(request).await.unwrap();
//!
//! telemetry
//!     .span("GET /items/{id}")
//!     .assert_attr("url.full", "https://REDACTED:REDACTED@api.example.com/items/9?sig=REDACTED")
//!     .assert_attr("server.port", 443i64);
//! # }
//! ```
//!
//! ## Client (hyper-util)
//!
//! ```no_run
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use otelrs_http::HttpClientLayer;
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! let client = ServiceBuilder::new().layer(HttpClientLayer::new()).service(client);
//! let request = http::Request::get("http://127.0.0.1:8080/users/1").body(Full::new(Bytes::new()))?;
//! let response = client.oneshot(request).await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! ## Server (actix-web, feature `actix-web`)
//!
//! ```no_run
//! # #[cfg(feature = "actix-web")]
//! # async fn run() -> std::io::Result<()> {
//! use actix_web::{web, App, HttpServer};
//! use otelrs_http::actix::HttpServerMiddleware;
//!
//! HttpServer::new(|| {
//!     App::new()
//!         // Same options as `HttpServerLayer`: filter, span names, header capture, ...
//!         .wrap(HttpServerMiddleware::new().with_request_headers(["x-request-id"]))
//!         .route("/users/{id}", web::get().to(|| async { "user" }))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await
//! # }
//! ```
//!
//! ## Client (reqwest, feature `reqwest`)
//!
//! ```no_run
//! # #[cfg(feature = "reqwest")]
//! # async fn run() -> Result<(), reqwest_middleware::Error> {
//! use otelrs_http::reqwest::HttpClientMiddleware;
//! use otelrs_http::UrlTemplate;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(HttpClientMiddleware::new())
//!     .build();
//! let response = client
//!     .get("http://127.0.0.1:8080/users/7")
//!     .with_extension(UrlTemplate::new("/users/{id}"))
//!     .send()
//!     .await?;
//! println!("{}", response.status());
//! # Ok(())
//! # }
//! ```
//!
//! ## Context inside handlers
//!
//! The server span's OTel [`Context`](opentelemetry::Context) is current while the inner
//! service is called and its future polled, so `Context::current()` in a handler, spans started
//! there, `tracing-opentelemetry` spans and calls through [`HttpClientLayer`] all nest under the
//! server span.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "actix-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "actix-web")))]
pub mod actix;
pub mod attributes;
pub mod client;
mod error;
pub mod filter;
#[cfg(feature = "reqwest")]
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
pub mod reqwest;
pub mod route;
pub mod server;

#[cfg(feature = "actix-web")]
pub use actix::HttpServerMiddleware;

pub use client::{HttpClientLayer, RequestAttempts, ResendCount, UrlTemplate};
pub use filter::Filter;
#[cfg(feature = "reqwest")]
pub use reqwest::HttpClientMiddleware;
pub use route::{HttpRoute, RouteHandle};
pub use server::{HttpServerLayer, TraceResponseHeader};
