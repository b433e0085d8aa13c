//! Backend faults during load (issue 9, item 4): a PostgreSQL backend terminated, a Redis
//! connection killed, a RabbitMQ connection closed by the broker and a Kafka (mock) broker taken
//! down, each while 8 tasks run a bounded load through the instrumented client **and** the same
//! load through the bare client, side by side, hit by the same fault at the same moment.
//!
//! Each test asserts that
//! * the fault hit both clients (at least one failed operation each) and the instrumented client
//!   failed with the error kinds the bare one did (variant, SQLSTATE, I/O kind, AMQP reply code,
//!   librdkafka code; kinds that depend on timing are named per test) and the same messages
//!   (at least one identical message per kind both returned), in a number within a stated
//!   tolerance of the bare one's;
//! * every operation ended exactly one client span (one per operation, found under the
//!   operation's own parent span); a failed operation's span has status Error and the
//!   `error.type` that follows from the error the caller got, a successful one neither;
//! * the duration / sent-messages metrics count every operation once, failures under their
//!   `error.type`;
//! * both clients recover (a final run of sequential operations all succeed, with no help from
//!   the test beyond what an application would do itself: for RabbitMQ, reconnecting) and the
//!   pool / queue gauges return to their baseline.
//!
//! Services: PostgreSQL (`DATABASE_URL`), Redis (`REDIS_URL`), RabbitMQ (`AMQP_URL`, closed
//! through its management API or `rabbitmqctl`); Kafka is rdkafka's in-process mock cluster. A
//! service that cannot be reached fails the test with the URL it tried and how to start it.
//! `RELIABILITY_FAULT_OPS` (default 400) sets the minimum operations per client and run.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{SdkTracer, SpanData};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use reliability::env_count;

/// Concurrent tasks per client.
const CONCURRENCY: usize = 8;
/// Sequential operations per client after the load: all must succeed.
const RECOVERY_OPS: usize = 16;
/// Upper bound of a whole run (load, fault, recovery); generous for a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

fn min_ops() -> usize {
    env_count("RELIABILITY_FAULT_OPS", 400)
}

/// Fails the test: `service` is not reachable at `url`.
#[track_caller]
fn unreachable(service: &str, url: &str, compose: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach {service} at {url}: {err}\n\
         start it with `docker compose up -d {compose}` (or point the URL variable at a running server)"
    )
}

// ---------------------------------------------------------------------------------------------
// The harness: one load per client, the fault clock, records and checks.
// ---------------------------------------------------------------------------------------------

/// What a failed operation returned, reduced to what must not depend on the wrapper.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Failure {
    /// Error kind: variant plus code (SQLSTATE, I/O kind, AMQP reply code, librdkafka code).
    kind: String,
    /// The error's `Display`.
    message: String,
    /// The `error.type` the operation's span must carry, derived from the returned error.
    error_type: String,
}

/// One operation.
struct Record {
    /// The operation's own parent span (instrumented client only).
    parent: Option<SpanId>,
    started: Instant,
    ended: Instant,
    failure: Option<Failure>,
}

/// When the fault started and when it was over (the same moment for a one-shot fault).
#[derive(Default)]
struct FaultClock {
    start: OnceLock<Instant>,
    end: OnceLock<Instant>,
}

impl FaultClock {
    fn started(&self) {
        let _ = self.start.set(Instant::now());
    }

    fn ended(&self) {
        let _ = self.end.set(Instant::now());
    }

    fn over(&self) -> bool {
        self.end.get().is_some()
    }

    fn start(&self) -> Instant {
        *self.start.get().expect("fault injected")
    }

    fn end(&self) -> Instant {
        *self.end.get().expect("fault over")
    }
}

/// A client under test: its label, its progress and, for the instrumented one, the tracer of
/// the per-operation parent spans.
struct Side {
    label: &'static str,
    done: Arc<AtomicUsize>,
    tracer: Option<SdkTracer>,
}

impl Side {
    fn instrumented(t: &TestTelemetry) -> Self {
        Self {
            label: "instrumented",
            done: Arc::default(),
            tracer: Some(t.tracer_provider.tracer("reliability.backend_faults")),
        }
    }

    fn bare() -> Self {
        Self {
            label: "bare",
            done: Arc::default(),
            tracer: None,
        }
    }

    fn done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }
}

/// Runs `op(i)`, under a parent span `op` (attribute `op.index`) when the side has a tracer.
async fn run_one<F, Fut>(i: usize, tracer: Option<&SdkTracer>, op: &F) -> Record
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), Failure>>,
{
    let started = Instant::now();
    let (parent, result) = match tracer {
        Some(tracer) => {
            let span = tracer
                .span_builder("op")
                .with_attributes([KeyValue::new("op.index", i as i64)])
                .start_with_context(tracer, &Context::new());
            let cx = Context::new().with_span(span);
            let id = cx.span().span_context().span_id();
            let result = op(i).with_context(cx.clone()).await;
            cx.span().end();
            (Some(id), result)
        }
        None => (None, op(i).await),
    };
    Record {
        parent,
        started,
        ended: Instant::now(),
        failure: result.err(),
    }
}

