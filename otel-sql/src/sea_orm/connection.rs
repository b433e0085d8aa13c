//! The instrumented SeaORM connection.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use ::sea_orm::DatabaseConnectionType;
use ::sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionTrait,
};

use super::traced::{count, ClassifySqlx, InstrumentedStream, Opening, Target, Traced};
use super::transaction::{run_transaction, run_transaction_async, InstrumentedDatabaseTransaction};
use crate::database::ServerInfo;
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
use crate::database::{classify_error, InstrumentedDatabase};
use crate::options::SqlOptions;
use crate::sanitize::Dialect;
use crate::telemetry::{scope, Shared};

/// A SeaORM [`DatabaseConnection`] whose statements produce the sqlx adapter's OpenTelemetry
/// spans and metrics (see the [module](super) docs for what is recorded, and why a wrapper).
///
/// It implements [`ConnectionTrait`], [`TransactionTrait`] and [`StreamTrait`], so SeaORM's
/// entity, query and transaction APIs take `&InstrumentedDatabaseConnection` where they took
/// `&DatabaseConnection`. Cloning is cheap and shares the connection pool, the instruments and
/// the statement cache.
///
/// ```
/// # async fn run() -> Result<(), sea_orm::DbErr> {
/// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
/// use otelrs_sql::SqlOptions;
/// use sea_orm::{ConnectionTrait, Database, Statement};
///
/// let db = Database::connect("sqlite::memory:").await?;
/// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
/// // One span: `SELECT` (db.query.text = "SELECT ?"; the bound 1 is never exported).
/// let row = db
///     .query_one_raw(Statement::from_sql_and_values(db.get_database_backend(), "SELECT ?", [1.into()]))
///     .await?;
/// # assert!(row.is_some());
/// # Ok(()) }
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
#[derive(Clone)]
pub struct InstrumentedDatabaseConnection {
    db: DatabaseConnection,
    target: Arc<Target>,
}

impl fmt::Debug for InstrumentedDatabaseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedDatabaseConnection")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

