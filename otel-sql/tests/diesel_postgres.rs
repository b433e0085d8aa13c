//! diesel-async over the real PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; tokio-postgres, no libpq): exact spans and
//! metrics of queries, errors, transactions, dropped futures, pipelining, and the deadpool and
//! bb8 pools. An unreachable server fails the test with the URL and how to start it.
#![cfg(feature = "diesel-async")]

mod common;

use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::pooled_connection::ManagerConfig;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;

use common::{postgres_url, unreachable_service};

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

/// A connection with a session-private `users` table (two rows), then instrumented.
async fn setup(t: &TestTelemetry, options: SqlOptions) -> AsyncPgConnection {
    let url = postgres_url();
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    conn.batch_execute(
        "CREATE TEMP TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob');",
    )
    .await
    .expect("schema");
    let diesel = DieselInstrumentation::new(options.with_instrumentation(t.instrumentation()));
    conn.set_instrumentation(diesel.connection(&url));
    conn
}

fn base() -> Vec<KeyValue> {
    vec![
        kv("db.system.name", "postgresql"),
        kv("db.namespace", "test"),
        kv("server.address", "127.0.0.1"),
    ]
}

fn with(mut attrs: Vec<KeyValue>, more: &[KeyValue]) -> Vec<KeyValue> {
    attrs.extend(more.iter().cloned());
    attrs
}

fn names(t: &TestTelemetry) -> Vec<String> {
    t.spans().iter().map(|s| s.name.to_string()).collect()
}

const SELECT_BY_NAME: &str = r#"SELECT "users"."id", "users"."name" FROM "users" WHERE ("users"."name" = $1)"#;
const INSERT: &str = r#"INSERT INTO "users" ("id", "name") VALUES ($1, $2)"#;

#[tokio::test]
async fn queries_and_errors_record_exact_spans_under_the_caller() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("GET /users"));
    async {
        let rows: Vec<(i32, String)> = users::table
            .filter(users::name.eq("alice"))
            .select((users::id, users::name))
            .load(&mut conn)
            .await
            .expect("select");
        assert_eq!(rows, [(1, "alice".to_owned())]);
        let err = diesel::insert_into(users::table)
            .values((users::id.eq(3), users::name.eq("alice")))
            .execute(&mut conn)
            .await
            .expect_err("duplicate name");
        assert!(matches!(
            err,
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
        ));
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    assert_eq!(names(&t), [r#"SELECT "users""#, r#"INSERT "users""#, "GET /users"]);
    let parent = t.span("GET /users");
    t.span(r#"SELECT "users""#)
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_child_of(&parent)
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", r#"SELECT "users""#),
                kv("db.query.text", SELECT_BY_NAME),
            ],
        ));
    // The SQLSTATE is both the status code and the error type; the message (which quotes the
    // duplicate value) is not exported.
    t.span(r#"INSERT "users""#)
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_child_of(&parent)
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "users""#),
                kv("db.query.text", INSERT),
                kv("db.response.status_code", "23505"),
                kv("error.type", "23505"),
            ],
        ));
    for s in t.spans() {
        for a in &s.attributes {
            assert!(!a.value.as_str().contains("alice"), "{} = {:?}", a.key, a.value);
        }
    }

    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", r#"SELECT "users""#)]),
    );
    assert_eq!(p.count, 1);
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "users""#),
                kv("db.response.status_code", "23505"),
                kv("error.type", "23505"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn transactions_record_begin_commit_and_rollback() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new()).await;
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        diesel::insert_into(users::table)
            .values((users::id.eq(10), users::name.eq("carol")))
            .execute(conn)
            .await?;
        Ok(())
    })
    .await
    .expect("commit");
    let rolled_back = conn
        .transaction::<(), diesel::result::Error, _>(async |conn| {
            diesel::delete(users::table.find(10)).execute(conn).await?;
            Err(diesel::result::Error::RollbackTransaction)
        })
        .await;
    assert!(rolled_back.is_err());

    assert_eq!(
        names(&t),
        [
            "BEGIN test",
            r#"INSERT "users""#,
            "COMMIT test",
            "BEGIN test",
            r#"DELETE "users""#,
            "ROLLBACK test"
        ]
    );
    for (name, op) in [
        ("BEGIN test", "BEGIN"),
        ("COMMIT test", "COMMIT"),
        ("ROLLBACK test", "ROLLBACK"),
    ] {
        for s in t.spans_named(name) {
            s.assert_kind(SpanKind::Client)
                .assert_status(&Status::Unset)
                .assert_root()
                .assert_attrs(&with(base(), &[kv("db.operation.name", op)]));
        }
    }
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.operation.name", "BEGIN")]),
    );
    assert_eq!(p.count, 2);
}