/// The load of one client: `CONCURRENCY` tasks run operations until at least `min_ops` ran, the
/// fault is over and `min_ops / 3` operations started after it; then `RECOVERY_OPS` sequential
/// operations. Returns every record (load first, recovery last) and the load's duration.
async fn drive<F, Fut>(side: &Side, min_ops: usize, clock: Arc<FaultClock>, op: F) -> (Vec<Record>, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Failure>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let after = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, after, clock, op, done) = (
            next.clone(),
            after.clone(),
            clock.clone(),
            op.clone(),
            side.done.clone(),
        );
        let tracer = side.tracer.clone();
        tasks.push(tokio::spawn(async move {
            let mut records = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if clock.over() && i >= min_ops && after.fetch_add(1, Ordering::Relaxed) >= min_ops / 3 {
                    return records;
                }
                records.push(run_one(i, tracer.as_ref(), &op).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut records = Vec::new();
    for task in tasks {
        records.extend(task.await.expect("load task"));
    }
    let took = started.elapsed();
    records.sort_by_key(|r| r.started);
    // Recovery: sequential operations, every one must succeed.
    let first = next.load(Ordering::Relaxed);
    for k in 0..RECOVERY_OPS {
        let record = run_one(first + k, side.tracer.as_ref(), &op).await;
        if let Some(f) = &record.failure {
            panic!(
                "{}: recovery operation {k} after the fault failed: {} ({})",
                side.label, f.message, f.kind
            );
        }
        records.push(record);
    }
    (records, took)
}

/// Waits until both sides have done `n` operations.
async fn wait_progress(a: &Side, b: &Side, n: usize) {
    while a.done() < n || b.done() < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Figures of one side.
struct Figures {
    ops: usize,
    failures: usize,
    kinds: BTreeMap<String, usize>,
    /// From the start of the fault to the end of the last failed operation.
    last_failure: Option<Duration>,
    /// From the end of the first failed operation to the end of the last one.
    window: Duration,
    /// From the end of the fault to the end of the first success that started after it and
    /// after the last failure.
    recovered: Duration,
}

fn figures(records: &[Record], clock: &FaultClock) -> Figures {
    let (start, end) = (clock.start(), clock.end());
    let mut kinds = BTreeMap::new();
    for f in records.iter().filter_map(|r| r.failure.as_ref()) {
        *kinds
            .entry(format!("{} [error.type {}]", f.kind, f.error_type))
            .or_insert(0) += 1;
    }
    let last_failed = records.iter().filter(|r| r.failure.is_some()).map(|r| r.ended).max();
    let first_failed = records.iter().filter(|r| r.failure.is_some()).map(|r| r.ended).min();
    let from = last_failed.unwrap_or(end).max(end);
    let recovered_at = records
        .iter()
        .filter(|r| r.failure.is_none() && r.started >= from)
        .map(|r| r.ended)
        .min()
        .expect("a success after the fault (the recovery operations)");
    Figures {
        ops: records.len(),
        failures: records.iter().filter(|r| r.failure.is_some()).count(),
        kinds,
        last_failure: last_failed.map(|t| t.saturating_duration_since(start)),
        window: match (first_failed, last_failed) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        },
        recovered: recovered_at.saturating_duration_since(end),
    }
}

/// What a fault may do to a client.
struct Expect<'a> {
    /// At most this many failed operations per client.
    max_failures: usize,
    /// The two clients' failure counts differ by at most this much.
    tolerance: usize,
    /// Every error kind either client returns is one of these (empty: no restriction).
    allowed: &'a [&'a str],
    /// Kinds that depend on timing: the instrumented client may return them when the bare one
    /// happened not to (every other kind must also occur on the bare side).
    racy: &'a [&'a str],
}

/// Prints both sides' figures and asserts that the instrumented client failed like the bare one:
/// both were hit, the failure counts are within `tolerance` of each other and at most
/// `max_failures`, every error kind is `allowed`, and every kind of error the instrumented
/// client returned is one the bare client also returned for this fault, with at least one
/// identical message, or one of the `racy` kinds.
fn compare(
    what: &str,
    clock: &FaultClock,
    (inst, inst_took): (&[Record], Duration),
    (bare, bare_took): (&[Record], Duration),
    expect: Expect<'_>,
) {
    let Expect {
        max_failures,
        tolerance,
        allowed,
        racy,
    } = expect;
    let fi = figures(inst, clock);
    let fb = figures(bare, clock);
    for (label, f, took) in [("instrumented", &fi, inst_took), ("bare", &fb, bare_took)] {
        eprintln!(
            "{what} [{label}]: {} ops (load {took:.2?}), {} failed {:?} within {:.1?}, last failure ended {} \
             after the fault started, recovered (first success started after it) {:.1?} after the fault ended",
            f.ops,
            f.failures,
            f.kinds,
            f.window,
            f.last_failure.map_or("-".to_owned(), |d| format!("{d:.1?}")),
            f.recovered
        );
    }
    for (label, f) in [("instrumented", &fi), ("bare", &fb)] {
        assert!(f.failures >= 1, "{what}: the fault did not hit the {label} client");
        assert!(
            f.failures <= max_failures,
            "{what}: {label} client failed {} times, more than the {max_failures} operations the fault can \
             reach; kinds {:?}",
            f.failures,
            f.kinds
        );
    }
    assert!(
        fi.failures.abs_diff(fb.failures) <= tolerance,
        "{what}: instrumented client failed {} times, bare {} (tolerance {tolerance})",
        fi.failures,
        fb.failures
    );
    // Kind -> messages, per side.
    let by_kind = |records: &[Record]| {
        let mut m: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for f in records.iter().filter_map(|r| r.failure.as_ref()) {
            *m.entry(f.kind.clone())
                .or_default()
                .entry(f.message.clone())
                .or_insert(0) += 1;
        }
        m
    };
    let (ki, kb) = (by_kind(inst), by_kind(bare));
    eprintln!("{what}: error messages: instrumented {ki:?}, bare {kb:?}");
    for kind in ki.keys().chain(kb.keys()) {
        assert!(
            allowed.is_empty() || allowed.contains(&kind.as_str()),
            "{what}: unexpected error kind {kind}; instrumented {ki:?}, bare {kb:?}"
        );
    }
    for (kind, messages) in &ki {
        match kb.get(kind) {
            // The same kind: the messages must overlap too (they may differ in detail with
            // timing, e.g. an OS `EPIPE` vs the client's own "broken pipe", but a wrapper that
            // changed errors would share none).
            Some(bare_messages) => assert!(
                messages.keys().any(|m| bare_messages.contains_key(m)),
                "{what}: {kind} errors: instrumented messages {messages:?}, bare {bare_messages:?}"
            ),
            None => assert!(
                racy.contains(&kind.as_str()),
                "{what}: the instrumented client returned {kind} ({messages:?}), which the bare client never \
                 returned for the same fault; bare: {kb:?}"
            ),
        }
    }
}

