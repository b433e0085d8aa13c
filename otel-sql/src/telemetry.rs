//! Spans and metrics of one operation: the one set of rules behind the sqlx executors (pool,
//! connection, transaction) and the Diesel instrumentation.
// Parts only the sqlx executors use (prepare operations, streams, pool times) are unused in a
// Diesel-only build.
#![cfg_attr(not(feature = "sqlx"), allow(dead_code))]

use std::borrow::Cow;
#[cfg(feature = "sqlx")]
use std::future::Future;
#[cfg(feature = "sqlx")]
use std::pin::Pin;
#[cfg(feature = "sqlx")]
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
#[cfg(feature = "sqlx")]
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

#[cfg(feature = "sqlx")]
use futures_core::Stream;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute as attr;
use opentelemetry_semantic_conventions::metric;
use otelrs_core::conv::pool::{default_pool_name, PoolMetrics};
use otelrs_core::conv::ServerAddress;
use otelrs_core::hotpath::intern::{shared_str, static_str, Interner};
use otelrs_core::hotpath::{self, BoundInstruments};
use otelrs_core::instruments::{self, DB_DURATION_BUCKETS};
use otelrs_core::Instrumentation;
#[cfg(feature = "sqlx")]
use pin_project_lite::pin_project;

use crate::cache::Cache;
use crate::database::ServerInfo;
#[cfg(feature = "sqlx")]
use crate::database::{classify_error, InstrumentedDatabase};
use crate::options::{QueryTextMode, SqlOptions};
use crate::query_info::QueryInfo;
use crate::sanitize::{self, floor_char_boundary, Dialect, SanitizeOptions};

thread_local! {
    /// The duration handle this thread used last: consecutive queries on a thread often repeat
    /// their summary, and a key comparison is cheaper than the bound cache's hash and lock.
    static LAST_DURATION: hotpath::LastBoundSlot<Histogram<f64>, DurationKey, f64> =
        const { std::cell::RefCell::new(None) };
}

/// The cached analysis of one statement.
pub(crate) struct QueryMeta {
    text: Option<StringValue>,
    summary: Option<StringValue>,
}

/// Everything an instrumented pool and its connections share.
/// How many distinct span names (query summaries) are interned per pool.
const NAME_CAPACITY: usize = 1024;

/// The attributes of one `db.client.operation.duration` point beyond the pool's fixed ones. All
/// parts are low-cardinality (summaries, not query texts), which keeps the bound cache small.
#[derive(Clone, PartialEq, Eq, Hash)]
struct DurationKey {
    summary: Option<StringValue>,
    operation: Option<StringValue>,
    collection: Option<StringValue>,
    status_code: Option<String>,
    error_type: Option<Cow<'static, str>>,
}

impl DurationKey {
    fn attributes(&self, base: &[KeyValue]) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(base.len() + 5);
        attrs.extend(base.iter().cloned());
        if let Some(s) = &self.summary {
            attrs.push(KeyValue::new(attr::DB_QUERY_SUMMARY, s.clone()));
        }
        if let Some(op) = &self.operation {
            attrs.push(KeyValue::new(attr::DB_OPERATION_NAME, op.clone()));
        }
        if let Some(c) = &self.collection {
            attrs.push(KeyValue::new(attr::DB_COLLECTION_NAME, c.clone()));
        }
        if let Some(code) = &self.status_code {
            attrs.push(KeyValue::new(attr::DB_RESPONSE_STATUS_CODE, code.clone()));
        }
        if let Some(e) = &self.error_type {
            attrs.push(KeyValue::new(attr::ERROR_TYPE, e.clone()));
        }
        attrs
    }
}

fn string_value(v: &Value) -> StringValue {
    match v {
        Value::String(s) => s.clone(),
        other => StringValue::from(other.as_str().into_owned()),
    }
}

