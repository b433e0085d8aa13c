//! Secrets corpus: statements, commands and requests carrying passwords, tokens, card numbers and
//! e-mail addresses run through otelrs-sql (SQLite in memory), otelrs-redis (a real Redis) and
//! otelrs-http (axum server layer, actix-web middleware, reqwest and hyper clients), all with default options. None of
//! the secrets may appear in any exported span name, attribute, status, event or metric
//! attribute (`reliability::assert_no_secrets` reads everything `TestTelemetry` exported).

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use otelrs_core::testing::TestTelemetry;
use otelrs_http::{HttpClientLayer, HttpClientMiddleware, HttpServerLayer};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use reliability::{assert_no_secrets, serve_axum};
use sqlx::sqlite::{Sqlite, SqlitePoolOptions};

use reliability::secrets::{CARD, CARD_SPACED, EMAIL, NEW_PASSWORD, PASSWORD, SECRETS, TOKEN};

// --- SQL ---------------------------------------------------------------------------------------

async fn sqlite(t: &TestTelemetry) -> InstrumentedPool<Sqlite> {
    // One connection: every connection to `sqlite::memory:` is its own database.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)")
        .execute(&pool)
        .await
        .expect("create table");
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(t.instrumentation()))
}

/// Non-parameterised statements with secrets as string and numeric literals, in comments, in
/// `IN` lists and in failing statements; every one through the instrumented pool with default
/// options.
#[tokio::test]
async fn sql_secrets_never_exported() {
    let t = TestTelemetry::new();
    let pool = sqlite(&t).await;
    let ok = [
        format!(
            "INSERT INTO users (email, password, card, token) VALUES ('{EMAIL}', '{PASSWORD}', '{CARD_SPACED}', '{TOKEN}')"
        ),
        format!("SELECT id FROM users WHERE email = '{EMAIL}' AND password = '{PASSWORD}'"),
        format!("UPDATE users SET password = '{NEW_PASSWORD}' WHERE email = '{EMAIL}'"),
        format!("SELECT id FROM users WHERE card = {CARD} OR card = '{CARD_SPACED}'"),
        format!("SELECT id FROM users WHERE token IN ('{TOKEN}', 'tok_live_other', {CARD})"),
        format!("SELECT id FROM users WHERE email LIKE '%{EMAIL}%' -- lookup {EMAIL}"),
        format!("DELETE FROM users WHERE token = '{TOKEN}' /* api key {TOKEN} */"),
        format!("SELECT X'{}' AS blob, {CARD} AS n", "41".repeat(8)),
    ];
    for sql in &ok {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // Failing statements: the driver's message can quote data; it must not be exported either.
    let failing = [
        format!("INSERT INTO no_such_table VALUES ('{PASSWORD}')"),
        format!("INSERT INTO users (id, email) VALUES (1, '{EMAIL}'), (1, '{EMAIL}')"),
        format!("SELECT '{TOKEN}' FROM"),
    ];
    for sql in &failing {
        assert!(
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&pool)
                .await
                .is_err(),
            "{sql} must fail"
        );
    }
    let spans = t.spans();
    assert_eq!(spans.len(), ok.len() + failing.len(), "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 50, "only {checked} exported texts checked");
}

/// SQLite accepts double-quoted string literals ("DQS", on by default in sqlx's bundled
/// libsqlite3): `WHERE password = "hunter2"` runs and compares with a string. The sanitizer
/// treats `"..."` as an identifier in the SQLite dialect and keeps it in `db.query.text`.
#[tokio::test]
async fn sqlite_double_quoted_string_literal_is_not_exported() {
    let t = TestTelemetry::new();
    let pool = sqlite(&t).await;
    let sql = format!("SELECT id FROM users WHERE password = \"{PASSWORD}\"");
    sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&pool)
        .await
        .expect("SQLite accepts a double-quoted string literal");
    assert_no_secrets(&t, SECRETS);
}

// --- Redis -------------------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

