//! [`InstrumentedConnection`]: a `ConnectionLike` wrapper that records one CLIENT span and one
//! `db.client.operation.duration` point per command, pipeline or transaction.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Instant, SystemTime};

use opentelemetry::trace::{Span as _, SpanBuilder, SpanKind};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute::{
    DB_OPERATION_BATCH_SIZE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_RESPONSE_STATUS_CODE, DB_STORED_PROCEDURE_NAME,
};
use otelrs_core::hotpath::{record_with_last, LastBoundSlot};
use otelrs_core::instruments::seconds;
use otelrs_core::status::record_failure;
use redis::aio::ConnectionLike;
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::config::{DurationKey, QueryText, RedisInstrumentation, Shared, Target};
use crate::error::{classify_error, first_server_error, Failure};
use crate::sanitize::{self, ArgRef};

/// A Redis connection that records a span and a duration point per operation.
///
/// It implements [`redis::aio::ConnectionLike`] itself, so `redis::cmd(..).query_async(&mut conn)`,
/// the [`redis::AsyncCommands`] methods and pipelines work unchanged. Made by
/// [`RedisInstrumentation::connection`] (or handed out by `InstrumentedPool::get` with the
/// `deadpool` feature).
///
/// | Operation | Span name | `db.operation.name` | `db.operation.batch.size` |
/// | --- | --- | --- | --- |
/// | one command | the command as given: `GET`, `CLIENT SETNAME` | same | none |
/// | pipeline | `PIPELINE` | `PIPELINE <cmd>` when every command is `<cmd>`, else `PIPELINE` | command count, when ≥ 2 |
/// | transaction (`pipe().atomic()`) | `MULTI` | `MULTI <cmd>` when every command is `<cmd>`, else `MULTI` | command count, when ≥ 2 |
///
/// Every span is `CLIENT` with `db.system.name = "redis"`, the [`Target`] attributes and, when the
/// span is recording, `db.query.text` (per [`QueryText`]) and `db.stored_procedure.name` (the sha
/// of `EVALSHA`, the function of `FCALL`). A failed operation gets status `Error` and
/// `error.type`, plus `db.response.status_code` for an error returned by the server:
///
/// | Failure | `error.type` | `db.response.status_code` |
/// | --- | --- | --- |
/// | server error reply (also inside a pipeline or `EXEC` reply) | the error prefix: `WRONGTYPE`, `NOSCRIPT`, `ERR`, `WRONGPASS`, ... (unknown prefixes that are not upper-case tokens: `_OTHER`) | same |
/// | I/O error | the I/O kind: `connection_reset`, `broken_pipe`, `unexpected_eof`, `timeout`, ... or `io` | none |
/// | other client-side error | `parse`, `authentication_failed`, `unexpected_return_type`, `invalid_client_config`, `client`, `extension`, `_OTHER` | none |
///
/// The attributes a sampler sees at span start are `db.system.name`, `db.namespace`,
/// `db.operation.name`, `server.*`, `network.peer.*` and `db.operation.batch.size`;
/// `db.query.text` and `db.stored_procedure.name` are rendered only for recording spans, so an
/// unsampled command pays no masking cost.
///
/// The span's start time and parent are those of the moment the command is issued; the span
/// object is built once the request is on its way (the task yields once, so the connection's
/// driver sends the request first), which takes its cost off the command's latency at the price
/// of one extra poll of the calling task.
///
/// The status description is never the server's message (it can echo arguments). Errors and
/// replies are passed through unchanged. A future dropped before its reply arrives (the caller
/// gave up, a timeout fired) ends like an unfinished operation in every adapter of the family
/// (`otelrs_core::conv::error`): span status Error, `error.type` = `cancelled` on the span and the
/// duration metric, duration recorded up to the drop.
pub struct InstrumentedConnection<C> {
    inner: C,
    redis: RedisInstrumentation,
    target: Arc<Target>,
}

impl<C> fmt::Debug for InstrumentedConnection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedConnection")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl<C: Clone> Clone for InstrumentedConnection<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            redis: self.redis.clone(),
            target: self.target.clone(),
        }
    }
}

impl<C> InstrumentedConnection<C> {
    pub(crate) fn new(inner: C, redis: RedisInstrumentation, target: Arc<Target>) -> Self {
        Self { inner, redis, target }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The wrapped connection, mutably (operations through it are not instrumented).
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.inner
    }

    /// Unwraps the connection.
    pub fn into_inner(self) -> C {
        self.inner
    }

