//! SQLite in memory: every executor method, transactions, acquire, overrides and metrics.
#![cfg(feature = "sqlite")]

mod common;

use futures_util::TryStreamExt;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::Context;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::{InstrumentedPool, QueryInfo, QueryInfoExt, QueryTextMode, SqlOptions};
use sqlx::sqlite::{Sqlite, SqlitePoolOptions};
use sqlx::{Executor, Row};

async fn setup(t: &TestTelemetry, options: SqlOptions) -> InstrumentedPool<Sqlite> {
    // One connection: every connection to `sqlite::memory:` would be its own database.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .execute(&pool)
        .await
        .expect("create table");
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob')")
        .execute(&pool)
        .await
        .expect("seed");
    InstrumentedPool::new(pool, options.with_instrumentation(t.instrumentation()))
}

fn base(summary: &'static str, text: &'static str) -> Vec<opentelemetry::KeyValue> {
    vec![
        kv("db.system.name", "sqlite"),
        kv("db.namespace", ":memory:"),
        kv("db.query.summary", summary),
        kv("db.query.text", text),
    ]
}

#[tokio::test]
async fn fetch_all_with_binds_records_one_client_span_with_exact_attributes() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let rows = sqlx::query("SELECT id, name FROM users WHERE id >= ?")
        .bind(1i64)
        .fetch_all(&pool)
        .await
        .expect("query");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].get::<String, _>("name"), "bob");

    let spans = t.spans();
    assert_eq!(
        spans.len(),
        1,
        "one span per operation: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let mut expected = base("SELECT users", "SELECT id, name FROM users WHERE id >= ?");
    expected.push(kv("db.response.returned_rows", 2i64));
    t.span("SELECT users")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected)
        .assert_root();

    let m = t.metrics();
    m.assert_metric(
        "db.client.operation.duration",
        "s",
        "Duration of database client operations.",
    );
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "SELECT users"),
        ],
    );
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]);
}

#[tokio::test]
async fn every_executor_method_is_instrumented_once() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;

    let r = sqlx::query("UPDATE users SET name = ? WHERE id = ?")
        .bind("carol")
        .bind(2i64)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let one = sqlx::query("SELECT name FROM users WHERE id = ?")
        .bind(1i64)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(one.get::<String, _>(0), "alice");
    let none = sqlx::query("SELECT name FROM users WHERE id = ?")
        .bind(99i64)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert!(none.is_none());
    let streamed: Vec<_> = sqlx::query("SELECT id FROM users ORDER BY id")
        .fetch(&pool)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), 2);
    #[derive(sqlx::FromRow, Debug, PartialEq)]
    struct User {
        id: i64,
        name: String,
    }
    let users: Vec<User> = sqlx::query_as("SELECT id, name FROM users ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        users[1],
        User {
            id: 2,
            name: "carol".into()
        }
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2);
    // A plain string through the Executor trait (no placeholders: the text is sanitized).
    let raw = (&pool)
        .fetch_all("SELECT name FROM users WHERE name = 'alice'")
        .await
        .unwrap();
    assert_eq!(raw.len(), 1);

    let spans = t.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "UPDATE users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users"
        ]
    );
    let rows: Vec<i64> = spans[1..]
        .iter()
        .map(|s| match s.attr("db.response.returned_rows") {
            Some(opentelemetry::Value::I64(n)) => *n,
            other => panic!("returned_rows of {}: {other:?}", s.name),
        })
        .collect();
    assert_eq!(rows, [1, 0, 2, 2, 1, 1]);
    spans[0]
        .assert_attr("db.query.text", "UPDATE users SET name = ? WHERE id = ?")
        .assert_attr("db.response.returned_rows", 0i64);
    spans[6].assert_attr("db.query.text", "SELECT name FROM users WHERE name = ?");
    for s in &spans {
        s.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_no_attr("error.type");
    }
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "SELECT users"),
        ],
    );
    assert_eq!(p.count, 6);
}

#[tokio::test]
async fn dropped_stream_ends_its_span_with_rows_seen() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    {
        let mut rows = sqlx::query("SELECT id FROM users ORDER BY id").fetch(&pool);
        let first = rows.try_next().await.unwrap().expect("a row");
        assert_eq!(first.get::<i64, _>(0), 1);
        assert!(t.spans().is_empty(), "span still open while the stream lives");
    }
    t.span("SELECT users")
        .assert_status(&Status::Unset)
        .assert_attr("db.response.returned_rows", 1i64)
        .assert_no_attr("error.type");
}

