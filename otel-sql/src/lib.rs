//! # otelrs-sql
//!
//! OpenTelemetry instrumentation for [sqlx](https://docs.rs/sqlx) 0.9 (PostgreSQL, MySQL/MariaDB,
//! SQLite), for [Diesel](https://docs.rs/diesel) 2.4 and diesel-async 0.10 (module
//! `otelrs_sql::diesel`, feature `diesel`) and for [SeaORM](https://docs.rs/sea-orm) 2 (module
//! `otelrs_sql::sea_orm`, feature `sea-orm`), built on `opentelemetry` 0.33 and the family's
//! conventions core `otelrs-core`: semantic-conventions 1.42 database client spans and
//! metrics, a single-pass SQL sanitizer and query-summary generator ([`sanitize`]), and
//! connection-pool metrics. The adapters share one set of rules (sanitizer, summaries, span
//! naming, attributes, status and `error.type`, `db.client.operation.duration`).
//!
//! Quickstarts: [`examples/examples/sqlx.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/sqlx.rs) (`cargo run -p examples --example sqlx`),
//! [`examples/examples/diesel.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/diesel.rs) (`cargo run -p examples --example diesel`),
//! [`examples/examples/sea_orm.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/sea_orm.rs) (`cargo run -p examples --example sea_orm`).
//!
//! The rest of this page describes the sqlx adapter; the Diesel and SeaORM adapters' pages
//! (`diesel` and `sea_orm` modules) describe what differs. SeaORM users wrap their
//! `DatabaseConnection` in an `otelrs_sql::sea_orm::InstrumentedDatabaseConnection`, which
//! SeaORM's entity, query and transaction APIs take in its place.
//!
//! Wrap an existing pool in an [`InstrumentedPool`]; `&InstrumentedPool` is an
//! [`sqlx::Executor`], so `query`, `query_as`, `query_scalar`, the `query!` macros and
//! `execute`/`fetch`/`fetch_all`/`fetch_one`/`fetch_optional` work unchanged.
//! [`InstrumentedPool::acquire`] and [`InstrumentedPool::begin`] return an instrumented
//! connection and transaction whose `&mut` are executors too.
//!
//! ## Spans
//!
//! One `CLIENT` span per operation, started when the query is first polled (its parent is the
//! caller's current OpenTelemetry context) and ended when the result is ready, the stream ends,
//! or the future/stream is dropped. The span object itself is built right after the statement
//! has been handed to the driver, so its cost overlaps the database's work instead of delaying
//! the statement; its start time is still the first poll. Named by `db.query.summary` (`SELECT users`,
//! `INSERT orders SELECT carts`), else `{db.operation.name} {target}`, else the target
//! (`db.namespace`, or `server.address[:port]`), else `db.system.name`. Transaction control is
//! recorded as `BEGIN`, `COMMIT` and `ROLLBACK` operations (`db.operation.name` set, named
//! `BEGIN {db.namespace}` etc.).
//!
//! | Attribute | When |
//! | --- | --- |
//! | `db.system.name` | always: `postgresql`, `mysql` / `mariadb` (detected by [`InstrumentedPool::connect`]), `sqlite` |
//! | `db.namespace` | the database from the connect options (PostgreSQL: the user name when none is given; SQLite: the file name or `:memory:`) |
//! | `server.address`, `server.port` | from the connect options; the port only when it is not the default (5432, 3306) |
//! | `db.query.text` | per [`QueryTextMode`]: by default text with placeholders as written, text without them sanitized (where the server's settings decide what is a literal, SQLite's double-quoted strings, MySQL backslashes with or without `NO_BACKSLASH_ESCAPES`, dollar-quoted text, everything either reading could hold is hidden: see [`sanitize`]) |
//! | `db.query.summary` | generated (or from [`QueryInfo`]) |
//! | `db.operation.name`, `db.collection.name` | only from [`QueryInfo`] (never parsed from SQL), and for transaction control |
//! | `db.query.parameter.<index>` | opt-in ([`SqlOptions::with_parameter_capture`]), recorded spans only: values bound through [`Parameters`] or named with [`QueryInfo::parameter`] |
//! | `db.response.returned_rows` | on success (rows the caller received; 0 for `execute`), unless turned off |
//! | `db.response.status_code`, `error.type` | on failure: SQLSTATE (PostgreSQL), error number (MySQL/MariaDB), result code (SQLite); see [`database::classify_error`] for the other `error.type` values |
//!
//! The span status is left unset on success and set to `Error` with an empty description on
//! failure (driver messages can quote bound values). The error itself is returned unchanged.
//! A future dropped before completion ends its span with `error.type = "cancelled"`; a stream
//! dropped early ends its span as a success with the rows read so far.
//!
//! ## Metrics
//!
//! | Metric | Instrument | Attributes |
//! | --- | --- | --- |
//! | `db.client.operation.duration` (`s`, buckets 1 ms .. 10 s) | histogram | `db.system.name`, `db.namespace`, `db.query.summary`, `server.*`, `db.operation.name` / `db.collection.name` (override only), `db.response.status_code` and `error.type` on failure |
//! | `db.client.connection.count` (`{connection}`) | observable up/down counter | pool name, `db.client.connection.state` = `idle` / `used` |
//! | `db.client.connection.max` (`{connection}`) | observable up/down counter | pool name |
//! | `db.client.connection.pending_requests` (`{request}`) | observable up/down counter | pool name (tasks waiting in this wrapper's acquire) |
//! | `db.client.connection.wait_time` (`s`) | histogram | pool name |
//! | `db.client.connection.use_time` (`s`) | histogram | pool name |
//! | `db.client.connection.timeouts` (`{timeout}`) | counter | pool name |
//!
//! The pool name (`db.client.connection.pool.name`) defaults to
//! `{server.address}:{port}/{db.namespace}` (e.g. `127.0.0.1:5432/app`), or the namespace alone
//! for SQLite; set it with [`SqlOptions::with_pool_name`]. Pool metrics cover connections taken
//! through the wrapper (its executor methods, `acquire` and `begin`).
//! They are registered by [`otelrs_core::conv::pool`] (names, units, descriptions and buckets
//! shared with `otelrs-redis`); `db.client.connection.create_time` is not recorded, as sqlx does
//! not expose connection creation. `wait_time` includes acquires that failed or timed out.
//!
//! ## Examples
//!
//! PostgreSQL:
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! use otelrs_sql::{InstrumentedPool, SqlOptions};
//!
//! let pool = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let pool = InstrumentedPool::new(pool, SqlOptions::new());
//! let name: String = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
//!     .bind(42)
//!     .fetch_one(&pool)
//!     .await?;
//! let mut tx = pool.begin().await?;
//! sqlx::query("UPDATE users SET seen = now() WHERE id = $1").bind(42).execute(&mut tx).await?;
//! tx.commit().await?;
//! # let _ = name; Ok(()) }
//! ```
//!
//! MySQL / MariaDB (`connect` detects MariaDB for `db.system.name`):
//!
//! ```no_run
//! # #[cfg(feature = "mysql")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! use otelrs_sql::{InstrumentedPool, SqlOptions};
//!
//! let pool = sqlx::MySqlPool::connect("mysql://root@127.0.0.1:3306/test").await?;
//! let pool = InstrumentedPool::connect(pool, SqlOptions::new()).await?;
//! let rows = sqlx::query("SELECT id FROM orders WHERE status = ?").bind("open").fetch_all(&pool).await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! SQLite, with explicit providers and a per-query summary:
//!
//! ```no_run
//! # #[cfg(feature = "sqlite")]
//! # async fn run() -> Result<(), sqlx::Error> {
//! use otelrs_core::Instrumentation;
//! use otelrs_sql::{InstrumentedPool, QueryInfoExt, QueryTextMode, SqlOptions};
//!
//! let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
//! let options = SqlOptions::new()
//!     .with_instrumentation(Instrumentation::new())
//!     .with_query_text(QueryTextMode::Sanitized);
//! let pool = InstrumentedPool::new(pool, options);
//! let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
//!     .fetch_one(&pool)
//!     .with_summary("COUNT users")
//!     .await?;
//! # let _ = n; Ok(()) }
//! ```
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `sqlx` | yes | the sqlx adapter (`InstrumentedPool`, `Parameters`, ...) |
//! | `postgres` | no | PostgreSQL through `sqlx/postgres` (implies `sqlx`) |
//! | `mysql` | no | MySQL and MariaDB through `sqlx/mysql` (implies `sqlx`) |
//! | `sqlite` | no | SQLite through `sqlx/sqlite` (bundled libsqlite3; implies `sqlx`) |
//! | `diesel` | no | the Diesel adapter, `otelrs_sql::diesel` (Diesel 2.4 with `std` only: no backend, no C library) |
//! | `diesel-async` | no | pool metrics for diesel-async 0.10's deadpool and bb8 pools (implies `diesel`) |
//! | `sea-orm` | no | the SeaORM adapter, `otelrs_sql::sea_orm` (SeaORM 2 without its default features; `postgres`, `mysql` and `sqlite` turn on its driver of the same name; implies `sqlx`) |
//!
//! sqlx is used with `runtime-tokio` and `macros` (sqlx's default, which adds
//! `Executor::describe`); no TLS feature is turned on here — enable one on your own `sqlx`
//! dependency if you need it. A Diesel-only build turns the default off
//! (`default-features = false, features = ["diesel"]`) and compiles nothing of sqlx.
//!
//! ## Bind parameter capture
//!
//! sqlx encodes a value the moment it is bound and cannot give it back, so the values of a
//! `.bind()` chain are invisible to any wrapper. With
//! [`SqlOptions::with_parameter_capture`] on, values are recorded from two explicit sources:
//! [`Parameters`], an arguments builder for `sqlx::query_with` / `query_as_with` /
//! `query_scalar_with` that keeps each value's text as it binds it, and
//! [`QueryInfo::parameter`] for `.bind()` chains and the `query!` macros:
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn run(pool: &otelrs_sql::InstrumentedPool<sqlx::Postgres>) -> Result<(), sqlx::error::BoxDynError> {
//! use otelrs_sql::{Parameters, QueryInfo, QueryInfoExt};
//!
//! // db.query.parameter.0 = "42", db.query.parameter.1 = "open"
//! let mut params = Parameters::<sqlx::Postgres>::new();
//! params.add(42_i64)?;
//! params.add("open")?;
//! let rows = sqlx::query_with("SELECT id FROM orders WHERE customer = $1 AND status = $2", params)
//!     .fetch_all(pool)
//!     .await?;
//!
//! // The same through a `.bind()` chain.
//! let rows = sqlx::query("SELECT id FROM orders WHERE customer = $1 AND status = $2")
//!     .bind(42_i64)
//!     .bind("open")
//!     .fetch_all(pool)
//!     .with_query_info(QueryInfo::new().parameter(42).parameter("open"))
//!     .await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! ## Not supported
//!
//! `db.operation.batch.size` is not set (sqlx has no batch API).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "sqlx")]
mod async_stream;
mod cache;
pub mod database;
#[cfg(feature = "diesel")]
#[cfg_attr(docsrs, doc(cfg(feature = "diesel")))]
pub mod diesel;
mod options;
mod parameters;
#[cfg(feature = "sqlx")]
mod pool;
mod query_info;
pub mod sanitize;
#[cfg(feature = "sea-orm")]
#[cfg_attr(docsrs, doc(cfg(feature = "sea-orm")))]
pub mod sea_orm;
pub mod sqlcommenter;
mod telemetry;

#[cfg(feature = "sqlx")]
pub use database::InstrumentedDatabase;
pub use database::ServerInfo;
pub use options::{QueryTextMode, SqlOptions, DEFAULT_CACHE_CAPACITY};
#[cfg(feature = "sqlx")]
pub use parameters::Parameters;
#[cfg(feature = "sqlx")]
pub use pool::{InstrumentedConnection, InstrumentedPool, InstrumentedTransaction};
pub use query_info::{QueryInfo, QueryInfoExt, WithQueryInfo};
pub use sqlcommenter::SqlCommenter;
