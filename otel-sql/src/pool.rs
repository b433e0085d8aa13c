//! The instrumented pool, its connections and transactions.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_core::future::BoxFuture;
use futures_core::stream::BoxStream;
use futures_util::TryStreamExt;
use opentelemetry::Context;
use otelrs_core::conv::pool::{PoolMetrics, PoolStatus};
use sqlx::error::BoxDynError;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Database, Either, Execute, Executor, Pool, SqlSafeStr, SqlStr, Transaction};

use crate::SqlCommenter;

use crate::async_stream::TryAsyncStream;
use crate::database::InstrumentedDatabase;
use crate::options::SqlOptions;
use crate::telemetry::{count, pool_name, scope, Op, OpFuture, OpKind, OpStream, PendingGuard, Shared};

/// A `sqlx::Pool` whose queries produce OpenTelemetry spans and metrics.
///
/// `&InstrumentedPool` is an [`sqlx::Executor`], so every query API takes it where it took
/// `&Pool`. Cloning is cheap and shares the pool, the instruments and the statement cache.
/// Build one per pool: each builds its instruments and registers the pool's observable gauges.
pub struct InstrumentedPool<DB: Database> {
    state: Arc<PoolState<DB>>,
}

struct PoolState<DB: Database> {
    pool: Pool<DB>,
    shared: Arc<Shared>,
}

impl<DB: Database> Clone for InstrumentedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
        }
    }
}

impl<DB: Database> fmt::Debug for InstrumentedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("pool", &self.state.pool)
            .finish()
    }
}

impl<DB: InstrumentedDatabase> InstrumentedPool<DB> {
    /// Instruments `pool`. `db.namespace`, `server.address` and `server.port` come from the
    /// pool's connect options. No I/O happens here, so a MySQL-driver pool reports
    /// `db.system.name = "mysql"` unless [`SqlOptions::with_system_name`] says otherwise; use
    /// [`InstrumentedPool::connect`] to detect MariaDB.
    pub fn new(pool: Pool<DB>, options: SqlOptions) -> Self {
        let system = options.system_name.unwrap_or(DB::SYSTEM_NAME);
        Self::build(pool, options, system)
    }

    /// Like [`InstrumentedPool::new`], but first asks a MySQL-driver server for its version to
    /// report `db.system.name = "mariadb"` for MariaDB (one `SELECT VERSION()` on a pooled
    /// connection; nothing for other databases). Fails only when that query fails.
    pub async fn connect(pool: Pool<DB>, options: SqlOptions) -> Result<Self, sqlx::Error> {
        let system = match options.system_name {
            Some(name) => name,
            None => DB::detect_system(&pool).await?,
        };
        Ok(Self::build(pool, options, system))
    }

    fn build(pool: Pool<DB>, options: SqlOptions, system: &'static str) -> Self {
        let connect_options = pool.connect_options();
        let server = DB::server_info(&connect_options);
        let configured_port = DB::configured_port(&connect_options);
        let meter = options.instrumentation.meter(scope());
        let name = pool_name(&options, &server, configured_port);
        let bind = options.instrumentation.bound_instrument_capacity() > 0;
        // The pool gauges read the pool through a weak reference and stop reporting once every
        // handle to the instrumented pool is gone.
        let state = Arc::new_cyclic(|weak: &Weak<PoolState<DB>>| {
            let weak = weak.clone();
            let metrics = PoolMetrics::register(&meter, name, bind, move || weak.upgrade().map(|s| s.status()));
            let shared = Arc::new(Shared::new::<DB>(&options, system, &server, &meter, metrics));
            PoolState { pool, shared }
        });
        Self { state }
    }

    /// The wrapped pool (queries through it are not instrumented).
    pub fn inner(&self) -> &Pool<DB> {
        &self.state.pool
    }

    /// Closes the pool (see [`Pool::close`]).
    pub async fn close(&self) {
        self.state.pool.close().await;
    }
}

impl<DB> InstrumentedPool<DB>
where
    DB: InstrumentedDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Acquires an instrumented connection, recording `db.client.connection.wait_time`,
    /// `pending_requests` and `timeouts`; `use_time` is recorded when it is dropped.
    pub async fn acquire(&self) -> Result<InstrumentedConnection<DB>, sqlx::Error> {
        let lease = acquire_metered(&self.state.pool, &self.state.shared).await?;
        Ok(InstrumentedConnection { lease })
    }

    /// Acquires a connection and begins a transaction (one `BEGIN` span, covering the wait for
    /// the connection).
    pub async fn begin(&self) -> Result<InstrumentedTransaction<'static, DB>, sqlx::Error> {
        let shared = Arc::clone(&self.state.shared);
        let pool = self.state.pool.clone();
        let op = Op::new(Arc::clone(&shared), OpKind::Transaction("BEGIN"), false);
        let fut = async move {
            let lease = acquire_metered(&pool, &shared).await?;
            let Lease { conn, timer } = lease;
            // What `Pool::begin` does, with our own metered acquire.
            let tx = Transaction::begin(conn, None).await?;
            Ok((tx, timer))
        };
        let (tx, timer) = OpFuture::new(op, fut, count::zero).await?;
        Ok(InstrumentedTransaction {
            tx: Some(tx),
            shared: Arc::clone(&self.state.shared),
            _timer: Some(timer),
        })
    }
}