#[tokio::test]
async fn spans_are_children_of_the_callers_span() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let parent = tracer.start("GET /users");
    let cx = Context::new().with_span(parent);
    use opentelemetry::context::FutureExt as _;
    sqlx::query("SELECT 1")
        .fetch_one(&pool)
        .with_context(cx.clone())
        .await
        .unwrap();
    cx.span().end();
    let parent = t.span("GET /users");
    t.span("SELECT").assert_child_of(&parent).assert_attrs(&[
        kv("db.system.name", "sqlite"),
        kv("db.namespace", ":memory:"),
        kv("db.query.summary", "SELECT"),
        kv("db.query.text", "SELECT ?"),
        kv("db.response.returned_rows", 1i64),
    ]);
}

#[tokio::test]
async fn errors_set_status_code_and_error_type_and_pass_through() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let err = sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
        .bind(3i64)
        .bind("alice")
        .execute(&pool)
        .await
        .expect_err("unique violation");
    let db = err.as_database_error().expect("database error");
    assert!(db.is_unique_violation());
    assert_eq!(db.code().as_deref(), Some("2067"));
    let span = t.span("INSERT users");
    span.assert_status(&Status::error(""))
        .assert_attr("error.type", "2067")
        .assert_attr("db.response.status_code", "2067")
        .assert_no_attr("db.response.returned_rows");
    let m = t.metrics();
    m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "INSERT users"),
            kv("db.response.status_code", "2067"),
            kv("error.type", "2067"),
        ],
    );
    // A syntax error: SQLite reports result code 1 (SQLITE_ERROR).
    let err = sqlx::query("SELEC nope")
        .execute(&pool)
        .await
        .expect_err("syntax error");
    assert!(matches!(err, sqlx::Error::Database(_)));
    // No summary and no operation: named by the target, here the namespace (semconv §5.1).
    t.span(":memory:")
        .assert_attr("error.type", "1")
        .assert_attr("db.query.text", "SELEC nope");
}

#[tokio::test]
async fn transactions_commit_rollback_and_drop() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO users (id, name) VALUES (?, ?)")
        .bind(10i64)
        .bind("dave")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(10i64)
        .execute(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    {
        let mut tx = pool.begin().await.unwrap();
        sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(10i64)
            .execute(&mut tx)
            .await
            .unwrap();
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE id = 10")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "commit kept the row, rollback and drop restored it");

    let names: Vec<String> = t.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "BEGIN :memory:",
            "INSERT users",
            "COMMIT :memory:",
            "BEGIN :memory:",
            "DELETE users",
            "ROLLBACK :memory:",
            "BEGIN :memory:",
            "DELETE users",
            "ROLLBACK :memory:",
            "SELECT users"
        ]
    );
    // `{db.operation.name} {target}` with the namespace as target (semconv §5.1).
    for (name, op) in [
        ("COMMIT :memory:", "COMMIT"),
        ("BEGIN :memory:", "BEGIN"),
        ("ROLLBACK :memory:", "ROLLBACK"),
    ] {
        for s in t.spans_named(name) {
            s.assert_kind(SpanKind::Client)
                .assert_status(&Status::Unset)
                .assert_attrs(&[
                    kv("db.system.name", "sqlite"),
                    kv("db.namespace", ":memory:"),
                    kv("db.operation.name", op),
                ]);
        }
    }
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.operation.name", "ROLLBACK"),
        ],
    );
    assert_eq!(p.count, 2);
}

#[tokio::test]
async fn acquired_connection_and_its_transaction_are_executors() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let mut conn = pool.acquire().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 2);
    {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("DELETE FROM users").execute(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
    }
    let rows: Vec<_> = sqlx::query("SELECT id FROM users")
        .fetch(&mut conn)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    drop(conn);
    let names: Vec<String> = t.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        [
            "SELECT users",
            "BEGIN :memory:",
            "DELETE users",
            "ROLLBACK :memory:",
            "SELECT users"
        ]
    );
    let m = t.metrics();
    let pool_name = [kv("db.client.connection.pool.name", ":memory:")];
    m.assert_metric(
        "db.client.connection.use_time",
        "s",
        "The time between borrowing a connection and returning it to the pool.",
    );
    // setup's pool is instrumented after seeding; this is the first instrumented acquire.
    assert_eq!(
        m.assert_histogram_point("db.client.connection.use_time", &pool_name)
            .count,
        1
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.wait_time", &pool_name)
            .count,
        1
    );
}

