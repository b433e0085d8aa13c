//! `DieselInstrumentation::install_default`: every connection established afterwards is
//! instrumented, its establishment recorded as a `connect` span (with `error.type` when it
//! fails): SQLite in memory, and diesel-async over the real PostgreSQL and MariaDB. The default
//! is process-wide, so the tests take turns.
#![cfg(feature = "diesel-async")]

mod common;

use diesel::connection::Connection as _;
use diesel::sql_types::Integer;
use diesel::{IntoSql as _, SqliteConnection};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, AsyncPgConnection};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;

use common::{mysql_url, postgres_url, unreachable_service};

/// The default instrumentation is one per process: one test at a time installs its own.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn install(t: &TestTelemetry, options: SqlOptions) {
    DieselInstrumentation::new(options.with_instrumentation(t.instrumentation()))
        .install_default()
        .expect("install the default");
}

/// `SELECT 1` on a sync connection.
fn select_one(conn: &mut SqliteConnection) -> i32 {
    use diesel::RunQueryDsl as _;
    diesel::select(1.into_sql::<Integer>())
        .get_result(conn)
        .expect("SELECT 1")
}

/// `SELECT 1` on a diesel-async connection.
async fn select_one_async<C>(conn: &mut C) -> i32
where
    C: diesel_async::AsyncConnection<Backend: diesel::backend::Backend> + Send,
    diesel::dsl::select<diesel::dsl::AsExprOf<i32, Integer>>: diesel_async::methods::LoadQuery<'static, C, i32>,
{
    use diesel_async::RunQueryDsl as _;
    diesel::select(1.into_sql::<Integer>())
        .get_result(conn)
        .await
        .expect("SELECT 1")
}

fn names(t: &TestTelemetry) -> Vec<String> {
    t.spans().iter().map(|s| s.name.to_string()).collect()
}

fn with(mut attrs: Vec<KeyValue>, more: &[KeyValue]) -> Vec<KeyValue> {
    attrs.extend(more.iter().cloned());
    attrs
}

#[test]
fn sqlite_connections_get_the_default_with_a_connect_span() {
    let _turn = TURN.blocking_lock();
    let t = TestTelemetry::new();
    install(&t, SqlOptions::new());
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("startup"));
    let mut conn = {
        let _guard = cx.clone().attach();
        SqliteConnection::establish(":memory:").expect("in-memory SQLite")
    };
    let one = select_one(&mut conn);
    assert_eq!(one, 1);
    // A file in a directory that does not exist: the establishment fails.
    let missing = "/nonexistent-otelrs-dir/app.db";
    let err = SqliteConnection::establish(missing).err().expect("no such directory");
    assert!(matches!(err, diesel::ConnectionError::BadConnection(_)), "{err:?}");
    cx.span().end();

    assert_eq!(
        names(&t),
        ["connect :memory:", "SELECT", &format!("connect {missing}"), "startup"]
    );
    let memory = vec![kv("db.system.name", "sqlite"), kv("db.namespace", ":memory:")];
    t.span("connect :memory:")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_child_of(&t.span("startup"))
        .assert_attrs(&memory);
    t.span("SELECT").assert_root().assert_attrs(&with(
        memory.clone(),
        &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT ?")],
    ));
    t.span(&format!("connect {missing}"))
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_attrs(&[
            kv("db.system.name", "sqlite"),
            kv("db.namespace", missing),
            kv("error.type", "bad_connection"),
        ]);
    // A connection establishment is not an operation: no duration point for it.
    let m = t.metrics();
    assert_eq!(m.histogram("db.client.operation.duration").len(), 1);
}