    /// The attributes describing where this connection points.
    pub fn target(&self) -> &Target {
        &self.target
    }
}

fn arg_ref(a: Arg<&[u8]>) -> ArgRef<'_> {
    match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    }
}

/// The operation name of one command, looking only at its first two arguments.
fn parse_head(cmd: &Cmd) -> sanitize::Parsed {
    let mut head: [ArgRef<'_>; 2] = [None, None];
    let mut n = 0;
    for (slot, a) in head.iter_mut().zip(cmd.args_iter()) {
        *slot = arg_ref(a);
        n += 1;
    }
    sanitize::parse(&head[..n])
}

/// Calls `f` with the arguments of `cmd`, collected on the stack when there are at most 16 (the
/// common case: no allocation for the argument list).
fn with_args<R>(cmd: &Cmd, f: impl FnOnce(&[ArgRef<'_>]) -> R) -> R {
    let mut stack: [ArgRef<'_>; 16] = [None; 16];
    let mut n = 0;
    let mut iter = cmd.args_iter();
    // `zip` asks the stack slot first, so no argument is consumed once the stack is full.
    for (slot, a) in stack.iter_mut().zip(&mut iter) {
        *slot = arg_ref(a);
        n += 1;
    }
    match iter.next() {
        None => f(&stack[..n]),
        Some(next) => {
            let mut all = stack.to_vec();
            all.push(arg_ref(next));
            all.extend(iter.map(arg_ref));
            f(&all)
        }
    }
}

/// Appends `db.query.text` of one command (already parsed) to `out`.
fn render(out: &mut String, mode: QueryText, parsed: &sanitize::Parsed, args: &[ArgRef<'_>]) {
    match mode {
        QueryText::Raw => sanitize::render_raw_into(out, args),
        _ => sanitize::render_into(out, parsed, args),
    }
}

impl Shared {
    fn allows(&self, operation: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(operation))
    }
}

thread_local! {
    /// The duration handle this thread used last: consecutive commands on a thread often repeat
    /// their target and command, and a key comparison is cheaper than the bound cache's hash and
    /// lock.
    static LAST_DURATION: LastBoundSlot<opentelemetry::metrics::Histogram<f64>, DurationKey, f64> =
        const { std::cell::RefCell::new(None) };
}

/// An operation in flight: its span and what its duration point needs.
struct CallState<'a> {
    span: otelrs_core::Span,
    start: Instant,
    shared: &'a Shared,
    target: &'a Target,
    operation: Cow<'static, str>,
}

impl<'a> CallState<'a> {
    fn start(
        issued: &Issued<'a>,
        span_name: Cow<'static, str>,
        operation: Cow<'static, str>,
        batch_size: Option<usize>,
    ) -> Self {
        let target = issued.target;
        let mut span_attributes = Vec::with_capacity(target.attributes.len() + 2);
        span_attributes.extend(target.attributes.iter().cloned());
        span_attributes.push(KeyValue::new(DB_OPERATION_NAME, operation.clone()));
        if let Some(n) = batch_size.filter(|n| *n >= 2) {
            span_attributes.push(KeyValue::new(
                DB_OPERATION_BATCH_SIZE,
                i64::try_from(n).unwrap_or(i64::MAX),
            ));
        }
        let builder = SpanBuilder::from_name(span_name)
            .with_kind(SpanKind::Client)
            .with_start_time(issued.start_time())
            .with_attributes(span_attributes);
        let span =
            issued
                .shared
                .tracer
                .build_with_parent_rule(builder, &issued.parent, issued.shared.require_parent_span);
        Self {
            span,
            start: issued.start,
            shared: issued.shared,
            target,
            operation,
        }
    }

    /// The duration point's attributes: the target's, `db.operation.name`, then any `extra`.
    // `&Cow`, not `&str`: cloning keeps a static name borrowed instead of allocating.
    #[allow(clippy::ptr_arg)]
    fn metric_attributes(target: &Target, operation: &Cow<'static, str>, extra: usize) -> Vec<KeyValue> {
        let mut attributes = Vec::with_capacity(target.attributes.len() + 1 + extra);
        attributes.extend(target.attributes.iter().cloned());
        attributes.push(KeyValue::new(DB_OPERATION_NAME, operation.clone()));
        attributes
    }

    fn finish(mut self, failure: Option<Failure>) {
        let elapsed = seconds(self.start.elapsed());
        match failure {
            None => {
                let key = (self.target.id, self.operation);
                let target = self.target;
                record_with_last(&LAST_DURATION, &self.shared.duration, &key, elapsed, || {
                    Self::metric_attributes(target, &key.1, 0)
                });
            }
            // Failures are rare and carry per-error attributes: recorded unbound.
            Some(f) => {
                let mut attributes = Self::metric_attributes(self.target, &self.operation, 2);
                if let Some(code) = f.status_code {
                    let kv = KeyValue::new(DB_RESPONSE_STATUS_CODE, code);
                    if self.span.is_recording() {
                        self.span.set_attribute(kv.clone());
                    }
                    attributes.push(kv);
                }
                attributes.push(record_failure(&mut self.span, f.error_type, f.description));
                self.shared.duration.instrument().record(elapsed, &attributes);
            }
        }
        self.span.end();
    }
}

/// What an operation sends.
#[derive(Clone, Copy)]
enum Request<'a> {
    Command(&'a Cmd),
    Pipeline(&'a Pipeline),
}

/// The operation name of a pipeline or transaction: `PIPELINE <cmd>` / `MULTI <cmd>` when
/// every command is `<cmd>`, else the prefix alone.
fn pipeline_operation(pipeline: &Pipeline) -> (&'static str, Cow<'static, str>) {
    let prefix = if pipeline.is_transaction() { "MULTI" } else { "PIPELINE" };
    let mut common: Option<Cow<'static, str>> = None;
    for cmd in pipeline.cmd_iter() {
        let op = parse_head(cmd).operation;
        match &common {
            None => common = Some(op),
            Some(c) if *c == op => {}
            Some(_) => return (prefix, Cow::Borrowed(prefix)),
        }
    }
    match common {
        Some(c) => (prefix, Cow::Owned(format!("{prefix} {c}"))),
        None => (prefix, Cow::Borrowed(prefix)),
    }
}

/// What is captured when an operation is issued. Its span is built from this once the request
/// is on its way (see [`Traced`]), with the start time and parent of the moment it was issued.
struct Issued<'a> {
    request: Request<'a>,
    shared: &'a Shared,
    target: &'a Target,
    parent: Context,
    start: Instant,
}

impl<'a> Issued<'a> {
    fn new(request: Request<'a>, shared: &'a Shared, target: &'a Target) -> Self {
        Self {
            request,
            shared,
            target,
            parent: Context::current(),
            start: Instant::now(),
        }
    }

    /// The wall-clock time the operation was issued, derived from the monotonic start: reading
    /// the wall clock here, off the path before the request is sent, saves the caller a clock
    /// read.
    fn start_time(&self) -> SystemTime {
        let now = SystemTime::now();
        now.checked_sub(self.start.elapsed()).unwrap_or(now)
    }

    /// Builds the span: operation name, attributes and, for a recording span, the masked
    /// `db.query.text` and `db.stored_procedure.name`.
    fn begin(self) -> CallState<'a> {
        let shared = self.shared;
        match self.request {
            Request::Command(cmd) => {
                let parsed = parse_head(cmd);
                let mut state = CallState::start(&self, parsed.operation.clone(), parsed.operation.clone(), None);
                if state.span.is_recording() && (shared.query_text != QueryText::Off || parsed.may_name_procedure()) {
                    with_args(cmd, |args| {
                        if shared.query_text != QueryText::Off {
                            let mut text = String::with_capacity(parsed.rendered_len_hint(args));
                            render(&mut text, shared.query_text, &parsed, args);
                            state.span.set_attribute(KeyValue::new(DB_QUERY_TEXT, text));
                        }
                        if parsed.may_name_procedure() {
                            if let Some(procedure) = sanitize::stored_procedure(args) {
                                state
                                    .span
                                    .set_attribute(KeyValue::new(DB_STORED_PROCEDURE_NAME, procedure));
                            }
                        }
                    });
                }
                state
            }
            Request::Pipeline(pipeline) => {
                let (prefix, operation) = pipeline_operation(pipeline);
                let mut state = CallState::start(&self, Cow::Borrowed(prefix), operation, Some(pipeline.len()));
                if state.span.is_recording() && shared.query_text != QueryText::Off {
                    let mut text = String::new();
                    for (i, cmd) in pipeline.cmd_iter().enumerate() {
                        if i > 0 {
                            text.push_str("; ");
                        }
                        with_args(cmd, |args| {
                            let parsed = sanitize::parse(args);
                            text.reserve(parsed.rendered_len_hint(args));
                            render(&mut text, shared.query_text, &parsed, args);
                        });
                    }
                    state.span.set_attribute(KeyValue::new(DB_QUERY_TEXT, text));
                }
                state
            }
        }
    }
}

/// Where an operation's telemetry stands.
// Lives inside the boxed future, one per operation: boxing a variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Phase<'a> {
    /// Issued; the span is not built yet. `yielded`: the task has let the connection send the
    /// request once.
    Issued {
        issued: Issued<'a>,
        yielded: bool,
    },
    Started(CallState<'a>),
    Done,
}

/// What a reply says about success: a server error inside a successful reply is a failure.
trait Reply {
    fn failure(&self) -> Option<Failure>;
}

impl Reply for Value {
    fn failure(&self) -> Option<Failure> {
        first_server_error(std::iter::once(self))
    }
}

impl Reply for Vec<Value> {
    fn failure(&self) -> Option<Failure> {
        first_server_error(self)
    }
}

/// The inner future plus its telemetry.
///
/// Building a span (sampling, attributes, masking the command) costs the caller a few
/// microseconds, so it is done while the request is on the network rather than before it is
/// sent: the first time the connection answers `Pending`, the task yields once (a deferred wake,
/// so the connection's driver task writes the request first), and the span is built on the next
/// poll. Its start time, duration clock and parent are those of the moment the command was
/// issued, so what is recorded is unchanged; only the latency the caller sees drops.
struct Traced<'a, T> {
    inner: RedisFuture<'a, T>,
    phase: Phase<'a>,
}

/// Schedules the current task to be polled again after the runtime has run the tasks that are
/// ready now (tokio's `yield_now`, which defers the wake-up; elsewhere a plain wake).
fn yield_once(cx: &mut TaskContext<'_>) {
    let mut yielding = std::pin::pin!(tokio::task::yield_now());
    // A fresh `yield_now` registers the deferred wake-up and returns `Pending` on its first poll;
    // dropping it afterwards keeps the registration.
    let _ = yielding.as_mut().poll(cx);
}

impl<T: Reply> Future for Traced<'_, T> {
    type Output = RedisResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let result = match this.inner.as_mut().poll(cx) {
            Poll::Pending => {
                if let Phase::Issued { yielded, .. } = &mut this.phase {
                    if *yielded {
                        if let Phase::Issued { issued, .. } = std::mem::replace(&mut this.phase, Phase::Done) {
                            this.phase = Phase::Started(issued.begin());
                        }
                    } else {
                        *yielded = true;
                        yield_once(cx);
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(r) => r,
        };
        let state = match std::mem::replace(&mut this.phase, Phase::Done) {
            Phase::Issued { issued, .. } => Some(issued.begin()),
            Phase::Started(state) => Some(state),
            Phase::Done => None,
        };
        if let Some(state) = state {
            let failure = match &result {
                Ok(reply) => reply.failure(),
                Err(e) => Some(classify_error(e)),
            };
            state.finish(failure);
        }
        Poll::Ready(result)
    }
}

impl<T> Drop for Traced<'_, T> {
    fn drop(&mut self) {
        // Dropped before the reply: ended as every adapter ends an operation that never
        // completed (status Error, `error.type` = `cancelled`, duration recorded).
        let state = match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Issued { issued, .. } => Some(issued.begin()),
            Phase::Started(state) => Some(state),
            Phase::Done => None,
        };
        if let Some(state) = state {
            state.finish(Some(Failure::cancelled()));
        }
    }
}

impl<C: ConnectionLike + Send> ConnectionLike for InstrumentedConnection<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let Self { inner, redis, target } = self;
        let shared: &'a Shared = &redis.shared;
        if shared.filter.is_some() && !shared.allows(&parse_head(cmd).operation) {
            return inner.req_packed_command(cmd);
        }
        let issued = Issued::new(Request::Command(cmd), shared, target);
        Box::pin(Traced {
            inner: inner.req_packed_command(cmd),
            phase: Phase::Issued { issued, yielded: false },
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Self { inner, redis, target } = self;
        let shared: &'a Shared = &redis.shared;
        if shared.filter.is_some() && !shared.allows(&pipeline_operation(pipeline).1) {
            return inner.req_packed_commands(pipeline, offset, count);
        }
        let issued = Issued::new(Request::Pipeline(pipeline), shared, target);
        Box::pin(Traced {
            inner: inner.req_packed_commands(pipeline, offset, count),
            phase: Phase::Issued { issued, yielded: false },
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