pub(crate) struct Shared {
    tracer: otelrs_core::Tracer,
    /// `db.system.name`, `db.namespace`, `server.address`, `server.port` (those known).
    base_attrs: Vec<KeyValue>,
    /// Span name when there is no summary: the namespace, else `address[:port]`, else the
    /// system name.
    fallback_name: Cow<'static, str>,
    text_mode: QueryTextMode,
    sanitize: SanitizeOptions,
    returned_rows: bool,
    require_parent_span: bool,
    /// Which statements carry a sqlcommenter comment.
    pub(crate) sqlcommenter: crate::SqlCommenter,
    /// Record `db.query.parameter.<key>` (opt-in).
    pub(crate) capture_parameters: bool,
    cache: Cache<QueryMeta>,
    /// Bound per low-cardinality attribute combination: no per-record attribute hashing.
    duration: Arc<BoundInstruments<Histogram<f64>, DurationKey, f64>>,
    /// The `db.client.connection.*` instruments of the pool (sqlx pools; Diesel's pools keep
    /// their own).
    pool: Option<PoolMetrics>,
    /// Span names (query summaries) interned as `&'static str`, bounded.
    names: Interner<&'static str>,
    /// Tasks waiting in this wrapper's acquire (`db.client.connection.pending_requests`).
    #[cfg(feature = "sqlx")]
    pub(crate) pending: AtomicI64,
    /// `error.type` and `db.response.status_code` of a sqlx error (sqlx pools only).
    #[cfg(feature = "sqlx")]
    error_kind: Option<ClassifySqlx>,
}

/// How a sqlx pool classifies its errors (`database::classify_error` for its database).
#[cfg(feature = "sqlx")]
type ClassifySqlx = fn(&sqlx::Error) -> (Cow<'static, str>, Option<String>);

pub(crate) fn scope() -> opentelemetry::InstrumentationScope {
    Instrumentation::scope(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
}

/// `db.client.connection.pool.name`: the configured name, else
/// `server.address[:configured port]/db.namespace`.
pub(crate) fn pool_name(options: &SqlOptions, server: &ServerInfo, configured_port: Option<u16>) -> Cow<'static, str> {
    match &options.pool_name {
        Some(n) => n.clone(),
        None => {
            // The configured port, default or not, tells pools on one host apart.
            let address = server
                .server
                .as_ref()
                .map(|a| ServerAddress::from_value(a.address.clone(), configured_port));
            Cow::Owned(default_pool_name(
                address.as_ref(),
                server.namespace.as_deref().unwrap_or(""),
            ))
        }
    }
}
impl Shared {
    /// The state of a sqlx pool over `DB`.
    #[cfg(feature = "sqlx")]
    pub(crate) fn new<DB: InstrumentedDatabase>(
        options: &SqlOptions,
        system: &'static str,
        server: &ServerInfo,
        meter: &Meter,
        pool: PoolMetrics,
    ) -> Self {
        let mut shared = Self::build(options, DB::DIALECT, system, server, meter);
        shared.pool = Some(pool);
        shared.error_kind = Some(classify_error::<DB>);
        shared
    }

    /// The state of one database target: its tracer, fixed attributes, statement cache and
    /// duration histogram (no pool metrics, no sqlx error classification).
    pub(crate) fn build(
        options: &SqlOptions,
        dialect: Dialect,
        system: &'static str,
        server: &ServerInfo,
        meter: &Meter,
    ) -> Self {
        let tracer = options.instrumentation.tracer(scope());
        let capacity = options.instrumentation.bound_instrument_capacity();
        let mut base_attrs = vec![KeyValue::new(attr::DB_SYSTEM_NAME, system)];
        if let Some(ns) = &server.namespace {
            base_attrs.push(KeyValue::new(attr::DB_NAMESPACE, static_str(ns)));
        }
        if let Some(address) = &server.server {
            address.push_attributes(&mut base_attrs);
        }
        let fallback_name: Cow<'static, str> = match (&server.namespace, &server.server) {
            (Some(ns), _) => Cow::Owned(ns.clone()),
            (None, Some(a)) => match a.port {
                Some(p) => Cow::Owned(format!("{}:{p}", a.address.as_str())),
                None => Cow::Owned(a.address.as_str().to_owned()),
            },
            (None, None) => Cow::Borrowed(system),
        };
        Self {
            tracer,
            base_attrs,
            fallback_name,
            text_mode: options.query_text,
            sanitize: SanitizeOptions::new(dialect)
                .with_keep_comments(options.keep_comments)
                .with_max_len(options.max_text_len),
            returned_rows: options.returned_rows,
            require_parent_span: options.require_parent_span,
            sqlcommenter: options.sqlcommenter,
            capture_parameters: options.capture_parameters,
            cache: Cache::new(options.cache_capacity),
            duration: Arc::new(BoundInstruments::new(
                instruments::duration_histogram(
                    meter,
                    metric::DB_CLIENT_OPERATION_DURATION,
                    "Duration of database client operations.",
                    &DB_DURATION_BUCKETS,
                ),
                capacity,
            )),
            pool: None,
            names: Interner::new(NAME_CAPACITY),
            #[cfg(feature = "sqlx")]
            pending: AtomicI64::new(0),
            #[cfg(feature = "sqlx")]
            error_kind: None,
        }
    }

    /// Records no `db.response.returned_rows` (an adapter that cannot count rows).
    #[cfg_attr(not(feature = "diesel"), allow(dead_code))] // Diesel only
    pub(crate) fn without_returned_rows(mut self) -> Self {
        self.returned_rows = false;
        self
    }

    /// Starts a `CLIENT` span named `name` under `parent` with the target's fixed attributes
    /// (`db.system.name`, `db.namespace`, `server.*`), by the parent rule of the options; for
    /// what is not an operation (Diesel's connection establishment).
    #[cfg_attr(not(feature = "diesel"), allow(dead_code))] // Diesel only
    pub(crate) fn start_span(&self, name: String, parent: &Context, start_time: SystemTime) -> otelrs_core::Span {
        self.tracer.build_with_parent_rule(
            SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_start_time(start_time)
                .with_attributes(self.base_attrs.clone()),
            parent,
            self.require_parent_span,
        )
    }

    /// The span name of an operation without summary, operation or collection: the namespace,
    /// else `server.address[:port]`, else `db.system.name`.
    #[cfg_attr(not(feature = "diesel"), allow(dead_code))] // Diesel only
    pub(crate) fn fallback_name(&self) -> &str {
        &self.fallback_name
    }

    /// The analysis of `sql`, from the cache when it was seen before.
    pub(crate) fn query_meta(&self, sql: &str) -> Arc<QueryMeta> {
        self.cache.get_or_insert_with(sql, || {
            let analysis = sanitize::analyze(sql, &self.sanitize);
            let text = match self.text_mode {
                QueryTextMode::Off => None,
                QueryTextMode::Parameterized if analysis.has_placeholders => {
                    let cut = floor_char_boundary(sql, self.sanitize.max_len);
                    Some(shared_str(&sql[..cut]))
                }
                _ => Some(shared_str(&analysis.sanitized)),
            };
            QueryMeta {
                text: text.filter(|t| !t.as_str().is_empty()),
                summary: Some(analysis.summary).filter(|s| !s.is_empty()).map(|s| shared_str(&s)),
            }
        })
    }

    /// Records the time spent waiting for a connection, and a timeout when it failed so.
    #[cfg(feature = "sqlx")]
    pub(crate) fn record_wait(&self, waited: std::time::Duration, timed_out: bool) {
        if let Some(pool) = &self.pool {
            pool.record_wait_time(waited);
            if timed_out {
                pool.record_timeout();
            }
        }
    }

    #[cfg(feature = "sqlx")]
    pub(crate) fn record_use(&self, used: std::time::Duration) {
        if let Some(pool) = &self.pool {
            pool.record_use_time(used);
        }
    }
}

