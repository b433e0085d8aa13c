//! SeaORM over SQLite in memory, through SeaORM's own API (entity find / insert / update /
//! stream, raw statements, transactions): exact spans (name, kind, status, parent, typed
//! attributes) and `db.client.operation.duration` points.
#![cfg(all(feature = "sea-orm", feature = "sqlite"))]

use futures_util::{StreamExt as _, TryStreamExt as _};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
use otelrs_sql::{QueryInfo, QueryInfoExt, QueryTextMode, SqlOptions};
use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, Statement, TransactionTrait};

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

const INSERT: &str = r#"INSERT INTO "accounts" ("name") VALUES (?)"#;
const SELECT_BY_ID: &str =
    r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts" WHERE "accounts"."id" = ? LIMIT ?"#;
const SELECT_BY_NAME: &str = r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts" WHERE "accounts"."name" = ?"#;
const SELECT_ALL: &str = r#"SELECT "accounts"."id", "accounts"."name" FROM "accounts""#;
const UPDATE: &str = r#"UPDATE "accounts" SET "name" = ? WHERE "accounts"."id" = ?"#;

/// SeaORM's in-memory SQLite (one pooled connection) with an `accounts` table, instrumented.
async fn setup(t: &TestTelemetry, options: SqlOptions) -> InstrumentedDatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.expect("in-memory SQLite");
    db.execute_unprepared("CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        .await
        .expect("schema");
    InstrumentedDatabaseConnection::new(db, options.with_instrumentation(t.instrumentation()))
}

