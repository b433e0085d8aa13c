//! SeaORM calls run as instrumented operations: a future (one statement, `BEGIN`, `COMMIT`,
//! `ROLLBACK`) and a row stream.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::sea_orm::{ConnAcquireErr, DbErr, RuntimeErr};
use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::telemetry::{Failure, Op, OpKind, Outcome, Shared};

/// How the database under a SeaORM connection classifies its sqlx errors
/// ([`classify_error`](crate::database::classify_error) for its database).
pub(crate) type ClassifySqlx = fn(&sqlx::Error) -> (Cow<'static, str>, Option<String>);

/// What the operations of one SeaORM connection (and its transactions) share.
pub(crate) struct Target {
    pub(crate) shared: Arc<Shared>,
    /// `None` when the connection is not one of this build's sqlx pools (a mock, a proxy, or a
    /// driver whose otelrs-sql feature is off): its errors are `_OTHER`.
    pub(crate) errors: Option<ClassifySqlx>,
}

impl Target {
    /// An operation running `sql`.
    pub(crate) fn query(&self, sql: &str, stream: bool) -> Op {
        Op::new(
            Arc::clone(&self.shared),
            OpKind::Query(self.shared.query_meta(sql)),
            stream,
        )
    }

    /// A transaction operation (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub(crate) fn transaction(&self, operation: &'static str) -> Op {
        Op::new(Arc::clone(&self.shared), OpKind::Transaction(operation), false)
    }

    /// `error.type` and `db.response.status_code` of a SeaORM error: the sqlx error inside it
    /// classified as the sqlx adapter classifies it; a pool timeout or closed pool as sqlx's
    /// `PoolTimedOut` / `PoolClosed`; anything else `_OTHER`.
    pub(crate) fn failure(&self, error: &DbErr) -> Failure {
        let (error_type, status_code) = match error {
            DbErr::Conn(RuntimeErr::SqlxError(e))
            | DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e)) => match self.errors {
                Some(classify) => classify(e),
                None => (Cow::Borrowed(otelrs_core::status::ERROR_TYPE_OTHER), None),
            },
            DbErr::ConnectionAcquire(ConnAcquireErr::Timeout) => (Cow::Borrowed("pool_timeout"), None),
            DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed) => (Cow::Borrowed("pool_closed"), None),
            _ => (Cow::Borrowed(otelrs_core::status::ERROR_TYPE_OTHER), None),
        };
        Failure {
            error_type,
            status_code,
        }
    }
}

/// Row counters of [`Traced`].
pub(crate) mod count {
    pub(crate) fn zero<T>(_: &T) -> u64 {
        0
    }
    pub(crate) fn option<T>(v: &Option<T>) -> u64 {
        u64::from(v.is_some())
    }
    #[allow(clippy::ptr_arg)] // used as `fn(&Vec<Row>) -> u64`
    pub(crate) fn vec<T>(v: &Vec<T>) -> u64 {
        v.len() as u64
    }
}

pin_project! {
    /// A SeaORM future run as one operation: issued at its first poll (the caller's context is
    /// the parent), its span built once SeaORM's first poll has sent the statement, ended when
    /// the result is ready or the future is dropped (`cancelled`).
    pub(crate) struct Traced<'t, F, T> {
        #[pin]
        inner: F,
        op: Op,
        target: &'t Target,
        count: fn(&T) -> u64,
    }
}

impl<'t, F, T> Traced<'t, F, T> {
    pub(crate) fn new(target: &'t Target, op: Op, inner: F, count: fn(&T) -> u64) -> Self {
        Self {
            inner,
            op,
            target,
            count,
        }
    }
}