impl<DB: Database> PoolState<DB> {
    /// The pool as the `db.client.connection.*` gauges report it: sqlx's open and idle counts,
    /// its configured maximum, and the tasks waiting in this wrapper's acquire.
    fn status(&self) -> PoolStatus {
        let size = i64::from(self.pool.size());
        let idle = i64::try_from(self.pool.num_idle()).unwrap_or(i64::MAX).min(size);
        PoolStatus {
            idle,
            used: size - idle,
            max: i64::from(self.pool.options().get_max_connections()),
            pending: self.shared.pending.load(Ordering::Relaxed).max(0),
        }
    }
}

/// A pooled connection with its use-time clock.
struct Lease<DB: Database> {
    conn: PoolConnection<DB>,
    timer: UseTimer,
}

/// Records `db.client.connection.use_time` when dropped.
struct UseTimer {
    since: Instant,
    shared: Arc<Shared>,
}

impl Drop for UseTimer {
    fn drop(&mut self) {
        self.shared.record_use(self.since.elapsed());
    }
}

async fn acquire_metered<DB: Database>(pool: &Pool<DB>, shared: &Arc<Shared>) -> Result<Lease<DB>, sqlx::Error> {
    let start = Instant::now();
    let result = {
        let _pending = PendingGuard::new(&shared.pending);
        pool.acquire().await
    };
    shared.record_wait(start.elapsed(), matches!(result, Err(sqlx::Error::PoolTimedOut)));
    let conn = result?;
    Ok(Lease {
        conn,
        timer: UseTimer {
            since: Instant::now(),
            shared: Arc::clone(shared),
        },
    })
}

/// A query taken apart (to read its SQL, which `Execute::sql` consumes) and put back together.
struct Reassembled<'q, DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
    /// Read when the driver asks for the text, under the operation's context.
    commenter: SqlCommenter,
    _query: PhantomData<&'q ()>,
}

impl<'q, DB: Database> Reassembled<'q, DB> {
    fn new<E: Execute<'q, DB>>(mut query: E, commenter: SqlCommenter) -> Self {
        let statement = query.statement().cloned();
        let persistent = query.persistent();
        let arguments = query.take_arguments();
        let sql = query.sql();
        Self {
            sql,
            statement,
            arguments: Some(arguments),
            persistent,
            commenter,
            _query: PhantomData,
        }
    }
}

impl<'q, DB: Database> Execute<'q, DB> for Reassembled<'q, DB> {
    fn sql(self) -> SqlStr {
        if self.commenter == SqlCommenter::Off {
            return self.sql;
        }
        // Drivers read the text while the operation's future is polled, with its span current.
        let cx = Context::current();
        if self.commenter.applies(&cx) {
            if let Some(text) = crate::sqlcommenter::commented(self.sql.as_str(), &cx) {
                return AssertSqlSafe(text).into_sql_str();
            }
        }
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        // A commented text is unique: caching its prepared statement would only churn the cache.
        // (Off, the default, reads no context.)
        self.persistent && (self.commenter == SqlCommenter::Off || !self.commenter.applies(&Context::current()))
    }
}

fn query_op<'q, DB: Database, E: Execute<'q, DB>>(
    shared: &Arc<Shared>,
    query: E,
    stream: bool,
) -> (Reassembled<'q, DB>, Op) {
    let (q, parameters) = crate::parameters::with_handed_over(|| Reassembled::new(query, shared.sqlcommenter));
    let meta = shared.query_meta(q.sql.as_str());
    let op = Op::new(Arc::clone(shared), OpKind::Query(meta), stream).with_parameters(parameters);
    (q, op)
}

fn prepare_op(shared: &Arc<Shared>, sql: &SqlStr) -> Op {
    let meta = shared.query_meta(sql.as_str());
    Op::new(Arc::clone(shared), OpKind::Prepare(meta), false)
}

type Row<DB> = <DB as Database>::Row;
type QueryResult<DB> = <DB as Database>::QueryResult;

