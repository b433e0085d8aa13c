//! Secrets corpus through otelrs-sql's SeaORM adapter (issue 18), default options: entity
//! inserts, finds, updates and deletes binding the secrets (SeaORM keeps them in
//! `Statement::values`, and `Statement::to_string()` would inline them: they must never reach
//! telemetry), raw statements carrying them as literals, in comments and `IN` lists, statements
//! built with bound values, failing statements whose driver message quotes them, and a
//! transaction; on SQLite in memory, a real PostgreSQL (`DATABASE_URL`) and a real MariaDB/MySQL
//! (`MYSQL_URL`), the servers reached with a password in their URL. None of the secrets may
//! appear in any exported span name, attribute, status, event or metric attribute. An
//! unreachable service fails its test with the URL tried and how to start it.

use otelrs_core::testing::TestTelemetry;
use otelrs_sql::sea_orm::InstrumentedDatabaseConnection;
use otelrs_sql::SqlOptions;
use reliability::assert_no_secrets;
use reliability::secrets::{CARD, CARD_SPACED, EMAIL, NEW_PASSWORD, PASSWORD, SECRETS, TOKEN};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, Statement, TransactionTrait};

mod account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        #[sea_orm(unique)]
        pub email: Option<String>,
        pub password: Option<String>,
        pub card: Option<String>,
        pub token: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Fails the test with a message naming the URL and how to start the service.
#[track_caller]
fn unreachable_service(url: &str, service: &str, variable: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach {service} at {url}: {err}\n\
         start it with `docker compose up -d {service}` (or set {variable} to a reachable server)"
    )
}

/// The URL with `PASSWORD` as the user's password (the servers trust local connections, so it
/// is accepted and ignored): the adapter reads the pool's connect options and must not export
/// it.
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (user, host) = rest.split_once('@').unwrap_or(("root", rest));
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:{PASSWORD}@{host}")
        }
        None => url.to_owned(),
    }
}

