//! The instrumented SeaORM transaction.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ::sea_orm::{
    AccessMode, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr, ExecResult, IsolationLevel, QueryResult,
    Statement, StreamTrait, TransactionError, TransactionOptions, TransactionSession, TransactionTrait,
};

use super::traced::{count, InstrumentedStream, Opening, Target, Traced};

/// A SeaORM [`DatabaseTransaction`] begun through an
/// [`InstrumentedDatabaseConnection`](super::InstrumentedDatabaseConnection) (or, nested, through
/// another `InstrumentedDatabaseTransaction`): its statements are recorded like the
/// connection's, [`commit`](Self::commit) and [`rollback`](Self::rollback) as `COMMIT` and
/// `ROLLBACK` operations. Dropping it without either makes SeaORM queue a rollback, recorded as
/// an instant `ROLLBACK` span, as the sqlx adapter records a dropped transaction.
///
/// A nested transaction (`begin` on a transaction: SeaORM's `SAVEPOINT`) is recorded as `BEGIN`,
/// and its release and rollback as `COMMIT` and `ROLLBACK`.
///
/// ```
/// # async fn run() -> Result<(), sea_orm::DbErr> {
/// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
/// use otelrs_sql::SqlOptions;
/// use sea_orm::{ConnectionTrait, TransactionTrait};
///
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
/// // `BEGIN :memory:`, `CREATE TABLE t`, `COMMIT :memory:`.
/// let tx = db.begin().await?;
/// tx.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
/// tx.commit().await?;
/// # Ok(()) }
/// # #[cfg(feature = "sqlite")]
/// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
/// ```
pub struct InstrumentedDatabaseTransaction {
    /// Taken by `commit` and `rollback` only, which consume the value.
    tx: Option<DatabaseTransaction>,
    target: Arc<Target>,
}

impl fmt::Debug for InstrumentedDatabaseTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedDatabaseTransaction")
            .finish_non_exhaustive()
    }
}

impl InstrumentedDatabaseTransaction {
    pub(crate) fn new(tx: DatabaseTransaction, target: &Arc<Target>) -> Self {
        Self {
            tx: Some(tx),
            target: Arc::clone(target),
        }
    }

    fn tx(&self) -> &DatabaseTransaction {
        match &self.tx {
            Some(tx) => tx,
            None => unreachable!("transaction already finished"),
        }
    }

    fn take(&mut self) -> DatabaseTransaction {
        match self.tx.take() {
            Some(tx) => tx,
            None => unreachable!("transaction already finished"),
        }
    }

    /// The wrapped transaction (queries through it are not instrumented).
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::{ConnectionTrait, TransactionTrait};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// let tx = db.begin().await?;
    /// tx.inner().execute_unprepared("SELECT 1").await?; // not recorded
    /// tx.commit().await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub fn inner(&self) -> &DatabaseTransaction {
        self.tx()
    }

    /// Commits (a `COMMIT` span; for a nested transaction, SeaORM's `RELEASE SAVEPOINT`).
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::TransactionTrait;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.begin().await?.commit().await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// SeaORM's, unchanged.
    pub async fn commit(mut self) -> Result<(), DbErr> {
        let tx = self.take();
        let op = self.target.transaction("COMMIT");
        Traced::new(&self.target, op, tx.commit(), count::zero).await
    }

    /// Rolls back (a `ROLLBACK` span; for a nested transaction, SeaORM's
    /// `ROLLBACK TO SAVEPOINT`).
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::TransactionTrait;
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// db.begin().await?.rollback().await?;
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// SeaORM's, unchanged.
    pub async fn rollback(mut self) -> Result<(), DbErr> {
        let tx = self.take();
        let op = self.target.transaction("ROLLBACK");
        Traced::new(&self.target, op, tx.rollback(), count::zero).await
    }
}

impl InstrumentedDatabaseTransaction {
    /// Runs `callback` in a nested transaction (SeaORM's `SAVEPOINT`), committed when it
    /// returns `Ok` and rolled back when it returns `Err`: SeaORM's
    /// `DatabaseTransaction::transaction_async`, recorded (`BEGIN`, the statements, `COMMIT` or
    /// `ROLLBACK`).
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// let tx = db.begin().await?;
    /// tx.transaction_async(async |nested| {
    ///     nested.execute_unprepared("CREATE TABLE t (id INTEGER PRIMARY KEY)").await?;
    ///     Ok::<_, DbErr>(())
    /// })
    /// .await?;
    /// tx.commit().await?;
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
    /// use sea_orm::{ConnectionTrait, DbErr, TransactionTrait};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// let tx = db.begin().await?;
    /// tx.transaction_with_config_async(async |nested| nested.execute_unprepared("SELECT 1").await.map(|_| ()), None, None)
    ///     .await?;
    /// tx.commit().await?;
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
}

