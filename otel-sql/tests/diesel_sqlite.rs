//! Diesel's synchronous SQLite connection in memory (bundled libsqlite3), instrumented per
//! connection: exact spans, attributes, parents, statuses and duration points.
#![cfg(feature = "diesel")]

use diesel::connection::{Connection as _, SimpleConnection as _};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::{QueryInfo, QueryTextMode, SqlOptions};

diesel::table! {
    users (id) {
        id -> Integer,
        name -> Text,
    }
}

const URL: &str = ":memory:";

/// An in-memory database with two users, then instrumented (the setup is not recorded).
fn setup(t: &TestTelemetry, options: SqlOptions) -> SqliteConnection {
    let mut conn = SqliteConnection::establish(URL).expect("in-memory SQLite");
    conn.batch_execute(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
         INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob');",
    )
    .expect("schema");
    let diesel = DieselInstrumentation::new(options.with_instrumentation(t.instrumentation()));
    conn.set_instrumentation(diesel.connection(URL));
    conn
}

fn base() -> Vec<KeyValue> {
    vec![kv("db.system.name", "sqlite"), kv("db.namespace", ":memory:")]
}

fn with(mut attrs: Vec<KeyValue>, more: &[KeyValue]) -> Vec<KeyValue> {
    attrs.extend(more.iter().cloned());
    attrs
}

fn names(t: &TestTelemetry) -> Vec<String> {
    t.spans().iter().map(|s| s.name.to_string()).collect()
}

/// No exported attribute value (span or metric) contains `needle`.
#[track_caller]
fn assert_never_exported(t: &TestTelemetry, needle: &str) {
    for s in t.spans() {
        assert!(!s.name.contains(needle), "span name {:?}", s.name);
        for a in &s.attributes {
            assert!(!a.value.as_str().contains(needle), "{} = {:?}", a.key, a.value);
        }
        if let Status::Error { description } = &s.status {
            assert!(!description.contains(needle), "status {description:?}");
        }
    }
    let m = t.metrics();
    for p in m.histogram("db.client.operation.duration") {
        for a in &p.attributes {
            assert!(!a.value.as_str().contains(needle), "metric {} = {:?}", a.key, a.value);
        }
    }
}

#[test]
fn dsl_select_records_one_client_span_with_exact_attributes_and_no_bind_values() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    let rows: Vec<(i32, String)> = users::table
        .filter(users::name.eq("alice"))
        .select((users::id, users::name))
        .load(&mut conn)
        .expect("select");
    assert_eq!(rows, vec![(1, "alice".to_owned())]);

    // Diesel quotes identifiers; the summary keeps them as written.
    assert_eq!(names(&t), ["SELECT `users`"]);
    t.span("SELECT `users`")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "SELECT `users`"),
                kv(
                    "db.query.text",
                    "SELECT `users`.`id`, `users`.`name` FROM `users` WHERE (`users`.`name` = ?)",
                ),
            ],
        ));
    // Diesel's debug text ends in `-- binds: ["alice"]`: never exported.
    assert_never_exported(&t, "alice");
    assert_never_exported(&t, "binds");

    let m = t.metrics();
    m.assert_metric(
        "db.client.operation.duration",
        "s",
        "Duration of database client operations.",
    );
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", "SELECT `users`")]),
    );
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]);
    assert_eq!(m.histogram("db.client.operation.duration").len(), 1);
}

#[test]
fn insert_update_delete_and_first_are_one_span_each() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    let n = diesel::insert_into(users::table)
        .values((users::id.eq(3), users::name.eq("carol")))
        .execute(&mut conn)
        .expect("insert");
    assert_eq!(n, 1);
    diesel::update(users::table.find(3))
        .set(users::name.eq("dave"))
        .execute(&mut conn)
        .expect("update");
    let name: String = users::table
        .find(3)
        .select(users::name)
        .first(&mut conn)
        .expect("first");
    assert_eq!(name, "dave");
    diesel::delete(users::table.filter(users::id.eq(3)))
        .execute(&mut conn)
        .expect("delete");

    assert_eq!(
        names(&t),
        ["INSERT `users`", "UPDATE `users`", "SELECT `users`", "DELETE `users`"]
    );
    for (name, text) in [
        ("INSERT `users`", "INSERT INTO `users` (`id`, `name`) VALUES (?, ?)"),
        (
            "UPDATE `users`",
            "UPDATE `users` SET `name` = ? WHERE (`users`.`id` = ?)",
        ),
        (
            "SELECT `users`",
            "SELECT `users`.`name` FROM `users` WHERE (`users`.`id` = ?) LIMIT ?",
        ),
        ("DELETE `users`", "DELETE FROM `users` WHERE (`users`.`id` = ?)"),
    ] {
        t.span(name)
            .assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset)
            .assert_attrs(&with(
                base(),
                &[kv("db.query.summary", name), kv("db.query.text", text)],
            ));
    }
    for secret in ["carol", "dave"] {
        assert_never_exported(&t, secret);
    }
    let m = t.metrics();
    for name in ["INSERT `users`", "UPDATE `users`", "SELECT `users`", "DELETE `users`"] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.query.summary", name)]),
        );
        assert_eq!(p.count, 1, "{name}");
    }
}