impl<'p, DB> Executor<'p> for &'p InstrumentedPool<DB>
where
    DB: InstrumentedDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<QueryResult<DB>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (q, op) = query_op(&self.state.shared, query, false);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        Box::pin(OpFuture::new(
            op,
            async move {
                let mut lease = acquire_metered(&pool, &shared).await?;
                lease.conn.execute(q).await
            },
            count::zero,
        ))
    }

    fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<Row<DB>>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (q, op) = query_op(&self.state.shared, query, false);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        Box::pin(OpFuture::new(
            op,
            async move {
                let mut lease = acquire_metered(&pool, &shared).await?;
                lease.conn.fetch_all(q).await
            },
            count::vec,
        ))
    }

    fn fetch_many<'e, 'q: 'e, E>(self, query: E) -> BoxStream<'e, Result<Either<QueryResult<DB>, Row<DB>>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (q, op) = query_op(&self.state.shared, query, true);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        let inner = TryAsyncStream::new(move |yielder| async move {
            let mut lease = acquire_metered(&pool, &shared).await?;
            let mut rows = lease.conn.fetch_many(q);
            while let Some(v) = rows.try_next().await? {
                yielder.yield_value(v).await;
            }
            Ok(())
        });
        Box::pin(OpStream::new(op, inner, count::either_row))
    }

    fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<Row<DB>>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (q, op) = query_op(&self.state.shared, query, false);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        Box::pin(OpFuture::new(
            op,
            async move {
                let mut lease = acquire_metered(&pool, &shared).await?;
                lease.conn.fetch_optional(q).await
            },
            count::option,
        ))
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let op = prepare_op(&self.state.shared, &sql);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        Box::pin(OpFuture::new(
            op,
            async move {
                let mut lease = acquire_metered(&pool, &shared).await?;
                lease.conn.prepare_with(sql, parameters).await
            },
            count::zero,
        ))
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        let op = prepare_op(&self.state.shared, &sql);
        let (pool, shared) = (self.state.pool.clone(), Arc::clone(&self.state.shared));
        Box::pin(OpFuture::new(
            op,
            async move {
                let mut lease = acquire_metered(&pool, &shared).await?;
                lease.conn.describe(sql).await
            },
            count::zero,
        ))
    }
}

/// A pooled connection from [`InstrumentedPool::acquire`]; `&mut` of it is an
/// [`sqlx::Executor`]. It derefs to the driver connection (queries made through that
/// reference directly are not instrumented). Dropping it returns it to the pool and records
/// `db.client.connection.use_time`.
pub struct InstrumentedConnection<DB: Database> {
    lease: Lease<DB>,
}

impl<DB: Database> fmt::Debug for InstrumentedConnection<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnection").finish_non_exhaustive()
    }
}

impl<DB: Database> Deref for InstrumentedConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.lease.conn
    }
}

impl<DB: Database> DerefMut for InstrumentedConnection<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.lease.conn
    }
}

impl<DB> InstrumentedConnection<DB>
where
    DB: InstrumentedDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Begins a transaction on this connection (a `BEGIN` span).
    pub async fn begin(&mut self) -> Result<InstrumentedTransaction<'_, DB>, sqlx::Error> {
        let shared = Arc::clone(&self.lease.timer.shared);
        let op = Op::new(Arc::clone(&shared), OpKind::Transaction("BEGIN"), false);
        let conn: &mut DB::Connection = &mut self.lease.conn;
        let tx = OpFuture::new(op, sqlx::Connection::begin(conn), count::zero).await?;
        Ok(InstrumentedTransaction {
            tx: Some(tx),
            shared,
            _timer: None,
        })
    }
}

/// A transaction from [`InstrumentedPool::begin`] or [`InstrumentedConnection::begin`];
/// `&mut` of it is an [`sqlx::Executor`]. [`commit`](Self::commit) and
/// [`rollback`](Self::rollback) produce `COMMIT` and `ROLLBACK` spans; dropping it without
/// either makes sqlx queue a rollback, recorded as an instant `ROLLBACK` span.
pub struct InstrumentedTransaction<'c, DB: Database> {
    tx: Option<Transaction<'c, DB>>,
    shared: Arc<Shared>,
    _timer: Option<UseTimer>,
}

impl<DB: Database> fmt::Debug for InstrumentedTransaction<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedTransaction").finish_non_exhaustive()
    }
}

