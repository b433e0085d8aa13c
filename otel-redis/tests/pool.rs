//! The deadpool-redis pool wrapper against a real Redis on loopback.

mod common;

use std::time::{Duration, Instant};

use common::{cleanup, connect, connection_config, prefix, redis_url, with};
use deadpool_redis::{Config, PoolConfig, PoolError, Runtime, Timeouts};
use opentelemetry::trace::{SpanKind, Status};
use otelrs_core::instruments::POOL_TIME_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_redis::{InstrumentedPool, RedisInstrumentation};
use redis::AsyncCommands;

fn config(max_size: usize, wait: Option<Duration>) -> Config {
    let mut cfg = Config::from_url(redis_url());
    let mut pool = PoolConfig::new(max_size);
    pool.timeouts = Timeouts {
        wait,
        create: Some(Duration::from_secs(10)),
        recycle: Some(Duration::from_secs(10)),
    };
    cfg.pool = Some(pool);
    cfg
}

fn default_pool_name() -> String {
    let client = common::client();
    let info = client.get_connection_info();
    match info.addr() {
        redis::ConnectionAddr::Tcp(h, p) => format!("{h}:{p}/{}", info.redis_settings().db()),
        other => panic!("tests run over TCP, got {other:?}"),
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contention_moves_pending_and_wait_metrics() {
    let t = TestTelemetry::new();
    let client = common::client();
    let mut bare = connect(&client).await;
    let p = prefix("pool");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let pool = InstrumentedPool::builder(&config(1, None))
        .with_runtime(Runtime::Tokio1)
        .with_connection_config(connection_config())
        .build(&redis)
        .expect("pool");
    let name = default_pool_name();
    assert_eq!(pool.pool_name(), name);
    let pool_attr = [kv("db.client.connection.pool.name", name.clone())];
    let state = |s: &'static str| vec![pool_attr[0].clone(), kv("db.client.connection.state", s)];

    let mut held = pool
        .get()
        .await
        .unwrap_or_else(|e| panic!("pool.get() from {}: {e}", redis_url()));
    let () = held.set(format!("{p}:k"), "v").await.expect("SET");

    let mut waiters = Vec::new();
    for i in 0..2 {
        let pool = pool.clone();
        let key = format!("{p}:k");
        waiters.push(tokio::spawn(async move {
            let mut conn = pool.get().await.expect("get after wait");
            let v: String = conn.get(&key).await.expect("GET");
            assert_eq!(v, "v", "waiter {i}");
        }));
    }
    wait_until("two gets wait for the one connection", || pool.status().waiting == 2).await;

    let m = t.metrics();
    m.assert_metric(
        "db.client.connection.pending_requests",
        "{request}",
        "The number of current pending requests for an open connection.",
    );
    assert_eq!(m.sum_i64("db.client.connection.pending_requests", &pool_attr), Some(2));
    m.assert_metric(
        "db.client.connection.count",
        "{connection}",
        "The number of connections that are currently in state described by the `state` attribute.",
    );
    assert_eq!(m.sum_i64("db.client.connection.count", &state("used")), Some(1));
    assert_eq!(m.sum_i64("db.client.connection.count", &state("idle")), Some(0));
    m.assert_metric(
        "db.client.connection.max",
        "{connection}",
        "The maximum number of open connections allowed.",
    );
    assert_eq!(m.sum_i64("db.client.connection.max", &pool_attr), Some(1));
    assert_eq!(m.is_monotonic("db.client.connection.count"), Some(false));

    let hold = Duration::from_millis(50);
    tokio::time::sleep(hold).await;
    drop(held);
    for w in waiters {
        w.await.expect("waiter");
    }

    let m = t.metrics();
    assert_eq!(m.sum_i64("db.client.connection.pending_requests", &pool_attr), Some(0));
    assert_eq!(m.sum_i64("db.client.connection.count", &state("used")), Some(0));
    assert_eq!(m.sum_i64("db.client.connection.count", &state("idle")), Some(1));
    m.assert_metric(
        "db.client.connection.wait_time",
        "s",
        "The time it took to obtain an open connection from the pool.",
    );
    let wait = m.assert_histogram_point("db.client.connection.wait_time", &pool_attr);
    assert_eq!(wait.count, 3, "the first get and the two waiters");
    assert!(
        wait.sum >= 2.0 * hold.as_secs_f64(),
        "both waiters waited for the hold: {}",
        wait.sum
    );
    assert_eq!(wait.bounds, POOL_TIME_BUCKETS.to_vec());
    m.assert_metric(
        "db.client.connection.create_time",
        "s",
        "The time it took to create a new connection.",
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.create_time", &pool_attr)
            .count,
        1,
        "max_size 1: one connection"
    );
    m.assert_metric(
        "db.client.connection.use_time",
        "s",
        "The time between borrowing a connection and returning it to the pool.",
    );
    let used = m.assert_histogram_point("db.client.connection.use_time", &pool_attr);
    assert_eq!(used.count, 3);
    assert!(
        used.sum >= hold.as_secs_f64(),
        "the held connection was used for the hold: {}",
        used.sum
    );

    // Pooled connections are instrumented like any other.
    let gets = t.spans_named("GET");
    assert_eq!(gets.len(), 2);
    for g in &gets {
        g.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_attrs(&with(
                &client,
                &[
                    kv("db.operation.name", "GET"),
                    kv("db.query.text", format!("GET {p}:k")),
                ],
            ));
    }
    t.span("SET").assert_attr("db.query.text", format!("SET {p}:k ?"));
    cleanup(&mut bare, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeouts_are_counted_and_passed_through() {
    let t = TestTelemetry::new();
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let pool = InstrumentedPool::builder(&config(1, Some(Duration::from_millis(50))))
        .with_runtime(Runtime::Tokio1)
        .with_connection_config(connection_config())
        .with_pool_name("cache")
        .build(&redis)
        .expect("pool");
    assert_eq!(pool.pool_name(), "cache");
    let held = pool
        .get()
        .await
        .unwrap_or_else(|e| panic!("pool.get() from {}: {e}", redis_url()));
    let err = pool.get().await.expect_err("the only connection is held");
    assert!(
        matches!(err, PoolError::Timeout(deadpool_redis::TimeoutType::Wait)),
        "deadpool's error unchanged: {err:?}"
    );
    drop(held);
    let pool_attr = [kv("db.client.connection.pool.name", "cache")];
    let m = t.metrics();
    m.assert_metric(
        "db.client.connection.timeouts",
        "{timeout}",
        "The number of connection timeouts that have occurred trying to obtain a connection from the pool.",
    );
    assert_eq!(m.sum_u64("db.client.connection.timeouts", &pool_attr), Some(1));
    assert_eq!(m.is_monotonic("db.client.connection.timeouts"), Some(true));
    assert_eq!(
        m.assert_histogram_point("db.client.connection.wait_time", &pool_attr)
            .count,
        1,
        "only successful gets record a wait time"
    );
}

#[tokio::test]
async fn observers_stop_when_the_pool_is_dropped_and_bad_configs_fail() {
    let t = TestTelemetry::new();
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    assert!(
        matches!(
            InstrumentedPool::builder(&config(3, None)).build(&redis),
            Err(deadpool_redis::CreatePoolError::Build(
                deadpool_redis::BuildError::NoRuntimeSpecified
            ))
        ),
        "timeouts without a runtime: deadpool's build error"
    );
    let pool = InstrumentedPool::builder(&config(3, None))
        .with_runtime(Runtime::Tokio1)
        .with_pool_name("short-lived")
        .build(&redis)
        .expect("pool");
    let attr = [kv("db.client.connection.pool.name", "short-lived")];
    assert_eq!(t.metrics().sum_i64("db.client.connection.max", &attr), Some(3));
    drop(pool);
    t.reset();
    assert_eq!(t.metrics().sum_i64("db.client.connection.max", &attr), None);

    let mut both = Config::from_url(redis_url());
    both.connection = Some(deadpool_redis::ConnectionInfo::default());
    assert!(matches!(
        InstrumentedPool::builder(&both).build(&redis),
        Err(deadpool_redis::CreatePoolError::Config(
            deadpool_redis::ConfigError::UrlAndConnectionSpecified
        ))
    ));
    assert!(matches!(
        InstrumentedPool::builder(&Config::from_url("not a url")).build(&redis),
        Err(deadpool_redis::CreatePoolError::Config(
            deadpool_redis::ConfigError::Redis(_)
        ))
    ));
}
