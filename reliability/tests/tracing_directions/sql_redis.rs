//! Databases: otelrs-sql's pool, pooled connection and transactions on a real PostgreSQL, and
//! otelrs-redis's connection and deadpool pool on a real Redis, each called inside an
//! `#[instrument]` function: every statement's CLIENT span is that function's child.

use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;
use otelrs_core::testing::SpanDataExt as _;
use otelrs_redis::{InstrumentedConnection, InstrumentedPool as RedisPool, RedisInstrumentation};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use redis::aio::MultiplexedConnection;
use redis::AsyncCommands as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};

use crate::support::{
    assert_from_tracing, assert_log_in, hop, instrumentation, span, spans_in, unique, unreachable_service,
};

fn text(span: &SpanData) -> String {
    match span.attr("db.query.text") {
        Some(Value::String(s)) => s.as_str().to_owned(),
        other => panic!("span {:?}: db.query.text {other:?}", span.name),
    }
}

/// The names of `spans`, and (for statements) which of the `markers` their query text holds.
fn shapes(spans: &[SpanData], markers: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = spans
        .iter()
        .map(|s| {
            match markers
                .iter()
                .find(|m| s.attr("db.query.text").is_some() && text(s).contains(*m))
            {
                Some(m) => format!("{} {m}", s.name),
                None => s.name.to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

// --- PostgreSQL ----------------------------------------------------------------------------------

fn postgres_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Through the pool, a pooled connection, a pool transaction (committed) and a connection
/// transaction (rolled back), hopping threads between them.
#[tracing::instrument(name = "dir.sql.caller", skip_all)]
async fn sql_work(pool: &InstrumentedPool<Postgres>) {
    tracing::info!("dir.sql: caller");
    let n: i32 = sqlx::query_scalar("SELECT 1 AS via_pool")
        .fetch_one(pool)
        .await
        .expect("via pool");
    assert_eq!(n, 1);
    hop().await;

    let mut conn = pool.acquire().await.expect("acquire");
    let n: i32 = sqlx::query_scalar("SELECT 2 AS via_connection")
        .fetch_one(&mut conn)
        .await
        .expect("via connection");
    assert_eq!(n, 2);
    hop().await;

    let mut tx = pool.begin().await.expect("BEGIN on the pool");
    let n: i32 = sqlx::query_scalar("SELECT 3 AS via_pool_transaction")
        .fetch_one(&mut tx)
        .await
        .expect("in the pool transaction");
    assert_eq!(n, 3);
    hop().await;
    tx.commit().await.expect("COMMIT");

    let mut tx = conn.begin().await.expect("BEGIN on the connection");
    let n: i32 = sqlx::query_scalar("SELECT 4 AS via_connection_transaction")
        .fetch_one(&mut tx)
        .await
        .expect("in the connection transaction");
    assert_eq!(n, 4);
    hop().await;
    tx.rollback().await.expect("ROLLBACK");
    tracing::info!("dir.sql: caller done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_connection_and_transactions() {
    let inst = instrumentation();
    let url = postgres_url();
    let raw = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", "DATABASE_URL", e));
    let pool: InstrumentedPool<Postgres> = InstrumentedPool::new(raw, SqlOptions::new().with_instrumentation(inst));

    sql_work(&pool).await;

    let caller = span("dir.sql.caller");
    assert_from_tracing(&caller);
    caller.assert_root();
    let statements = spans_in(caller.span_context.trace_id(), SpanKind::Client, 8);
    let markers = [
        "via_pool",
        "via_connection",
        "via_pool_transaction",
        "via_connection_transaction",
    ];
    // `via_pool` is a prefix of `via_pool_transaction`: match the longest marker first.
    let mut longest_first = markers;
    longest_first.sort_by_key(|m| std::cmp::Reverse(m.len()));
    // Transaction boundaries are named after the operation and the database (`BEGIN test`).
    let options: PgConnectOptions = url.parse().expect("DATABASE_URL");
    let db = options.get_database().unwrap_or(options.get_username());
    assert_eq!(
        shapes(&statements, &longest_first),
        [
            format!("BEGIN {db}"),
            format!("BEGIN {db}"),
            format!("COMMIT {db}"),
            format!("ROLLBACK {db}"),
            "SELECT via_connection".to_owned(),
            "SELECT via_connection_transaction".to_owned(),
            "SELECT via_pool".to_owned(),
            "SELECT via_pool_transaction".to_owned(),
        ],
        "one span per statement, transaction boundaries included"
    );
    for statement in &statements {
        statement.assert_child_of(&caller);
    }
    assert_log_in("dir.sql: caller", &caller);
    assert_log_in("dir.sql: caller done", &caller);
}

// --- Redis -------------------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

fn connection_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)))
}

#[tracing::instrument(name = "dir.redis.connection", skip_all)]
async fn redis_connection_work(conn: &mut InstrumentedConnection<MultiplexedConnection>, key: &str) {
    tracing::info!("dir.redis: connection");
    let () = conn.set(key, "v").await.expect("SET");
    hop().await;
    let v: String = conn.get(key).await.expect("GET");
    assert_eq!(v, "v");
}

#[tracing::instrument(name = "dir.redis.pool", skip_all)]
async fn redis_pool_work(pool: &RedisPool, key: &str) {
    tracing::info!("dir.redis: pool");
    let mut conn = pool
        .get()
        .await
        .unwrap_or_else(|e| unreachable_service(&redis_url(), "redis", "REDIS_URL", format!("pool.get(): {e}")));
    let v: String = conn.get(key).await.expect("GET");
    assert_eq!(v, "v");
    hop().await;
    let deleted: i64 = conn.del(key).await.expect("DEL");
    assert_eq!(deleted, 1);
}

/// A command through an instrumented multiplexed connection, and through a connection of the
/// instrumented deadpool pool, each inside its own `#[instrument]` function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_and_deadpool_pool() {
    let inst = instrumentation();
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("invalid REDIS_URL {url:?}: {e}"));
    let bare = client
        .get_multiplexed_async_connection_with_config(&connection_config())
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "redis", "REDIS_URL", e));
    let redis = RedisInstrumentation::new().with_instrumentation(inst);
    let mut conn = redis.connection(bare, client.get_connection_info());
    let mut cfg = deadpool_redis::Config::from_url(url.clone());
    cfg.pool = Some(deadpool_redis::PoolConfig::new(2));
    let pool = RedisPool::builder(&cfg)
        .with_runtime(deadpool_redis::Runtime::Tokio1)
        .with_connection_config(connection_config())
        .build(&redis)
        .expect("pool");
    let key = unique("otel-rs:tracing-directions");

    redis_connection_work(&mut conn, &key).await;
    redis_pool_work(&pool, &key).await;

    let on_connection = span("dir.redis.connection");
    assert_from_tracing(&on_connection);
    on_connection.assert_root();
    let commands = spans_in(on_connection.span_context.trace_id(), SpanKind::Client, 2);
    assert_eq!(shapes(&commands, &[]), ["GET", "SET"]);
    for command in &commands {
        command.assert_child_of(&on_connection);
    }

    let on_pool = span("dir.redis.pool");
    assert_from_tracing(&on_pool);
    on_pool.assert_root();
    let commands = spans_in(on_pool.span_context.trace_id(), SpanKind::Client, 2);
    assert_eq!(shapes(&commands, &[]), ["DEL", "GET"]);
    for command in &commands {
        command.assert_child_of(&on_pool);
    }

    assert_log_in("dir.redis: connection", &on_connection);
    assert_log_in("dir.redis: pool", &on_pool);
}
