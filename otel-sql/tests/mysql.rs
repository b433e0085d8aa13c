//! Real MariaDB (or MySQL) on loopback (`MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`).
#![cfg(feature = "mysql")]

mod common;

use common::{mysql_url, unique_table, unreachable_service};
use opentelemetry::trace::{SpanKind, Status};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPoolOptions};

async fn pool(t: &TestTelemetry) -> (InstrumentedPool<MySql>, String) {
    let url = mysql_url();
    let pool = MySqlPoolOptions::new()
        .max_connections(3)
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", e));
    let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(&pool).await.unwrap();
    let system = if version.to_ascii_lowercase().contains("mariadb") {
        "mariadb"
    } else {
        "mysql"
    };
    let pool = InstrumentedPool::connect(pool, SqlOptions::new().with_instrumentation(t.instrumentation()))
        .await
        .expect("version detection");
    (pool, system.to_owned())
}

#[tokio::test]
async fn detects_the_server_and_records_exact_attributes_and_error_numbers() {
    let t = TestTelemetry::new();
    let (pool, system) = pool(&t).await;
    let opts: MySqlConnectOptions = mysql_url().parse().unwrap();
    let table = unique_table("otel_sql_items");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id INT PRIMARY KEY, name VARCHAR(20) UNIQUE)"
    )))
    .execute(pool.inner())
    .await
    .unwrap();
    let insert = format!("INSERT INTO {table} (id, name) VALUES (?, ?)");
    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
        .bind(1)
        .bind("alice")
        .execute(&pool)
        .await
        .unwrap();
    let mut base = vec![
        kv("db.system.name", system.clone()),
        kv("db.namespace", opts.get_database().unwrap_or("").to_owned()),
        kv("server.address", opts.get_host().to_owned()),
    ];
    if opts.get_port() != 3306 {
        base.push(kv("server.port", i64::from(opts.get_port())));
    }
    let mut expected = base.clone();
    expected.extend([
        kv("db.query.summary", format!("INSERT {table}")),
        kv("db.query.text", insert.clone()),
        kv("db.response.returned_rows", 0i64),
    ]);
    t.span(&format!("INSERT {table}"))
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected);

    // Unique violation: the MySQL/MariaDB error number 1062; the message (which quotes the
    // value) never reaches the span.
    let err = sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(2)
        .bind("alice")
        .execute(&pool)
        .await
        .expect_err("duplicate");
    let db = err.as_database_error().expect("database error");
    assert!(db.is_unique_violation());
    assert!(
        db.message().contains("alice"),
        "the driver error is unchanged: {}",
        db.message()
    );
    let failed = t.spans().pop().unwrap();
    failed
        .assert_status(&Status::error(""))
        .assert_attr("error.type", "1062")
        .assert_attr("db.response.status_code", "1062");
    assert!(!format!("{:?}", failed.attributes).contains("alice"));

    // Syntax error: 1064.
    let err = sqlx::query("SELEC 1").execute(&pool).await.expect_err("syntax");
    assert!(matches!(err, sqlx::Error::Database(_)));
    t.spans()
        .pop()
        .unwrap()
        .assert_attr("error.type", "1064")
        .assert_attr("db.response.status_code", "1064");

    // MySQL double quotes are strings: sanitized.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {table} WHERE name = \"alice\""
    )))
    .fetch_all(&pool)
    .await
    .unwrap();
    t.span(&format!("SELECT {table}"))
        .assert_attr("db.query.text", format!("SELECT id FROM {table} WHERE name = ?"))
        .assert_attr("db.response.returned_rows", 1i64);

    let mut point = base;
    point.extend([
        kv("db.query.summary", format!("INSERT {table}")),
        kv("db.response.status_code", "1062"),
        kv("error.type", "1062"),
    ]);
    assert_eq!(
        t.metrics()
            .assert_histogram_point("db.client.operation.duration", &point)
            .count,
        1
    );

    // Transactions on MariaDB: commit and drop.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
        .execute(&mut tx)
        .await
        .unwrap();
    drop(tx);
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "dropped transaction rolled back");
    let ns = opts.get_database().unwrap_or("").to_owned();
    assert_eq!(t.spans_named(&format!("ROLLBACK {ns}")).len(), 1);
    assert_eq!(t.spans_named(&format!("BEGIN {ns}")).len(), 1);

    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(pool.inner())
        .await
        .unwrap();
}
