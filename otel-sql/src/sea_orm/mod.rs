//! OpenTelemetry for [SeaORM](https://docs.rs/sea-orm) 2 (feature `sea-orm`): the sqlx
//! adapter's spans, sanitizer, summaries and `db.client.operation.duration` for SeaORM's entity,
//! query and transaction APIs, through [`InstrumentedDatabaseConnection`], a wrapper of SeaORM's
//! `DatabaseConnection` that implements SeaORM's own connection traits.
//!
//! Quickstart: [`examples/examples/sea_orm.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/sea_orm.rs)
//! (`cargo run -p examples --example sea_orm`).
//!
//! ```
//! # async fn run() -> Result<(), sea_orm::DbErr> {
//! use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
//! use otelrs_sql::SqlOptions;
//! use sea_orm::{ConnectionTrait, Database, TransactionTrait};
//!
//! let db = Database::connect("sqlite::memory:").await?;
//! let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
//! // Every SeaORM API that takes a `ConnectionTrait` takes `&db`: `Entity::find().all(&db)`,
//! // `active_model.insert(&db)`, `db.transaction(..)`, ...
//! db.execute_unprepared("CREATE TABLE cake (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").await?;
//! let tx = db.begin().await?;
//! tx.execute_unprepared("INSERT INTO cake (name) VALUES ('cheese')").await?;
//! tx.commit().await?;
//! # Ok(()) }
//! # #[cfg(feature = "sqlite")]
//! # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
//! ```
//!
//! ## Why a connection wrapper
//!
//! SeaORM runs every statement on its own `sqlx::Pool`, and its connectors
//! (`SqlxPostgresConnector::from_sqlx_postgres_pool`, ...) take a concrete `sqlx::Pool`: an
//! [`InstrumentedPool`](crate::InstrumentedPool) cannot be put underneath. SeaORM's other hooks
//! fall short of the sqlx adapter's rules:
//!
//! * `DatabaseConnection::set_metric_callback` is called after a statement completed, with its
//!   text, elapsed time and a `failed` flag: no error to classify (`error.type`,
//!   `db.response.status_code`), no call for `BEGIN`, `COMMIT`, `ROLLBACK`,
//!   `execute_unprepared` or a future dropped before it completed, and no span current while the
//!   statement runs.
//! * A `ProxyDatabaseTrait` connection receives each `Statement` but must return rows as
//!   SeaORM's `ProxyRow` values: every row would be decoded and re-encoded, outside sqlx's pool
//!   and typed rows.
//!
//! All of SeaORM's query APIs are generic over its traits ([`ConnectionTrait`],
//! [`TransactionTrait`], [`StreamTrait`], [`TransactionSession`]), so a wrapper implementing
//! them sees every statement, with its bind values apart (`Statement::sql` and
//! `Statement::values`), on the caller's task, and runs it exactly as SeaORM would, through the
//! wrapped `DatabaseConnection`. It drives the same operation type as the sqlx executors, so the
//! rules are the sqlx adapter's, not a copy.
//!
//! ## Spans
//!
//! One `CLIENT` span per statement (`execute`, `execute_unprepared`, `query_one`, `query_all`,
//! a stream), started at the first poll of SeaORM's future (its parent is the caller's current
//! OpenTelemetry context) and ended when the result is ready or the future is dropped
//! (`error.type = "cancelled"`); a stream's span ends when the stream ends, fails or is dropped.
//! Names and attributes are those of the sqlx adapter (see the [crate] docs): named by
//! `db.query.summary` (`SELECT "cake"`), `db.system.name`, `db.namespace`, `server.address`,
//! `server.port` (non-default only, read from SeaORM's sqlx pool), `db.query.text` per
//! [`QueryTextMode`](crate::QueryTextMode), `db.query.summary`, `db.response.returned_rows`
//! (rows received; 0 for `execute`), and on failure `error.type`, `db.response.status_code` and
//! status `Error` with an empty description (SeaORM's error is returned unchanged). A
//! [`QueryInfo`](crate::QueryInfo) attached with [`QueryInfoExt`](crate::QueryInfoExt) overrides
//! the summary, operation and collection as it does for sqlx.
//!
//! Bind values are never exported: the query text is `Statement::sql`, whose values are
//! placeholders (`$1`, `?`), never `Statement::to_string()`, which inlines them. With the
//! default [`QueryTextMode::Parameterized`](crate::QueryTextMode::Parameterized), SQL with
//! placeholders (every statement SeaORM builds) is recorded as written and SQL without them
//! (`execute_unprepared`, `Statement::from_string`) sanitized.
//!
//! Transactions are recorded as the sqlx adapter records them: `begin` (and
//! `begin_with_config`, `begin_with_options`, and the begin of `transaction(..)`) is a `BEGIN`
//! operation covering the wait for a pooled connection and SeaORM's `SET TRANSACTION`, `commit`
//! a `COMMIT` and `rollback` a `ROLLBACK` (`db.operation.name` set, no query text, named
//! `BEGIN {db.namespace}`); a transaction dropped without either is an instant `ROLLBACK`.
//! Nested transactions (SeaORM's savepoints) are recorded the same way.
//!
//! ## Metrics
//!
//! `db.client.operation.duration` as in the crate docs, for every statement and transaction
//! operation. The `db.client.connection.*` pool metrics are not recorded: SeaORM takes
//! connections from its pool inside its own calls, out of the wrapper's sight.
//!
//! ## Limits
//!
//! * Only statements run through the wrapper are recorded: not those run through
//!   [`inner`](InstrumentedDatabaseConnection::inner) or another clone of the
//!   `DatabaseConnection`, nor by APIs that take a concrete `&DatabaseConnection` or
//!   `DatabaseExecutor` instead of SeaORM's traits (sea-orm-migration's `SchemaManager`,
//!   `DatabaseConnection::get_schema_builder().sync(..)`).
//! * The span covers SeaORM's wait for a pooled connection, as the sqlx adapter's pool
//!   executor's span does.
//! * Options without effect here: [`SqlOptions::with_pool_name`](crate::SqlOptions::with_pool_name)
//!   (no pool metrics) and [`SqlOptions::with_sqlcommenter`](crate::SqlOptions::with_sqlcommenter)
//!   (SeaORM prepares and caches every statement it runs with values, and a comment would make
//!   each text unique). With [`SqlOptions::with_parameter_capture`](crate::SqlOptions::with_parameter_capture)
//!   only values named with [`QueryInfo::parameter`](crate::QueryInfo::parameter) are recorded.
//! * The backends are those of this crate's features: `postgres`, `mysql` and `sqlite` turn on
//!   SeaORM's `sqlx-postgres`, `sqlx-mysql` and `sqlx-sqlite`. A connection of a driver whose
//!   feature is off here (or a mock or proxy connection) is recorded without `db.namespace` and
//!   `server.*`, and its errors as `error.type = "_OTHER"`.
//!
//! ## Features
//!
//! Feature `sea-orm` depends on `sea-orm` with its default features off and only
//! `runtime-tokio` and `stream` (for [`StreamTrait`]) turned on, plus the drivers named above;
//! SeaORM's `macros` and other defaults are the application's choice.

mod connection;
mod traced;
mod transaction;

#[cfg(doc)]
use ::sea_orm::{ConnectionTrait, StreamTrait, TransactionSession, TransactionTrait};

pub use connection::InstrumentedDatabaseConnection;
pub use traced::InstrumentedStream;
pub use transaction::InstrumentedDatabaseTransaction;
