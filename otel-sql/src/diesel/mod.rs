//! OpenTelemetry for [Diesel](https://docs.rs/diesel) 2.4 (feature `diesel`) and
//! [diesel-async](https://docs.rs/diesel-async) 0.10 (feature `diesel-async`), through Diesel's
//! own hook, [`diesel::connection::Instrumentation`]:
//! the same spans, sanitizer, summaries and `db.client.operation.duration` as the sqlx adapter,
//! for every Diesel connection type (`SqliteConnection`, `PgConnection`, `MysqlConnection`,
//! diesel-async's `AsyncPgConnection`, `AsyncMysqlConnection`, `AsyncMariadbConnection`), and
//! the pool metrics of diesel-async's deadpool and bb8 pools.
//!
//! Quickstart: [`examples/examples/diesel.rs`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/diesel.rs)
//! (`cargo run -p examples --example diesel`).
//!
//! Configure a [`DieselInstrumentation`] with the family's [`SqlOptions`], then either
//!
//! * install it on a connection: `conn.set_instrumentation(diesel.connection(url))`
//!   ([`DieselInstrumentation::connection`]), or
//! * make it the process default, which every connection established afterwards receives
//!   ([`DieselInstrumentation::install_default`], Diesel's `set_default_instrumentation`), or
//! * build a diesel-async pool whose connections carry it
//!   ([`DieselInstrumentation::deadpool`], [`DieselInstrumentation::bb8`]).
//!
//! ## Spans
//!
//! One `CLIENT` span per query, from Diesel's `StartQuery` to its `FinishQuery` event, named and
//! attributed exactly as the sqlx adapter's (see the [crate] docs): `db.query.summary`
//! (`SELECT users`) as the name, `db.system.name`, `db.namespace`, `server.address`,
//! `server.port` (non-default only), `db.query.text` per [`QueryTextMode`](crate::QueryTextMode),
//! `db.query.summary`, and on failure `error.type`, `db.response.status_code` and status
//! `Error` with an empty description. The span's parent is the caller's current OpenTelemetry
//! context at `StartQuery`: Diesel raises its events synchronously on the thread that runs the
//! query, and diesel-async raises `StartQuery` when the query's future is created. A
//! [`QueryInfo`](crate::QueryInfo) in that context overrides the summary, operation and
//! collection as it does for sqlx. A connection driven on another thread (`spawn_blocking`,
//! deadpool-diesel's `interact`, diesel-async's `SyncConnectionWrapper`) sees that thread's
//! context: attach the caller's there (`let cx = Context::current();` before, `let _g =
//! cx.attach();` in the closure), or its spans are roots.
//!
//! Bind values are never exported: Diesel prints a query as `{sql} -- binds: [{values}]`, and
//! only the SQL is read (formatting stops before the values are printed). With the default
//! [`QueryTextMode::Parameterized`](crate::QueryTextMode::Parameterized), SQL with placeholders
//! (every Diesel DSL query) is recorded as written and SQL without them (`sql_query` with
//! literals) sanitized.
//!
//! Transactions are recorded as the sqlx adapter records them: Diesel's `BeginTransaction`,
//! `CommitTransaction` and `RollbackTransaction` events make the statement that follows a
//! `BEGIN`, `COMMIT` or `ROLLBACK` operation (`db.operation.name` set, no query text, named
//! `BEGIN {db.namespace}`), nested transactions' `SAVEPOINT` / `RELEASE SAVEPOINT` /
//! `ROLLBACK TO SAVEPOINT` included.
//!
//! Connection establishment through the process default is one `CLIENT` span named
//! `connect {db.namespace}` with the target's attributes; when it fails, `error.type` (see
//! [`classify_connection_error`]) and status `Error`. It is not an operation: no
//! `db.client.operation.duration` point (pooled connections record
//! `db.client.connection.create_time`). diesel-async's `AsyncPgConnection` reports no outcome
//! when its TCP connection fails (nor does a dropped establishment future): such a span ends
//! when the connection attempt is dropped, with `error.type = "_OTHER"`.
//!
//! Not recorded, because Diesel's events do not carry them: `db.response.returned_rows`, and
//! parameter values (even with [`SqlOptions::with_parameter_capture`], only values named with
//! [`QueryInfo::parameter`](crate::QueryInfo::parameter) are recorded). MySQL and MariaDB
//! errors give the SQLSTATE (`23000`) as `db.response.status_code` where the sqlx adapter gives
//! the error number (`1062`): Diesel exposes only the former. SQLite errors carry no code in
//! Diesel; their `error.type` is the error's kind (`unique_violation`). See [`classify_error`].
//!
//! ## Queries that never finish
//!
//! A diesel-async query future dropped before it completes (a timeout, a `select!`) never raises
//! `FinishQuery`, and neither do a few driver errors raised before the statement is sent. Such a
//! query's span is ended with status `Error` and `error.type = "cancelled"` (and its duration
//! recorded so) once the connection shows it moved on, or when the connection is dropped,
//! whichever comes first. No span is left open longer, and none leaks.
//!
//! "Moved on" means two more queries started while it was unfinished: the first only overlaps
//! it (as a pipelined query would; diesel-async's `AsyncPgConnection` runs its two session
//! settings that way while connecting), the second shows it was abandoned. Its end time and
//! duration are then taken at the start of the first overlapping query. A query whose
//! `FinishQuery` does come is recorded as it ended, overlapped or not (`FinishQuery` is matched
//! to its `StartQuery` by SQL text when several are unfinished).
//!
//! For `AsyncPgConnection`s that pipeline deeper (three or more queries in flight at once
//! through `&AsyncPgConnection`), turn on [`DieselInstrumentation::with_pipelining`]:
//! unfinished queries are then ended as cancelled only when the connection is dropped or more
//! than 64 are outstanding.
//!
//! ## Metrics
//!
//! `db.client.operation.duration` as in the crate docs, for every query and transaction
//! statement. The pools of [`DieselInstrumentation::deadpool`] and
//! [`DieselInstrumentation::bb8`] record `db.client.connection.count` (`idle` / `used`),
//! `.max`, `.pending_requests`, `.wait_time`, `.use_time`, `.create_time` and `.timeouts`
//! through [`otelrs_core::conv::pool`], named by [`SqlOptions::with_pool_name`] or by default
//! `{server.address}:{port}/{db.namespace}` from the URL.
//!
//! ## Native libraries and features
//!
//! Feature `diesel` depends on `diesel` with only its `std` feature: no backend, so no native
//! library. Diesel's synchronous `PgConnection` and `MysqlConnection` need libpq and
//! libmysqlclient (Diesel's `postgres` and `mysql` features); they are instrumented the same
//! way, but nothing here requires them. For PostgreSQL and MySQL/MariaDB without C libraries use
//! diesel-async (`postgres`: tokio-postgres, `mysql` / `mariadb`: mysql_async, pure Rust); for
//! SQLite, Diesel's `sqlite` feature with `libsqlite3-sys/bundled` compiles SQLite in.
//! Feature `diesel-async` adds the pool wrappers (diesel-async's `deadpool` and `bb8`).
//!
//! The Diesel adapter lives in this crate, not a crate of its own, because it shares all of
//! the sqlx adapter's rules (sanitizer, summaries, span naming, metrics); the weight argument is
//! met by making sqlx optional: with `default-features = false, features = ["diesel"]` nothing
//! of sqlx is built (59 crates in the tree instead of 147).
//!
//! ## Examples
//!
//! Per connection, SQLite in memory:
//!
//! ```
//! use diesel::connection::Connection as _;
//! use diesel::prelude::*;
//! use otelrs_sql::diesel::DieselInstrumentation;
//! use otelrs_sql::SqlOptions;
//!
//! let diesel = DieselInstrumentation::new(SqlOptions::new());
//! let url = ":memory:";
//! let mut conn = SqliteConnection::establish(url)?;
//! conn.set_instrumentation(diesel.connection(url));
//! // One span: `SELECT` (db.query.text = "SELECT ?", the value 1 is never exported).
//! let one: i32 = diesel::select(1.into_sql::<diesel::sql_types::Integer>()).get_result(&mut conn)?;
//! # assert_eq!(one, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! As the process default (every connection established afterwards, sync or async):
//!
//! ```no_run
//! use otelrs_sql::diesel::DieselInstrumentation;
//! use otelrs_sql::SqlOptions;
//!
//! DieselInstrumentation::new(SqlOptions::new()).install_default()?;
//! # Ok::<(), diesel::result::Error>(())
//! ```
//!
//! diesel-async over PostgreSQL (no libpq):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use diesel::prelude::*;
//! use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
//! use otelrs_sql::diesel::DieselInstrumentation;
//! use otelrs_sql::SqlOptions;
//!
//! let url = "postgres://postgres@127.0.0.1:5432/test";
//! let diesel = DieselInstrumentation::new(SqlOptions::new());
//! let mut conn = AsyncPgConnection::establish(url).await?;
//! conn.set_instrumentation(diesel.connection(url));
//! let n: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>("count(*) FROM pg_class"))
//!     .get_result(&mut conn)
//!     .await?;
//! # let _ = n; Ok(()) }
//! ```

