//! Secrets corpus through otelrs-sql's Diesel adapter (issue 18), default options: Diesel DSL
//! statements binding the secrets (Diesel prints a query as `{sql} -- binds: [..]`; the values
//! must never be read into telemetry), raw `sql_query` statements carrying them as literals, in
//! comments and `IN` lists, and failing statements whose driver message quotes them; on
//! Diesel's synchronous SQLite in memory, and through diesel-async on a real PostgreSQL
//! (`DATABASE_URL`) and a real MariaDB/MySQL (`MYSQL_URL`), each reached with a password in its
//! URL. None of the secrets may appear in any exported span name, attribute, status, event or
//! metric attribute. An unreachable service fails its test with the URL tried and how to start
//! it.

use diesel::sql_types::Text;
use diesel::{BoolExpressionMethods as _, Connection as _, ExpressionMethods as _, QueryDsl as _, SqliteConnection};
use otelrs_core::testing::TestTelemetry;
use otelrs_sql::diesel::DieselInstrumentation;
use otelrs_sql::SqlOptions;
use reliability::assert_no_secrets;
use reliability::secrets::{CARD, CARD_SPACED, EMAIL, NEW_PASSWORD, PASSWORD, SECRETS, TOKEN};

diesel::table! {
    accounts (id) {
        id -> Integer,
        email -> Nullable<Text>,
        password -> Nullable<Text>,
        card -> Nullable<Text>,
        token -> Nullable<Text>,
    }
}

fn instrumentation(t: &TestTelemetry) -> DieselInstrumentation {
    DieselInstrumentation::new(SqlOptions::new().with_instrumentation(t.instrumentation()))
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
/// is accepted and ignored): the adapter reads the URL and must not keep it.
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) if !rest.contains('@') => match rest.split_once('/') {
            Some((host, db)) => format!("{scheme}://root:{PASSWORD}@{host}/{db}"),
            None => format!("{scheme}://root:{PASSWORD}@{rest}"),
        },
        Some((scheme, rest)) => {
            let (user, host) = rest.split_once('@').unwrap_or(("", rest));
            let user = user.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:{PASSWORD}@{host}")
        }
        None => url.to_owned(),
    }
}

/// Literal statements of every dialect (string and numeric literals, comments, `IN` lists).
fn literal_corpus(table: &str) -> Vec<String> {
    vec![
        format!(
            "INSERT INTO {table} (id, email, password, card, token) \
             VALUES (1, '{EMAIL}', '{PASSWORD}', '{CARD_SPACED}', '{TOKEN}')"
        ),
        format!("SELECT id FROM {table} WHERE email = '{EMAIL}' AND password = '{PASSWORD}'"),
        format!("UPDATE {table} SET password = '{NEW_PASSWORD}' WHERE email = '{EMAIL}'"),
        format!("SELECT id FROM {table} WHERE card = '{CARD_SPACED}' OR id = {CARD}"),
        format!("SELECT id FROM {table} WHERE token IN ('{TOKEN}', 'tok_live_other') OR id IN ({CARD}, 2)"),
        format!("SELECT id FROM {table} WHERE email LIKE '%{EMAIL}%' -- lookup {EMAIL}"),
        format!("SELECT id FROM {table} /* api key {TOKEN} */ WHERE token = '{TOKEN}'"),
        format!("SELECT id FROM {table} WHERE password = 'it''s {PASSWORD}'"),
        format!("DELETE FROM {table} WHERE token = '{TOKEN}' AND card <> '{CARD}'"),
    ]
}

/// Statements that fail, the driver's message quoting the data.
fn failing_corpus(table: &str) -> Vec<String> {
    vec![
        format!("INSERT INTO no_such_table_{} VALUES ('{PASSWORD}')", std::process::id()),
        format!("INSERT INTO {table} (id, email) VALUES (10, '{EMAIL}'), (10, '{EMAIL}')"),
        format!("SELECT * FROM WHERE password = '{PASSWORD}' AND card = '{CARD}'"),
        format!("SELECT '{TOKEN}' FROM"),
    ]
}