/// Every operation of the instrumented side ended exactly one `kind` span, a child of its
/// parent span; failures have status Error and their `error.type`, successes neither. Returns
/// the client spans.
#[track_caller]
fn assert_one_span_per_op(what: &str, t: &TestTelemetry, records: &[Record], kind: SpanKind) -> Vec<SpanData> {
    let spans = t.spans();
    let client: Vec<SpanData> = spans.iter().filter(|s| s.span_kind == kind).cloned().collect();
    assert_eq!(
        client.len(),
        records.len(),
        "{what}: one {kind:?} span per operation (every span ended, none twice)"
    );
    let mut by_parent: HashMap<SpanId, Vec<&SpanData>> = HashMap::new();
    for s in &client {
        by_parent.entry(s.parent_span_id).or_default().push(s);
    }
    for (n, r) in records.iter().enumerate() {
        let parent = r.parent.expect("instrumented records have a parent span");
        let children = by_parent.get(&parent).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(children.len(), 1, "{what}: operation {n} has {} spans", children.len());
        let span = children[0];
        match &r.failure {
            Some(f) => {
                assert!(
                    matches!(span.status, Status::Error { .. }),
                    "{what}: failed operation {n} ({}) has span status {:?}",
                    f.kind,
                    span.status
                );
                span.assert_attr("error.type", f.error_type.clone());
            }
            None => {
                span.assert_status(&Status::Unset).assert_no_attr("error.type");
            }
        }
    }
    client
}

/// Total count of a histogram's points and the count of those with `error.type`.
fn histogram_counts(t: &TestTelemetry, name: &str) -> (u64, u64) {
    let points = t.metrics().histogram(name);
    let total = points.iter().map(|p| p.count).sum();
    let failed = points
        .iter()
        .filter(|p| p.attributes.iter().any(|kv| kv.key.as_str() == "error.type"))
        .map(|p| p.count)
        .sum();
    (total, failed)
}

fn failures(records: &[Record]) -> u64 {
    records.iter().filter(|r| r.failure.is_some()).count() as u64
}

/// The I/O error behind an error, looking through `Arc<dyn Error>` links (redis keeps its I/O
/// errors that way).
fn io_error_in<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        if let Some(io) = e
            .downcast_ref::<Arc<dyn StdError + Send + Sync>>()
            .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// Waits (up to 10 s) until `read` returns `want`; returns the last value read.
async fn settle<T: PartialEq + Copy>(want: T, mut read: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = read();
        if v == want || Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(RUN_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: the run did not finish within {RUN_TIMEOUT:?}"))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: backends terminated with pg_terminate_backend.
// ---------------------------------------------------------------------------------------------

mod pg {
    use super::*;
    use otelrs_sql::InstrumentedPool;
    use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, Postgres};
    use sqlx::Connection as _;

    pub fn url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    /// Connections per pool (fewer than the tasks, so tasks also wait for connections).
    pub const POOL: u32 = 4;

    pub async fn pool(app: &str) -> PgPool {
        let url = url();
        let opts: PgConnectOptions = url
            .parse()
            .unwrap_or_else(|e| panic!("invalid DATABASE_URL {url:?}: {e}"));
        // One direct connection first: the pool would retry a refused connection until its
        // acquire timeout; this says at once what is wrong.
        sqlx::PgConnection::connect_with(&opts)
            .await
            .unwrap_or_else(|e| unreachable("PostgreSQL", &url, "postgres", e))
            .close()
            .await
            .ok();
        PgPoolOptions::new()
            .max_connections(POOL)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.application_name(app))
            .await
            .unwrap_or_else(|e| unreachable("PostgreSQL", &url, "postgres", e))
    }

    pub fn failure(err: &sqlx::Error) -> Failure {
        let kind = match err {
            sqlx::Error::Database(db) => format!("Database({})", db.code().unwrap_or_default()),
            sqlx::Error::Io(io) => format!("Io({:?})", io.kind()),
            other => format!("{other:?}").split('(').next().unwrap_or_default().to_owned(),
        };
        Failure {
            kind,
            message: err.to_string(),
            error_type: otelrs_sql::database::classify_error::<Postgres>(err).0.into_owned(),
        }
    }

    const QUERY: &str = "SELECT $1::int8 FROM pg_sleep(0.01)";

    pub fn instrumented_op(
        pool: InstrumentedPool<Postgres>,
    ) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>> + Clone {
        move |i| {
            let pool = pool.clone();
            Box::pin(async move {
                let v: i64 = sqlx::query_scalar(QUERY)
                    .bind(i as i64)
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| failure(&e))?;
                assert_eq!(v, i as i64, "query result");
                Ok(())
            })
        }
    }

    pub fn bare_op(
        pool: PgPool,
    ) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = Result<(), Failure>> + Send>> + Clone {
        move |i| {
            let pool = pool.clone();
            Box::pin(async move {
                let v: i64 = sqlx::query_scalar(QUERY)
                    .bind(i as i64)
                    .fetch_one(&pool)
                    .await
                    .map_err(|e| failure(&e))?;
                assert_eq!(v, i as i64, "query result");
                Ok(())
            })
        }
    }

    /// Terminates every backend of both pools (by `application_name`) in one statement, which
    /// also reads whether each backend was inside a test query's `pg_sleep` at that moment
    /// (terminating it there always fails the query; a query already sending its result may
    /// still succeed), and repeats (rarely needed) until a round caught a query of each pool
    /// sleeping, so that the fault hits operations in flight.
    /// Returns the backends terminated per application and the number of rounds.
    pub async fn terminate_during_queries(apps: [&str; 2], clock: &FaultClock) -> (BTreeMap<String, i64>, usize) {
        let url = url();
        let mut admin = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| unreachable("PostgreSQL", &url, "postgres", e));
        clock.started();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = BTreeMap::new();
        let mut hit = [false; 2];
        let mut rounds = 0;
        while hit.contains(&false) {
            assert!(Instant::now() < deadline, "no round caught both pools running a query");
            if rounds > 0 {
                // Let the pools reconnect and run queries again.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let rows: Vec<(String, Option<bool>, bool)> = sqlx::query_as(
                "SELECT application_name::text, wait_event = 'PgSleep', \
                 pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ($1, $2)",
            )
            .bind(apps[0])
            .bind(apps[1])
            .fetch_all(&mut admin)
            .await
            .expect("pg_terminate_backend");
            rounds += 1;
            for (app, running, ok) in rows {
                *killed.entry(app.clone()).or_insert(0) += i64::from(ok);
                for (k, a) in apps.iter().enumerate() {
                    hit[k] |= ok && running == Some(true) && app == *a;
                }
            }
        }
        admin.close().await.ok();
        (killed, rounds)
    }

    /// `db.client.connection.count{state=used}` of the instrumented pool.
    pub fn used(t: &TestTelemetry) -> Option<i64> {
        t.metrics()
            .sums_i64("db.client.connection.count")
            .into_iter()
            .find(|p| {
                p.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "db.client.connection.state" && kv.value == Value::from("used"))
            })
            .map(|p| p.value)
    }

    pub fn pending(t: &TestTelemetry) -> Option<i64> {
        t.metrics()
            .sums_i64("db.client.connection.pending_requests")
            .first()
            .map(|p| p.value)
    }
}