mod connection;
mod error;
#[cfg(feature = "diesel-async")]
mod pool;
mod target;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};

use crate::options::SqlOptions;
use crate::telemetry::{scope, Shared};

pub use connection::ConnectionInstrumentation;
pub use error::{classify_connection_error, classify_error};
#[cfg(feature = "diesel-async")]
#[cfg_attr(docsrs, doc(cfg(feature = "diesel-async")))]
pub use pool::{InstrumentedBb8Pool, InstrumentedDeadpool, PooledConnection};

/// How many distinct database targets one [`DieselInstrumentation`] keeps state for (tracer,
/// statement cache, duration histogram); connections to further targets get their own.
const MAX_TARGETS: usize = 64;

/// Key of a target's shared state: what its spans and metrics carry.
type TargetKey = (&'static str, Option<String>, Option<u16>, Option<String>);

/// OpenTelemetry instrumentation for Diesel connections, configured once with [`SqlOptions`]
/// (the family's idiom: `SqlOptions::new()`, `.with_instrumentation(..)`, `.with_*` setters)
/// and cheap to clone.
///
/// It keeps, per database target (system, address, port, namespace), the tracer, the statement
/// analysis cache and the duration histogram, so connections to one database share them; it
/// makes one [`ConnectionInstrumentation`] per connection. See the [module](self) for what is
/// recorded.
///
/// ```
/// use otelrs_core::Instrumentation;
/// use otelrs_sql::diesel::DieselInstrumentation;
/// use otelrs_sql::{QueryTextMode, SqlOptions};
///
/// let diesel = DieselInstrumentation::new(
///     SqlOptions::new()
///         .with_instrumentation(Instrumentation::new())
///         .with_query_text(QueryTextMode::Sanitized)
///         .with_require_parent_span(true),
/// );
/// # let _ = diesel;
/// ```
#[derive(Clone)]
pub struct DieselInstrumentation {
    options: SqlOptions,
    pipelining: bool,
    targets: Arc<Mutex<HashMap<TargetKey, Arc<Shared>>>>,
}

impl fmt::Debug for DieselInstrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselInstrumentation")
            .field("options", &self.options)
            .field("pipelining", &self.pipelining)
            .finish_non_exhaustive()
    }
}