impl<F, T> Future for Traced<'_, F, T>
where
    F: Future<Output = Result<T, DbErr>>,
{
    type Output = Result<T, DbErr>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let guard = this.op.enter();
        let poll = this.inner.poll(cx);
        drop(guard);
        match &poll {
            // The statement is on its way: build the span while the database works.
            Poll::Pending => this.op.start(),
            Poll::Ready(Ok(v)) => this.op.finish(Outcome::Ok(Some((this.count)(v)))),
            Poll::Ready(Err(e)) => this.op.finish(Outcome::Err(this.target.failure(e))),
        }
        poll
    }
}

pin_project! {
    /// Opens a SeaORM row stream as the start of one operation, which the stream then carries.
    pub(crate) struct Opening<'t, F> {
        #[pin]
        inner: F,
        op: Option<Op>,
        target: &'t Arc<Target>,
    }
}

impl<'t, F> Opening<'t, F> {
    pub(crate) fn new(target: &'t Arc<Target>, op: Op, inner: F) -> Self {
        Self {
            inner,
            op: Some(op),
            target,
        }
    }
}

impl<F, S> Future for Opening<'_, F>
where
    F: Future<Output = Result<S, DbErr>>,
{
    type Output = Result<InstrumentedStream<S>, DbErr>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(op) = this.op.as_mut() else {
            panic!("`Opening` polled after completion");
        };
        let guard = op.enter();
        let poll = this.inner.poll(cx);
        drop(guard);
        match poll {
            Poll::Pending => {
                op.start();
                Poll::Pending
            }
            Poll::Ready(Ok(inner)) => Poll::Ready(Ok(InstrumentedStream {
                inner,
                op: this.op.take(),
                target: Arc::clone(this.target),
            })),
            Poll::Ready(Err(e)) => {
                op.finish(Outcome::Err(this.target.failure(&e)));
                this.op.take();
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// The rows of a statement streamed through an instrumented SeaORM connection or transaction
    /// (the `Stream` of its [`StreamTrait`](::sea_orm::StreamTrait)): SeaORM's own stream, whose
    /// operation ends when the stream ends, fails or is dropped. `db.response.returned_rows`
    /// counts the rows read; a stream dropped early is a success with the rows read so far.
    ///
    /// ```
    /// # async fn run() -> Result<(), sea_orm::DbErr> {
    /// use futures_util::TryStreamExt as _;
    /// use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
    /// use otelrs_sql::SqlOptions;
    /// use sea_orm::{ConnectionTrait, Statement, StreamTrait};
    ///
    /// let db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new());
    /// let backend = ConnectionTrait::get_database_backend(&db);
    /// // One `SELECT` span, ended with the stream: db.response.returned_rows = 1.
    /// let rows: Vec<_> = db
    ///     .stream_raw(Statement::from_string(backend, "SELECT 1"))
    ///     .await?
    ///     .try_collect()
    ///     .await?;
    /// # assert_eq!(rows.len(), 1);
    /// # Ok(()) }
    /// # #[cfg(feature = "sqlite")]
    /// # tokio::runtime::Runtime::new().unwrap().block_on(run()).unwrap();
    /// ```
    pub struct InstrumentedStream<S> {
        #[pin]
        inner: S,
        op: Option<Op>,
        target: Arc<Target>,
    }
}

impl<S> std::fmt::Debug for InstrumentedStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedStream").finish_non_exhaustive()
    }
}

impl<S, T> Stream for InstrumentedStream<S>
where
    S: Stream<Item = Result<T, DbErr>>,
{
    type Item = Result<T, DbErr>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let Some(op) = this.op.as_mut() else {
            return this.inner.poll_next(cx);
        };
        let guard = op.enter();
        let poll = this.inner.poll_next(cx);
        drop(guard);
        match &poll {
            Poll::Ready(Some(Ok(_))) => {
                op.start();
                op.add_rows(1);
            }
            Poll::Ready(Some(Err(e))) => op.finish(Outcome::Err(this.target.failure(e))),
            Poll::Ready(None) => op.finish(Outcome::Ok(None)),
            Poll::Pending => op.start(),
        }
        poll
    }
}
