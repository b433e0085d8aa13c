//! SeaORM over the real PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`), through SeaORM's own API (entity insert / update /
//! find / delete, transactions with a configuration, raw statements): exact spans (name, kind,
//! status, parent, typed attributes) and `db.client.operation.duration` points, errors with
//! their SQLSTATE, a dropped future, an unreachable server. An unreachable test server fails the
//! test with the URL and how to start it.
#![cfg(all(feature = "sea-orm", feature = "postgres"))]

mod common;

use std::time::Duration;

use common::{postgres_url, unreachable_service};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
use otelrs_sql::SqlOptions;
use sea_orm::entity::prelude::*;
use sea_orm::{
    AccessMode, ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, IsolationLevel, TransactionTrait,
};
use sqlx::postgres::PgConnectOptions;

mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

const INSERT: &str = r#"INSERT INTO "accounts" ("name") VALUES ($1) RETURNING "id", "name""#;
const SELECT_BY_ID: &str =
    r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts" WHERE "accounts"."id" = $1 LIMIT $2"#;
const SELECT_BY_NAME: &str =
    r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts" WHERE "accounts"."name" = $1"#;
const UPDATE: &str = r#"UPDATE "accounts" SET "name" = $1 WHERE "accounts"."id" = $2 RETURNING "id", "name""#;
const DELETE: &str = r#"DELETE FROM "accounts" WHERE "accounts"."id" = $1"#;

