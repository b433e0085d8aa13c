//! sqlx's compile-time checked macros (`query!`, `query_as!`, `query_scalar!`) run unchanged
//! through the instrumented pool, connection and transaction (SQLite in memory).
//!
//! The macros are checked against the offline query data committed in `otel-sql/.sqlx/`
//! (`otel-sql/.env` sets `SQLX_OFFLINE=true`, so a `DATABASE_URL` pointing at PostgreSQL for the
//! other tests does not reach them). After changing a query here, regenerate the data with:
//!
//! ```sh
//! python3 -c "import sqlite3; sqlite3.connect('/tmp/otel-sql-macros.db').execute('CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE)')"
//! rm -rf otel-sql/.sqlx && SQLX_OFFLINE=false DATABASE_URL=sqlite:/tmp/otel-sql-macros.db \
//!   SQLX_OFFLINE_DIR=$PWD/otel-sql/.sqlx cargo test --workspace --all-features --test macros --no-run
//! ```
#![cfg(feature = "sqlite")]

use opentelemetry::trace::{SpanKind, Status};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::sqlite::{Sqlite, SqlitePoolOptions};

/// The schema the offline data was generated against (see the module docs).
const SCHEMA: &str = "CREATE TABLE users (id INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL UNIQUE)";

async fn setup(t: &TestTelemetry) -> InstrumentedPool<Sqlite> {
    // One connection: every connection to `sqlite::memory:` would be its own database.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query(SCHEMA).execute(&pool).await.expect("create table");
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob')")
        .execute(&pool)
        .await
        .expect("seed");
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(t.instrumentation()))
}

#[derive(Debug, PartialEq)]
struct User {
    id: i64,
    name: String,
}

fn attrs(summary: &'static str, text: &'static str, rows: Option<i64>) -> Vec<opentelemetry::KeyValue> {
    let mut v = vec![
        kv("db.system.name", "sqlite"),
        kv("db.namespace", ":memory:"),
        kv("db.query.summary", summary),
        kv("db.query.text", text),
    ];
    if let Some(n) = rows {
        v.push(kv("db.response.returned_rows", n));
    }
    v
}

#[tokio::test]
async fn query_macros_on_the_pool_record_one_span_each() {
    let t = TestTelemetry::new();
    let pool = setup(&t).await;

    let row = sqlx::query!("SELECT id, name FROM users WHERE id = ?", 1i64)
        .fetch_one(&pool)
        .await
        .expect("query!");
    assert_eq!((row.id, row.name.as_str()), (1, "alice"));

    let users = sqlx::query_as!(User, "SELECT id, name FROM users ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("query_as!");
    assert_eq!(
        users,
        vec![
            User {
                id: 1,
                name: "alice".into()
            },
            User {
                id: 2,
                name: "bob".into()
            }
        ]
    );

    let count = sqlx::query_scalar!("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .expect("query_scalar!");
    assert_eq!(count, 2);

    let missing = sqlx::query!("SELECT name FROM users WHERE id = ?", 99i64)
        .fetch_optional(&pool)
        .await
        .expect("fetch_optional");
    assert!(missing.is_none());

    let done = sqlx::query!("INSERT INTO users (id, name) VALUES (?, ?)", 3i64, "carol")
        .execute(&pool)
        .await
        .expect("execute");
    assert_eq!(done.rows_affected(), 1);

    let spans = t.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "SELECT users",
            "INSERT users"
        ],
        "one span per macro call"
    );
    let expected = [
        attrs("SELECT users", "SELECT id, name FROM users WHERE id = ?", Some(1)),
        attrs("SELECT users", "SELECT id, name FROM users ORDER BY id", Some(2)),
        attrs("SELECT users", "SELECT COUNT(*) FROM users", Some(1)),
        attrs("SELECT users", "SELECT name FROM users WHERE id = ?", Some(0)),
        attrs("INSERT users", "INSERT INTO users (id, name) VALUES (?, ?)", Some(0)),
    ];
    for (span, expected) in spans.iter().zip(expected.iter()) {
        span.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_attrs(expected)
            .assert_root();
    }
}

#[tokio::test]
async fn query_macros_on_an_acquired_connection_and_a_transaction() {
    let t = TestTelemetry::new();
    let pool = setup(&t).await;

    let mut tx = pool.begin().await.expect("begin");
    sqlx::query!("DELETE FROM users WHERE id = ?", 2i64)
        .execute(&mut tx)
        .await
        .expect("delete in transaction");
    tx.rollback().await.expect("rollback");

    let mut conn = pool.acquire().await.expect("acquire");
    let names = sqlx::query_scalar!("SELECT name FROM users ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("query_scalar! on a connection");
    assert_eq!(names, ["alice", "bob"], "the rollback restored bob");

    let spans = t.spans();
    let delete = t.span("DELETE users");
    delete.assert_kind(SpanKind::Client).assert_attrs(&attrs(
        "DELETE users",
        "DELETE FROM users WHERE id = ?",
        Some(0),
    ));
    assert!(
        spans.iter().any(|s| s.name == "ROLLBACK :memory:"),
        "the rollback is recorded: {:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    t.spans_named("SELECT users")
        .last()
        .expect("the SELECT on the acquired connection")
        .assert_attrs(&attrs("SELECT users", "SELECT name FROM users ORDER BY id", Some(2)));
}
