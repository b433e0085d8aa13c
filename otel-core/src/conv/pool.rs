//! The `db.client.connection.*` metrics of a database client's connection pool: one set of
//! names, units, descriptions, bucket advice and attributes for every adapter.
//!
//! An adapter makes one [`PoolMetrics`] per pool, with a closure that reads the pool's
//! [`PoolStatus`] through a weak reference, and records the times and timeouts it measures:
//!
//! | Metric | Instrument | Unit | Attributes | Source |
//! | --- | --- | --- | --- | --- |
//! | `db.client.connection.count` | observable up/down counter | `{connection}` | pool name, `db.client.connection.state` = `idle` / `used` | [`PoolStatus::idle`], [`PoolStatus::used`] |
//! | `db.client.connection.max` | observable up/down counter | `{connection}` | pool name | [`PoolStatus::max`] |
//! | `db.client.connection.pending_requests` | observable up/down counter | `{request}` | pool name | [`PoolStatus::pending`] |
//! | `db.client.connection.wait_time` | histogram, [`POOL_TIME_BUCKETS`] | `s` | pool name | [`PoolMetrics::record_wait_time`] |
//! | `db.client.connection.use_time` | histogram, [`POOL_TIME_BUCKETS`] | `s` | pool name | [`PoolMetrics::record_use_time`] |
//! | `db.client.connection.create_time` | histogram, [`POOL_TIME_BUCKETS`] | `s` | pool name | [`PoolMetrics::record_create_time`] |
//! | `db.client.connection.timeouts` | counter | `{timeout}` | pool name | [`PoolMetrics::record_timeout`] |
//!
//! The pool name is `db.client.connection.pool.name`; it must be unique within the application.
//! Adapters default it with [`default_pool_name`].
//! Descriptions are the semantic conventions' briefs.
//!
//! ```
//! use std::sync::{Arc, Weak};
//! use std::time::Duration;
//! use opentelemetry::metrics::MeterProvider;
//! use otelrs_core::conv::pool::{PoolMetrics, PoolStatus};
//!
//! struct MyPool { max: i64 }
//!
//! let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("doc");
//! let pool = Arc::new(MyPool { max: 10 });
//! let weak: Weak<MyPool> = Arc::downgrade(&pool);
//! let metrics = PoolMetrics::register(&meter, "db.local:5432/app", true, move || {
//!     let pool = weak.upgrade()?;
//!     Some(PoolStatus { idle: 2, used: 1, max: pool.max, pending: 0 })
//! });
//! metrics.record_wait_time(Duration::from_millis(3));
//! metrics.record_use_time(Duration::from_millis(40));
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{AsyncInstrument, Counter, Histogram, Meter};
use opentelemetry::{KeyValue, StringValue};
use opentelemetry_semantic_conventions::{attribute, metric};

use crate::conv::ServerAddress;
use crate::hotpath::FixedBound;
use crate::instruments::{counter, duration_histogram, seconds, POOL_TIME_BUCKETS};

/// The default `db.client.connection.pool.name` of a pool whose user named none:
/// `{server.address}:{port}/{db.namespace}` with the port as configured (default or not), or
/// `{server.address}/{db.namespace}` without a port (a Unix socket), or the namespace alone
/// without a server (SQLite).
///
/// ```
/// use otelrs_core::conv::{pool::default_pool_name, ServerAddress};
///
/// assert_eq!(default_pool_name(Some(&ServerAddress::new("127.0.0.1", Some(5432))), "app"), "127.0.0.1:5432/app");
/// assert_eq!(default_pool_name(Some(&ServerAddress::new("/run/redis.sock", None)), "0"), "/run/redis.sock/0");
/// assert_eq!(default_pool_name(None, "main.db"), "main.db");
/// ```
pub fn default_pool_name(server: Option<&ServerAddress>, namespace: &str) -> String {
    match server {
        Some(ServerAddress {
            address,
            port: Some(port),
        }) => format!("{}:{port}/{namespace}", address.as_str()),
        Some(ServerAddress { address, port: None }) => format!("{}/{namespace}", address.as_str()),
        None => namespace.to_owned(),
    }
}

const COUNT_DESCRIPTION: &str =
    "The number of connections that are currently in state described by the `state` attribute.";