#[tokio::test]
async fn a_dropped_query_future_is_ended_as_cancelled_once_the_connection_moved_on_or_went() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    async {
        // The caller gives up on a slow query: its future is dropped, FinishQuery never comes.
        let slow = diesel::sql_query("SELECT pg_sleep(0.3)").execute(&mut conn);
        assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err());
    }
    .with_context(cx.clone())
    .await;
    assert!(t.spans().is_empty(), "nothing ended yet");
    // The next query overlaps it (it could still be a pipelined query)...
    let one: i32 = diesel::select(1.into_sql::<Integer>())
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(names(&t), ["SELECT"]);
    // ... and the one after shows the connection moved on: ended as cancelled, as of the first.
    let two: i32 = diesel::select(2.into_sql::<Integer>())
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(two, 2);
    cx.span().end();

    assert_eq!(names(&t), ["SELECT", "SELECT", "SELECT", "job"]);
    let spans = t.spans();
    let (next, cancelled, after) = (&spans[0], &spans[1], &spans[2]);
    cancelled
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_child_of(&t.span("job"))
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "SELECT"),
                kv("db.query.text", "SELECT pg_sleep(?)"),
                kv("error.type", "cancelled"),
            ],
        ));
    assert!(
        cancelled.end_time <= next.start_time,
        "ended when the next query started"
    );
    for s in [next, after] {
        s.assert_status(&Status::Unset).assert_root().assert_attrs(&with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT $1")],
        ));
    }
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("error.type", "cancelled")],
        ),
    );
    assert_eq!(p.count, 1);

    // Dropped again, then the connection itself: ended when the connection goes.
    t.reset();
    let slow = diesel::sql_query("SELECT pg_sleep(0.3)").execute(&mut conn);
    assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err());
    assert!(t.spans().is_empty());
    drop(conn);
    assert_eq!(names(&t), ["SELECT"]);
    t.span("SELECT")
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "cancelled");
}

#[tokio::test]
async fn pipelined_queries_are_matched_by_their_sql() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new()).await;
    let took = |s: &otelrs_core::opentelemetry_sdk::trace::SpanData| s.end_time.duration_since(s.start_time).unwrap();

    // Two queries in flight at once on one connection (the slow one first): one overlapping
    // another needs no option.
    let (mut a, mut b) = (&conn, &conn);
    let slow = diesel::sql_query("SELECT pg_sleep(0.2)").execute(&mut a);
    let fast = users::table.count().get_result::<i64>(&mut b);
    let (slow, fast) = futures_util::future::join(slow, fast).await;
    slow.expect("slow");
    assert_eq!(fast.expect("count"), 2);
    let mut spans = t.spans();
    spans.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(spans.len(), 2, "{:?}", names(&t));
    spans[0].assert_status(&Status::Unset).assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "SELECT"),
            kv("db.query.text", "SELECT pg_sleep(?)"),
        ],
    ));
    spans[1].assert_status(&Status::Unset).assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", r#"SELECT "users""#),
            kv("db.query.text", r#"SELECT COUNT(*) FROM "users""#),
        ],
    ));
    // Each span covers its own query: the slow one lasted at least its sleep.
    assert!(took(&spans[0]) >= Duration::from_millis(200), "{:?}", took(&spans[0]));

    // Three at once: `with_pipelining`.
    t.reset();
    let url = postgres_url();
    let diesel =
        DieselInstrumentation::new(SqlOptions::new().with_instrumentation(t.instrumentation())).with_pipelining(true);
    conn.set_instrumentation(diesel.connection(&url));
    let (mut a, mut b, mut c) = (&conn, &conn, &conn);
    let slow = diesel::sql_query("SELECT pg_sleep(0.2)").execute(&mut a);
    let count = users::table.count().get_result::<i64>(&mut b);
    let one = diesel::select(1.into_sql::<Integer>()).get_result::<i32>(&mut c);
    let (slow, count, one) = futures_util::future::join3(slow, count, one).await;
    slow.expect("slow");
    assert_eq!((count.expect("count"), one.expect("one")), (2, 1));
    let mut spans = t.spans();
    spans.sort_by(|x, y| {
        x.attributes
            .iter()
            .map(|a| a.value.to_string())
            .cmp(y.attributes.iter().map(|a| a.value.to_string()))
    });
    assert_eq!(spans.len(), 3, "{:?}", names(&t));
    for s in &spans {
        s.assert_status(&Status::Unset).assert_kind(SpanKind::Client);
    }
    let texts: Vec<String> = {
        let mut v: Vec<String> = spans
            .iter()
            .map(|s| s.attr("db.query.text").unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        texts,
        [r#"SELECT $1"#, r#"SELECT COUNT(*) FROM "users""#, "SELECT pg_sleep(?)"]
    );
    let slow = spans
        .iter()
        .find(|s| s.attr("db.query.text").unwrap().as_str() == "SELECT pg_sleep(?)")
        .unwrap();
    assert!(took(slow) >= Duration::from_millis(200), "{:?}", took(slow));
}

fn pool_attrs(name: &str) -> Vec<KeyValue> {
    vec![kv("db.client.connection.pool.name", name.to_owned())]
}

#[tokio::test]
async fn deadpool_connections_are_instrumented_and_the_pool_metrics_recorded() {
    use diesel_async::pooled_connection::deadpool::Pool;
    let t = TestTelemetry::new();
    let url = postgres_url();
    let diesel = DieselInstrumentation::new(SqlOptions::new().with_instrumentation(t.instrumentation()));
    let pool = diesel
        .deadpool::<AsyncPgConnection, _>(&url, ManagerConfig::default(), |manager| {
            Pool::builder(manager)
                .max_size(2)
                .wait_timeout(Some(Duration::from_millis(200)))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
        })
        .expect("pool");
    assert_eq!(pool.pool_name(), "127.0.0.1:5432/test");
    let name = pool_attrs("127.0.0.1:5432/test");
    {
        let mut conn = pool
            .get()
            .await
            .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
        let one: i32 = diesel::select(1.into_sql::<Integer>())
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        let m = t.metrics();
        let count = m.sums_i64("db.client.connection.count");
        assert!(count.contains(&otelrs_core::testing::Point {
            attributes: vec![name[0].clone(), kv("db.client.connection.state", "used")],
            value: 1
        }));
        assert!(count.contains(&otelrs_core::testing::Point {
            attributes: vec![name[0].clone(), kv("db.client.connection.state", "idle")],
            value: 0
        }));
        // Both connections out: the third get times out.
        let _second = pool.get().await.unwrap();
        let err = pool.get().await.expect_err("pool exhausted");
        assert!(matches!(err, deadpool::managed::PoolError::Timeout(_)), "{err:?}");
    }
    let m = t.metrics();
    assert_eq!(m.sum_i64("db.client.connection.max", &name), Some(2));
    assert_eq!(m.sum_i64("db.client.connection.pending_requests", &name), Some(0));
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name[0].clone(), kv("db.client.connection.state", "idle")]
        ),
        Some(2)
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.wait_time", &name).count,
        3
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.use_time", &name).count,
        2
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.create_time", &name)
            .count,
        2
    );
    assert_eq!(m.sum_u64("db.client.connection.timeouts", &name), Some(1));
    // The query on the pooled connection: one span, as on any connection.
    assert_eq!(names(&t), ["SELECT"]);
    t.span("SELECT").assert_attrs(&with(
        base(),
        &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT $1")],
    ));
}

