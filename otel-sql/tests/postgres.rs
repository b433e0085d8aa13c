//! Real PostgreSQL on loopback (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::{postgres_url, unique_table, unreachable_service};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::Context;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, Postgres};
use sqlx::{ConnectOptions, Connection};

async fn pool_with(t: &TestTelemetry, max: u32, timeout: Duration) -> InstrumentedPool<Postgres> {
    let url = postgres_url();
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(timeout)
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(t.instrumentation()))
}

async fn pool(t: &TestTelemetry) -> InstrumentedPool<Postgres> {
    pool_with(t, 5, Duration::from_secs(30)).await
}

/// The server attributes expected from the URL (port only when not 5432).
fn server_attrs() -> Vec<opentelemetry::KeyValue> {
    let opts: PgConnectOptions = postgres_url().parse().expect("DATABASE_URL");
    let mut v = vec![
        kv("db.system.name", "postgresql"),
        kv(
            "db.namespace",
            opts.get_database().unwrap_or(opts.get_username()).to_owned(),
        ),
        kv("server.address", opts.get_host().to_owned()),
    ];
    if opts.get_port() != 5432 {
        v.push(kv("server.port", i64::from(opts.get_port())));
    }
    v
}

#[tokio::test]
async fn query_with_binds_has_exact_attributes() {
    let t = TestTelemetry::new();
    let pool = pool(&t).await;
    let table = unique_table("otel_sql_users");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, name TEXT UNIQUE)"
    )))
    .execute(pool.inner())
    .await
    .unwrap();
    let sql = format!("INSERT INTO {table} (id, name) VALUES ($1, $2), ($3, $4)");
    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(1)
        .bind("a")
        .bind(2)
        .bind("b")
        .execute(&pool)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT name FROM {table} WHERE id > $1 ORDER BY id"
    )))
    .bind(0)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(names, ["a", "b"]);

    let mut expected = server_attrs();
    expected.extend([
        kv("db.query.summary", format!("INSERT {table}")),
        kv("db.query.text", sql),
        kv("db.response.returned_rows", 0i64),
    ]);
    t.span(&format!("INSERT {table}"))
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected);
    let select = t.span(&format!("SELECT {table}"));
    select
        .assert_attr("db.response.returned_rows", 2i64)
        .assert_attr("db.system.name", "postgresql");

    // Unique violation: SQLSTATE 23505, the driver's error untouched.
    let err = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} (id, name) VALUES ($1, $2)"
    )))
    .bind(3)
    .bind("a")
    .execute(&pool)
    .await
    .expect_err("duplicate");
    let db = err.as_database_error().expect("database error");
    assert_eq!(db.code().as_deref(), Some("23505"));
    assert!(db.message().contains("duplicate key"), "{}", db.message());
    let failed: Vec<_> = t
        .spans_named(&format!("INSERT {table}"))
        .into_iter()
        .filter(|s| s.status != Status::Unset)
        .collect();
    assert_eq!(failed.len(), 1);
    failed[0]
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "23505")
        .assert_attr("db.response.status_code", "23505")
        .assert_no_attr("db.response.returned_rows");
    let mut point = server_attrs();
    point.extend([
        kv("db.query.summary", format!("INSERT {table}")),
        kv("db.response.status_code", "23505"),
        kv("error.type", "23505"),
    ]);
    assert_eq!(
        t.metrics()
            .assert_histogram_point("db.client.operation.duration", &point)
            .count,
        1
    );

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(pool.inner())
        .await
        .unwrap();
}