/// The process default, read by [`default_instrumentation`].
static DEFAULT: RwLock<Option<DieselInstrumentation>> = RwLock::new(None);

/// What Diesel's `set_default_instrumentation` calls for every new connection.
fn default_instrumentation() -> Option<Box<dyn ::diesel::connection::Instrumentation>> {
    let default = DEFAULT.read().unwrap_or_else(|p| p.into_inner());
    let instrumentation = default.as_ref()?.unbound();
    Some(Box::new(instrumentation))
}

impl DieselInstrumentation {
    /// Instrumentation with `options`: providers (global unless
    /// [`SqlOptions::with_instrumentation`]), query text mode, comment keeping, text length,
    /// `with_require_parent_span`, `with_system_name` (e.g. `"mariadb"` for a MariaDB server
    /// reached through a `mysql://` URL), pool name and cache capacity. Row counts, parameter
    /// capture through sqlx's `Parameters` and sqlcommenter comments have no Diesel
    /// counterpart (Diesel's hook reports statements, it cannot change them).
    pub fn new(options: SqlOptions) -> Self {
        Self {
            options,
            pipelining: false,
            targets: Arc::default(),
        }
    }

    /// For `AsyncPgConnection`s that pipeline deeply (three or more queries in flight at once
    /// through `&AsyncPgConnection`): an unfinished query is never taken for abandoned because
    /// others started, only ended as cancelled when the connection is dropped (or more than 64
    /// are outstanding). Default `false`; see the [module](self#queries-that-never-finish).
    pub fn with_pipelining(mut self, pipelining: bool) -> Self {
        self.pipelining = pipelining;
        self
    }