#[tokio::test]
async fn async_postgres_connections_get_the_default_and_failures_their_error_type() {
    let _turn = TURN.lock().await;
    let t = TestTelemetry::new();
    install(&t, SqlOptions::new());
    let url = postgres_url();
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("startup"));
    let mut conn = AsyncPgConnection::establish(&url)
        .with_context(cx.clone())
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    let one = select_one_async(&mut conn).await;
    assert_eq!(one, 1);
    // Nothing listens on port 1.
    let refused = "postgres://postgres:hunter2@127.0.0.1:1/test";
    let err = AsyncPgConnection::establish(refused)
        .with_context(cx.clone())
        .await
        .err()
        .expect("refused");
    cx.span().end();
    drop(conn);

    let pg = vec![
        kv("db.system.name", "postgresql"),
        kv("db.namespace", "test"),
        kv("server.address", "127.0.0.1"),
    ];
    // diesel-async runs its two session settings at once while connecting (one overlapping the
    // other): both recorded as they finished, under the caller.
    assert_eq!(
        names(&t),
        ["SET", "SET", "connect test", "SELECT", "connect test", "startup"],
        "{err:?}"
    );
    let startup = t.span("startup");
    let spans = t.spans();
    let mut sets: Vec<String> = spans[..2]
        .iter()
        .map(|s| {
            s.assert_status(&Status::Unset).assert_child_of(&startup);
            s.attr("db.query.text").unwrap().to_string()
        })
        .collect();
    sets.sort();
    assert_eq!(sets, ["SET CLIENT_ENCODING TO ?", "SET TIME ZONE ?"]);
    spans[2]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_child_of(&startup)
        .assert_attrs(&pg);
    spans[3].assert_root().assert_attrs(&with(
        pg.clone(),
        &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT $1")],
    ));
    // The refused connection: `server.port` (not the default), no credentials. diesel-async's
    // PostgreSQL connection reports no `FinishEstablishConnection` when the TCP connection
    // fails, so the cause is unknown: `_OTHER` (MySQL below reports it).
    spans[4]
        .assert_status(&Status::error(""))
        .assert_child_of(&startup)
        .assert_attrs(&with(pg, &[kv("server.port", 1i64), kv("error.type", "_OTHER")]));
    for s in &spans {
        for a in &s.attributes {
            assert!(!a.value.as_str().contains("hunter2"), "{} = {:?}", a.key, a.value);
        }
    }
}

#[tokio::test]
async fn async_mysql_connections_get_the_default_and_setup_queries_are_not_recorded() {
    let _turn = TURN.lock().await;
    let t = TestTelemetry::new();
    install(&t, SqlOptions::new().with_system_name("mariadb"));
    let url = mysql_url();
    let mut conn = AsyncMysqlConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", e));
    let one = select_one_async(&mut conn).await;
    assert_eq!(one, 1);
    let err = AsyncMysqlConnection::establish("mysql://root:hunter2@127.0.0.1:1/test")
        .await
        .err()
        .expect("refused");

    let maria = vec![
        kv("db.system.name", "mariadb"),
        kv("db.namespace", "test"),
        kv("server.address", "127.0.0.1"),
    ];
    // The driver's session settings run on an instance that never saw the URL: not recorded.
    assert_eq!(names(&t), ["connect test", "SELECT", "connect test"], "{err:?}");
    let spans = t.spans();
    spans[0]
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&maria);
    spans[1].assert_attrs(&with(
        maria.clone(),
        &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT ?")],
    ));
    spans[2].assert_status(&Status::error("")).assert_attrs(&with(
        maria,
        &[kv("server.port", 1i64), kv("error.type", "connection_refused")],
    ));
}

#[test]
fn require_parent_span_applies_to_connects_too() {
    let _turn = TURN.blocking_lock();
    let t = TestTelemetry::new();
    install(&t, SqlOptions::new().with_require_parent_span(true));
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    let _ = select_one(&mut conn);
    assert!(t.spans().is_empty(), "{:?}", names(&t));
    assert_eq!(
        t.metrics()
            .assert_histogram_point(
                "db.client.operation.duration",
                &[
                    kv("db.system.name", "sqlite"),
                    kv("db.namespace", ":memory:"),
                    kv("db.query.summary", "SELECT"),
                ],
            )
            .count,
        1
    );
}