/// A SeaORM connection (one pooled connection, so the session's temporary `accounts` table is
/// seen by every statement), instrumented.
async fn setup(t: &TestTelemetry, options: SqlOptions) -> InstrumentedDatabaseConnection {
    let url = postgres_url();
    let db = Database::connect(
        ConnectOptions::new(&url)
            .max_connections(1)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .unwrap_or_else(|e| unreachable_service(&url, "postgres", e));
    db.execute_unprepared("CREATE TEMP TABLE accounts (id SERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .await
        .expect("schema");
    InstrumentedDatabaseConnection::new(db, options.with_instrumentation(t.instrumentation()))
}

/// The server attributes expected from the URL (port only when not 5432).
fn base() -> Vec<KeyValue> {
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

fn namespace() -> String {
    let opts: PgConnectOptions = postgres_url().parse().expect("DATABASE_URL");
    opts.get_database().unwrap_or(opts.get_username()).to_owned()
}

fn with(mut attrs: Vec<KeyValue>, more: &[KeyValue]) -> Vec<KeyValue> {
    attrs.extend(more.iter().cloned());
    attrs
}

/// The attributes of a successful statement.
fn statement(summary: &str, text: &str, rows: i64) -> Vec<KeyValue> {
    with(
        base(),
        &[
            kv("db.query.summary", summary.to_owned()),
            kv("db.query.text", text.to_owned()),
            kv("db.response.returned_rows", rows),
        ],
    )
}

fn names(t: &TestTelemetry) -> Vec<String> {
    t.spans().iter().map(|s| s.name.to_string()).collect()
}

fn new_account(name: &str) -> account::ActiveModel {
    account::ActiveModel {
        name: Set(name.to_owned()),
        ..Default::default()
    }
}

/// No exported attribute carries one of `values`.
#[track_caller]
fn assert_values_not_exported(t: &TestTelemetry, values: &[&str]) {
    for s in t.spans() {
        for a in &s.attributes {
            for v in values {
                assert!(!a.value.as_str().contains(v), "{}: {} = {:?}", s.name, a.key, a.value);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_crud_records_exact_spans_with_server_attributes_under_the_caller() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("PUT /accounts"));
    async {
        // PostgreSQL: INSERT and UPDATE read the row back with RETURNING, in one statement.
        let alice = new_account("alice").insert(&db).await.expect("insert");
        let found = account::Entity::find_by_id(alice.id)
            .one(&db)
            .await
            .expect("find by id");
        assert_eq!(found.as_ref(), Some(&alice));
        let missing = account::Entity::find()
            .filter(account::Column::Name.eq("nobody"))
            .all(&db)
            .await
            .expect("find by name");
        assert!(missing.is_empty());
        let mut renamed: account::ActiveModel = alice.clone().into();
        renamed.name = Set("bob".to_owned());
        assert_eq!(renamed.update(&db).await.expect("update").name, "bob");
        let deleted = account::Entity::delete_by_id(alice.id).exec(&db).await.expect("delete");
        assert_eq!(deleted.rows_affected, 1);
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    assert_eq!(
        names(&t),
        [
            r#"INSERT "accounts""#,
            r#"SELECT "accounts""#,
            r#"SELECT "accounts""#,
            r#"UPDATE "accounts""#,
            r#"DELETE "accounts""#,
            "PUT /accounts"
        ]
    );
    let parent = t.span("PUT /accounts");
    let expected = [
        statement(r#"INSERT "accounts""#, INSERT, 1),
        statement(r#"SELECT "accounts""#, SELECT_BY_ID, 1),
        statement(r#"SELECT "accounts""#, SELECT_BY_NAME, 0),
        statement(r#"UPDATE "accounts""#, UPDATE, 1),
        // `exec` runs an execute: no rows received.
        statement(r#"DELETE "accounts""#, DELETE, 0),
    ];
    for (span, attrs) in t.spans().iter().zip(&expected) {
        span.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_child_of(&parent)
            .assert_attrs(attrs);
    }
    assert_values_not_exported(&t, &["alice", "bob", "nobody"]);

    let m = t.metrics();
    for (summary, count) in [
        (r#"INSERT "accounts""#, 1),
        (r#"SELECT "accounts""#, 2),
        (r#"UPDATE "accounts""#, 1),
        (r#"DELETE "accounts""#, 1),
    ] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.query.summary", summary)]),
        );
        assert_eq!(p.count, count, "{summary}");
    }
}

#[tokio::test]
async fn errors_record_the_sqlstate_and_never_the_message_or_values() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    new_account("alice").insert(&db).await.expect("first insert");
    t.reset();
    let err = new_account("alice").insert(&db).await.expect_err("duplicate name");
    assert!(
        matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))),
        "SeaORM's error is returned unchanged: {err:?}"
    );
    let err = db.execute_unprepared("SELEC 'alice'").await.expect_err("syntax error");
    assert!(matches!(err, DbErr::Exec(_)), "{err:?}");

    assert_eq!(names(&t), [r#"INSERT "accounts""#, namespace().as_str()]);
    let spans = t.spans();
    spans[0]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "accounts""#),
                kv("db.query.text", INSERT),
                kv("db.response.status_code", "23505"),
                kv("error.type", "23505"),
            ],
        ));
    // No summary for what is not SQL: named after the namespace, the literal sanitized.
    spans[1]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.text", "SELEC ?"),
                kv("db.response.status_code", "42601"),
                kv("error.type", "42601"),
            ],
        ));
    assert_values_not_exported(&t, &["alice", "duplicate", "syntax"]);
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "accounts""#),
                kv("db.response.status_code", "23505"),
                kv("error.type", "23505"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[kv("db.response.status_code", "42601"), kv("error.type", "42601")],
        ),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn transactions_with_a_configuration_record_begin_commit_and_rollback() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    async {
        // BEGIN and SeaORM's `SET TRANSACTION ISOLATION LEVEL SERIALIZABLE` are one BEGIN.
        db.transaction_with_config::<_, _, DbErr>(
            |tx| {
                Box::pin(async move {
                    new_account("carol").insert(tx).await?;
                    Ok(())
                })
            },
            Some(IsolationLevel::Serializable),
            None,
        )
        .await
        .expect("commit");
        // A failing statement (a duplicate name: 23505), then a rollback.
        let tx = db
            .begin_with_config(None, Some(AccessMode::ReadWrite))
            .await
            .expect("begin read write");
        let err = new_account("carol").insert(&tx).await.expect_err("duplicate name");
        assert!(matches!(err, DbErr::Query(_)), "{err:?}");
        tx.rollback().await.expect("rollback");
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    let ns = namespace();
    let (begin, commit, rollback) = (format!("BEGIN {ns}"), format!("COMMIT {ns}"), format!("ROLLBACK {ns}"));
    assert_eq!(
        names(&t),
        [
            begin.as_str(),
            r#"INSERT "accounts""#,
            commit.as_str(),
            begin.as_str(),
            r#"INSERT "accounts""#,
            rollback.as_str(),
            "job"
        ]
    );
    let parent = t.span("job");
    for (name, op) in [(&begin, "BEGIN"), (&commit, "COMMIT"), (&rollback, "ROLLBACK")] {
        for s in t.spans_named(name) {
            s.assert_kind(SpanKind::Client)
                .assert_status(&Status::Unset)
                .assert_child_of(&parent)
                .assert_attrs(&with(base(), &[kv("db.operation.name", op)]));
        }
    }
    let spans = t.spans();
    spans[1]
        .assert_status(&Status::Unset)
        .assert_child_of(&parent)
        .assert_attrs(&statement(r#"INSERT "accounts""#, INSERT, 1));
    spans[4]
        .assert_status(&Status::error(""))
        .assert_child_of(&parent)
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "accounts""#),
                kv("db.query.text", INSERT),
                kv("db.response.status_code", "23505"),
                kv("error.type", "23505"),
            ],
        ));
    let m = t.metrics();
    for (op, count) in [("BEGIN", 2), ("COMMIT", 1), ("ROLLBACK", 1)] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.operation.name", op)]),
        );
        assert_eq!(p.count, count, "{op}");
    }
}

#[tokio::test]
async fn a_dropped_future_is_recorded_as_cancelled() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    async {
        let slow = db.execute_unprepared("SELECT pg_sleep(0.3)");
        assert!(tokio::time::timeout(Duration::from_millis(50), slow).await.is_err());
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    assert_eq!(names(&t), ["SELECT", "job"]);
    t.span("SELECT")
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
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("error.type", "cancelled")],
        ),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn an_unreachable_server_records_its_port_and_a_pool_timeout() {
    let t = TestTelemetry::new();
    // Nothing listens on port 1: SeaORM's lazy pool never gets a connection.
    let db = Database::connect(
        ConnectOptions::new("postgres://postgres@127.0.0.1:1/test")
            .connect_lazy(true)
            .acquire_timeout(Duration::from_millis(300))
            .to_owned(),
    )
    .await
    .expect("lazy pool");
    let db = InstrumentedDatabaseConnection::new(db, SqlOptions::new().with_instrumentation(t.instrumentation()));
    let err = account::Entity::find().all(&db).await.expect_err("no server");
    assert!(matches!(err, DbErr::ConnectionAcquire(_)), "{err:?}");

    let attrs = vec![
        kv("db.system.name", "postgresql"),
        kv("db.namespace", "test"),
        kv("server.address", "127.0.0.1"),
        kv("server.port", 1i64),
    ];
    t.span(r#"SELECT "accounts""#)
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_root()
        .assert_attrs(&with(
            attrs.clone(),
            &[
                kv("db.query.summary", r#"SELECT "accounts""#),
                kv(
                    "db.query.text",
                    r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts""#,
                ),
                kv("error.type", "pool_timeout"),
            ],
        ));
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            attrs,
            &[
                kv("db.query.summary", r#"SELECT "accounts""#),
                kv("error.type", "pool_timeout"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
}