/// The DSL statements binding every secret; how many ran.
macro_rules! run_dsl {
    ($conn:expr, $($await:tt)*) => {{
        diesel::insert_into(accounts::table)
            .values((
                accounts::id.eq(5),
                accounts::email.eq(EMAIL),
                accounts::password.eq(PASSWORD),
                accounts::card.eq(CARD_SPACED),
                accounts::token.eq(TOKEN),
            ))
            .execute($conn)$($await)*
            .expect("insert");
        let ids: Vec<i32> = accounts::table
            .filter(accounts::email.eq(EMAIL).and(accounts::password.eq(PASSWORD)))
            .filter(accounts::card.eq_any([CARD, CARD_SPACED]))
            .select(accounts::id)
            .load($conn)$($await)*
            .expect("select");
        assert_eq!(ids, [5]);
        diesel::update(accounts::table.filter(accounts::token.eq(TOKEN)))
            .set(accounts::password.eq(NEW_PASSWORD))
            .execute($conn)$($await)*
            .expect("update");
        // A raw statement with a bound value.
        diesel::sql_query("DELETE FROM accounts WHERE email = ?")
            .bind::<Text, _>(EMAIL)
            .execute($conn)$($await)*
            .map(|_| ())
            .unwrap_or_else(|e| eprintln!("placeholder syntax: {e}"));
        // The secret duplicates a unique value: the driver's message quotes it.
        let dup = (accounts::id.eq(6), accounts::email.eq(EMAIL));
        diesel::insert_into(accounts::table).values(dup).execute($conn)$($await)*.ok();
        diesel::insert_into(accounts::table)
            .values(dup)
            .execute($conn)$($await)*
            .expect_err("duplicate e-mail");
        diesel::delete(accounts::table).execute($conn)$($await)*.expect("delete all");
        7
    }};
}

#[test]
fn diesel_sqlite_secrets_never_exported() {
    use diesel::connection::SimpleConnection as _;
    use diesel::RunQueryDsl as _;
    let t = TestTelemetry::new();
    let mut conn = SqliteConnection::establish(":memory:").expect("in-memory SQLite");
    conn.batch_execute(
        "CREATE TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)",
    )
    .expect("schema");
    conn.set_instrumentation(instrumentation(&t).connection(":memory:"));
    let mut n = run_dsl!(&mut conn,);
    for sql in literal_corpus("accounts") {
        diesel::sql_query(&sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    n += literal_corpus("accounts").len();
    for sql in failing_corpus("accounts") {
        assert!(diesel::sql_query(&sql).execute(&mut conn).is_err(), "{sql} must fail");
    }
    n += failing_corpus("accounts").len();
    // SQLite runs a double-quoted string as a string where no such column exists.
    diesel::sql_query(format!("SELECT id FROM accounts WHERE password = \"{PASSWORD}\""))
        .execute(&mut conn)
        .expect("SQLite accepts a double-quoted string literal");
    n += 1;
    // A transaction carrying them too.
    conn.transaction(|conn| {
        diesel::update(accounts::table)
            .set(accounts::token.eq(TOKEN))
            .execute(conn)
    })
    .expect("transaction");
    n += 3;
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

#[tokio::test]
async fn diesel_async_postgres_secrets_never_exported() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
    let t = TestTelemetry::new();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let url = with_password(&url);
    let mut conn = AsyncPgConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", "DATABASE_URL", e));
    conn.batch_execute(
        "CREATE TEMP TABLE accounts (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)",
    )
    .await
    .expect("schema");
    conn.set_instrumentation(instrumentation(&t).connection(&url));
    let mut n = run_dsl!(&mut conn, .await);
    let mut ok = literal_corpus("accounts");
    ok.extend([
        format!("SELECT id FROM accounts WHERE password = E'{PASSWORD}\\n' OR email = E'o\\'{EMAIL}'"),
        format!("SELECT $tag${PASSWORD} for {EMAIL}$tag$ AS a, $${TOKEN}$$ AS b"),
        format!("SELECT text '{EMAIL}', '{CARD}'::bigint, U&'{TOKEN}'"),
    ]);
    for sql in &ok {
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    n += ok.len();
    let mut failing = failing_corpus("accounts");
    failing.extend([format!("SELECT '{EMAIL}'::int"), format!("SELECT $x${PASSWORD}")]);
    for sql in &failing {
        assert!(
            diesel::sql_query(sql).execute(&mut conn).await.is_err(),
            "{sql} must fail"
        );
    }
    n += failing.len();
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

#[tokio::test]
async fn diesel_async_mariadb_secrets_never_exported() {
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl, SimpleAsyncConnection};
    let t = TestTelemetry::new();
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    // MariaDB's root accepts no password over TCP here: the password goes in the URL the
    // adapter reads, not the one used to connect.
    let mut conn = AsyncMysqlConnection::establish(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", "MYSQL_URL", e));
    conn.batch_execute(
        "CREATE TEMPORARY TABLE accounts (id INTEGER PRIMARY KEY, email VARCHAR(100) UNIQUE, \
         password VARCHAR(100), card VARCHAR(40), token VARCHAR(100))",
    )
    .await
    .expect("schema");
    conn.set_instrumentation(instrumentation(&t).connection(&with_password(&url)));
    let mut n = run_dsl!(&mut conn, .await);
    let mut ok = literal_corpus("accounts");
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
    for sql in &ok {
        diesel::sql_query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    n += ok.len();
    let failing = failing_corpus("accounts");
    for sql in &failing {
        assert!(
            diesel::sql_query(sql).execute(&mut conn).await.is_err(),
            "{sql} must fail"
        );
    }
    n += failing.len();
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}