async fn redis_connection(
    t: &TestTelemetry,
) -> otelrs_redis::InstrumentedConnection<redis::aio::MultiplexedConnection> {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("invalid REDIS_URL {url:?}: {e}"));
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to Redis at {url} ({e}); start it with `docker compose up -d redis` \
                 (or set REDIS_URL to a reachable server)"
            )
        });
    otelrs_redis::RedisInstrumentation::new()
        .with_instrumentation(t.instrumentation())
        .connection(conn, client.get_connection_info())
}

/// Commands carrying secrets as values, passwords of AUTH / HELLO / ACL SETUSER, script
/// arguments, and an unknown command whose error reply echoes its arguments, against a real
/// Redis with default options.
#[tokio::test]
async fn redis_secrets_never_exported() {
    let t = TestTelemetry::new();
    let mut conn = redis_connection(&t).await;
    let p = format!("reliability:secrets:{}", std::process::id());
    let user = format!("reliability-{}", std::process::id());
    let ok: Vec<redis::Cmd> = vec![
        redis::cmd("SET")
            .arg(format!("{p}:session"))
            .arg(TOKEN)
            .arg("EX")
            .arg(60)
            .clone(),
        redis::cmd("HSET")
            .arg(format!("{p}:user"))
            .arg("email")
            .arg(EMAIL)
            .arg("password")
            .arg(PASSWORD)
            .arg("card")
            .arg(CARD_SPACED)
            .clone(),
        redis::cmd("LPUSH")
            .arg(format!("{p}:cards"))
            .arg(CARD)
            .arg(CARD_SPACED)
            .clone(),
        redis::cmd("SADD").arg(format!("{p}:emails")).arg(EMAIL).clone(),
        redis::cmd("SISMEMBER").arg(format!("{p}:emails")).arg(EMAIL).clone(),
        redis::cmd("ZADD").arg(format!("{p}:z")).arg(1).arg(TOKEN).clone(),
        redis::cmd("PUBLISH")
            .arg(format!("{p}:chan"))
            .arg(format!("{EMAIL} {PASSWORD}"))
            .clone(),
        redis::cmd("EVAL").arg("return ARGV[1]").arg(0).arg(PASSWORD).clone(),
        redis::cmd("ECHO").arg(TOKEN).clone(),
        redis::cmd("SET").arg(format!("{p}:str")).arg("plain").clone(),
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&user)
            .arg("on")
            .arg(format!(">{PASSWORD}"))
            .arg("~nothing")
            .clone(),
        redis::cmd("ACL").arg("DELUSER").arg(&user).clone(),
        redis::cmd("DEL")
            .arg(format!("{p}:session"))
            .arg(format!("{p}:user"))
            .arg(format!("{p}:cards"))
            .arg(format!("{p}:emails"))
            .arg(format!("{p}:z"))
            .clone(),
    ];
    for cmd in &ok {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        r.unwrap_or_else(|e| panic!("{:?}: {e}", cmd.args_iter().next()));
    }
    let failing: Vec<redis::Cmd> = vec![
        // Without a configured password this is an error; with one, the password is wrong.
        redis::cmd("AUTH").arg(PASSWORD).clone(),
        redis::cmd("AUTH").arg(&user).arg(PASSWORD).clone(),
        redis::cmd("HELLO").arg(3).arg("AUTH").arg(&user).arg(PASSWORD).clone(),
        // `ERR unknown command 'RELIABILITY.NOPE', with args beginning with: 'hunter2-...'`
        redis::cmd("RELIABILITY.NOPE").arg(PASSWORD).arg(EMAIL).clone(),
        // A `WRONGTYPE` error on a command with value arguments.
        redis::cmd("LPUSH").arg(format!("{p}:str")).arg(CARD).arg(EMAIL).clone(),
    ];
    for cmd in &failing {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        assert!(r.is_err(), "{:?} must fail", cmd.args_iter().next());
    }
    let cleanup: redis::RedisResult<i64> = redis::cmd("DEL").arg(format!("{p}:str")).query_async(&mut conn).await;
    assert_eq!(cleanup.expect("cleanup"), 1);
    assert_eq!(t.spans().len(), ok.len() + failing.len() + 1, "one span per command");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 50, "only {checked} exported texts checked");
}