#[tokio::test]
async fn bb8_connections_are_instrumented_and_the_pool_metrics_recorded() {
    use diesel_async::pooled_connection::bb8::Pool;
    let t = TestTelemetry::new();
    let url = postgres_url();
    let diesel = DieselInstrumentation::new(
        SqlOptions::new()
            .with_instrumentation(t.instrumentation())
            .with_pool_name("orders-db"),
    );
    let pool = diesel
        .bb8::<AsyncPgConnection, _, _>(&url, ManagerConfig::default(), |manager| {
            Pool::builder()
                .max_size(1)
                .connection_timeout(Duration::from_millis(200))
                .build(manager)
        })
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    let name = pool_attrs("orders-db");
    {
        let mut conn = pool.get().await.unwrap();
        let one: i32 = diesel::select(1.into_sql::<Integer>())
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
        assert_eq!(
            t.metrics().sum_i64(
                "db.client.connection.count",
                &[name[0].clone(), kv("db.client.connection.state", "used")]
            ),
            Some(1)
        );
        let err = pool.get().await.expect_err("pool exhausted");
        assert!(matches!(err, bb8::RunError::TimedOut), "{err:?}");
    }
    let m = t.metrics();
    assert_eq!(m.sum_i64("db.client.connection.max", &name), Some(1));
    assert_eq!(m.sum_i64("db.client.connection.pending_requests", &name), Some(0));
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name[0].clone(), kv("db.client.connection.state", "idle")]
        ),
        Some(1)
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.wait_time", &name).count,
        2
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.use_time", &name).count,
        1
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.create_time", &name)
            .count,
        1
    );
    assert_eq!(m.sum_u64("db.client.connection.timeouts", &name), Some(1));
    // bb8 checks a connection out with diesel-async's ping (`test_on_check_out`, on by
    // default), a `SELECT 1` through the instrumented connection; then the query.
    assert_eq!(names(&t), ["SELECT", "SELECT"]);
    for s in t.spans() {
        s.assert_root().assert_attrs(&with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT $1")],
        ));
    }
}