const MAX_DESCRIPTION: &str = "The maximum number of open connections allowed.";
const PENDING_REQUESTS_DESCRIPTION: &str = "The number of current pending requests for an open connection.";
const WAIT_TIME_DESCRIPTION: &str = "The time it took to obtain an open connection from the pool.";
const USE_TIME_DESCRIPTION: &str = "The time between borrowing a connection and returning it to the pool.";
const CREATE_TIME_DESCRIPTION: &str = "The time it took to create a new connection.";
const TIMEOUTS_DESCRIPTION: &str =
    "The number of connection timeouts that have occurred trying to obtain a connection from the pool.";

/// What a pool reports at a collection; each field is observed as given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections not lent out (`db.client.connection.count`, state `idle`).
    pub idle: i64,
    /// Open connections lent out (`db.client.connection.count`, state `used`).
    pub used: i64,
    /// The most connections the pool opens (`db.client.connection.max`).
    pub max: i64,
    /// Requests waiting for a connection (`db.client.connection.pending_requests`).
    pub pending: i64,
}

type TimeHistogram = FixedBound<Histogram<f64>, f64>;

/// The semantic-convention connection-pool instruments of one pool, bound once to its
/// `db.client.connection.pool.name` (see the [module](self) for the metrics).
pub struct PoolMetrics {
    wait_time: TimeHistogram,
    use_time: TimeHistogram,
    /// Created by the first [`PoolMetrics::record_create_time`].
    create_time: OnceLock<TimeHistogram>,
    timeouts: FixedBound<Counter<u64>, u64>,
    pool_name: StringValue,
    meter: Meter,
    bind: bool,
}

impl fmt::Debug for PoolMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolMetrics")
            .field("pool_name", &self.pool_name())
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

impl PoolMetrics {
    /// Creates the pool's instruments on `meter` and registers `db.client.connection.count`
    /// (states `idle` and `used`), `db.client.connection.max` and
    /// `db.client.connection.pending_requests` as observable up/down counters that call `status`
    /// at each collection (once per instrument).
    ///
    /// `status` returns `None` when there is no pool to read: it should hold the pool through a
    /// weak reference and return `None` once the pool is gone (the callbacks live as long as the
    /// meter provider). Nothing is observed then.
    ///
    /// `bind`: record the histograms and the counter through bound instruments (pass
    /// `Instrumentation::bound_instrument_capacity() > 0`).
    ///
    /// `db.client.connection.create_time` is created at the first
    /// [`record_create_time`](Self::record_create_time), so a pool whose driver does not expose
    /// connection creation exports no such metric.
    pub fn register(
        meter: &Meter,
        pool_name: impl Into<StringValue>,
        bind: bool,
        status: impl Fn() -> Option<PoolStatus> + Send + Sync + 'static,
    ) -> Self {
        let pool_name: StringValue = pool_name.into();
        let name = KeyValue::new(attribute::DB_CLIENT_CONNECTION_POOL_NAME, pool_name.clone());
        let status = Arc::new(status);

        let s = Arc::clone(&status);
        let idle = [
            name.clone(),
            KeyValue::new(attribute::DB_CLIENT_CONNECTION_STATE, "idle"),
        ];
        let used = [
            name.clone(),
            KeyValue::new(attribute::DB_CLIENT_CONNECTION_STATE, "used"),
        ];
        let _count = meter
            .i64_observable_up_down_counter(metric::DB_CLIENT_CONNECTION_COUNT)
            .with_unit("{connection}")
            .with_description(COUNT_DESCRIPTION)
            .with_callback(move |obs: &dyn AsyncInstrument<i64>| {
                if let Some(st) = (*s)() {
                    obs.observe(st.idle, &idle);
                    obs.observe(st.used, &used);
                }
            })
            .build();
        let s = Arc::clone(&status);
        let attrs = [name.clone()];
        let _max = meter
            .i64_observable_up_down_counter(metric::DB_CLIENT_CONNECTION_MAX)
            .with_unit("{connection}")
            .with_description(MAX_DESCRIPTION)
            .with_callback(move |obs: &dyn AsyncInstrument<i64>| {
                if let Some(st) = (*s)() {
                    obs.observe(st.max, &attrs);
                }
            })
            .build();
        let attrs = [name.clone()];
        let _pending = meter
            .i64_observable_up_down_counter(metric::DB_CLIENT_CONNECTION_PENDING_REQUESTS)
            .with_unit("{request}")
            .with_description(PENDING_REQUESTS_DESCRIPTION)
            .with_callback(move |obs: &dyn AsyncInstrument<i64>| {
                if let Some(st) = (*status)() {
                    obs.observe(st.pending, &attrs);
                }
            })
            .build();

        let fixed = |instrument| FixedBound::new(instrument, vec![name.clone()], bind);
        Self {
            wait_time: fixed(duration_histogram(
                meter,
                metric::DB_CLIENT_CONNECTION_WAIT_TIME,
                WAIT_TIME_DESCRIPTION,
                &POOL_TIME_BUCKETS,
            )),
            use_time: fixed(duration_histogram(
                meter,
                metric::DB_CLIENT_CONNECTION_USE_TIME,
                USE_TIME_DESCRIPTION,
                &POOL_TIME_BUCKETS,
            )),
            create_time: OnceLock::new(),
            timeouts: FixedBound::new(
                counter(
                    meter,
                    metric::DB_CLIENT_CONNECTION_TIMEOUTS,
                    "{timeout}",
                    TIMEOUTS_DESCRIPTION,
                ),
                vec![name.clone()],
                bind,
            ),
            pool_name,
            meter: meter.clone(),
            bind,
        }
    }