#[tokio::test]
async fn query_info_overrides_summary_operation_and_collection() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .with_query_info(
            QueryInfo::new()
                .summary("COUNT users")
                .operation("SELECT")
                .collection("users"),
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    sqlx::query("SELECT 1")
        .fetch_one(&pool)
        .with_query_info(QueryInfo::new().operation("PING"))
        .await
        .unwrap();
    t.span("COUNT users").assert_attrs(&[
        kv("db.system.name", "sqlite"),
        kv("db.namespace", ":memory:"),
        kv("db.query.summary", "COUNT users"),
        kv("db.query.text", "SELECT count(*) FROM users"),
        kv("db.operation.name", "SELECT"),
        kv("db.collection.name", "users"),
        kv("db.response.returned_rows", 1i64),
    ]);
    t.span("SELECT")
        .assert_attr("db.operation.name", "PING")
        .assert_no_attr("db.collection.name");
    // Without an override neither is ever parsed out of the SQL.
    sqlx::query("SELECT name FROM users").fetch_all(&pool).await.unwrap();
    t.span("SELECT users")
        .assert_no_attr("db.operation.name")
        .assert_no_attr("db.collection.name");
    let m = t.metrics();
    m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "COUNT users"),
            kv("db.operation.name", "SELECT"),
            kv("db.collection.name", "users"),
        ],
    );
}

#[tokio::test]
async fn query_text_modes() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new().with_query_text(QueryTextMode::Sanitized)).await;
    sqlx::query("SELECT id FROM users WHERE id = ? AND name <> 'x'")
        .bind(1i64)
        .fetch_all(&pool)
        .await
        .unwrap();
    t.span("SELECT users")
        .assert_attr("db.query.text", "SELECT id FROM users WHERE id = ? AND name <> ?");

    let t = TestTelemetry::new();
    let pool = setup(
        &t,
        SqlOptions::new()
            .with_query_text(QueryTextMode::Off)
            .with_returned_rows(false),
    )
    .await;
    sqlx::query("SELECT id FROM users").fetch_all(&pool).await.unwrap();
    t.span("SELECT users").assert_attrs(&[
        kv("db.system.name", "sqlite"),
        kv("db.namespace", ":memory:"),
        kv("db.query.summary", "SELECT users"),
    ]);
}

#[tokio::test]
async fn pool_gauges_report_idle_used_and_max() {
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new().with_pool_name("lite")).await;
    let name = kv("db.client.connection.pool.name", "lite");
    let conn = pool.acquire().await.unwrap();
    let m = t.metrics();
    m.assert_metric(
        "db.client.connection.count",
        "{connection}",
        "The number of connections that are currently in state described by the `state` attribute.",
    );
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name.clone(), kv("db.client.connection.state", "used")]
        ),
        Some(1)
    );
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name.clone(), kv("db.client.connection.state", "idle")]
        ),
        Some(0)
    );
    assert_eq!(
        m.sum_i64("db.client.connection.max", std::slice::from_ref(&name)),
        Some(1)
    );
    assert_eq!(
        m.sum_i64("db.client.connection.pending_requests", std::slice::from_ref(&name)),
        Some(0)
    );
    drop(conn);
    // sqlx returns a dropped connection to the pool asynchronously.
    let idle = [name.clone(), kv("db.client.connection.state", "idle")];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.metrics().sum_i64("db.client.connection.count", &idle) != Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "connection never reported idle again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let m = t.metrics();
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name.clone(), kv("db.client.connection.state", "used")]
        ),
        Some(0)
    );
    // sqlx does not expose connection creation: no create_time stream at all.
    assert!(m.metric("db.client.connection.create_time").is_none());
    // The gauges read the pool through a weak reference: nothing once the pool is dropped.
    drop(pool);
    t.reset();
    let m = t.metrics();
    assert_eq!(m.sum_i64("db.client.connection.max", std::slice::from_ref(&name)), None);
    assert!(m.sums_i64("db.client.connection.count").is_empty());
}

