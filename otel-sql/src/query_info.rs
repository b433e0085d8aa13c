//! Per-query overrides of `db.query.summary`, `db.operation.name` and `db.collection.name`.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use futures_core::Stream;
use opentelemetry::Context;
use pin_project_lite::pin_project;

/// What the application knows about a query, overriding what the instrumentation generates.
///
/// Semantic conventions say `db.operation.name` and `db.collection.name` must not be parsed out
/// of SQL text, so they are recorded **only** when supplied here (on the span and on
/// `db.client.operation.duration`). A summary supplied here replaces the generated
/// `db.query.summary` and so the span name.
///
/// Attach it to the future or stream of any query with [`QueryInfoExt`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryInfo {
    pub(crate) summary: Option<Cow<'static, str>>,
    pub(crate) operation: Option<Cow<'static, str>>,
    pub(crate) collection: Option<Cow<'static, str>>,
    /// Bind parameter renderings, in bind order.
    pub(crate) parameters: Vec<String>,
    pub(crate) sql_comment: bool,
}

impl QueryInfo {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// `db.query.summary` (and span name), e.g. `"SELECT users"`. Must not contain literals.
    pub fn summary(mut self, summary: impl Into<Cow<'static, str>>) -> Self {
        self.summary = Some(summary.into());
        self
    }

    /// `db.operation.name`, e.g. `"SELECT"`, `"upsert_user"`. Runs of spaces are collapsed.
    pub fn operation(mut self, operation: impl Into<Cow<'static, str>>) -> Self {
        let op: Cow<'static, str> = operation.into();
        let op = if op.contains("  ") {
            Cow::Owned(op.split(' ').filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" "))
        } else {
            op
        };
        self.operation = Some(op);
        self
    }

    /// `db.collection.name`, e.g. `"users"`.
    pub fn collection(mut self, collection: impl Into<Cow<'static, str>>) -> Self {
        self.collection = Some(collection.into());
        self
    }

    /// The next bind parameter's value, recorded as `db.query.parameter.<index>` (0-based, in
    /// the order of the calls) when the pool captures parameters
    /// ([`SqlOptions::with_parameter_capture`](crate::SqlOptions::with_parameter_capture)).
    ///
    /// sqlx cannot give back the values of a `.bind()` chain or of the `query!` macros, so the
    /// caller names them here; these take precedence over values captured through
    /// [`Parameters`](crate::Parameters).
    pub fn parameter(mut self, value: impl std::fmt::Display) -> Self {
        self.parameters.push(value.to_string());
        self
    }

    /// Marks the statements run under this info for a sqlcommenter comment (with
    /// [`SqlCommenter::Marked`](crate::SqlCommenter::Marked); see [`crate::sqlcommenter`]).
    pub fn sql_comment(mut self, comment: bool) -> Self {
        self.sql_comment = comment;
        self
    }
}

/// Attaches a [`QueryInfo`] to the future or stream of a query (`fetch_all`, `fetch_one`,
/// `fetch_optional`, `execute`, `fetch`, ... of `query`, `query_as`, `query_scalar` and the
/// `query!` macros alike).
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn example(pool: &otelrs_sql::InstrumentedPool<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
/// use otelrs_sql::{QueryInfo, QueryInfoExt};
///
/// let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE active")
///     .fetch_one(pool)
///     .with_query_info(QueryInfo::new().summary("COUNT users").operation("SELECT").collection("users"))
///     .await?;
/// # let _ = n; Ok(()) }
/// ```
///
/// It works by placing the info in the OpenTelemetry [`Context`] while the wrapped future is
/// polled; an instrumented executor reads it when its operation starts, i.e. when the query is
/// first polled.
pub trait QueryInfoExt: Sized {
    /// Applies `info` to the operations started while `self` is polled.
    fn with_query_info(self, info: QueryInfo) -> WithQueryInfo<Self> {
        WithQueryInfo {
            inner: self,
            info: Some(info),
            cx: None,
        }
    }

    /// Shorthand for `with_query_info(QueryInfo::new().summary(summary))`.
    fn with_summary(self, summary: impl Into<Cow<'static, str>>) -> WithQueryInfo<Self> {
        self.with_query_info(QueryInfo::new().summary(summary))
    }
}

impl<T: Sized> QueryInfoExt for T {}

pin_project! {
    /// A future or stream carrying a [`QueryInfo`]; see [`QueryInfoExt`].
    #[derive(Debug)]
    pub struct WithQueryInfo<T> {
        #[pin]
        inner: T,
        info: Option<QueryInfo>,
        cx: Option<Context>,
    }
}

fn context(info: &mut Option<QueryInfo>, cx: &mut Option<Context>) -> Context {
    if let Some(info) = info.take() {
        *cx = Some(Context::current().with_value(info));
    }
    cx.clone().unwrap_or_else(Context::current)
}

impl<T: Future> Future for WithQueryInfo<T> {
    type Output = T::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _guard = context(this.info, this.cx).attach();
        this.inner.poll(task)
    }
}

impl<T: Stream> Stream for WithQueryInfo<T> {
    type Item = T::Item;

    fn poll_next(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let _guard = context(this.info, this.cx).attach();
        this.inner.poll_next(task)
    }
}