/// What the spans of `db` carry: dialect, `db.system.name`, server and namespace, and how its
/// sqlx errors are classified. Known for the sqlx pools of the drivers this build has; other
/// connections (a mock, a proxy, a driver whose otelrs-sql feature is off) get the backend's
/// dialect and system name only.
fn describe(db: &DatabaseConnection) -> (Dialect, &'static str, ServerInfo, Option<ClassifySqlx>) {
    #[cfg(feature = "postgres")]
    if let DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &db.inner {
        return sqlx_pool::<sqlx::Postgres>(db.get_postgres_connection_pool());
    }
    #[cfg(feature = "mysql")]
    if let DatabaseConnectionType::SqlxMySqlPoolConnection(_) = &db.inner {
        return sqlx_pool::<sqlx::MySql>(db.get_mysql_connection_pool());
    }
    #[cfg(feature = "sqlite")]
    if let DatabaseConnectionType::SqlxSqlitePoolConnection(_) = &db.inner {
        return sqlx_pool::<sqlx::Sqlite>(db.get_sqlite_connection_pool());
    }
    let (dialect, system) = match db.get_database_backend() {
        DatabaseBackend::Postgres => (Dialect::PostgreSql, "postgresql"),
        DatabaseBackend::MySql => (Dialect::MySql, "mysql"),
        DatabaseBackend::Sqlite => (Dialect::Sqlite, "sqlite"),
        _ => (Dialect::Generic, "other_sql"),
    };
    (dialect, system, ServerInfo::default(), None)
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
fn sqlx_pool<DB: InstrumentedDatabase>(
    pool: &sqlx::Pool<DB>,
) -> (Dialect, &'static str, ServerInfo, Option<ClassifySqlx>) {
    let server = DB::server_info(&pool.connect_options());
    (DB::DIALECT, DB::SYSTEM_NAME, server, Some(classify_error::<DB>))
}

impl InstrumentedDatabaseConnection {
    /// Instruments `db` (from [`Database::connect`](::sea_orm::Database::connect) or a
    /// `SqlxPostgresConnector::from_sqlx_postgres_pool`-style constructor). `db.namespace`,
    /// `server.address` and `server.port` come from its sqlx pool's connect options. No I/O
    /// happens here, so a MySQL-driver connection reports `db.system.name = "mysql"` unless
    /// [`SqlOptions::with_system_name`] says otherwise; use
    /// [`InstrumentedDatabaseConnection::connect`] to detect MariaDB.
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_core::Instrumentation;
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::{QueryTextMode, SqlOptions};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(
    ///     db,
    ///     SqlOptions::new()
    ///         .with_instrumentation(Instrumentation::new())
    ///         .with_query_text(QueryTextMode::Sanitized)
    ///         .with_require_parent_span(true),
    /// );
    /// # let _ = db; Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn new(db: DatabaseConnection, options: SqlOptions) -> Self {
        let (dialect, system, server, errors) = describe(&db);
        let system = options.system_name.unwrap_or(system);
        Self::build(db, &options, dialect, system, &server, errors)
    }

    /// Like [`InstrumentedDatabaseConnection::new`], but first asks a MySQL-driver server for
    /// its version to report `db.system.name = "mariadb"` for MariaDB (one `SELECT VERSION()`
    /// on a pooled connection; nothing for other databases). Fails only when that query fails.
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::connect(db, SqlOptions::new()).await?;
    /// # let _ = db; Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The error of the version query, as SeaORM reports a failed query.
    pub async fn connect(db: DatabaseConnection, options: SqlOptions) -> Result<Self, DbErr> {
        let (dialect, detected, server, errors) = describe(&db);
        let system = match options.system_name {
            Some(name) => name,
            None => detect_system(&db, detected).await?,
        };
        Ok(Self::build(db, &options, dialect, system, &server, errors))
    }

    fn build(
        db: DatabaseConnection,
        options: &SqlOptions,
        dialect: Dialect,
        system: &'static str,
        server: &ServerInfo,
        errors: Option<ClassifySqlx>,
    ) -> Self {
        let meter = options.instrumentation.meter(scope());
        let mut shared = Shared::build(options, dialect, system, server, &meter);
        // SeaORM runs its statements as prepared (persistent) statements, which a comment
        // would make unique: no sqlcommenter comments here.
        shared.sqlcommenter = crate::SqlCommenter::Off;
        Self {
            db,
            target: Arc::new(Target {
                shared: Arc::new(shared),
                errors,
            }),
        }
    }

    /// Runs `callback` in a transaction, committed when it returns `Ok` and rolled back when
    /// it returns `Err`: SeaORM's `DatabaseConnection::transaction_async`, recorded (`BEGIN`,
    /// the statements, `COMMIT` or `ROLLBACK`).
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::{ConnectionTrait, DbErr};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.transaction_async(async |tx| {
    ///     tx.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
    ///     Ok::<_, DbErr>(())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// The callback's error as [`TransactionError::Transaction`], SeaORM's begin, commit or
    /// rollback error as [`TransactionError::Connection`].
    pub async fn transaction_async<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c InstrumentedDatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let tx = TransactionTrait::begin(self)
            .await
            .map_err(TransactionError::Connection)?;
        run_transaction_async(tx, callback).await
    }

    /// [`transaction_async`](Self::transaction_async) with an isolation level and access mode.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::ConnectionTrait;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.transaction_with_config_async(async |tx| tx.execute_unprepared("SELECT 1").await.map(|_| ()), None, None)
    ///     .await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`transaction_async`](Self::transaction_async).
    pub async fn transaction_with_config_async<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> AsyncFnOnce(&'c InstrumentedDatabaseTransaction) -> Result<T, E> + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let tx = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        run_transaction_async(tx, callback).await
    }

    /// The wrapped connection (queries through it are not instrumented).
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.inner().ping().await?; // not recorded
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn inner(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The wrapped connection, without the instrumentation.
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.into_inner().close().await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn into_inner(self) -> DatabaseConnection {
        self.db
    }
}

/// `db.system.name` of a MySQL-driver connection as the server reports it; others' unchanged.
async fn detect_system(db: &DatabaseConnection, detected: &'static str) -> Result<&'static str, DbErr> {
    #[cfg(feature = "mysql")]
    if let DatabaseConnectionType::SqlxMySqlPoolConnection(_) = &db.inner {
        return <sqlx::MySql as InstrumentedDatabase>::detect_system(db.get_mysql_connection_pool())
            .await
            .map_err(|e| DbErr::Query(::sea_orm::RuntimeErr::SqlxError(Arc::new(e))));
    }
    let _ = db;
    Ok(detected)
}

#[async_trait::async_trait]
impl ConnectionTrait for InstrumentedDatabaseConnection {
    fn get_database_backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.db.execute_raw(stmt), count::zero).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let op = self.target.query(sql, false);
        Traced::new(&self.target, op, self.db.execute_unprepared(sql), count::zero).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.db.query_one_raw(stmt), count::option).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.db.query_all_raw(stmt), count::vec).await
    }

    fn is_mock_connection(&self) -> bool {
        self.db.is_mock_connection()
    }
}

impl StreamTrait for InstrumentedDatabaseConnection {
    type Stream<'a> = InstrumentedStream<<DatabaseConnection as StreamTrait>::Stream<'a>>;

    fn get_database_backend(&self) -> DatabaseBackend {
        self.db.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        let op = self.target.query(&stmt.sql, true);
        Box::pin(Opening::new(&self.target, op, self.db.stream_raw(stmt)))
    }
}

#[async_trait::async_trait]
impl TransactionTrait for InstrumentedDatabaseConnection {
    type Transaction = InstrumentedDatabaseTransaction;

    /// Begins a transaction (a `BEGIN` span, covering the wait for a pooled connection).
    async fn begin(&self) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let tx = Traced::new(&self.target, op, self.db.begin(), count::zero).await?;
        Ok(InstrumentedDatabaseTransaction::new(tx, &self.target))
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let begin = self.db.begin_with_config(isolation_level, access_mode);
        let tx = Traced::new(&self.target, op, begin, count::zero).await?;
        Ok(InstrumentedDatabaseTransaction::new(tx, &self.target))
    }

    async fn begin_with_options(&self, options: TransactionOptions) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let begin = self.db.begin_with_options(options);
        let tx = Traced::new(&self.target, op, begin, count::zero).await?;
        Ok(InstrumentedDatabaseTransaction::new(tx, &self.target))
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c InstrumentedDatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let tx = TransactionTrait::begin(self)
            .await
            .map_err(TransactionError::Connection)?;
        run_transaction(tx, callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c InstrumentedDatabaseTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let tx = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        run_transaction(tx, callback).await
    }
}