fn base() -> Vec<KeyValue> {
    vec![kv("db.system.name", "sqlite"), kv("db.namespace", ":memory:")]
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

#[tokio::test]
async fn entity_insert_find_and_update_record_exact_spans_under_the_caller() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("POST /accounts"));
    async {
        // SQLite without `sqlite-use-returning-for-3_35`: an INSERT, then the row read back.
        let alice = new_account("alice").insert(&db).await.expect("insert");
        assert_eq!(alice.name, "alice");
        let found = account::Entity::find_by_id(alice.id)
            .one(&db)
            .await
            .expect("find by id");
        assert_eq!(found.as_ref(), Some(&alice));
        let by_name = account::Entity::find()
            .filter(account::Column::Name.eq("alice"))
            .all(&db)
            .await
            .expect("find by name");
        assert_eq!(by_name, std::slice::from_ref(&alice));
        let mut renamed: account::ActiveModel = alice.into();
        renamed.name = Set("bob".to_owned());
        let bob = renamed.update(&db).await.expect("update");
        assert_eq!(bob.name, "bob");
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
            r#"SELECT "accounts""#,
            r#"UPDATE "accounts""#,
            r#"SELECT "accounts""#,
            "POST /accounts"
        ]
    );
    let spans = t.spans();
    let parent = t.span("POST /accounts");
    let expected = [
        statement(r#"INSERT "accounts""#, INSERT, 0),
        statement(r#"SELECT "accounts""#, SELECT_BY_ID, 1),
        statement(r#"SELECT "accounts""#, SELECT_BY_ID, 1),
        statement(r#"SELECT "accounts""#, SELECT_BY_NAME, 1),
        statement(r#"UPDATE "accounts""#, UPDATE, 0),
        statement(r#"SELECT "accounts""#, SELECT_BY_ID, 1),
    ];
    for (span, attrs) in spans.iter().zip(&expected) {
        span.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_child_of(&parent)
            .assert_attrs(attrs);
    }
    // Bound values stay in `Statement::values`: never exported.
    assert_values_not_exported(&t, &["alice", "bob"]);

    let m = t.metrics();
    m.assert_metric(
        "db.client.operation.duration",
        "s",
        "Duration of database client operations.",
    );
    for (summary, count) in [
        (r#"INSERT "accounts""#, 1),
        (r#"SELECT "accounts""#, 4),
        (r#"UPDATE "accounts""#, 1),
    ] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.query.summary", summary)]),
        );
        assert_eq!(p.count, count, "{summary}");
        assert_eq!(p.bounds, vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]);
    }
    assert_eq!(m.histogram("db.client.operation.duration").len(), 3);
}

#[tokio::test]
async fn a_failed_insert_records_the_result_code_not_the_message() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    new_account("alice").insert(&db).await.expect("first insert");
    t.reset();
    let err = new_account("alice").insert(&db).await.expect_err("duplicate name");
    // SeaORM's error is returned unchanged.
    assert!(
        matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))),
        "{err:?}"
    );

    assert_eq!(names(&t), [r#"INSERT "accounts""#]);
    // SQLITE_CONSTRAINT_UNIQUE (2067) is both status code and error type; the message, which
    // names the column, and the value are not exported.
    t.span(r#"INSERT "accounts""#)
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "accounts""#),
                kv("db.query.text", INSERT),
                kv("db.response.status_code", "2067"),
                kv("error.type", "2067"),
            ],
        ));
    assert_values_not_exported(&t, &["alice", "UNIQUE"]);
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", r#"INSERT "accounts""#),
                kv("db.response.status_code", "2067"),
                kv("error.type", "2067"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn transactions_record_begin_commit_rollback_and_dropped_transactions() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    async {
        // Committed by `transaction` when the callback returns Ok.
        db.transaction::<_, _, DbErr>(|tx| {
            Box::pin(async move {
                new_account("carol").insert(tx).await?;
                Ok(())
            })
        })
        .await
        .expect("commit");
        // Rolled back when it returns Err.
        let rolled_back = db
            .transaction_async(async |tx| {
                account::Entity::update_many()
                    .col_expr(account::Column::Name, Expr::value("dave"))
                    .exec(tx)
                    .await?;
                Err::<(), _>(DbErr::Custom("undo".to_owned()))
            })
            .await;
        assert!(matches!(rolled_back, Err(sea_orm::TransactionError::Transaction(_))));
        // A nested transaction (SeaORM's savepoint) released, then the outer one dropped without
        // commit or rollback: SeaORM queues a rollback, recorded as an instant ROLLBACK.
        let tx = db.begin().await.expect("begin");
        let nested = tx.begin().await.expect("savepoint");
        account::Entity::find().all(&nested).await.expect("select in savepoint");
        nested.commit().await.expect("release");
        drop(tx);
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();

    assert_eq!(
        names(&t),
        [
            "BEGIN :memory:",
            r#"INSERT "accounts""#,
            r#"SELECT "accounts""#,
            "COMMIT :memory:",
            "BEGIN :memory:",
            r#"UPDATE "accounts""#,
            "ROLLBACK :memory:",
            "BEGIN :memory:",
            "BEGIN :memory:",
            r#"SELECT "accounts""#,
            "COMMIT :memory:",
            "ROLLBACK :memory:",
            "job"
        ]
    );
    let parent = t.span("job");
    for (name, op) in [
        ("BEGIN :memory:", "BEGIN"),
        ("COMMIT :memory:", "COMMIT"),
        ("ROLLBACK :memory:", "ROLLBACK"),
    ] {
        for s in t.spans_named(name) {
            s.assert_kind(SpanKind::Client)
                .assert_status(&Status::Unset)
                .assert_child_of(&parent)
                .assert_attrs(&with(base(), &[kv("db.operation.name", op)]));
        }
    }
    let spans = t.spans();
    spans[5].assert_child_of(&parent).assert_attrs(&statement(
        r#"UPDATE "accounts""#,
        r#"UPDATE "accounts" SET "name" = ?"#,
        0,
    ));
    spans[9]
        .assert_child_of(&parent)
        .assert_attrs(&statement(r#"SELECT "accounts""#, SELECT_ALL, 1));
    let m = t.metrics();
    for (op, count) in [("BEGIN", 4), ("COMMIT", 2), ("ROLLBACK", 2)] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.operation.name", op)]),
        );
        assert_eq!(p.count, count, "{op}");
    }
    // The rollback really happened: only carol is there.
    let names: Vec<String> = account::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["carol"]);
}

#[tokio::test]
async fn streams_count_the_rows_read_until_they_end_or_are_dropped() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    for name in ["alice", "bob", "carol"] {
        new_account(name).insert(db.inner()).await.unwrap();
    }
    let all: Vec<account::Model> = account::Entity::find()
        .stream(&db)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    {
        // Dropped after one row: a success with the row read.
        let mut stream = account::Entity::find().stream(&db).await.unwrap();
        stream.next().await.unwrap().unwrap();
    }
    let tx = db.begin().await.unwrap();
    {
        let in_tx: Vec<account::Model> = account::Entity::find()
            .filter(account::Column::Name.eq("bob"))
            .stream(&tx)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(in_tx.len(), 1);
    }
    tx.commit().await.unwrap();

    assert_eq!(
        names(&t),
        [
            r#"SELECT "accounts""#,
            r#"SELECT "accounts""#,
            "BEGIN :memory:",
            r#"SELECT "accounts""#,
            "COMMIT :memory:"
        ]
    );
    let spans = t.spans();
    for (span, attrs) in [
        (&spans[0], statement(r#"SELECT "accounts""#, SELECT_ALL, 3)),
        (&spans[1], statement(r#"SELECT "accounts""#, SELECT_ALL, 1)),
        (&spans[3], statement(r#"SELECT "accounts""#, SELECT_BY_NAME, 1)),
    ] {
        span.assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_root()
            .assert_attrs(&attrs);
    }
}

#[tokio::test]
async fn raw_statements_never_export_literal_or_bound_values() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new()).await;
    let backend = ConnectionTrait::get_database_backend(&db);
    // Literals in SQL without placeholders: sanitized.
    db.execute_unprepared("INSERT INTO accounts (id, name) VALUES (7, 'erin')")
        .await
        .unwrap();
    db.query_one_raw(Statement::from_string(
        backend,
        "SELECT id FROM accounts WHERE name = 'erin'",
    ))
    .await
    .unwrap()
    .expect("erin");
    // Bound values: the text is `Statement::sql`, never `to_string()`, which inlines them.
    let bound = Statement::from_sql_and_values(backend, "SELECT id FROM accounts WHERE name = ?", ["erin".into()]);
    assert!(bound.to_string().contains("erin"), "SeaORM inlines values in to_string");
    let rows = db.query_all_raw(bound).await.unwrap();
    assert_eq!(rows.len(), 1);

    let spans = t.spans();
    assert_eq!(spans.len(), 3);
    spans[0].assert_attrs(&statement(
        "INSERT accounts",
        "INSERT INTO accounts (id, name) VALUES (?, ?)",
        0,
    ));
    spans[1].assert_attrs(&statement(
        "SELECT accounts",
        "SELECT id FROM accounts WHERE name = ?",
        1,
    ));
    spans[2].assert_attrs(&statement(
        "SELECT accounts",
        "SELECT id FROM accounts WHERE name = ?",
        1,
    ));
    assert_values_not_exported(&t, &["erin", "7"]);
}

#[tokio::test]
async fn query_info_overrides_and_options_apply() {
    let t = TestTelemetry::new();
    let db = setup(
        &t,
        SqlOptions::new()
            .with_query_text(QueryTextMode::Off)
            .with_returned_rows(false),
    )
    .await;
    let all = account::Entity::find()
        .all(&db)
        .with_query_info(
            QueryInfo::new()
                .summary("list accounts")
                .operation("list")
                .collection("accounts"),
        )
        .await
        .unwrap();
    assert!(all.is_empty());
    t.span("list accounts")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "list accounts"),
                kv("db.operation.name", "list"),
                kv("db.collection.name", "accounts"),
            ],
        ));
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", "list accounts"),
                kv("db.operation.name", "list"),
                kv("db.collection.name", "accounts"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
}

#[tokio::test]
async fn require_parent_span_records_no_orphan_spans_but_keeps_metrics() {
    let t = TestTelemetry::new();
    let db = setup(&t, SqlOptions::new().with_require_parent_span(true)).await;
    // No parent (a health check, a background job): no span, the duration still recorded.
    account::Entity::find().all(&db).await.unwrap();
    let tx = db.begin().await.unwrap();
    account::Entity::find().all(&tx).await.unwrap();
    tx.commit().await.unwrap();
    assert!(t.spans().is_empty(), "orphan spans exported: {:?}", names(&t));
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", r#"SELECT "accounts""#)]),
    );
    assert_eq!(p.count, 2);
    // Under a parent span: recorded as usual, as its child.
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    account::Entity::find().all(&db).with_context(cx.clone()).await.unwrap();
    cx.span().end();
    assert_eq!(names(&t), [r#"SELECT "accounts""#, "job"]);
    t.span(r#"SELECT "accounts""#)
        .assert_kind(SpanKind::Client)
        .assert_child_of(&t.span("job"))
        .assert_attrs(&statement(r#"SELECT "accounts""#, SELECT_ALL, 0));
}