#[tokio::test]
async fn syntax_error_reports_sqlstate_42601() {
    let t = TestTelemetry::new();
    let pool = pool(&t).await;
    let err = sqlx::query("SELEC 1 FROM nowhere WHERE a = 'secret'")
        .execute(&pool)
        .await
        .expect_err("syntax error");
    assert_eq!(err.as_database_error().and_then(|e| e.code()).as_deref(), Some("42601"));
    let span = t.spans().pop().expect("a span");
    span.assert_status(&Status::error(""))
        .assert_attr("error.type", "42601")
        .assert_attr("db.response.status_code", "42601")
        // No placeholders: the literal is sanitized away.
        .assert_attr("db.query.text", "SELEC ? FROM nowhere WHERE a = ?");
    assert!(!format!("{:?}", span.status).contains("secret"));
}

#[tokio::test]
async fn connection_killed_mid_query_passes_the_error_through() {
    let t = TestTelemetry::new();
    let pool = pool(&t).await;
    let mut conn = pool.acquire().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let url = postgres_url();
    let killer = tokio::spawn(async move {
        let mut admin = sqlx::PgConnection::connect(&url).await.expect("second connection");
        // Wait until the victim is running its query, then terminate it.
        for _ in 0..500 {
            let active: Option<String> = sqlx::query_scalar("SELECT state FROM pg_stat_activity WHERE pid = $1")
                .bind(pid)
                .fetch_optional(&mut admin)
                .await
                .unwrap();
            if active.as_deref() == Some("active") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        killed
    });
    let err = sqlx::query("SELECT pg_sleep(30)")
        .execute(&mut conn)
        .await
        .expect_err("killed");
    assert!(killer.await.unwrap(), "pg_terminate_backend succeeded");
    // Passed through unchanged: the server's admin-shutdown error or the I/O failure.
    let expected_type = match &err {
        sqlx::Error::Database(db) => {
            assert_eq!(db.code().as_deref(), Some("57P01"), "{err}");
            "57P01".to_owned()
        }
        sqlx::Error::Io(_) => "unexpected_eof".to_owned(),
        other => panic!("unexpected error {other:?}"),
    };
    let span = t.spans().pop().expect("the killed query's span");
    span.assert_status(&Status::error(""))
        .assert_attr("error.type", expected_type)
        .assert_attr("db.query.text", "SELECT pg_sleep(?)")
        .assert_no_attr("db.response.returned_rows");
    drop(conn);
}

#[tokio::test]
async fn pool_exhaustion_and_acquire_timeout_show_in_pool_metrics() {
    let t = TestTelemetry::new();
    let pool = pool_with(&t, 1, Duration::from_millis(300)).await;
    let held = pool.acquire().await.unwrap();
    let opts: PgConnectOptions = postgres_url().parse().unwrap();
    let pool_name = kv(
        "db.client.connection.pool.name",
        format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or(opts.get_username())
        ),
    );
    // A waiter shows up in pending_requests while the only connection is held.
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { sqlx::query("SELECT 1").execute(&pool).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while t.metrics().sum_i64(
        "db.client.connection.pending_requests",
        std::slice::from_ref(&pool_name),
    ) != Some(1)
    {
        assert!(std::time::Instant::now() < deadline, "no pending request observed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let m = t.metrics();
    assert_eq!(
        m.sum_i64("db.client.connection.max", std::slice::from_ref(&pool_name)),
        Some(1)
    );
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[pool_name.clone(), kv("db.client.connection.state", "used")]
        ),
        Some(1)
    );
    let err = waiter.await.unwrap().expect_err("acquire timeout");
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    let m = t.metrics();
    assert_eq!(
        m.sum_u64("db.client.connection.timeouts", std::slice::from_ref(&pool_name)),
        Some(1)
    );
    assert_eq!(
        m.sum_i64(
            "db.client.connection.pending_requests",
            std::slice::from_ref(&pool_name)
        ),
        Some(0)
    );
    let wait = m.assert_histogram_point("db.client.connection.wait_time", std::slice::from_ref(&pool_name));
    assert_eq!(wait.count, 2, "the held acquire and the timed-out one");
    assert!(wait.sum >= 0.3, "waited for the timeout: {}", wait.sum);
    t.span("SELECT")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "pool_timeout");
    drop(held);
}

