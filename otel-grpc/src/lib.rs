//! # otelrs-grpc
//!
//! OpenTelemetry instrumentation for [tonic](https://docs.rs/tonic) 0.14 gRPC servers and
//! clients, built directly on `opentelemetry` 0.33 and the family's shared core
//! ([`otelrs_core`]). It follows the RPC semantic conventions v1.42 (the version
//! `opentelemetry-semantic-conventions` 0.33 tracks).
//!
//! Quickstart, server and client: [`examples/examples/tonic.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/tonic.rs) (`cargo run -p examples --example tonic`).
//!
//! | Item | What it does |
//! | --- | --- |
//! | [`GrpcServerLayer`] | tower layer for `tonic::transport::Server::builder().layer(..)`: SERVER span and `rpc.server.call.duration` per call |
//! | [`GrpcClientLayer`] | tower layer over a `tonic::transport::Channel`: CLIENT span, context injection, `rpc.client.call.duration` |
//! | [`propagate_context`], [`PropagationInterceptor`] | propagation-only client interceptors (no spans, no metrics) |
//! | [`extract_context`], [`extract_context_with`] | server-side extraction of the parent context from request metadata |
//! | [`MetadataInjector`], [`MetadataExtractor`] | propagation carriers over `tonic::metadata::MetadataMap` |
//! | [`filter::skip_health_and_reflection`] | ready-made filter that leaves `grpc.health.v1.Health` and `grpc.reflection.*` uninstrumented |
//!
//! ## Server
//!
//! ```no_run
//! use otelrs_grpc::{filter, GrpcServerLayer};
//! # async fn run(instrumentation: otelrs_core::Instrumentation) -> Result<(), Box<dyn std::error::Error>> {
//! # let (_, health) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .layer(
//!         GrpcServerLayer::new()
//!             .with_instrumentation(instrumentation) // omit to use the global providers
//!             .with_filter(filter::skip_health_and_reflection())
//!             .with_request_metadata(["x-tenant"]),
//!     )
//!     .add_service(health) // and your generated `...Server::new(service)`
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! ## Client
//!
//! ```no_run
//! use otelrs_grpc::GrpcClientLayer;
//! use tonic::transport::Endpoint;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::from_static("http://127.0.0.1:50051");
//! let channel = endpoint.connect().await?;
//! let channel = tower::ServiceBuilder::new()
//!     .layer(GrpcClientLayer::new().with_endpoint(&endpoint))
//!     .service(channel);
//! let mut client = tonic_health::pb::health_client::HealthClient::new(channel); // any generated client
//! client.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await?;
//! # Ok(()) }
//! ```
//!
//! ## Propagation only
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let mut client =
//!     tonic_health::pb::health_client::HealthClient::with_interceptor(channel, otelrs_grpc::propagate_context);
//! # let _ = &mut client;
//! # }
//! ```
//!
//! ## What is recorded
//!
//! Spans (kind SERVER / CLIENT) are named `{rpc.method}` (`package.Service/Method`), or `grpc`
//! when the method is not recognised. Attributes:
//!
//! | Attribute | Client | Server |
//! | --- | --- | --- |
//! | `rpc.system.name` = `"grpc"` | at start | at start |
//! | `rpc.method` (`"pkg.Svc/Method"` or `"_OTHER"`) | at start | at start with [`GrpcServerLayer::with_services`], else at the end (see below) |
//! | `rpc.method_original` | iff `_OTHER` | iff `_OTHER` |
//! | `rpc.response.status_code` (`"OK"`, `"NOT_FOUND"`, ...) | when a status exists | when a status exists |
//! | `error.type` | iff failed | iff failed |
//! | `server.address`, `server.port` | from the channel target ([`GrpcClientLayer::with_target`]) | from `:authority` / `Host` |
//! | `network.peer.address`, `network.peer.port` | — | from tonic's `TcpConnectInfo` (feature `transport`) |
//! | `rpc.request.metadata.<key>`, `rpc.response.metadata.<key>` (string arrays) | opt-in, configured keys only; sensitive keys (`authorization`, `cookie`, `x-api-key`, keys containing `token`, `secret`, `session`, ...: [`otelrs_core::conv::sensitive`]) as `REDACTED` per value unless listed with `with_sensitive_metadata_exported` | same |
//!
//! Metrics (`s`, bucket advice [`otelrs_core::instruments::RPC_DURATION_BUCKETS`]):
//! `rpc.server.call.duration` with `rpc.system.name`, `rpc.method`, `rpc.response.status_code`
//! and `error.type` (iff failed) — `server.*` are Opt-In there and not emitted;
//! `rpc.client.call.duration` with the same plus `server.address` and `server.port`.
//!
//! **Status.** The gRPC status is read where gRPC puts it: in the response headers for a
//! trailers-only response (tonic answers errors of unary calls this way), otherwise in the
//! trailers at the end of the response body; a non-200 HTTP response without `grpc-status`
//! maps to a code as gRPC clients do (404 → `UNIMPLEMENTED`, 503 → `UNAVAILABLE`, ...), and a
//! stream that ends without any status is `UNKNOWN`. Span and duration end when the status has
//! been seen at the end of the response stream, or when the response future or body is dropped.
//!
//! **Errors** (semconv §4.1). Client: every non-`OK` code sets status Error and
//! `error.type` = the code name. Server: only `UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
//! `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` are errors (`error.type` = the code name); other codes,
//! such as `NOT_FOUND`, leave the status Unset and set no `error.type`. Success leaves the status
//! Unset. No status description is set: gRPC status messages are application text.
//!
//! **Outcomes without a status:**
//!
//! | Situation | `rpc.response.status_code` | Client | Server |
//! | --- | --- | --- | --- |
//! | Response future or body dropped before the status (client went away, stream abandoned) | `CANCELLED` | Error, `error.type=CANCELLED` | Unset (`CANCELLED` is not a server error) |
//! | Same, at or after the call's deadline (`grpc-timeout`, or [`GrpcServerLayer::with_server_timeout`]) | `DEADLINE_EXCEEDED` | Error | Error, `error.type=DEADLINE_EXCEEDED` (tonic 0.14's server itself answers such a call with `CANCELLED`) |
//! | The client's channel gives up at the deadline (`tonic::TimeoutExpired`: `grpc-timeout` or `Endpoint::timeout`) | `DEADLINE_EXCEEDED` (tonic hands the caller `CANCELLED`) | Error, `error.type=DEADLINE_EXCEEDED` | — |
//! | The client receives `CANCELLED` at or after its deadline (tonic's server answering an expired `grpc-timeout`) | `DEADLINE_EXCEEDED` | Error, `error.type=DEADLINE_EXCEEDED` | — |
//! | The server's inner service returns `Err` | the `tonic::Status` code in the error, else `UNKNOWN` (what tonic answers) | — | per the server rule |
//! | The client's channel returns `Err` (transport failure) | not set (no status exists) | Error, `error.type` = `connection_refused`, `connection_reset`, `timeout`, `broken_pipe`, ... (the I/O error kind in the source chain), `connect` (`tonic::ConnectError` without an I/O cause), or `transport` | — |
//! | The response body fails | the `tonic::Status` code it carries | per the role's rule | per the role's rule |
//! | The response body fails with another error | not set | Error, `error.type` = I/O kind or `body_error` | same |
//!
//! **Unrecognised methods.** A tower layer does not know which methods the router serves. With
//! [`GrpcServerLayer::with_services`] a method is recognised iff its service is listed. Without
//! it, a trailers-only `UNIMPLEMENTED` answer (what tonic's router sends for unknown paths) marks
//! the method unrecognised; `rpc.method` is then set when the call ends (so samplers do not see
//! it; the span name is visible to them), and a handler that itself answers `UNIMPLEMENTED` for a
//! known method is also recorded as `_OTHER`. A client records every well-formed path as the
//! method.
//!
//! **Context.** The server span's context is current while the inner service and the response
//! body (the handler's response stream) are polled, so client calls made in a handler — through
//! [`GrpcClientLayer`] or [`propagate_context`] — continue the trace.
//!
//! **Old conventions.** [`SemconvMode::Duplicate`] (`OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup`, or
//! `with_semconv_mode`) also emits `rpc.system`, `rpc.service`, `rpc.grpc.status_code` (int) and
//! the `rpc.server.duration` / `rpc.client.duration` histograms in milliseconds.
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `transport` | yes | tonic's `server` and `channel` features: `network.peer.*` from `TcpConnectInfo`, [`GrpcClientLayer::with_endpoint`], `error.type` from `tonic::transport::Error` chains |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod attributes;
mod call;
mod client;
mod config;
mod error;
pub mod filter;
mod propagation;
mod server;

pub use call::{ResponseBody, ResponseFuture};
pub use client::{GrpcClientLayer, GrpcClientService};
pub use config::SemconvMode;
pub use filter::Filter;
pub use propagation::{
    extract_context, extract_context_with, propagate_context, MetadataExtractor, MetadataInjector,
    PropagationInterceptor,
};
pub use server::{GrpcServerLayer, GrpcServerService};