/// A SeaORM connection to `url` (one pooled connection: the session's temporary table is seen by
/// every statement) with the `accounts` table created by `schema`, instrumented.
async fn connect(
    t: &TestTelemetry,
    url: &str,
    service: &str,
    variable: &str,
    schema: &str,
) -> InstrumentedDatabaseConnection {
    let db = Database::connect(
        ConnectOptions::new(url)
            .max_connections(1)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .unwrap_or_else(|e| unreachable_service(url, service, variable, e));
    db.execute_unprepared(schema).await.expect("schema");
    InstrumentedDatabaseConnection::new(db, SqlOptions::new().with_instrumentation(t.instrumentation()))
}

/// Literal statements of every dialect (string and numeric literals, comments, `IN` lists).
fn literal_corpus() -> Vec<String> {
    vec![
        format!(
            "INSERT INTO accounts (id, email, password, card, token) \
             VALUES (1, '{EMAIL}', '{PASSWORD}', '{CARD_SPACED}', '{TOKEN}')"
        ),
        format!("SELECT id FROM accounts WHERE email = '{EMAIL}' AND password = '{PASSWORD}'"),
        format!("UPDATE accounts SET password = '{NEW_PASSWORD}' WHERE email = '{EMAIL}'"),
        format!("SELECT id FROM accounts WHERE card = '{CARD_SPACED}' OR id = {CARD}"),
        format!("SELECT id FROM accounts WHERE token IN ('{TOKEN}', 'tok_live_other') OR id IN ({CARD}, 2)"),
        format!("SELECT id FROM accounts WHERE email LIKE '%{EMAIL}%' -- lookup {EMAIL}"),
        format!("SELECT id FROM accounts /* api key {TOKEN} */ WHERE token = '{TOKEN}'"),
        format!("SELECT id FROM accounts WHERE password = 'it''s {PASSWORD}'"),
        format!("DELETE FROM accounts WHERE token = '{TOKEN}' AND card <> '{CARD}'"),
    ]
}

/// Statements that fail, the driver's message quoting the data.
fn failing_corpus() -> Vec<String> {
    vec![
        format!("INSERT INTO no_such_table_{} VALUES ('{PASSWORD}')", std::process::id()),
        format!("INSERT INTO accounts (id, email) VALUES (10, '{EMAIL}'), (10, '{EMAIL}')"),
        format!("SELECT * FROM WHERE password = '{PASSWORD}' AND card = '{CARD}'"),
        format!("SELECT '{TOKEN}' FROM"),
    ]
}

fn secret_account(id: i32) -> account::ActiveModel {
    account::ActiveModel {
        id: Set(id),
        email: Set(Some(EMAIL.to_owned())),
        password: Set(Some(PASSWORD.to_owned())),
        card: Set(Some(CARD_SPACED.to_owned())),
        token: Set(Some(TOKEN.to_owned())),
    }
}

/// SeaORM's entity API and bound statements carrying every secret; how many statements ran.
async fn run_entities(db: &InstrumentedDatabaseConnection) -> usize {
    // Without RETURNING (SQLite without SeaORM's `sqlite-use-returning-for-3_35`, MySQL), an
    // insert reads the row back with a second statement.
    let insert = if db.support_returning() { 1 } else { 2 };
    let mut n = 0;
    let inserted = secret_account(5).insert(db).await.expect("insert");
    assert_eq!(inserted.password.as_deref(), Some(PASSWORD));
    n += insert;
    let found = account::Entity::find()
        .filter(account::Column::Email.eq(EMAIL))
        .filter(account::Column::Password.eq(PASSWORD))
        .filter(account::Column::Card.is_in([CARD, CARD_SPACED]))
        .all(db)
        .await
        .expect("find");
    assert_eq!(found.len(), 1);
    n += 1;
    let by_token = account::Entity::find()
        .filter(account::Column::Token.eq(TOKEN))
        .one(db)
        .await
        .expect("find one");
    assert!(by_token.is_some());
    n += 1;
    let updated = account::Entity::update_many()
        .col_expr(account::Column::Password, Expr::value(NEW_PASSWORD))
        .filter(account::Column::Token.eq(TOKEN))
        .exec(db)
        .await
        .expect("update");
    assert_eq!(updated.rows_affected, 1);
    n += 1;
    let mut model: account::ActiveModel = inserted.into();
    model.token = Set(Some(format!("{TOKEN}-2")));
    model.update(db).await.expect("update model");
    n += insert;
    // A statement with bound values: `Statement::to_string()` would inline them.
    let backend = ConnectionTrait::get_database_backend(db);
    let sql = match backend {
        sea_orm::DbBackend::Postgres => "SELECT id FROM accounts WHERE email = $1 OR password = $2",
        _ => "SELECT id FROM accounts WHERE email = ? OR password = ?",
    };
    let bound = Statement::from_sql_and_values(backend, sql, [EMAIL.into(), PASSWORD.into()]);
    assert!(bound.to_string().contains(PASSWORD));
    assert_eq!(db.query_all_raw(bound).await.expect("bound select").len(), 1);
    n += 1;
    // The secret duplicates a unique value: the driver's message quotes it.
    secret_account(6).insert(db).await.expect_err("duplicate e-mail");
    n += 1;
    // A transaction carrying them too.
    db.transaction::<_, _, DbErr>(|tx| {
        Box::pin(async move {
            account::Entity::update_many()
                .col_expr(account::Column::Card, Expr::value(CARD))
                .filter(account::Column::Email.eq(EMAIL))
                .exec(tx)
                .await?;
            Ok(())
        })
    })
    .await
    .expect("transaction");
    n += 3;
    account::Entity::delete_many()
        .filter(account::Column::Email.eq(EMAIL))
        .exec(db)
        .await
        .expect("delete");
    n + 1
}

/// `ok` run as unprepared statements and `failing` expected to fail; how many ran.
async fn run_raw(db: &InstrumentedDatabaseConnection, ok: &[String], failing: &[String]) -> usize {
    for sql in ok {
        db.execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // The same literals through `Statement::from_string` (SeaORM's raw statement, no values).
    let backend = ConnectionTrait::get_database_backend(db);
    let selects: Vec<&String> = ok.iter().filter(|s| s.starts_with("SELECT")).collect();
    for sql in &selects {
        db.query_all_raw(Statement::from_string(backend, sql.as_str()))
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    for sql in failing {
        assert!(db.execute_unprepared(sql).await.is_err(), "{sql} must fail");
    }
    ok.len() + selects.len() + failing.len()
}

#[tokio::test]
async fn sea_orm_sqlite_secrets_never_exported() {
    let t = TestTelemetry::new();
    let db = connect(
        &t,
        "sqlite::memory:",
        "sqlite",
        "-",
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)",
    )
    .await;
    let mut n = run_entities(&db).await;
    let mut ok = literal_corpus();
    // SQLite runs a double-quoted string as a string where no such column exists.
    ok.push(format!("SELECT id FROM accounts WHERE password = \"{PASSWORD}\""));
    n += run_raw(&db, &ok, &failing_corpus()).await;
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

#[tokio::test]
async fn sea_orm_postgres_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let db = connect(
        &t,
        &with_password(&url),
        "postgres",
        "DATABASE_URL",
        "CREATE TEMP TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)",
    )
    .await;
    let mut n = run_entities(&db).await;
    let mut ok = literal_corpus();
    ok.extend([
        format!("SELECT id FROM accounts WHERE password = E'{PASSWORD}\\n' OR email = E'o\\'{EMAIL}'"),
        format!("SELECT $tag${PASSWORD} for {EMAIL}$tag$ AS a, $${TOKEN}$$ AS b"),
        format!("SELECT text '{EMAIL}', '{CARD}'::bigint, U&'{TOKEN}'"),
    ]);
    let mut failing = failing_corpus();
    failing.extend([format!("SELECT '{EMAIL}'::int"), format!("SELECT $x${PASSWORD}")]);
    n += run_raw(&db, &ok, &failing).await;
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

#[tokio::test]
async fn sea_orm_mariadb_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    // MariaDB's root accepts no password over TCP here: connect with the URL as given, and let
    // the adapter read a pool whose options carry the password.
    let db = Database::connect(
        ConnectOptions::new(&url)
            .max_connections(1)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await
    .unwrap_or_else(|e| unreachable_service(&url, "mariadb", "MYSQL_URL", e));
    let pool = db.get_mysql_connection_pool().clone();
    let with_secret = pool.connect_options().as_ref().clone().password(PASSWORD);
    pool.set_connect_options(with_secret);
    db.execute_unprepared(
        "CREATE TEMPORARY TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(100) UNIQUE, \
         password VARCHAR(100), card VARCHAR(40), token VARCHAR(100))",
    )
    .await
    .expect("schema");
    let db = InstrumentedDatabaseConnection::connect(db, SqlOptions::new().with_instrumentation(t.instrumentation()))
        .await
        .expect("MariaDB detection");
    let mut n = run_entities(&db).await;
    let mut ok = literal_corpus();
    ok.extend([
        format!("SELECT id FROM accounts WHERE email = '{EMAIL}' # lookup {EMAIL}"),
        format!("SELECT id FROM accounts WHERE password = \"{PASSWORD}\" OR email = \"{EMAIL}\""),
        format!("SELECT id FROM accounts WHERE password = 'o\\'{PASSWORD}'"),
        format!(
            "SELECT X'{}' AS b, 0x{} AS h, {CARD} AS n",
            "41".repeat(8),
            "42".repeat(8)
        ),
    ]);
    n += run_raw(&db, &ok, &failing_corpus()).await;
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}
