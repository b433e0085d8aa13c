//! # otelrs-redis
//!
//! OpenTelemetry instrumentation for [`redis`] (the async `ConnectionLike` API) and, with the
//! `deadpool` feature, `deadpool-redis` pools, built on `otelrs-core` and semantic conventions
//! 1.42 (database client, Redis specifics).
//!
//! Quickstart: [`examples/examples/redis.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/redis.rs) (`cargo run -p examples --example redis`).
//!
//! * [`InstrumentedConnection`] wraps any [`redis::aio::ConnectionLike`] (a
//!   `MultiplexedConnection`, a `ConnectionManager`, a deadpool-redis `Connection`) and is
//!   `ConnectionLike` itself: `cmd(..).query_async`, [`redis::AsyncCommands`] and pipelines work
//!   unchanged. Each command is one `CLIENT` span named by the command (`GET`, `CLIENT SETNAME`);
//!   a pipeline is one `PIPELINE` span and a transaction one `MULTI` span, with
//!   `db.operation.batch.size`. Each operation records `db.client.operation.duration`.
//! * `db.query.text` is the command in `redis-cli` syntax with **values masked** by default
//!   (`HSET user:1 name ? email ?`; secrets of `AUTH`, `HELLO`, `CONFIG SET`, `MIGRATE` and
//!   `ACL SETUSER` never appear; script bodies of `EVAL`, `SCRIPT LOAD` and `FUNCTION LOAD` keep
//!   their code with every string and number literal masked), see [`mask_command`]; raw text is
//!   opt-in ([`QueryText`]).
//! * `InstrumentedPool` (feature `deadpool`) hands out instrumented connections and records the
//!   `db.client.connection.*` pool metrics.
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `deadpool` | no | `InstrumentedPool`: a deadpool-redis pool with instrumented connections and pool metrics (`deadpool`, `deadpool-redis`) |
//!
//! ## A connection
//!
//! ```no_run
//! use otelrs_redis::RedisInstrumentation;
//! use redis::AsyncCommands;
//!
//! # async fn run() -> redis::RedisResult<()> {
//! // Build once (providers from an `otelrs_core::Instrumentation`, else the globals).
//! let redis_telemetry = RedisInstrumentation::new().with_instrumentation(otelrs_core::Instrumentation::new())
//!     .with_filter(otelrs_redis::Filter::new(|operation: &str| operation != "PING"));
//!
//! let client = redis::Client::open("redis://127.0.0.1:6379/0")?;
//! let conn = client.get_multiplexed_async_connection().await?;
//! let mut conn = redis_telemetry.connection(conn, client.get_connection_info());
//!
//! let () = conn.set("user:1:name", "Ada").await?; // span "SET", db.query.text "SET user:1:name ?"
//! let name: String = conn.get("user:1:name").await?; // span "GET"
//! let (a, b): (i64, i64) = redis::pipe().incr("hits", 1).incr("misses", 1).query_async(&mut conn).await?;
//! # let _ = (name, a, b);
//! # Ok(()) }
//! ```
//!
//! ## A deadpool-redis pool (feature `deadpool`)
//!
//! ```no_run
//! # #[cfg(feature = "deadpool")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use otelrs_redis::{InstrumentedPool, RedisInstrumentation};
//! use redis::AsyncCommands;
//!
//! let redis_telemetry = RedisInstrumentation::new().with_instrumentation(otelrs_core::Instrumentation::new());
//! let config = deadpool_redis::Config::from_url("redis://127.0.0.1:6379/0");
//! let pool = InstrumentedPool::builder(&config)
//!     .with_runtime(deadpool_redis::Runtime::Tokio1)
//!     .build(&redis_telemetry)?; // pool name "127.0.0.1:6379/0"
//!
//! let mut conn = pool.get().await?; // records wait_time, create_time; use_time on drop
//! let () = conn.set("greeting", "hello").await?;
//! # Ok(()) }
//! ```
//!
//! ## Context
//!
//! The parent of each span is [`opentelemetry::Context::current()`] when the command is sent, so
//! attach the caller's context to futures that cross tasks
//! (`opentelemetry::trace::FutureExt::with_context`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod config;
mod connection;
mod error;
#[cfg(feature = "deadpool")]
mod pool;
mod sanitize;

pub use config::{Filter, QueryText, RedisInstrumentation, Target, DEFAULT_PORT};
pub use connection::InstrumentedConnection;
#[cfg(feature = "deadpool")]
#[cfg_attr(docsrs, doc(cfg(feature = "deadpool")))]
pub use pool::{InstrumentedPool, InstrumentedPoolBuilder, PooledConnection};
pub use sanitize::{mask_command, operation_name, OPERATION_OTHER};