/// `pg_terminate_backend` on every connection of both pools (4 connections, 8 tasks each)
/// while queries run: the instrumented pool returns the errors the bare one does (SQLSTATE
/// 57P01 `admin_shutdown`, or the I/O error of a query sent on a connection already closed),
/// ends one span per query with that `error.type`, and both pools reconnect by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend_terminated_during_load() {
    use otelrs_sql::{InstrumentedPool, SqlOptions};
    let what = "PostgreSQL pg_terminate_backend";
    let t = TestTelemetry::new();
    let id = std::process::id();
    let apps = [format!("rel-faults-inst-{id}"), format!("rel-faults-bare-{id}")];
    let inst_pool = InstrumentedPool::new(
        pg::pool(&apps[0]).await,
        SqlOptions::new().with_instrumentation(t.instrumentation()),
    );
    let bare_pool = pg::pool(&apps[1]).await;
    assert_eq!(pg::used(&t), Some(0), "baseline: no connection in use");
    let n = min_ops();
    let clock = Arc::new(FaultClock::default());
    let (inst, bare) = (Side::instrumented(&t), Side::bare());

    let started = Instant::now();
    let ((killed, rounds), (inst_records, inst_took), (bare_records, bare_took)) = bounded(what, async {
        tokio::join!(
            async {
                wait_progress(&inst, &bare, n / 3).await;
                let killed = pg::terminate_during_queries([&apps[0], &apps[1]], &clock).await;
                clock.ended();
                killed
            },
            drive(&inst, n, clock.clone(), pg::instrumented_op(inst_pool.clone())),
            drive(&bare, n, clock.clone(), pg::bare_op(bare_pool.clone())),
        )
    })
    .await;
    eprintln!(
        "{what}: terminated backends {killed:?} in {rounds} round(s), run {:.2?}",
        started.elapsed()
    );

    // At most one failure per terminated connection (the query in flight on it, or one sent
    // before the client saw the close; sqlx tests idle connections before handing them out):
    // between 1 and POOL per client and round.
    let max = pg::POOL as usize * rounds;
    // The query in flight gets the server's FATAL 57P01 (admin_shutdown); one sent on a
    // connection whose backend is already gone would get the I/O error instead (timing).
    let io = ["Io(UnexpectedEof)", "Io(ConnectionReset)", "Io(BrokenPipe)"];
    compare(
        what,
        &clock,
        (&inst_records, inst_took),
        (&bare_records, bare_took),
        Expect {
            max_failures: max,
            tolerance: max - 1,
            allowed: &["Database(57P01)", io[0], io[1], io[2]],
            racy: &io,
        },
    );
    let spans = assert_one_span_per_op(what, &t, &inst_records, SpanKind::Client);
    assert!(spans.iter().all(|s| s.name == "SELECT"), "span names");
    let (total, failed) = histogram_counts(&t, "db.client.operation.duration");
    assert_eq!(total, inst_records.len() as u64, "{what}: one duration per query");
    assert_eq!(
        failed,
        failures(&inst_records),
        "{what}: one failed duration per failed query"
    );

    // Gauges back to the baseline: no connection in use, nobody waiting.
    assert_eq!(
        settle(Some(0), || pg::used(&t)).await,
        Some(0),
        "{what}: connections used"
    );
    assert_eq!(pg::pending(&t), Some(0), "{what}: pending requests");
    let bare_used = settle(0, || bare_pool.size() as usize - bare_pool.num_idle()).await;
    assert_eq!(bare_used, 0, "{what}: bare pool connections in use");
    inst_pool.close().await;
    bare_pool.close().await;
}

// ---------------------------------------------------------------------------------------------
// Redis: the connection killed with CLIENT KILL.
// ---------------------------------------------------------------------------------------------

mod redis_fault {
    use super::*;
    use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
    use redis::{AsyncCommands, Client, RedisError};

    pub fn url() -> String {
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
    }

    pub fn client() -> Client {
        let url = url();
        Client::open(url.as_str()).unwrap_or_else(|e| panic!("invalid REDIS_URL {url:?}: {e}"))
    }

    /// A reconnecting multiplexed connection (what services use), with generous timeouts.
    pub async fn manager(client: &Client) -> ConnectionManager {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        ConnectionManager::new_with_config(client.clone(), config)
            .await
            .unwrap_or_else(|e| unreachable("Redis", &url(), "redis", e))
    }