#[tokio::test]
async fn bind_parameters_are_captured_only_when_enabled() {
    use otelrs_sql::Parameters;

    // Off by default: values handed over through `Parameters` and `QueryInfo` are not recorded.
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new()).await;
    let mut params = Parameters::<Sqlite>::new();
    params.add(1_i64).unwrap();
    let name: String = sqlx::query_scalar_with("SELECT name FROM users WHERE id = ?", params)
        .fetch_one(&pool)
        .with_query_info(QueryInfo::new().parameter(1))
        .await
        .unwrap();
    assert_eq!(name, "alice");
    let mut expected = base("SELECT users", "SELECT name FROM users WHERE id = ?");
    expected.push(kv("db.response.returned_rows", 1i64));
    t.span("SELECT users").assert_attrs(&expected);

    // On: `Parameters` values are recorded by 0-based index, as strings, whatever their type.
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new().with_parameter_capture(true)).await;
    let mut params = Parameters::<Sqlite>::new();
    params.add(2_i64).unwrap();
    params.add("alice").unwrap();
    params.add_as(None::<String>, "NULL").unwrap();
    params.add(1.5_f64).unwrap();
    assert_eq!(params.len(), 4);
    assert_eq!(
        format!("{params:?}"),
        "Parameters { len: 4, .. }",
        "Debug never shows values"
    );
    let rows = sqlx::query_with(
        "SELECT id FROM users WHERE (id = ? OR name = ?) AND ? IS NULL AND ? > 1 ORDER BY id",
        params,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2, "the database received every argument as bound");
    let mut expected = base(
        "SELECT users",
        "SELECT id FROM users WHERE (id = ? OR name = ?) AND ? IS NULL AND ? > 1 ORDER BY id",
    );
    expected.extend([
        kv("db.query.parameter.0", "2"),
        kv("db.query.parameter.1", "alice"),
        kv("db.query.parameter.2", "NULL"),
        kv("db.query.parameter.3", "1.5"),
        kv("db.response.returned_rows", 2i64),
    ]);
    t.span("SELECT users").assert_attrs(&expected);
    // Never on the metric.
    t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "SELECT users"),
        ],
    );

    // `.bind()` chains and macros name their values through `QueryInfo`.
    t.reset();
    let r = sqlx::query("UPDATE users SET name = ?1 WHERE id = ?2")
        .bind("carol")
        .bind(2_i64)
        .execute(&pool)
        .with_query_info(QueryInfo::new().parameter("carol").parameter(2))
        .await
        .unwrap();
    assert_eq!(r.rows_affected(), 1);
    let mut expected = base("UPDATE users", "UPDATE users SET name = ?1 WHERE id = ?2");
    expected.extend([
        kv("db.query.parameter.0", "carol"),
        kv("db.query.parameter.1", "2"),
        kv("db.response.returned_rows", 0i64),
    ]);
    t.span("UPDATE users").assert_attrs(&expected);

    // A plain `.bind()` chain without `QueryInfo` records no values (sqlx cannot give them back),
    // and values handed over by a query run elsewhere never leak into it.
    t.reset();
    let mut stray = Parameters::<Sqlite>::new();
    stray.add("stray-secret").unwrap();
    sqlx::query_with("SELECT 1 WHERE ? IS NOT NULL", stray)
        .fetch_one(pool.inner())
        .await
        .unwrap();
    sqlx::query("SELECT name FROM users WHERE id = ?")
        .bind(1_i64)
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut expected = base("SELECT users", "SELECT name FROM users WHERE id = ?");
    expected.push(kv("db.response.returned_rows", 1i64));
    t.span("SELECT users").assert_attrs(&expected);
}

#[tokio::test]
async fn captured_parameters_are_cut_at_the_text_limit_and_skipped_when_unsampled() {
    use otelrs_core::opentelemetry_sdk::trace::Sampler;
    use otelrs_sql::Parameters;

    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new().with_parameter_capture(true).with_max_text_len(40)).await;
    let long = "é".repeat(30); // 60 bytes; cut at a character boundary
    let mut params = Parameters::<Sqlite>::new();
    params.add(long.as_str()).unwrap();
    let found = sqlx::query_with("SELECT id FROM users WHERE name = ?", params)
        .fetch_optional(&pool)
        .await
        .unwrap();
    assert!(found.is_none());
    let span = t.span("SELECT users");
    assert_eq!(
        span.attr("db.query.parameter.0").map(|v| v.as_str().into_owned()),
        Some("é".repeat(20))
    );

    // Unsampled: the span records nothing, so no value is even looked at.
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOff);
    let pool = setup(&t, SqlOptions::new().with_parameter_capture(true)).await;
    let mut params = Parameters::<Sqlite>::new();
    params.add(1_i64).unwrap();
    let n: i64 = sqlx::query_scalar_with("SELECT count(*) FROM users WHERE id = ?", params)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(t.spans().is_empty());
}

#[tokio::test]
async fn require_parent_span_records_no_orphan_spans_but_keeps_metrics() {
    use opentelemetry::context::FutureExt as _;
    let t = TestTelemetry::new();
    let pool = setup(&t, SqlOptions::new().with_require_parent_span(true)).await;
    // No parent (a health check, a background job): no span, the duration still recorded.
    sqlx::query("SELECT id FROM users").fetch_all(&pool).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM users").fetch_all(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert!(t.spans().is_empty(), "orphan spans exported: {:?}", t.spans());
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", ":memory:"),
            kv("db.query.summary", "SELECT users"),
        ],
    );
    assert_eq!(p.count, 2);
    // Under a parent span: recorded as usual, as its child.
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    sqlx::query("SELECT id FROM users")
        .fetch_all(&pool)
        .with_context(cx.clone())
        .await
        .unwrap();
    cx.span().end();
    let parent = t.span("job");
    t.span("SELECT users")
        .assert_child_of(&parent)
        .assert_kind(SpanKind::Client);
    assert_eq!(t.spans().len(), 2);
}
