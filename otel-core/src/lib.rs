//! # otelrs-core
//!
//! The shared conventions core of the `otelrs-*` OpenTelemetry instrumentation family. Adapters
//! (`otelrs-http`, `otelrs-grpc`, `otelrs-sql`, `otelrs-redis`, `otelrs-mq`) are thin translations on top of
//! it; it has no web, gRPC, SQL or broker dependency.
//!
//! | Module | What it gives |
//! | --- | --- |
//! | [`Instrumentation`] | the one config input of every adapter: optional tracer provider, meter provider and propagator, falling back to the globals; scope name, version and schema URL |
//! | [`Filter`] | the one shape of "which requests are instrumented", per request kind |
//! | [`AttributesFn`] | the one shape of application-computed attributes for spans and metrics, bounded |
//! | [`propagation`] | carriers for `http::HeaderMap` and string-keyed message headers; a strict W3C Trace Context propagator (passes the W3C test suite at its strictest level), W3C Baggage with the spec's limits, and their composite [`propagation::W3cPropagator`] (the default) |
//! | [`instruments`] | semconv histogram bucket advice and builders that create each instrument once |
//! | [`conv`] | the semantic-convention rules every adapter shares: `server.address`/`server.port` parsing, `error.type` from error chains, cancelled/panic/timeout outcomes, database connection-pool metrics, sensitive header and metadata names |
//! | [`status`] | span status and `error.type` rules, HTTP and gRPC error sets, gRPC code names, I/O error classification, log-based exception events |
//! | [`sampling`] | rate-limiting, run-time adjustable ratio and attribute-rule samplers |
//! | `sdk` (feature `sdk`) | one-call SDK setup from the standard `OTEL_*` variables, with a builder to override them in code |
//! | `testing` (feature `testing`) | in-memory exporters and exact assertion helpers for spans and metrics |
//! | [`task`] | one trace across tasks and channels: futures that keep a context, `spawn`/`spawn_blocking`/`JoinSet` with the caller's context (feature `tokio`), the [`task::Traced`] message envelope |
//! | [`hotpath`] | for adapter authors: the speed machinery (bound instruments, bounded interning, the Fx hasher), in one documented corner |
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `sdk` | no | `sdk` module: OTLP (gRPC and HTTP, protobuf and JSON, TLS and mTLS, concurrent export, retries), console and Prometheus exporters, the logs pipeline and `tracing` bridge, resource detection, the shutdown guard |
//! | `tls-native-roots` | no | with `sdk`: verify OTLP collectors against the platform's certificate store instead of the Mozilla roots compiled in (`webpki-roots`) |
//! | `testing` | no | `testing` module (`opentelemetry_sdk/testing`); use it from `[dev-dependencies]` |
//! | `tracing-bridge` | no | with `sdk`: `sdk::TracingBridge`, `tracing` spans exported through `tracing-opentelemetry` 0.34 (re-exported as `tracing_opentelemetry`) with `RUST_LOG` filtering and trace ids on console lines |
//! | `tokio` | no | `task::spawn`, `task::spawn_blocking` and `task::JoinSetExt` (Tokio with its `rt` feature only) |
//!
//! ## Quick start
//!
//! ```
//! use otelrs_core::Instrumentation;
//! use otelrs_core::propagation::W3cPropagator;
//! use opentelemetry::trace::{Span as _, Tracer as _};
//!
//! // Adapters take an `Instrumentation`; unset parts fall back to the globals.
//! let instrumentation = Instrumentation::new().with_propagator(W3cPropagator::default());
//! let tracer = instrumentation.tracer(Instrumentation::scope("my-crate", "0.1.0"));
//! let mut span = tracer.start("work");
//! span.end();
//! ```
//!
//! ## Configuring an adapter: one idiom
//!
//! Every adapter type is configured the same way, the way tower's layers are:
//!
//! 1. `Type::new()`: the global tracer provider, meter provider and propagator, default options;
//! 2. `.with_instrumentation(instrumentation)`: other providers or propagator (an
//!    [`Instrumentation`]; unset parts still fall back to the globals);
//! 3. `.with_*(..)` setters for options, each returning the value, in any order;
//! 4. `.with_filter(filter)` where an adapter can skip requests, always taking a [`Filter`] of
//!    its request kind.
//!
//! | Adapter | Configured type | Then |
//! | --- | --- | --- |
//! | `otelrs-http` | `HttpServerLayer`, `HttpServerMiddleware` (actix-web), `HttpClientLayer`, `HttpClientMiddleware` (reqwest) | `.layer(..)` / `.wrap(..)` / `.with(..)` |
//! | `otelrs-grpc` | `GrpcServerLayer`, `GrpcClientLayer` | `.layer(..)` |
//! | `otelrs-sql` | `SqlOptions` | `InstrumentedPool::new(pool, options)`; Diesel: `DieselInstrumentation::new(options).connection(url)`; SeaORM: `InstrumentedDatabaseConnection::new(db, options)` |
//! | `otelrs-redis` | `RedisInstrumentation` | `.connection(..)`, `InstrumentedPool::builder(..)` |
//! | `otelrs-mq` | `Kafka`, `Nats`, `RabbitMq` (common settings in one `MessagingSettings`), `KafkaStats` | their send/receive/process methods |
//!
//! The values are cheap to clone and immutable once in use: tracer and instruments are created
//! when the value is configured, never per request.
//!
//! ```text
//! let redis = otelrs_redis::RedisInstrumentation::new()
//!     .with_instrumentation(instrumentation)
//!     .with_filter(otelrs_core::Filter::new(|command: &str| command != "PING"));
//! let layer = otelrs_http::HttpServerLayer::new()
//!     .with_instrumentation(instrumentation)
//!     .with_filter(otelrs_http::filter::path("/healthz").not());
//! ```
//!
//! ## Versions
//!
//! The family is built on `opentelemetry` 0.33 and semantic conventions 1.42 (the version
//! `opentelemetry-semantic-conventions` 0.33 tracks). The crates are re-exported so applications
//! can name exactly the versions the family uses: [`opentelemetry`], [`opentelemetry_sdk`] and
//! [`semconv`]. A second `opentelemetry` version elsewhere in a dependency tree has its **own,
//! separate globals**: a provider installed through one version is invisible to code using the
//! other. Depend on the re-exports (or the same 0.33 versions) to avoid that.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub use opentelemetry;
pub use opentelemetry_sdk;
pub use opentelemetry_semantic_conventions as semconv;
/// `tracing-opentelemetry` 0.34, the release built on `opentelemetry` 0.33 that the `tracing`
/// bridge uses (feature `tracing-bridge`): name it through here (`OpenTelemetrySpanExt`, ...) so
/// that its version always matches.
#[cfg(feature = "tracing-bridge")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing-bridge")))]
pub use tracing_opentelemetry;

mod attributes_fn;
pub mod conv;
mod filter;
pub mod hotpath;
mod instrumentation;
pub mod instruments;
pub mod propagation;
pub mod sampling;
pub mod status;
pub mod task;

#[cfg(feature = "sdk")]
#[cfg_attr(docsrs, doc(cfg(feature = "sdk")))]
pub mod sdk;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use attributes_fn::{AttributesFn, MAX_HOOK_ATTRIBUTES, MAX_HOOK_VALUE_LEN};
pub use filter::Filter;
pub use instrumentation::{Instrumentation, Span, Tracer};