    /// `db.client.connection.pool.name` of this pool.
    pub fn pool_name(&self) -> &str {
        self.pool_name.as_str()
    }

    /// Records `db.client.connection.wait_time`: how long obtaining a connection took.
    pub fn record_wait_time(&self, waited: Duration) {
        self.wait_time.record(seconds(waited));
    }

    /// Records `db.client.connection.use_time`: how long a connection was lent out.
    pub fn record_use_time(&self, used: Duration) {
        self.use_time.record(seconds(used));
    }

    /// Records `db.client.connection.create_time`: how long opening a new connection took.
    pub fn record_create_time(&self, took: Duration) {
        self.create_time
            .get_or_init(|| {
                FixedBound::new(
                    duration_histogram(
                        &self.meter,
                        metric::DB_CLIENT_CONNECTION_CREATE_TIME,
                        CREATE_TIME_DESCRIPTION,
                        &POOL_TIME_BUCKETS,
                    ),
                    self.wait_time.attributes().to_vec(),
                    self.bind,
                )
            })
            .record(seconds(took));
    }

    /// Counts one `db.client.connection.timeouts`: obtaining a connection timed out.
    pub fn record_timeout(&self) {
        self.timeouts.record(1);
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::testing::{kv, MetricsSnapshot, Point, TestTelemetry};
    use crate::Instrumentation;

    const POOL: &str = "db.client.connection.pool.name";
    const STATE: &str = "db.client.connection.state";

    fn setup(bind: bool) -> (TestTelemetry, Arc<Mutex<Option<PoolStatus>>>, PoolMetrics) {
        let t = TestTelemetry::new();
        let meter = t.instrumentation().meter(Instrumentation::scope("t", "0"));
        let current = Arc::new(Mutex::new(None));
        let read = Arc::clone(&current);
        let metrics = PoolMetrics::register(&meter, "db:5432/app", bind, move || *read.lock().unwrap());
        (t, current, metrics)
    }

    fn sorted_points(m: &MetricsSnapshot, name: &str) -> Vec<Point<i64>> {
        let mut points = m.sums_i64(name);
        points.sort_by_key(|p| format!("{:?}", p.attributes));
        points
    }

    fn point(attributes: Vec<KeyValue>, value: i64) -> Point<i64> {
        Point { attributes, value }
    }

    #[test]
    fn observes_the_status_at_each_collection_and_nothing_once_it_is_gone() {
        for bind in [true, false] {
            let (t, current, _metrics) = setup(bind);
            let name = kv(POOL, "db:5432/app");
            // No pool to read yet: nothing observed.
            let m = t.metrics();
            for n in [
                "db.client.connection.count",
                "db.client.connection.max",
                "db.client.connection.pending_requests",
            ] {
                assert!(m.sums_i64(n).is_empty(), "{n} before the pool exists");
            }

            *current.lock().unwrap() = Some(PoolStatus {
                idle: 2,
                used: 3,
                max: 10,
                pending: 4,
            });
            let m = t.metrics();
            m.assert_metric(
                "db.client.connection.count",
                "{connection}",
                "The number of connections that are currently in state described by the `state` attribute.",
            );
            m.assert_metric(
                "db.client.connection.max",
                "{connection}",
                "The maximum number of open connections allowed.",
            );
            m.assert_metric(
                "db.client.connection.pending_requests",
                "{request}",
                "The number of current pending requests for an open connection.",
            );
            for n in [
                "db.client.connection.count",
                "db.client.connection.max",
                "db.client.connection.pending_requests",
            ] {
                assert_eq!(m.is_monotonic(n), Some(false), "{n} is an up/down counter");
            }
            assert_eq!(
                sorted_points(&m, "db.client.connection.count"),
                vec![
                    point(vec![name.clone(), kv(STATE, "idle")], 2),
                    point(vec![name.clone(), kv(STATE, "used")], 3),
                ]
            );
            assert_eq!(
                m.sums_i64("db.client.connection.max"),
                vec![point(vec![name.clone()], 10)]
            );
            assert_eq!(
                m.sums_i64("db.client.connection.pending_requests"),
                vec![point(vec![name.clone()], 4)]
            );

            // Read afresh at the next collection.
            *current.lock().unwrap() = Some(PoolStatus {
                idle: 5,
                used: 0,
                max: 10,
                pending: 0,
            });
            let m = t.metrics();
            assert_eq!(
                sorted_points(&m, "db.client.connection.count"),
                vec![
                    point(vec![name.clone(), kv(STATE, "idle")], 5),
                    point(vec![name.clone(), kv(STATE, "used")], 0),
                ]
            );
            assert_eq!(
                m.sums_i64("db.client.connection.pending_requests"),
                vec![point(vec![name.clone()], 0)]
            );

            // The pool is gone: nothing observed any more.
            *current.lock().unwrap() = None;
            t.reset();
            let m = t.metrics();
            for n in [
                "db.client.connection.count",
                "db.client.connection.max",
                "db.client.connection.pending_requests",
            ] {
                assert!(m.sums_i64(n).is_empty(), "{n} after the pool is gone (bind {bind})");
            }
        }
    }

    #[test]
    fn records_times_and_timeouts_with_the_pool_name() {
        for bind in [true, false] {
            let (t, _current, metrics) = setup(bind);
            assert_eq!(metrics.pool_name(), "db:5432/app");
            let name = [kv(POOL, "db:5432/app")];
            metrics.record_wait_time(Duration::from_millis(250));
            metrics.record_wait_time(Duration::from_millis(500));
            metrics.record_use_time(Duration::from_secs(2));
            metrics.record_timeout();
            metrics.record_timeout();

            let m = t.metrics();
            // Created only when a creation time is first recorded.
            assert!(m.metric("db.client.connection.create_time").is_none(), "bind {bind}");
            m.assert_metric(
                "db.client.connection.wait_time",
                "s",
                "The time it took to obtain an open connection from the pool.",
            );
            let wait = m.assert_histogram_point("db.client.connection.wait_time", &name);
            assert_eq!((wait.count, wait.sum), (2, 0.75));
            assert_eq!(wait.bounds, POOL_TIME_BUCKETS.to_vec());
            // Both in (0.1, 0.5].
            assert_eq!(wait.bucket_counts, vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 0]);
            assert_eq!(m.histogram("db.client.connection.wait_time").len(), 1);
            m.assert_metric(
                "db.client.connection.use_time",
                "s",
                "The time between borrowing a connection and returning it to the pool.",
            );
            let used = m.assert_histogram_point("db.client.connection.use_time", &name);
            assert_eq!((used.count, used.sum), (1, 2.0));
            assert_eq!(used.bounds, POOL_TIME_BUCKETS.to_vec());
            m.assert_metric(
                "db.client.connection.timeouts",
                "{timeout}",
                "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
            );
            assert_eq!(m.sums_u64("db.client.connection.timeouts").len(), 1);
            assert_eq!(m.sum_u64("db.client.connection.timeouts", &name), Some(2));
            assert_eq!(m.is_monotonic("db.client.connection.timeouts"), Some(true));

            metrics.record_create_time(Duration::from_millis(125));
            metrics.record_create_time(Duration::from_millis(125));
            let m = t.metrics();
            m.assert_metric(
                "db.client.connection.create_time",
                "s",
                "The time it took to create a new connection.",
            );
            let created = m.assert_histogram_point("db.client.connection.create_time", &name);
            assert_eq!((created.count, created.sum), (2, 0.25));
            assert_eq!(created.bounds, POOL_TIME_BUCKETS.to_vec());
            assert_eq!(m.histogram("db.client.connection.create_time").len(), 1);
        }
    }
}