impl<'c, DB> InstrumentedTransaction<'c, DB>
where
    DB: InstrumentedDatabase,
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    /// Commits (a `COMMIT` span).
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        let tx = self.take();
        let op = Op::new(Arc::clone(&self.shared), OpKind::Transaction("COMMIT"), false);
        OpFuture::new(op, tx.commit(), count::zero).await
    }

    /// Rolls back (a `ROLLBACK` span).
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        let tx = self.take();
        let op = Op::new(Arc::clone(&self.shared), OpKind::Transaction("ROLLBACK"), false);
        OpFuture::new(op, tx.rollback(), count::zero).await
    }

    fn take(&mut self) -> Transaction<'c, DB> {
        match self.tx.take() {
            Some(tx) => tx,
            // `tx` is only taken by `commit`/`rollback`, which consume `self`.
            None => unreachable!("transaction already finished"),
        }
    }
}

impl<DB: Database> Deref for InstrumentedTransaction<'_, DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match &self.tx {
            Some(tx) => tx,
            None => unreachable!("transaction already finished"),
        }
    }
}

impl<DB: Database> DerefMut for InstrumentedTransaction<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match &mut self.tx {
            Some(tx) => tx,
            None => unreachable!("transaction already finished"),
        }
    }
}

impl<DB: Database> Drop for InstrumentedTransaction<'_, DB> {
    fn drop(&mut self) {
        if self.tx.is_some() {
            Op::new(Arc::clone(&self.shared), OpKind::Transaction("ROLLBACK"), false).instant();
        }
    }
}

/// Executor impls for `&mut` connection-like wrappers: each method is one operation on the
/// underlying driver connection.
macro_rules! connection_executor {
    ($ty:ty, $shared:expr) => {
        impl<'c, DB> Executor<'c> for &'c mut $ty
        where
            DB: InstrumentedDatabase,
            for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
        {
            type Database = DB;

            fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<QueryResult<DB>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let shared = $shared(&*self);
                let (q, op) = query_op(&shared, query, false);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                if shared.sqlcommenter == SqlCommenter::Off {
                    Box::pin(OpFuture::new(op, conn.execute(q), count::zero))
                } else {
                    // Deferred to the first poll: the driver reads the text under the span.
                    Box::pin(OpFuture::new(
                        op,
                        async move { conn.execute(q).await },
                        count::zero,
                    ))
                }
            }

            fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Vec<Row<DB>>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let shared = $shared(&*self);
                let (q, op) = query_op(&shared, query, false);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                if shared.sqlcommenter == SqlCommenter::Off {
                    Box::pin(OpFuture::new(op, conn.fetch_all(q), count::vec))
                } else {
                    // Deferred to the first poll: the driver reads the text under the span.
                    Box::pin(OpFuture::new(
                        op,
                        async move { conn.fetch_all(q).await },
                        count::vec,
                    ))
                }
            }

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<QueryResult<DB>, Row<DB>>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let shared = $shared(&*self);
                let (q, op) = query_op(&shared, query, true);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                if shared.sqlcommenter == SqlCommenter::Off {
                    Box::pin(OpStream::new(op, conn.fetch_many(q), count::either_row))
                } else {
                    // Deferred to the first poll: the driver reads the text under the span.
                    let inner = TryAsyncStream::new(move |yielder| async move {
                        let mut rows = conn.fetch_many(q);
                        while let Some(v) = rows.try_next().await? {
                            yielder.yield_value(v).await;
                        }
                        Ok(())
                    });
                    Box::pin(OpStream::new(op, inner, count::either_row))
                }
            }

            fn fetch_optional<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<Option<Row<DB>>, sqlx::Error>>
            where
                'c: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let shared = $shared(&*self);
                let (q, op) = query_op(&shared, query, false);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                if shared.sqlcommenter == SqlCommenter::Off {
                    Box::pin(OpFuture::new(op, conn.fetch_optional(q), count::option))
                } else {
                    // Deferred to the first poll: the driver reads the text under the span.
                    Box::pin(OpFuture::new(
                        op,
                        async move { conn.fetch_optional(q).await },
                        count::option,
                    ))
                }
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
            where
                'c: 'e,
            {
                let shared = $shared(&*self);
                let op = prepare_op(&shared, &sql);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                Box::pin(OpFuture::new(op, conn.prepare_with(sql, parameters), count::zero))
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<sqlx::Describe<DB>, sqlx::Error>>
            where
                'c: 'e,
            {
                let shared = $shared(&*self);
                let op = prepare_op(&shared, &sql);
                let conn: &'c mut DB::Connection = DerefMut::deref_mut(self);
                Box::pin(OpFuture::new(op, conn.describe(sql), count::zero))
            }
        }
    };
}

connection_executor!(InstrumentedConnection<DB>, |c: &InstrumentedConnection<DB>| Arc::clone(
    &c.lease.timer.shared
));
connection_executor!(InstrumentedTransaction<'_, DB>, |t: &InstrumentedTransaction<
    '_,
    DB,
>| { Arc::clone(&t.shared) });