#[tokio::test]
async fn concurrent_queries_are_parented_to_their_own_callers() {
    let t = TestTelemetry::new();
    let pool = pool(&t).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let mut tasks = Vec::new();
    for i in 0..20i64 {
        let pool = pool.clone();
        let parent = tracer.start(format!("request {i}"));
        let cx = Context::new().with_span(parent);
        tasks.push(tokio::spawn(
            async move {
                let v: i64 = sqlx::query_scalar("SELECT $1::int8 FROM pg_sleep(0.01)")
                    .bind(i)
                    .fetch_one(&pool)
                    .await
                    .expect("query");
                Context::current().span().end();
                v
            }
            .with_context(cx),
        ));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let v = task.await.unwrap();
        assert_eq!(v, i as i64, "task {i}");
    }
    let spans = t.wait_for_spans(40, Duration::from_secs(20));
    let parents: Vec<_> = spans.iter().filter(|s| s.name.starts_with("request ")).collect();
    let children: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
    assert_eq!(parents.len(), 20);
    assert_eq!(children.len(), 20);
    for child in children {
        child
            .assert_status(&Status::Unset)
            .assert_attr("db.query.summary", "SELECT");
        let parent = parents
            .iter()
            .find(|p| p.span_context.span_id() == child.parent_span_id)
            .expect("every query span has a request span as parent");
        child.assert_child_of(parent);
    }
    // One child per parent.
    let mut ids: Vec<_> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .map(|s| s.parent_span_id)
        .collect();
    ids.sort_by_key(|id| id.to_bytes());
    ids.dedup();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn options_connect_reads_namespace_and_non_default_port() {
    // Connect options alone (no I/O): a non-default port is recorded, the default is not.
    let t = TestTelemetry::new();
    let opts = PgConnectOptions::new()
        .host("db.internal")
        .port(6543)
        .username("app")
        .database("shop");
    let pool = PgPoolOptions::new().connect_lazy_with(opts.clone().disable_statement_logging());
    let pool = InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(t.instrumentation()));
    let err = sqlx::query("SELECT 1")
        .execute(&pool)
        .with_context(Context::new())
        .await;
    // Nothing listens there; whatever the failure, the span carries the server attributes.
    assert!(err.is_err());
    t.span("SELECT")
        .assert_attr("server.address", "db.internal")
        .assert_attr("server.port", 6543i64)
        .assert_attr("db.namespace", "shop")
        .assert_status(&Status::error(""));
}

#[tokio::test]
async fn parameters_bound_through_query_with_are_captured_when_enabled() {
    use otelrs_sql::Parameters;

    let t = TestTelemetry::new();
    let url = postgres_url();
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    let pool = InstrumentedPool::new(
        pool,
        SqlOptions::new()
            .with_instrumentation(t.instrumentation())
            .with_parameter_capture(true),
    );
    let mut params = Parameters::<Postgres>::new();
    params.add(41_i32).unwrap();
    params.add("otel").unwrap();
    params.add_as(Some(2.5_f64), "2.5").unwrap();
    let (n, s, f): (i32, String, f64) =
        sqlx::query_as_with("SELECT $1::int4 + 1, $2::text || '-sql', $3::float8 * 2", params)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (n, s.as_str(), f),
        (42, "otel-sql", 5.0),
        "values reach PostgreSQL as bound"
    );

    let mut expected = server_attrs();
    expected.extend([
        kv(
            "db.query.text",
            "SELECT $1::int4 + 1, $2::text || '-sql', $3::float8 * 2",
        ),
        kv("db.query.summary", "SELECT"),
        kv("db.query.parameter.0", "41"),
        kv("db.query.parameter.1", "otel"),
        kv("db.query.parameter.2", "2.5"),
        kv("db.response.returned_rows", 1i64),
    ]);
    t.span("SELECT")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected);
}