impl Drop for InstrumentedDatabaseTransaction {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.target.transaction("ROLLBACK").instant();
        }
    }
}

/// SeaORM's `transaction` / `transaction_with_config`: the callback, then a commit on `Ok` or
/// a rollback on `Err`, each recorded.
pub(crate) async fn run_transaction<F, T, E>(
    tx: InstrumentedDatabaseTransaction,
    callback: F,
) -> Result<T, TransactionError<E>>
where
    F: for<'c> FnOnce(&'c InstrumentedDatabaseTransaction) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
        + Send,
    T: Send,
    E: std::fmt::Display + std::fmt::Debug + Send,
{
    let result = callback(&tx).await.map_err(TransactionError::Transaction);
    if result.is_ok() {
        tx.commit().await.map_err(TransactionError::Connection)?;
    } else {
        tx.rollback().await.map_err(TransactionError::Connection)?;
    }
    result
}

/// SeaORM's `transaction_async` / `transaction_with_config_async`: the async closure, then a
/// commit on `Ok` or a rollback on `Err`, each recorded.
pub(crate) async fn run_transaction_async<F, T, E>(
    tx: InstrumentedDatabaseTransaction,
    callback: F,
) -> Result<T, TransactionError<E>>
where
    F: for<'c> AsyncFnOnce(&'c InstrumentedDatabaseTransaction) -> Result<T, E> + Send,
    T: Send,
    E: std::fmt::Display + std::fmt::Debug + Send,
{
    let result = callback(&tx).await.map_err(TransactionError::Transaction);
    if result.is_ok() {
        tx.commit().await.map_err(TransactionError::Connection)?;
    } else {
        tx.rollback().await.map_err(TransactionError::Connection)?;
    }
    result
}

#[async_trait::async_trait]
impl TransactionSession for InstrumentedDatabaseTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        InstrumentedDatabaseTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        InstrumentedDatabaseTransaction::rollback(self).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for InstrumentedDatabaseTransaction {
    fn get_database_backend(&self) -> DatabaseBackend {
        ConnectionTrait::get_database_backend(self.tx())
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.tx().execute_raw(stmt), count::zero).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let op = self.target.query(sql, false);
        Traced::new(&self.target, op, self.tx().execute_unprepared(sql), count::zero).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.tx().query_one_raw(stmt), count::option).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let op = self.target.query(&stmt.sql, false);
        Traced::new(&self.target, op, self.tx().query_all_raw(stmt), count::vec).await
    }

    fn is_mock_connection(&self) -> bool {
        self.tx().is_mock_connection()
    }
}

impl StreamTrait for InstrumentedDatabaseTransaction {
    type Stream<'a> = InstrumentedStream<<DatabaseTransaction as StreamTrait>::Stream<'a>>;

    fn get_database_backend(&self) -> DatabaseBackend {
        ConnectionTrait::get_database_backend(self.tx())
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<Self::Stream<'a>, DbErr>> + 'a + Send>> {
        let op = self.target.query(&stmt.sql, true);
        Box::pin(Opening::new(&self.target, op, self.tx().stream_raw(stmt)))
    }
}

#[async_trait::async_trait]
impl TransactionTrait for InstrumentedDatabaseTransaction {
    type Transaction = InstrumentedDatabaseTransaction;

    /// Begins a nested transaction (SeaORM's `SAVEPOINT`; a `BEGIN` span).
    async fn begin(&self) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let tx = Traced::new(&self.target, op, self.tx().begin(), count::zero).await?;
        Ok(InstrumentedDatabaseTransaction::new(tx, &self.target))
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let begin = self.tx().begin_with_config(isolation_level, access_mode);
        let tx = Traced::new(&self.target, op, begin, count::zero).await?;
        Ok(InstrumentedDatabaseTransaction::new(tx, &self.target))
    }

    async fn begin_with_options(&self, options: TransactionOptions) -> Result<InstrumentedDatabaseTransaction, DbErr> {
        let op = self.target.transaction("BEGIN");
        let begin = self.tx().begin_with_options(options);
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