// --- HTTP --------------------------------------------------------------------------------------

/// Query keys the semantic conventions list as sensitive, and credentials in the URL: redacted
/// on the server span (`url.query`) and on client spans (`url.full`) of both clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_semconv_sensitive_query_and_userinfo_never_exported() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/login", get(|| async { "ok" }))
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    let addr = serve_axum(app).await;
    let query = format!("sig={TOKEN}&Signature={PASSWORD}&X-Amz-Credential={EMAIL}&X-Amz-Security-Token={CARD}");
    // reqwest moves `user:pass@` into an Authorization header; hyper sends the URI as given.
    let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(HttpClientMiddleware::new().with_instrumentation(t.instrumentation()))
        .build();
    let url = format!("http://{EMAIL}:{PASSWORD}@{addr}/login?{query}");
    let resp = reqwest_client.get(&url).send().await.expect("reqwest request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok");

    let hyper_client = tower::ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_instrumentation(t.instrumentation()))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let req = http::Request::get(format!("http://{addr}/login?{query}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tower::ServiceExt::oneshot(hyper_client, req)
        .await
        .expect("hyper request");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();

    t.wait_for_spans(4, Duration::from_secs(20));
    assert_eq!(t.spans().len(), 4, "two client and two server spans");
    assert_no_secrets(&t, SECRETS);
}

/// Credentials under query keys outside the semantic-conventions list (`password`, `token`,
/// `access_token`, `email`, `card`) are application secrets too; with default options they
/// must not be exported in `url.query` (server) or `url.full` (client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_common_secret_query_keys_never_exported() {
    let t = TestTelemetry::new();
    let app = Router::new()
        .route("/login", get(|| async { "ok" }))
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    let addr = serve_axum(app).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(HttpClientMiddleware::new().with_instrumentation(t.instrumentation()))
        .build();
    let url =
        format!("http://{addr}/login?email={EMAIL}&password={PASSWORD}&token={TOKEN}&access_token={TOKEN}&card={CARD}");
    let resp = client.get(&url).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap();
    t.wait_for_spans(2, Duration::from_secs(20));
    assert_no_secrets(&t, SECRETS);
}

/// The same secrets (userinfo, sensitive and common query keys, secret-bearing headers) sent to
/// an actix-web server behind `HttpServerMiddleware` with default options.
#[test]
fn actix_server_secrets_never_exported() {
    use actix_web::{web, App, HttpServer};
    use otelrs_http::HttpServerMiddleware;

    let t = TestTelemetry::new();
    let mw = HttpServerMiddleware::new().with_instrumentation(t.instrumentation());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(mw.clone())
                    .route("/login", web::get().to(|| async { "ok" }))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
            handle_tx.send(server.handle()).expect("server handle");
            server.await.expect("actix server");
        })
    });
    let handle = handle_rx.recv().expect("server started");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::new();
        for query in [
            format!("sig={TOKEN}&Signature={PASSWORD}&X-Amz-Credential={EMAIL}&X-Amz-Security-Token={CARD}"),
            format!("email={EMAIL}&password={PASSWORD}&token={TOKEN}&access_token={TOKEN}&card={CARD}"),
        ] {
            let resp = client
                .get(format!("http://{EMAIL}:{PASSWORD}@{addr}/login?{query}"))
                .header("authorization", format!("Bearer {TOKEN}"))
                .header("cookie", format!("session={TOKEN}; pw={PASSWORD}"))
                .header("x-card", CARD_SPACED)
                .send()
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.text().await.expect("body"), "ok");
        }
    });
    t.wait_for_spans(2, Duration::from_secs(20));
    assert_eq!(t.spans().len(), 2, "one server span per request");
    assert_no_secrets(&t, SECRETS);
    rt.block_on(handle.stop(true));
    server.join().expect("server thread");
}