    pub async fn admin(client: &Client) -> MultiplexedConnection {
        client
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| unreachable("Redis", &url(), "redis", e))
    }

    /// `error.type` as the otelrs-redis docs define it: the server's error prefix, else the I/O
    /// kind, else `io` for a dropped connection.
    pub fn failure(err: &RedisError) -> Failure {
        let io = io_error_in(err);
        let error_type = match (err.code(), io) {
            (Some(code), _) => code.to_owned(),
            (None, Some(io)) => otelrs_core::conv::io_error_type(io).to_owned(),
            (None, None) if err.kind() == redis::ErrorKind::Io => "io".to_owned(),
            _ => panic!("unexpected redis error for a killed connection: {err:?}"),
        };
        let mut kind = format!("{:?}", err.kind());
        if let Some(io) = io {
            kind.push_str(&format!("({:?})", io.kind()));
        }
        if err.is_connection_dropped() {
            kind.push_str(" dropped");
        }
        Failure {
            kind,
            message: err.to_string(),
            error_type,
        }
    }

    /// One operation: every sixteenth a `BLPOP` on an empty list with a 10 ms timeout (it holds
    /// the connection, so a kill always finds commands in flight), the others `INCR`.
    pub async fn op<C: redis::aio::ConnectionLike + Send + Sync>(
        conn: &mut C,
        keys: &(String, String),
        i: usize,
    ) -> Result<(), Failure> {
        if i.is_multiple_of(16) {
            let got: Option<(String, String)> = conn.blpop(&keys.0, 0.01).await.map_err(|e| failure(&e))?;
            assert_eq!(got, None, "BLPOP on an empty list");
        } else {
            let _: i64 = conn.incr(&keys.1, 1).await.map_err(|e| failure(&e))?;
        }
        Ok(())
    }

    /// Kills the connections `ids`, each at a moment it is blocked in `BLPOP`.
    pub async fn kill_when_blocked(admin: &mut MultiplexedConnection, ids: [i64; 2]) -> [i64; 2] {
        let mut killed = [0; 2];
        let deadline = Instant::now() + Duration::from_secs(10);
        while killed.contains(&0) {
            for (k, id) in ids.iter().enumerate() {
                if killed[k] != 0 {
                    continue;
                }
                let info: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .arg("ID")
                    .arg(*id)
                    .query_async(admin)
                    .await
                    .expect("CLIENT LIST");
                if info.contains("flags=b") {
                    killed[k] = redis::cmd("CLIENT")
                        .arg("KILL")
                        .arg("ID")
                        .arg(*id)
                        .query_async(admin)
                        .await
                        .expect("CLIENT KILL");
                }
            }
            assert!(Instant::now() < deadline, "connections {ids:?} never seen blocked");
        }
        killed
    }
}

/// `CLIENT KILL` of both clients' connections (redis `ConnectionManager`, 8 tasks each), each
/// while a `BLPOP` holds it: the commands in flight fail with the same I/O error with and
/// without the wrapper, their spans end with the I/O `error.type`, and both managers reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_killed_during_load() {
    use otelrs_redis::RedisInstrumentation;
    let what = "Redis CLIENT KILL";
    let t = TestTelemetry::new();
    let client = redis_fault::client();
    let mut admin = redis_fault::admin(&client).await;
    let inst_manager = redis_fault::manager(&client).await;
    let bare_manager = redis_fault::manager(&client).await;
    let mut ids = [0i64; 2];
    for (k, m) in [&inst_manager, &bare_manager].into_iter().enumerate() {
        ids[k] = redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut m.clone())
            .await
            .expect("CLIENT ID");
    }
    let prefix = format!("reliability:faults:{}:{}", std::process::id(), ids[0]);
    let keys = |side: &str| (format!("{prefix}:{side}:empty"), format!("{prefix}:{side}:n"));
    let inst_conn = RedisInstrumentation::new()
        .with_instrumentation(t.instrumentation())
        .connection(inst_manager, client.get_connection_info());
    let n = min_ops();
    let clock = Arc::new(FaultClock::default());
    let (inst, bare) = (Side::instrumented(&t), Side::bare());
    let inst_op = {
        let (conn, keys) = (inst_conn.clone(), keys("inst"));
        move |i| {
            let (mut conn, keys) = (conn.clone(), keys.clone());
            async move { redis_fault::op(&mut conn, &keys, i).await }
        }
    };
    let bare_op = {
        let (conn, keys) = (bare_manager.clone(), keys("bare"));
        move |i| {
            let (mut conn, keys) = (conn.clone(), keys.clone());
            async move { redis_fault::op(&mut conn, &keys, i).await }
        }
    };

    let started = Instant::now();
    let (killed, (inst_records, inst_took), (bare_records, bare_took)) = bounded(what, async {
        tokio::join!(
            async {
                wait_progress(&inst, &bare, n / 3).await;
                clock.started();
                let killed = redis_fault::kill_when_blocked(&mut admin, ids).await;
                clock.ended();
                killed
            },
            drive(&inst, n, clock.clone(), inst_op),
            drive(&bare, n, clock.clone(), bare_op),
        )
    })
    .await;
    eprintln!("{what}: killed {killed:?} (ids {ids:?}), run {:.2?}", started.elapsed());
    assert_eq!(killed, [1, 1], "both connections killed");

    // Every command queued on the connection when it was killed fails, and no more: at most
    // one per task (a task's next command goes to the reconnected connection).
    compare(
        what,
        &clock,
        (&inst_records, inst_took),
        (&bare_records, bare_took),
        Expect {
            max_failures: CONCURRENCY,
            tolerance: CONCURRENCY - 1,
            allowed: &[],
            // Which I/O error a command on the killed socket gets depends on when its write
            // lands relative to the server's RST (EPIPE after it, ECONNRESET on the read or a
            // write racing it): the OS's timing, passed through unchanged by both clients.
            racy: &["Io(BrokenPipe)", "Io(ConnectionReset)", "Io(UnexpectedEof)"],
        },
    );
    let spans = assert_one_span_per_op(what, &t, &inst_records, SpanKind::Client);
    assert!(
        spans
            .iter()
            .all(|s| s.name == "BLPOP" || s.name == "INCRBY" || s.name == "INCR"),
        "span names: {:?}",
        spans
            .iter()
            .map(|s| s.name.to_string())
            .collect::<std::collections::BTreeSet<_>>()
    );
    let (total, failed) = histogram_counts(&t, "db.client.operation.duration");
    assert_eq!(total, inst_records.len() as u64, "{what}: one duration per command");
    assert_eq!(
        failed,
        failures(&inst_records),
        "{what}: one failed duration per failed command"
    );
    let mut keys_to_delete = Vec::new();
    for side in ["inst", "bare"] {
        let (a, b) = keys(side);
        keys_to_delete.extend([a, b]);
    }
    let _: i64 = redis::cmd("DEL")
        .arg(&keys_to_delete)
        .query_async(&mut admin)
        .await
        .expect("DEL");
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ: the connection closed by the broker.
// ---------------------------------------------------------------------------------------------

mod amqp {
    use super::*;
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::publisher_confirm::Confirmation;
    use lapin::types::{AMQPValue, FieldTable, LongString};
    use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
    use otelrs_mq::rabbitmq::RabbitMq;
    use tokio::sync::Mutex;

    pub fn url() -> String {
        std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
    }