#[test]
fn sql_without_placeholders_is_sanitized_and_raw_batches_are_recorded() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        id: i32,
    }
    let rows: Vec<Row> = diesel::sql_query("SELECT id FROM users WHERE name = 'alice' OR id = 2 ORDER BY id")
        .load(&mut conn)
        .expect("sql_query");
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2]);
    // With a placeholder: recorded as written (what is bound is not).
    let rows: Vec<Row> = diesel::sql_query("SELECT id FROM users WHERE name = ?")
        .bind::<Text, _>("bob")
        .load(&mut conn)
        .expect("sql_query with bind");
    assert_eq!(rows.len(), 1);
    conn.batch_execute("UPDATE users SET name = 'eve' WHERE id = 2")
        .expect("batch");

    assert_eq!(names(&t), ["SELECT users", "SELECT users", "UPDATE users"]);
    let spans = t.spans();
    spans[0].assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "SELECT users"),
            kv(
                "db.query.text",
                "SELECT id FROM users WHERE name = ? OR id = ? ORDER BY id",
            ),
        ],
    ));
    spans[1].assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "SELECT users"),
            kv("db.query.text", "SELECT id FROM users WHERE name = ?"),
        ],
    ));
    spans[2].assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "UPDATE users"),
            kv("db.query.text", "UPDATE users SET name = ? WHERE id = ?"),
        ],
    ));
    for secret in ["alice", "bob", "eve"] {
        assert_never_exported(&t, secret);
    }
}

#[test]
fn failures_record_error_type_and_status_without_the_message() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    let err = diesel::insert_into(users::table)
        .values((users::id.eq(9), users::name.eq("alice")))
        .execute(&mut conn)
        .expect_err("duplicate name");
    assert!(matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    ));
    let err = diesel::sql_query("SELEC nope")
        .execute(&mut conn)
        .expect_err("syntax error");
    assert!(matches!(err, diesel::result::Error::DatabaseError(..)));

    assert_eq!(names(&t), ["INSERT `users`", ":memory:"]);
    // Diesel gives SQLite errors no code: the kind is the error.type, no status code.
    t.span("INSERT `users`")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "INSERT `users`"),
                kv("db.query.text", "INSERT INTO `users` (`id`, `name`) VALUES (?, ?)"),
                kv("error.type", "unique_violation"),
            ],
        ));
    // No summary for unparseable text: named by the namespace.
    t.span(":memory:").assert_status(&Status::error("")).assert_attrs(&with(
        base(),
        &[kv("db.query.text", "SELEC nope"), kv("error.type", "_OTHER")],
    ));
    let m = t.metrics();
    let p = m.assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", "INSERT `users`"),
                kv("error.type", "unique_violation"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
    assert_never_exported(&t, "UNIQUE constraint");
}

#[test]
fn transactions_record_begin_commit_rollback_and_savepoints_under_the_caller() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("POST /users"));
    {
        let _guard = cx.clone().attach();
        conn.transaction(|conn| {
            diesel::insert_into(users::table)
                .values((users::id.eq(10), users::name.eq("frank")))
                .execute(conn)?;
            // Nested: a savepoint, rolled back.
            let nested: Result<(), diesel::result::Error> = conn.transaction(|conn| {
                diesel::delete(users::table.find(10)).execute(conn)?;
                Err(diesel::result::Error::RollbackTransaction)
            });
            assert!(nested.is_err());
            Ok::<_, diesel::result::Error>(())
        })
        .expect("transaction");
        let failed: Result<(), diesel::result::Error> = conn.transaction(|conn| {
            diesel::delete(users::table.find(10)).execute(conn)?;
            Err(diesel::result::Error::RollbackTransaction)
        });
        assert!(failed.is_err());
    }
    cx.span().end();
    let n: i64 = users::table
        .filter(users::id.eq(10))
        .count()
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(n, 1, "the commit kept the row, both rollbacks restored it");

    assert_eq!(
        names(&t),
        [
            "BEGIN :memory:",
            "INSERT `users`",
            "BEGIN :memory:",
            "DELETE `users`",
            "ROLLBACK :memory:",
            "COMMIT :memory:",
            "BEGIN :memory:",
            "DELETE `users`",
            "ROLLBACK :memory:",
            "POST /users",
            "SELECT `users`",
        ]
    );
    let parent = t.span("POST /users");
    let spans = t.spans();
    for s in spans
        .iter()
        .filter(|s| s.name != "POST /users" && s.name != "SELECT `users`")
    {
        s.assert_child_of(&parent)
            .assert_kind(SpanKind::Client)
            .assert_status(&Status::Unset);
    }
    t.span("SELECT `users`").assert_root();
    for (name, op) in [
        ("BEGIN :memory:", "BEGIN"),
        ("COMMIT :memory:", "COMMIT"),
        ("ROLLBACK :memory:", "ROLLBACK"),
    ] {
        for s in t.spans_named(name) {
            s.assert_attrs(&with(base(), &[kv("db.operation.name", op)]));
        }
    }
    let m = t.metrics();
    for (op, count) in [("BEGIN", 3), ("COMMIT", 1), ("ROLLBACK", 2)] {
        let p = m.assert_histogram_point(
            "db.client.operation.duration",
            &with(base(), &[kv("db.operation.name", op)]),
        );
        assert_eq!(p.count, count, "{op}");
    }
}