/// Counts a task waiting for a connection while it lives.
#[cfg(feature = "sqlx")]
pub(crate) struct PendingGuard<'a>(&'a AtomicI64);

#[cfg(feature = "sqlx")]
impl<'a> PendingGuard<'a> {
    pub(crate) fn new(counter: &'a AtomicI64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

#[cfg(feature = "sqlx")]
impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What an operation is.
pub(crate) enum OpKind {
    /// A statement, with its cached analysis.
    Query(Arc<QueryMeta>),
    /// Preparing or describing a statement (`PREPARE {summary}`).
    Prepare(Arc<QueryMeta>),
    /// A transaction operation (`BEGIN`, `COMMIT`, `ROLLBACK`): `db.operation.name` is known.
    Transaction(&'static str),
}

/// How an operation ended.
pub(crate) enum Outcome {
    Ok(Option<u64>),
    Err(Failure),
    /// The future was dropped before it completed.
    Cancelled,
}

/// A failed operation, classified by its adapter.
pub(crate) struct Failure {
    /// `error.type` (span and duration metric).
    pub(crate) error_type: Cow<'static, str>,
    /// `db.response.status_code` (span and duration metric), when the database gave one.
    pub(crate) status_code: Option<String>,
}

/// Captured on the operation's first poll: what its span needs besides the statement.
struct Issued {
    parent: Context,
    start: Instant,
    start_time: SystemTime,
}

struct Active {
    span: otelrs_core::Span,
    /// Attached while the driver's future is polled.
    cx: Context,
    start: Instant,
    metric_key: DurationKey,
}

/// One operation: it is issued on the first poll (the caller's context is the parent, the clocks
/// start) and ends exactly once.
///
/// Its span is built right after the driver's first poll has sent the statement (the poll that
/// returns `Pending` while the database works), not before: sampling, attributes and the span
/// allocation then overlap the database's own work instead of delaying the statement. Start time,
/// duration and parent are those captured when the operation was issued, so what is recorded is
/// the same.
pub(crate) struct Op {
    shared: Arc<Shared>,
    kind: OpKind,
    issued: Option<Issued>,
    active: Option<Active>,
    done: bool,
    /// What a drop before completion means: a cancelled future, or a stream the caller stopped
    /// reading (a success with the rows seen so far).
    stream: bool,
    rows: u64,
    /// Renderings handed over by [`Parameters`](crate::Parameters) (capture on only).
    parameters: Option<Vec<StringValue>>,
}

impl Op {
    pub(crate) fn new(shared: Arc<Shared>, kind: OpKind, stream: bool) -> Self {
        Self {
            shared,
            kind,
            issued: None,
            active: None,
            done: false,
            stream,
            rows: 0,
            parameters: None,
        }
    }

    /// Values bound through [`Parameters`](crate::Parameters), kept only when the pool
    /// captures parameters.
    pub(crate) fn with_parameters(mut self, parameters: Option<Vec<StringValue>>) -> Self {
        if self.shared.capture_parameters {
            self.parameters = parameters;
        }
        self
    }

    /// Captures the parent context (the current one) and the clocks, once.
    pub(crate) fn issue(&mut self) {
        if self.issued.is_none() && self.active.is_none() && !self.done {
            let parent = Context::current();
            // A statement that gets a sqlcommenter comment needs its span (the comment's span
            // id) before the driver reads its text: built now instead of overlapping the I/O.
            let comment = matches!(self.kind, OpKind::Query(_)) && self.shared.sqlcommenter.applies(&parent);
            self.issued = Some(Issued {
                parent,
                start: Instant::now(),
                start_time: SystemTime::now(),
            });
            if comment {
                self.start();
            }
        }
    }

    /// Builds the span of an issued operation (no-op before `issue` and after the first call).
    pub(crate) fn start(&mut self) {
        let Some(Issued {
            parent,
            start,
            start_time,
        }) = self.issued.take()
        else {
            return;
        };
        let info = parent.get::<QueryInfo>();
        let shared = &self.shared;
        let mut attrs = Vec::with_capacity(shared.base_attrs.len() + 6);
        attrs.extend(shared.base_attrs.iter().cloned());

        let (text, generated_summary, prepare) = match &self.kind {
            OpKind::Query(m) => (m.text.clone(), m.summary.clone(), false),
            OpKind::Prepare(m) => (m.text.clone(), m.summary.clone(), true),
            OpKind::Transaction(_) => (None, None, false),
        };
        let mut summary: Option<Value> = match info.and_then(|i| i.summary.clone()) {
            Some(s) => Some(Value::from(s)),
            None => generated_summary.map(Value::String),
        };
        if prepare {
            summary = Some(Value::from(match &summary {
                Some(s) => format!("PREPARE {}", s.as_str()),
                None => "PREPARE".to_owned(),
            }));
        }
        let operation: Option<Value> = match &self.kind {
            OpKind::Transaction(op) => Some(Value::from(*op)),
            _ => info.and_then(|i| i.operation.clone()).map(Value::from),
        };
        let collection: Option<Value> = info.and_then(|i| i.collection.clone()).map(Value::from);

        let name: Cow<'static, str> = match (&summary, &operation, &collection) {
            (Some(s), _, _) => otelrs_core::hotpath::intern::static_name(&shared.names, &[&s.as_str()]),
            (None, Some(op), Some(c)) => Cow::Owned(format!("{} {}", op.as_str(), c.as_str())),
            (None, Some(op), None) => Cow::Owned(format!("{} {}", op.as_str(), shared.fallback_name)),
            (None, None, Some(c)) => Cow::Owned(c.as_str().into_owned()),
            (None, None, None) => shared.fallback_name.clone(),
        };
        let metric_key = DurationKey {
            summary: summary.as_ref().map(string_value),
            operation: operation.as_ref().map(string_value),
            collection: collection.as_ref().map(string_value),
            status_code: None,
            error_type: None,
        };
        if let Some(t) = text {
            attrs.push(KeyValue::new(attr::DB_QUERY_TEXT, t));
        }
        if let Some(s) = summary {
            attrs.push(KeyValue::new(attr::DB_QUERY_SUMMARY, s));
        }
        if let Some(op) = operation {
            attrs.push(KeyValue::new(attr::DB_OPERATION_NAME, op));
        }
        if let Some(c) = collection {
            attrs.push(KeyValue::new(attr::DB_COLLECTION_NAME, c));
        }
        let mut span = shared.tracer.build_with_parent_rule(
            SpanBuilder::from_name(name)
                .with_kind(SpanKind::Client)
                .with_start_time(start_time)
                .with_attributes(attrs),
            &parent,
            shared.require_parent_span,
        );
        if shared.capture_parameters && span.is_recording() {
            record_parameters(&mut span, shared.sanitize.max_len, info, self.parameters.take());
        }
        let cx = if span.span_context().is_valid() {
            parent.with_remote_span_context(span.span_context().clone())
        } else {
            parent
        };
        self.active = Some(Active {
            span,
            cx,
            start,
            metric_key,
        });
    }

    /// Issues the operation on the first call; the context to attach while polling the driver
    /// once the span is built.
    pub(crate) fn enter(&mut self) -> Option<opentelemetry::ContextGuard> {
        self.issue();
        self.active.as_ref().map(|a| a.cx.clone().attach())
    }

    pub(crate) fn add_rows(&mut self, n: u64) {
        self.rows = self.rows.saturating_add(n);
    }

    /// Classifies a sqlx error with the pool's database rules and ends the operation with it.
    #[cfg(feature = "sqlx")]
    pub(crate) fn fail(&mut self, err: &sqlx::Error) {
        let (error_type, status_code) = match self.shared.error_kind {
            Some(classify) => classify(err),
            None => (Cow::Borrowed(otelrs_core::status::ERROR_TYPE_OTHER), None),
        };
        self.finish(Outcome::Err(Failure {
            error_type,
            status_code,
        }));
    }

    pub(crate) fn finish(&mut self, outcome: Outcome) {
        self.finish_at(outcome, None);
    }

    /// Ends the operation as of `end` (when the adapter learnt of its end after the fact: a
    /// Diesel query whose end was inferred), else now.
    pub(crate) fn finish_at(&mut self, outcome: Outcome, end: Option<(Instant, SystemTime)>) {
        if self.done {
            return;
        }
        self.start();
        self.done = true;
        let Some(mut active) = self.active.take() else {
            return;
        };
        let elapsed = match end {
            Some((at, _)) => at.saturating_duration_since(active.start),
            None => active.start.elapsed(),
        };
        let span = &mut active.span;
        let recording = span.is_recording();
        match outcome {
            Outcome::Ok(rows) => {
                if recording && self.shared.returned_rows && matches!(self.kind, OpKind::Query(_)) {
                    let rows = rows.unwrap_or(self.rows);
                    span.set_attribute(KeyValue::new(
                        attr::DB_RESPONSE_RETURNED_ROWS,
                        i64::try_from(rows).unwrap_or(i64::MAX),
                    ));
                }
            }
            Outcome::Err(Failure {
                error_type,
                status_code,
            }) => {
                if let Some(code) = status_code {
                    if recording {
                        span.set_attribute(KeyValue::new(attr::DB_RESPONSE_STATUS_CODE, code.clone()));
                    }
                    active.metric_key.status_code = Some(code);
                }
                // The description stays empty: driver messages may quote bound values
                // (MySQL: "Duplicate entry 'alice' for key ...").
                otelrs_core::status::record_failure(span, error_type.clone(), None);
                active.metric_key.error_type = Some(error_type);
            }
            Outcome::Cancelled => {
                otelrs_core::conv::error::record_cancelled(span);
                active.metric_key.error_type = Some(Cow::Borrowed(otelrs_core::conv::ERROR_TYPE_CANCELLED));
            }
        }
        match end {
            Some((_, at)) => span.end_with_timestamp(at),
            None => span.end(),
        }
        let shared = &self.shared;
        let key = &active.metric_key;
        hotpath::record_with_last(
            &LAST_DURATION,
            &shared.duration,
            key,
            instruments::seconds(elapsed),
            || key.attributes(&shared.base_attrs),
        );
    }

    /// Starts and immediately ends the operation (a rollback queued by a dropped
    /// transaction).
    pub(crate) fn instant(mut self) {
        self.issue();
        self.finish(Outcome::Ok(None));
    }
}

/// Sets `db.query.parameter.<key>` on a recording span: the caller's [`QueryInfo`] values if it
/// gave any, else those handed over by [`Parameters`](crate::Parameters); each cut at `max`
/// bytes.
fn record_parameters(
    span: &mut otelrs_core::Span,
    max: usize,
    info: Option<&QueryInfo>,
    handed_over: Option<Vec<StringValue>>,
) {
    let values: Vec<StringValue> = match info.filter(|i| !i.parameters.is_empty()) {
        Some(info) => info.parameters.iter().map(|v| StringValue::from(v.clone())).collect(),
        None => handed_over.unwrap_or_default(),
    };
    for (i, value) in values.into_iter().enumerate() {
        let value = if value.as_str().len() > max {
            let end = floor_char_boundary(value.as_str(), max);
            StringValue::from(value.as_str()[..end].to_owned())
        } else {
            value
        };
        span.set_attribute(KeyValue::new(crate::parameters::index_key(i), value));
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if (self.issued.is_some() || self.active.is_some()) && !self.done {
            if self.stream {
                self.finish(Outcome::Ok(None));
            } else {
                self.finish(Outcome::Cancelled);
            }
        }
    }
}

#[cfg(feature = "sqlx")]
pin_project! {
    /// A driver future run as one instrumented operation.
    pub(crate) struct OpFuture<F, T> {
        #[pin]
        inner: F,
        op: Op,
        count: fn(&T) -> u64,
    }
}

#[cfg(feature = "sqlx")]
impl<F, T> OpFuture<F, T> {
    pub(crate) fn new(op: Op, inner: F, count: fn(&T) -> u64) -> Self {
        Self { inner, op, count }
    }
}

#[cfg(feature = "sqlx")]
impl<F, T> Future for OpFuture<F, T>
where
    F: Future<Output = Result<T, sqlx::Error>>,
{
    type Output = Result<T, sqlx::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let guard = this.op.enter();
        let poll = this.inner.poll(cx);
        drop(guard);
        match &poll {
            // The statement is on its way: build the span while the database works.
            Poll::Pending => this.op.start(),
            Poll::Ready(Ok(v)) => this.op.finish(Outcome::Ok(Some((this.count)(v)))),
            Poll::Ready(Err(e)) => this.op.fail(e),
        }
        poll
    }
}

#[cfg(feature = "sqlx")]
pin_project! {
    /// A driver stream run as one instrumented operation; the span ends when the stream ends,
    /// fails or is dropped.
    pub(crate) struct OpStream<S, T> {
        #[pin]
        inner: S,
        op: Op,
        count: fn(&T) -> u64,
    }
}

#[cfg(feature = "sqlx")]
impl<S, T> OpStream<S, T> {
    pub(crate) fn new(op: Op, inner: S, count: fn(&T) -> u64) -> Self {
        Self { inner, op, count }
    }
}

#[cfg(feature = "sqlx")]
impl<S, T> Stream for OpStream<S, T>
where
    S: Stream<Item = Result<T, sqlx::Error>>,
{
    type Item = Result<T, sqlx::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let guard = this.op.enter();
        let poll = this.inner.poll_next(cx);
        drop(guard);
        match &poll {
            Poll::Ready(Some(Ok(v))) => {
                this.op.start();
                let n = (this.count)(v);
                this.op.add_rows(n);
            }
            Poll::Ready(Some(Err(e))) => this.op.fail(e),
            Poll::Ready(None) => this.op.finish(Outcome::Ok(None)),
            Poll::Pending => this.op.start(),
        }
        poll
    }
}

/// Row counters for [`OpFuture`] and [`OpStream`].
#[cfg(feature = "sqlx")]
pub(crate) mod count {
    use sqlx::Either;

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
    pub(crate) fn either_row<L, R>(v: &Either<L, R>) -> u64 {
        u64::from(matches!(v, Either::Right(_)))
    }
}