    pub async fn connect(name: &str) -> Connection {
        let url = url();
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name.to_owned()));
        Connection::connect(&url, props)
            .await
            .unwrap_or_else(|e| unreachable("RabbitMQ", &url, "rabbitmq", e))
    }

    /// A confirm-mode channel on a connection named `name`, and the connection.
    pub async fn open(name: &str) -> (Connection, Channel) {
        let conn = connect(name).await;
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm_select");
        (conn, channel)
    }

    /// What an application keeps: the current connection and channel, replaced by a new one
    /// when an operation fails (the same code for both clients; the wrapper adds no recovery).
    pub struct Link {
        name: String,
        state: Mutex<(u64, Connection, Channel)>,
        pub reconnects: AtomicUsize,
    }

    impl Link {
        pub async fn new(name: &str) -> Arc<Self> {
            let (conn, channel) = open(name).await;
            Arc::new(Self {
                name: name.to_owned(),
                state: Mutex::new((0, conn, channel)),
                reconnects: AtomicUsize::new(0),
            })
        }

        pub async fn current(&self) -> (u64, Channel) {
            let s = self.state.lock().await;
            (s.0, s.2.clone())
        }

        /// Replaces generation `failed` (once, whoever comes first).
        pub async fn reconnect(&self, failed: u64) {
            let mut s = self.state.lock().await;
            if s.0 == failed {
                let (conn, channel) = open(&self.name).await;
                *s = (failed + 1, conn, channel);
                self.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn failure(err: &lapin::Error) -> Failure {
        let mut kind = format!("{:?}", err.kind());
        // Keep the variant (and a protocol error's reply code), not state details.
        if let lapin::ErrorKind::ProtocolError(e) = err.kind() {
            kind = format!("ProtocolError({})", e.get_id());
        } else if let Some(cut) = kind.find('(') {
            kind.truncate(cut);
        }
        Failure {
            kind,
            message: err.to_string(),
            error_type: otelrs_mq::rabbitmq::error_type(err).into_owned(),
        }
    }

    fn confirmation(c: Confirmation) -> Result<(), Failure> {
        match c {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Nack(None) => Err(Failure {
                kind: "Nack".to_owned(),
                message: "nack".to_owned(),
                error_type: "nack".to_owned(),
            }),
            other => panic!("unexpected confirmation {other:?}"),
        }
    }

    /// Publishes to `queue` and waits for the broker's confirmation; on failure, reconnects.
    pub async fn publish(link: &Link, rabbitmq: Option<&RabbitMq>, queue: &str, i: usize) -> Result<(), Failure> {
        let (generation, channel) = link.current().await;
        let payload = format!("message {i}");
        let props = BasicProperties::default();
        let result = match rabbitmq {
            Some(r) => match r
                .channel(channel)
                .basic_publish("", queue, BasicPublishOptions::default(), payload.as_bytes(), props)
                .await
            {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            },
            None => match channel
                .basic_publish("", queue, BasicPublishOptions::default(), payload.as_bytes(), props)
                .await
            {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            },
        };
        let outcome = result.map_err(|e| failure(&e)).and_then(confirmation);
        if outcome.is_err() {
            link.reconnect(generation).await;
        }
        outcome
    }

    /// A queue nobody consumes from, bounded and expiring (in case the test dies).
    pub async fn declare(channel: &Channel, name: &str) {
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(100));
        args.insert("x-expires".into(), AMQPValue::LongInt(300_000));
        channel
            .queue_declare(name, QueueDeclareOptions::default(), args)
            .await
            .expect("queue_declare");
    }

    pub async fn delete(channel: &Channel, name: &str) {
        let _ = channel.queue_delete(name, QueueDeleteOptions::default()).await;
    }

    // --- closing a connection from the broker side --------------------------------------------

    fn management_url() -> String {
        std::env::var("RABBITMQ_MANAGEMENT_URL").unwrap_or_else(|_| "http://127.0.0.1:15672".to_owned())
    }

    fn rabbitmqctl() -> Vec<String> {
        std::env::var("RABBITMQCTL")
            .unwrap_or_else(|_| "rabbitmqctl".to_owned())
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// How the test closes connections from the broker side.
    #[derive(Clone, Debug)]
    pub enum Closer {
        /// The management HTTP API: `DELETE /api/connections/{name}`.
        Management(String),
        /// `rabbitmqctl close_connection {pid}`.
        Ctl(Vec<String>),
    }

    fn run_ctl(ctl: &[String], args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(&ctl[0])
            .args(&ctl[1..])
            .args(args)
            .output()
            .map_err(|e| format!("{}: {e}", ctl.join(" ")))?;
        if !out.status.success() {
            return Err(format!(
                "{} {}: {}{}",
                ctl.join(" "),
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    async fn management_get(base: &str) -> Result<serde_json::Value, String> {
        let client = reqwest::Client::new();
        let resp = client
            .get(format!("{base}/api/connections"))
            .basic_auth("guest", Some("guest"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("GET {base}/api/connections: {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }

    /// The management API if it answers, else `rabbitmqctl`; fails the test with both reasons
    /// when neither works.
    pub async fn closer() -> Closer {
        let base = management_url();
        let management = management_get(&base).await;
        if management.is_ok() {
            return Closer::Management(base);
        }
        let ctl = rabbitmqctl();
        match run_ctl(&ctl, &["list_connections", "-q", "pid"]) {
            Ok(_) => Closer::Ctl(ctl),
            Err(ctl_err) => panic!(
                "cannot close a RabbitMQ connection from the broker side: the management API at {base} failed \
                 ({}) and rabbitmqctl failed ({ctl_err}).\nStart RabbitMQ with the management plugin \
                 (`docker compose up -d rabbitmq`, image rabbitmq:3-management, port 15672; set \
                 RABBITMQ_MANAGEMENT_URL) or make rabbitmqctl usable (set RABBITMQCTL, e.g. \
                 `RABBITMQCTL=\"docker compose exec -T rabbitmq rabbitmqctl\"`)",
                management.err().unwrap_or_default()
            ),
        }
    }

    /// The broker's identifier of the connection whose client named it `name`: the connection
    /// name (management API) or its Erlang pid (rabbitmqctl).
    pub async fn find(closer: &Closer, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = match closer {
                Closer::Management(base) => {
                    let all = management_get(base).await.expect("management API");
                    all.as_array().into_iter().flatten().find_map(|c| {
                        (c["client_properties"]["connection_name"].as_str() == Some(name))
                            .then(|| c["name"].as_str().map(str::to_owned))
                            .flatten()
                    })
                }
                Closer::Ctl(ctl) => {
                    // Plain output, one connection per line: `<rabbit@host.N.M.0>\t[{"product",...},
                    // {"connection_name","..."}, ...]` (the JSON formatter prints pids in a form
                    // close_connection does not accept).
                    let out = run_ctl(ctl, &["list_connections", "-q", "pid", "client_properties"])
                        .expect("rabbitmqctl list_connections");
                    let quoted = format!("\"{name}\"");
                    out.lines()
                        .find(|line| line.contains(&quoted))
                        .and_then(|line| line.split_whitespace().next())
                        .map(str::to_owned)
                }
            };
            if let Some(id) = found {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "the broker does not list connection {name:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Closes the connections `ids` from the broker side (concurrently).
    pub async fn close(closer: &Closer, ids: &[String]) {
        let mut tasks = Vec::new();
        for id in ids {
            let (closer, id) = (closer.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                match closer {
                    Closer::Management(base) => {
                        let encoded: String = id
                            .bytes()
                            .map(|b| match b {
                                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                                    (b as char).to_string()
                                }
                                _ => format!("%{b:02X}"),
                            })
                            .collect();
                        let resp = reqwest::Client::new()
                            .delete(format!("{base}/api/connections/{encoded}"))
                            .basic_auth("guest", Some("guest"))
                            .header("X-Reason", "reliability test: backend fault")
                            .send()
                            .await
                            .expect("management API DELETE");
                        assert!(resp.status().is_success(), "DELETE connection {id}: {}", resp.status());
                    }
                    Closer::Ctl(ctl) => {
                        tokio::task::spawn_blocking(move || {
                            run_ctl(&ctl, &["close_connection", &id, "reliability test: backend fault"])
                                .expect("rabbitmqctl close_connection")
                        })
                        .await
                        .expect("rabbitmqctl");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("close connection");
        }
    }
}

/// The broker closes both clients' connections (`CONNECTION_FORCED`, through the management API
/// or `rabbitmqctl close_connection`) while 8 tasks each publish with publisher confirms: the
/// traced channel returns the errors the bare channel does, every publish span ends (with
/// `error.type` for the failed ones), and both recover by the same reconnect-on-error code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_connection_closed_by_broker_during_load() {
    use otelrs_mq::rabbitmq::RabbitMq;
    let what = "RabbitMQ connection closed by the broker";
    let t = TestTelemetry::new();
    let closer = amqp::closer().await;
    let id = std::process::id();
    let names = [format!("rel-faults-inst-{id}"), format!("rel-faults-bare-{id}")];
    let queue = format!("reliability.faults.{id}");
    let inst_link = amqp::Link::new(&names[0]).await;
    let bare_link = amqp::Link::new(&names[1]).await;
    amqp::declare(&inst_link.current().await.1, &queue).await;
    let broker_ids = [
        amqp::find(&closer, &names[0]).await,
        amqp::find(&closer, &names[1]).await,
    ];
    let rabbitmq = RabbitMq::new()
        .with_instrumentation(t.instrumentation())
        .with_server_from_uri(&amqp::url());
    let n = min_ops();
    let clock = Arc::new(FaultClock::default());
    let (inst, bare) = (Side::instrumented(&t), Side::bare());
    let inst_op = {
        let (link, rabbitmq, queue) = (inst_link.clone(), rabbitmq.clone(), queue.clone());
        move |i| {
            let (link, rabbitmq, queue) = (link.clone(), rabbitmq.clone(), queue.clone());
            async move { amqp::publish(&link, Some(&rabbitmq), &queue, i).await }
        }
    };
    let bare_op = {
        let (link, queue) = (bare_link.clone(), queue.clone());
        move |i| {
            let (link, queue) = (link.clone(), queue.clone());
            async move { amqp::publish(&link, None, &queue, i).await }
        }
    };

    let started = Instant::now();
    let ((), (inst_records, inst_took), (bare_records, bare_took)) = bounded(what, async {
        tokio::join!(
            async {
                wait_progress(&inst, &bare, n / 3).await;
                clock.started();
                amqp::close(&closer, &broker_ids).await;
                clock.ended();
            },
            drive(&inst, n, clock.clone(), inst_op),
            drive(&bare, n, clock.clone(), bare_op),
        )
    })
    .await;
    eprintln!(
        "{what}: closed through {closer:?}, run {:.2?}, reconnects: instrumented {}, bare {}",
        started.elapsed(),
        inst_link.reconnects.load(Ordering::Relaxed),
        bare_link.reconnects.load(Ordering::Relaxed)
    );
    assert_eq!(
        inst_link.reconnects.load(Ordering::Relaxed),
        1,
        "one reconnect (instrumented)"
    );
    assert_eq!(bare_link.reconnects.load(Ordering::Relaxed), 1, "one reconnect (bare)");

    // Publishes whose confirmation was pending when the broker closed the connection fail with
    // 320 CONNECTION_FORCED, publishes started on the old channel after lapin marked it closed
    // with InvalidChannelState / InvalidConnectionState; which of these a client sees is
    // timing. At most one failure per task: the failing task reconnects, the others wait for
    // it and use the new channel.
    let kinds = ["ProtocolError(320)", "InvalidChannelState", "InvalidConnectionState"];
    compare(
        what,
        &clock,
        (&inst_records, inst_took),
        (&bare_records, bare_took),
        Expect {
            max_failures: CONCURRENCY,
            tolerance: CONCURRENCY - 1,
            allowed: &kinds,
            racy: &kinds,
        },
    );
    let spans = assert_one_span_per_op(what, &t, &inst_records, SpanKind::Producer);
    assert!(spans.iter().all(|s| s.name == format!("publish {queue}")), "span names");
    let m = t.metrics();
    let sent = m.sums_u64("messaging.client.sent.messages");
    let total: u64 = sent.iter().map(|p| p.value).sum();
    let failed: u64 = sent
        .iter()
        .filter(|p| p.attributes.iter().any(|kv| kv.key.as_str() == "error.type"))
        .map(|p| p.value)
        .sum();
    assert_eq!(total, inst_records.len() as u64, "{what}: every publish counted once");
    assert_eq!(
        failed,
        failures(&inst_records),
        "{what}: failed publishes counted with error.type"
    );
    amqp::delete(&inst_link.current().await.1, &queue).await;
}

// ---------------------------------------------------------------------------------------------
// Kafka: the (mock) broker down for a while.
// ---------------------------------------------------------------------------------------------

/// The mock cluster's only broker goes down for 2 s while 8 tasks each send with a 500 ms
/// `message.timeout.ms`: the sends that cannot be delivered fail with `MessageTimedOut` with
/// and without the wrapper, their spans end with `error.type = MessageTimedOut`, both producers
/// deliver again once the broker is back, and the producer queue gauge drains to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_broker_down_during_load() {
    use otelrs_mq::kafka::Kafka;
    use otelrs_mq::kafka_stats::{KafkaStats, KafkaStatsContext};
    use rdkafka::config::ClientConfig;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

    const OUTAGE: Duration = Duration::from_secs(2);
    const MESSAGE_TIMEOUT_MS: u64 = 500;
    let what = "Kafka broker down";
    let t = TestTelemetry::new();
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = format!("reliability-faults-{}", std::process::id());
    cluster.create_topic(&topic, 1, 1).expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", MESSAGE_TIMEOUT_MS.to_string())
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("statistics.interval.ms", "100");
    let stats = KafkaStats::new().with_instrumentation(t.instrumentation());
    let inst_producer: FutureProducer<KafkaStatsContext> =
        config.create_with_context(stats.context()).expect("producer");
    let bare_producer: FutureProducer = config.create().expect("producer");
    let kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_client_config(&config);
    let failure = |err: &rdkafka::error::KafkaError| Failure {
        kind: match err {
            rdkafka::error::KafkaError::MessageProduction(code) => format!("MessageProduction({code:?})"),
            other => format!("{:?}", other.rdkafka_error_code()),
        },
        message: err.to_string(),
        error_type: otelrs_mq::kafka::error_type(err).into_owned(),
    };
    let n = min_ops();
    let clock = Arc::new(FaultClock::default());
    let (inst, bare) = (Side::instrumented(&t), Side::bare());
    let inst_op = {
        let (kafka, producer, topic) = (kafka.clone(), inst_producer.clone(), topic.clone());
        move |i: usize| {
            let (kafka, producer, topic) = (kafka.clone(), producer.clone(), topic.clone());
            async move {
                let (key, payload) = (format!("k{i}"), format!("message {i}"));
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                match kafka.send(&producer, record, Duration::from_secs(10)).await {
                    Ok(_) => Ok(()),
                    Err((e, _)) => Err(failure(&e)),
                }
            }
        }
    };
    let bare_op = {
        let (producer, topic) = (bare_producer.clone(), topic.clone());
        move |i: usize| {
            let (producer, topic) = (producer.clone(), topic.clone());
            async move {
                let (key, payload) = (format!("k{i}"), format!("message {i}"));
                let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                match producer.send(record, Duration::from_secs(10)).await {
                    Ok(_) => Ok(()),
                    Err((e, _)) => Err(failure(&e)),
                }
            }
        }
    };

    let started = Instant::now();
    let ((), (inst_records, inst_took), (bare_records, bare_took)) = bounded(what, async {
        tokio::join!(
            async {
                wait_progress(&inst, &bare, n / 3).await;
                clock.started();
                cluster.broker_down(1).expect("broker down");
                tokio::time::sleep(OUTAGE).await;
                cluster.broker_up(1).expect("broker up");
                clock.ended();
            },
            drive(&inst, n, clock.clone(), inst_op),
            drive(&bare, n, clock.clone(), bare_op),
        )
    })
    .await;
    eprintln!("{what}: {OUTAGE:?} outage, run {:.2?}", started.elapsed());

    // Each task has one send outstanding at a time. During the outage a task's send waits until
    // librdkafka times it out (message.timeout.ms; its broker thread checks timeouts at most
    // once a second), then the task sends the next one: at most OUTAGE / timeout + 1 failures
    // per task, plus one for a send that times out while the producer reconnects. Both
    // producers see the same outage with the same settings; a task's count only depends on
    // where its stuck send falls relative to the timeout checks (one more or less) and on
    // whether one send times out during the producer's (jittered) reconnect backoff after the
    // outage (one more): a spread of two per task.
    let per_task = (OUTAGE.as_millis() as u64 / MESSAGE_TIMEOUT_MS) as usize + 2;
    compare(
        what,
        &clock,
        (&inst_records, inst_took),
        (&bare_records, bare_took),
        Expect {
            max_failures: CONCURRENCY * per_task,
            tolerance: 2 * CONCURRENCY,
            allowed: &["MessageProduction(MessageTimedOut)"],
            racy: &[],
        },
    );
    let spans = assert_one_span_per_op(what, &t, &inst_records, SpanKind::Producer);
    assert!(spans.iter().all(|s| s.name == format!("send {topic}")), "span names");
    let m = t.metrics();
    let sent = m.sums_u64("messaging.client.sent.messages");
    let total: u64 = sent.iter().map(|p| p.value).sum();
    let failed: u64 = sent
        .iter()
        .filter(|p| p.attributes.iter().any(|kv| kv.key.as_str() == "error.type"))
        .map(|p| p.value)
        .sum();
    assert_eq!(total, inst_records.len() as u64, "{what}: every send counted once");
    assert_eq!(
        failed,
        failures(&inst_records),
        "{what}: failed sends counted with error.type"
    );

    // Nothing left queued: librdkafka's queue gauge (statistics) and in-flight counts.
    let queued = || -> i64 {
        t.metrics()
            .sums_i64("messaging.kafka.client.queue.messages")
            .iter()
            .map(|p| p.value)
            .sum()
    };
    assert_eq!(
        settle(0, queued).await,
        0,
        "{what}: messaging.kafka.client.queue.messages"
    );
    assert!(
        !t.metrics().sums_i64("messaging.kafka.client.queue.messages").is_empty(),
        "the queue gauge is reported"
    );
    assert_eq!(inst_producer.in_flight_count(), 0, "instrumented producer in flight");
    assert_eq!(bare_producer.in_flight_count(), 0, "bare producer in flight");
}