#[test]
fn query_info_in_the_current_context_overrides_the_summary() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    {
        let _guard = Context::current()
            .with_value(
                QueryInfo::new()
                    .summary("COUNT users")
                    .operation("SELECT")
                    .collection("users"),
            )
            .attach();
        let n: i64 = users::table.count().get_result(&mut conn).unwrap();
        assert_eq!(n, 2);
    }
    t.span("COUNT users").assert_attrs(&with(
        base(),
        &[
            kv("db.query.summary", "COUNT users"),
            kv("db.operation.name", "SELECT"),
            kv("db.collection.name", "users"),
            kv("db.query.text", "SELECT COUNT(*) FROM `users`"),
        ],
    ));
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(
            base(),
            &[
                kv("db.query.summary", "COUNT users"),
                kv("db.operation.name", "SELECT"),
                kv("db.collection.name", "users"),
            ],
        ),
    );
    assert_eq!(p.count, 1);
}

#[test]
fn options_apply_sanitized_text_and_require_parent_span() {
    let t = TestTelemetry::new();
    let mut conn = setup(
        &t,
        SqlOptions::new()
            .with_query_text(QueryTextMode::Sanitized)
            .with_require_parent_span(true),
    );
    // No parent: no span, the duration still recorded.
    let _: Vec<i32> = users::table.select(users::id).load(&mut conn).unwrap();
    assert!(t.spans().is_empty(), "orphan spans exported: {:?}", names(&t));
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", "SELECT `users`")]),
    );
    assert_eq!(p.count, 1);

    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    {
        let _guard = cx.clone().attach();
        let _: Vec<i32> = diesel::sql_query("SELECT id FROM users WHERE id = 1 AND name = ?")
            .bind::<Text, _>("alice")
            .load::<IdRow>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
    }
    cx.span().end();
    t.span("SELECT users")
        .assert_child_of(&t.span("job"))
        .assert_attrs(&with(
            base(),
            &[
                kv("db.query.summary", "SELECT users"),
                // Sanitized even though it has a placeholder: the literal 1 is hidden.
                kv("db.query.text", "SELECT id FROM users WHERE id = ? AND name = ?"),
            ],
        ));
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Integer)]
    id: i32,
}

#[test]
fn a_row_iterator_is_one_span_ended_when_the_iteration_ends() {
    let t = TestTelemetry::new();
    let mut conn = setup(&t, SqlOptions::new());
    let mut ids = Vec::new();
    for row in users::table
        .select(users::id)
        .order(users::id)
        .load_iter::<i32, _>(&mut conn)
        .unwrap()
    {
        ids.push(row.unwrap());
        // Not ended while rows are read.
        assert!(t.spans().is_empty());
    }
    assert_eq!(ids, [1, 2]);
    assert_eq!(names(&t), ["SELECT `users`"]);
}

#[test]
fn connections_to_one_target_share_its_state_and_keep_their_own_spans() {
    let t = TestTelemetry::new();
    let diesel = DieselInstrumentation::new(SqlOptions::new().with_instrumentation(t.instrumentation()));
    let mut a = SqliteConnection::establish(URL).unwrap();
    let mut b = SqliteConnection::establish(URL).unwrap();
    a.set_instrumentation(diesel.connection(URL));
    b.set_instrumentation(diesel.connection(URL));
    for conn in [&mut a, &mut b] {
        let one: i32 = diesel::select(1.into_sql::<Integer>()).get_result(conn).unwrap();
        assert_eq!(one, 1);
    }
    assert_eq!(names(&t), ["SELECT", "SELECT"]);
    for s in t.spans() {
        s.assert_root().assert_attrs(&with(
            base(),
            &[kv("db.query.summary", "SELECT"), kv("db.query.text", "SELECT ?")],
        ));
    }
    let p = t.metrics().assert_histogram_point(
        "db.client.operation.duration",
        &with(base(), &[kv("db.query.summary", "SELECT")]),
    );
    assert_eq!(p.count, 2, "one series for both connections");
}
