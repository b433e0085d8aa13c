//! diesel-async over the real MariaDB (`MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`;
//! mysql_async, no libmysqlclient): `AsyncMysqlConnection` (told it is MariaDB) and
//! `AsyncMariadbConnection` (a `mariadb://` URL), exact spans and metrics of queries, errors,
//! transactions and a deadpool pool. An unreachable server fails the test with the URL and how
//! to start it.
#![cfg(feature = "diesel-async")]

mod common;

use diesel::prelude::*;
use diesel::sql_types::Integer;
use diesel_async::pooled_connection::ManagerConfig;
use diesel_async::{AsyncConnection, AsyncMariadbConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;

use common::{mysql_url, unreachable_service};

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

const SCHEMA: &str = "CREATE TEMPORARY TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE);
     INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob');";

fn base() -> Vec<KeyValue> {
    vec![
        kv("db.system.name", "mariadb"),
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

#[tokio::test]
async fn mysql_connection_to_mariadb_records_queries_errors_and_transactions() {
    let t = TestTelemetry::new();
    let url = mysql_url();
    let mut conn = AsyncMysqlConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", e));
    conn.batch_execute(SCHEMA).await.expect("schema");
    // A `mysql://` URL says MySQL: the options say it is MariaDB.
    let diesel = DieselInstrumentation::new(
        SqlOptions::new()
            .with_instrumentation(t.instrumentation())
            .with_system_name("mariadb"),
    );
    conn.set_instrumentation(diesel.connection(&url));

    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("POST /users"));
    async {
        let ids: Vec<i32> = users::table
            .filter(users::name.eq("alice"))
            .select(users::id)
            .load(&mut conn)
            .await
            .expect("select");
        assert_eq!(ids, [1]);
        let err = diesel::insert_into(users::table)
            .values((users::id.eq(3), users::name.eq("alice")))
            .execute(&mut conn)
            .await
            .expect_err("duplicate name");
        assert!(matches!(
            err,
            diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
        ));
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::update(users::table.find(2))
                .set(users::name.eq("carol"))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
        .expect("transaction");
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    assert_eq!(
        names(&t),
        [
            "SELECT `users`",
            "INSERT `users`",
            "BEGIN test",
            "UPDATE `users`",
            "COMMIT test",
            "POST /users"
        ]
    );
    let parent = t.span("POST /users");
    t.span("SELECT `users`")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_child_of(&parent)
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "SELECT `users`"),
                kv(
                    "db.query.text",
                    "SELECT `users`.`id` FROM `users` WHERE (`users`.`name` = ?)",
                ),
            ],
        ));
    // Diesel exposes the SQLSTATE of a MySQL/MariaDB error (not its number).
    t.span("INSERT `users`")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_child_of(&parent)
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "INSERT `users`"),
                kv("db.query.text", "INSERT INTO `users` (`id`, `name`) VALUES (?, ?)"),
                kv("db.response.status_code", "23000"),
                kv("error.type", "23000"),
            ],
        ));
    for (name, op) in [("BEGIN test", "BEGIN"), ("COMMIT test", "COMMIT")] {
        t.span(name)
            .assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_child_of(&parent)
            .assert_attrs(&with(base(), &[kv("db.operation.name", op)]));
    }
    t.span("UPDATE `users`").assert_child_of(&parent).assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "UPDATE `users`"),
            kv(
                "db.query.text",
                "UPDATE `users` SET `name` = ? WHERE (`users`.`id` = ?)",
            ),
        ],
    ));
    for s in t.spans() {
        for a in &s.attributes {
            for secret in ["alice", "carol", "Duplicate"] {
                assert!(!a.value.as_str().contains(secret), "{} = {:?}", a.key, a.value);
            }
        }
    }
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", "INSERT `users`"),
                kv("db.response.status_code", "23000"),
                kv("error.type", "23000"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.operation.name", "COMMIT")]),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn mariadb_connection_and_url_name_the_system() {
    let t = TestTelemetry::new();
    let url = mysql_url().replacen("mysql://", "mariadb://", 1);
    let mut conn = AsyncMariadbConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", e));
    let diesel = DieselInstrumentation::new(SqlOptions::new().with_instrumentation(t.instrumentation()));
    conn.set_instrumentation(diesel.connection(&url));
    let one: i32 = diesel::select(1.into_sql::<Integer>())
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(one, 1);
    assert_eq!(names(&t), ["SELECT"]);
    t.span("SELECT")
        .assert_kind(SpanKind::Client)
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT ?")],
        ));
}

#[tokio::test]
async fn deadpool_over_mariadb_records_the_pool_metrics() {
    use diesel_async::pooled_connection::deadpool::Pool;
    let t = TestTelemetry::new();
    let url = mysql_url();
    let diesel = DieselInstrumentation::new(
        SqlOptions::new()
            .with_instrumentation(t.instrumentation())
            .with_system_name("mariadb"),
    );
    let pool = diesel
        .deadpool::<AsyncMysqlConnection, _>(&url, ManagerConfig::default(), |manager| {
            Pool::builder(manager).max_size(3).build()
        })
        .expect("pool");
    let name = [kv("db.client.connection.pool.name", "127.0.0.1:3306/test")];
    for _ in 0..2 {
        let mut conn = pool
            .get()
            .await
            .unwrap_or_else(|e| unreachable_service(&url, "mariadb", e));
        let one: i32 = diesel::select(1.into_sql::<Integer>())
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
    let m = t.metrics();
    assert_eq!(m.sum_i64("db.client.connection.max", &name), Some(3));
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name[0].clone(), kv("db.client.connection.state", "idle")]
        ),
        Some(1)
    );
    assert_eq!(
        m.sum_i64(
            "db.client.connection.count",
            &[name[0].clone(), kv("db.client.connection.state", "used")]
        ),
        Some(0)
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.create_time", &name)
            .count,
        1
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.wait_time", &name).count,
        2
    );
    assert_eq!(
        m.assert_histogram_point("db.client.connection.use_time", &name).count,
        2
    );
    // The second get recycles the connection with diesel-async's ping (`SELECT 1`), then the
    // query: three spans, all the same statement.
    assert_eq!(names(&t), ["SELECT", "SELECT", "SELECT"]);
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", "SELECT")]),
    );
    assert_eq!(p.count, 3);
}