    /// The instrumentation of one connection to `url` (the URL it was established with; only
    /// the system, host, port and database are read from it, never the credentials), for
    /// `conn.set_instrumentation(..)` on a connection established already:
    ///
    /// ```
    /// use diesel::connection::Connection as _;
    /// use diesel::SqliteConnection;
    /// use otelrs_sql::diesel::DieselInstrumentation;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let diesel = DieselInstrumentation::new(SqlOptions::new());
    /// let mut conn = SqliteConnection::establish(":memory:")?;
    /// conn.set_instrumentation(diesel.connection(":memory:"));
    /// # Ok::<(), diesel::ConnectionError>(())
    /// ```
    pub fn connection(&self, url: &str) -> ConnectionInstrumentation {
        ConnectionInstrumentation::new(self.clone(), Some(self.shared_for_url(url)))
    }

    /// Makes this the instrumentation of every Diesel connection established from now on in
    /// this process (through Diesel's `set_default_instrumentation`): each learns its target
    /// from the URL it is established with, and records its establishment as a `connect` span.
    /// Replaces the default installed before; connections established earlier keep theirs.
    ///
    /// Statements a driver runs while setting up a connection before it reports the URL
    /// (diesel-async's MySQL session settings) are not recorded.
    ///
    /// ```
    /// use diesel::connection::Connection as _;
    /// use diesel::SqliteConnection;
    /// use otelrs_sql::diesel::DieselInstrumentation;
    /// use otelrs_sql::SqlOptions;
    ///
    /// DieselInstrumentation::new(SqlOptions::new()).install_default()?;
    /// // A `connect :memory:` span, then one span per query.
    /// let mut conn = SqliteConnection::establish(":memory:")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Diesel's, when its default-instrumentation lock is poisoned.
    pub fn install_default(&self) -> ::diesel::QueryResult<()> {
        *DEFAULT.write().unwrap_or_else(|p| p.into_inner()) = Some(self.clone());
        ::diesel::connection::set_default_instrumentation(default_instrumentation)
    }

    /// A connection instrumentation that learns its target from `StartEstablishConnection`.
    fn unbound(&self) -> ConnectionInstrumentation {
        ConnectionInstrumentation::new(self.clone(), None)
    }

    /// The shared state of the target `url` points at, made on first use.
    fn shared_for_url(&self, url: &str) -> Arc<Shared> {
        let target = target::parse(url);
        let system = self.options.system_name.unwrap_or(target.system);
        let key: TargetKey = (
            system,
            target.server.server.as_ref().map(|a| a.address.as_str().to_owned()),
            target.server.server.as_ref().and_then(|a| a.port),
            target.server.namespace.clone(),
        );
        let mut targets = self.targets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = targets.get(&key) {
            return Arc::clone(shared);
        }
        let meter = self.options.instrumentation.meter(scope());
        let mut shared =
            Shared::build(&self.options, target.dialect, system, &target.server, &meter).without_returned_rows();
        // Diesel's hook cannot change a statement: no sqlcommenter comment.
        shared.sqlcommenter = crate::SqlCommenter::Off;
        let shared = Arc::new(shared);
        if targets.len() < MAX_TARGETS {
            targets.insert(key, Arc::clone(&shared));
        }
        shared
    }
}
