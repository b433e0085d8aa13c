//! Secrets corpus, classes of leak (issue 16): members of each class an independent corpus found
//! in exported telemetry, run through the adapters on the real services, all with default
//! options (plus header and metadata capture where the class is about capture):
//!
//! 1. SQLite double-quoted strings in expression positions (`ON`, `WHERE`, `HAVING`, `CASE`,
//!    function arguments, `SET`, `VALUES`, `IS DISTINCT FROM`, `ORDER BY`), in-memory SQLite;
//! 2. MariaDB with `NO_BACKSLASH_ESCAPES` set on the session through the instrumented pool:
//!    literals ending in a backslash, so the next literal starts where the other reading ends;
//! 3. query-string tokens ending in `=` (`?dGhpcy1pcy1hLXRva2Vu=`), on the axum server layer,
//!    the actix-web middleware, the tower client layer over hyper and the reqwest middleware;
//! 4. literals in Redis script bodies: `EVAL`, `EVAL_RO`, `SCRIPT LOAD`, `FUNCTION LOAD`;
//! 5. dollar-quoted text on SQLite and MariaDB;
//! 6. captured sensitive headers (HTTP request and response, axum and actix) and gRPC metadata
//!    (server and client, request and response).
//!
//! None of the secrets may appear in any exported span name, attribute, status, event or metric
//! attribute (`reliability::assert_no_secrets`). An unreachable service fails its test with the
//! URL tried and how to start it.

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::{Array, Value};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use otelrs_http::{HttpClientLayer, HttpClientMiddleware, HttpServerLayer};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use reliability::{assert_no_secrets, serve_axum};
use sqlx::mysql::{MySql, MySqlPoolOptions};
use sqlx::sqlite::{Sqlite, SqlitePoolOptions};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{http as tonic_http, Body, BoxFuture, StdError};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;

use reliability::secrets::{CARD, CARD_SPACED, EMAIL, NEW_PASSWORD, PASSWORD, SECRETS, TOKEN};

/// A bearer token as base64 with `=` padding (`this-is-a-token`), as magic links carry them.
const B64_TOKEN: &str = "dGhpcy1pcy1hLXRva2Vu";
/// A second one, with two padding characters (`secret-link`).
const B64_TOKEN_2: &str = "c2VjcmV0LWxpbms";

/// [`SECRETS`] and the class-specific ones.
fn secrets() -> Vec<&'static str> {
    let mut all = SECRETS.to_vec();
    all.extend([B64_TOKEN, B64_TOKEN_2]);
    all
}

/// Fails the test with a message naming the URL and how to start the service.
#[track_caller]
fn unreachable_service(url: &str, service: &str, variable: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach {service} at {url}: {err}\n\
         start it with `docker compose up -d {service}` (or set {variable} to a reachable server)"
    )
}

/// Runs every statement of `ok` (must succeed), `failing` (must fail) and `either` (outcome
/// depends on the server) through the instrumented pool; evaluates to how many ran.
macro_rules! run_corpus {
    ($pool:expr, $ok:expr, $failing:expr, $either:expr) => {{
        for sql in $ok.iter() {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .execute($pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        for sql in $failing.iter() {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute($pool).await {
                Ok(_) => panic!("{sql} must fail"),
                Err(e) => eprintln!("expected failure: {e}"),
            }
        }
        for sql in $either.iter() {
            let r = sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute($pool).await;
            eprintln!("{sql:?} -> {:?}", r.map(|_| ()).map_err(|e| e.to_string()));
        }
        $ok.len() + $failing.len() + $either.len()
    }};
}

// --- 1 and 5: SQLite ---------------------------------------------------------------------------

async fn sqlite(t: &TestTelemetry) -> InstrumentedPool<Sqlite> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("in-memory SQLite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, password TEXT, card TEXT, token TEXT)")
        .execute(&pool)
        .await
        .expect("create table");
    InstrumentedPool::new(pool, SqlOptions::new().with_instrumentation(t.instrumentation()))
}

/// Class 1: SQLite runs a double-quoted token that names no column as a string (sqlx's bundled
/// libsqlite3 has the misfeature on), so each of these statements compares with, returns or
/// stores the secret. Class 5: dollar-quoted text, which SQLite reads as variables and words.
#[tokio::test]
async fn sqlite_double_quoted_and_dollar_quoted_secrets_never_exported() {
    let t = TestTelemetry::new();
    let pool = sqlite(&t).await;
    let ok = [
        format!(
            "INSERT INTO users (email, password, card, token) VALUES (\"{EMAIL}\", \"{PASSWORD}\", \"{CARD_SPACED}\", \"{TOKEN}\")"
        ),
        format!("SELECT u.id FROM users u JOIN users v ON \"{PASSWORD}\" = v.password"),
        format!("SELECT u.id FROM users u LEFT JOIN users v ON v.token = \"{TOKEN}\" AND v.card = \"{CARD}\""),
        format!("SELECT id FROM users WHERE password = \"{PASSWORD}\" OR email = \"{EMAIL}\""),
        format!("SELECT email, count(*) FROM users GROUP BY email HAVING max(password) = \"{PASSWORD}\""),
        format!("SELECT CASE WHEN password = \"{PASSWORD}\" THEN \"{TOKEN}\" ELSE \"{EMAIL}\" END FROM users"),
        format!("SELECT coalesce(token, \"{TOKEN}\"), lower(\"{EMAIL}\"), length(\"{CARD_SPACED}\") FROM users"),
        format!("UPDATE users SET password = \"{NEW_PASSWORD}\" WHERE email = \"{EMAIL}\""),
        format!("SELECT id FROM users WHERE token IS NOT DISTINCT FROM \"{TOKEN}\""),
        format!("SELECT id FROM users WHERE card IN (\"{CARD}\", \"{CARD_SPACED}\") ORDER BY \"{EMAIL}\""),
        format!("SELECT \"{EMAIL}\" AS e"),
        format!("DELETE FROM users WHERE token = \"{TOKEN}\""),
    ];
    let failing = [format!("SELECT \"{PASSWORD}\" FROM")];
    // SQLite reads `$a$` as a variable; what follows depends on the body.
    let either = [
        format!("SELECT $a$ {PASSWORD} $a$"),
        format!("SELECT $$ '{TOKEN}' $$, 1"),
        format!("SELECT $tag${EMAIL}$tag$"),
        format!("SELECT $x$ ' $x$ {CARD} ' AS c"),
    ];
    let n = run_corpus!(&pool, ok, failing, either);
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, &secrets());
    assert!(checked > 50, "only {checked} exported texts checked");
}

// --- 2 and 5: MariaDB with NO_BACKSLASH_ESCAPES ------------------------------------------------

fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// The session's `sql_mode` is set to `NO_BACKSLASH_ESCAPES` through the instrumented pool (one
/// connection, so every statement runs in that session): a backslash is then an ordinary
/// character, `'C:\'` is a whole literal, and the literal after it starts where the
/// backslash-escape reading still sees the first one. Both readings must hide the secrets.
#[tokio::test]
async fn mariadb_no_backslash_escapes_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = mysql_url();
    let raw = MySqlPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", "MYSQL_URL", e));
    let table = format!("secrets_nbe_{}", std::process::id());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, email VARCHAR(100), password VARCHAR(100), \
         card VARCHAR(40), token VARCHAR(100))"
    )))
    .execute(&raw)
    .await
    .expect("create table");
    let pool: InstrumentedPool<MySql> =
        InstrumentedPool::connect(raw.clone(), SqlOptions::new().with_instrumentation(t.instrumentation()))
            .await
            .expect("version detection");
    sqlx::query("SET SESSION sql_mode = 'NO_BACKSLASH_ESCAPES'")
        .execute(&pool)
        .await
        .expect("set sql_mode");
    let mode: String = sqlx::query_scalar("SELECT @@SESSION.sql_mode")
        .fetch_one(&pool)
        .await
        .expect("read sql_mode");
    assert!(mode.contains("NO_BACKSLASH_ESCAPES"), "sql_mode {mode:?}");
    let backslash: String = sqlx::query_scalar(r"SELECT 'C:\'")
        .fetch_one(&pool)
        .await
        .expect("a literal ending in a backslash");
    assert_eq!(backslash, r"C:\", "the session reads a backslash as itself");
    let before = t.spans().len();

    let ok = [
        format!(
            r"INSERT INTO {table} (id, email, password, card, token) VALUES (1, 'C:\', '{PASSWORD}', '\', '{TOKEN}')"
        ),
        format!(r"SELECT id FROM {table} WHERE email = 'C:\' AND password = '{PASSWORD}'"),
        format!(r#"SELECT id FROM {table} WHERE email = "x\" OR token = "{TOKEN}""#),
        format!(r"UPDATE {table} SET password = '{NEW_PASSWORD}', card = '{CARD}\' WHERE card = '\' AND id = 1"),
        format!(r"SELECT 'a\', '{EMAIL}', 'b\\', '{CARD_SPACED}'"),
        format!(r"SELECT id FROM {table} WHERE token IN ('\', '{TOKEN}', 'x\') -- '{PASSWORD}'"),
        format!(r"SELECT N'\', '{PASSWORD}'"),
        format!(r"DELETE FROM {table} WHERE password = '{NEW_PASSWORD}' OR email = 'C:\'"),
    ];
    let failing = [
        // `... near '...' at line 1` quotes the rest of the statement.
        format!(r"SELECT * FROM WHERE password = 'a\' AND x = '{PASSWORD}'"),
    ];
    // Without strict mode (the session's mode is only NO_BACKSLASH_ESCAPES now) `'\'` is stored
    // as 0 with a warning. Dollar-quoted text is a name or an error in MariaDB, a literal to the
    // sanitizer.
    let either = [
        format!(r"INSERT INTO {table} (id, email) VALUES ('\', '{EMAIL}')"),
        format!("SELECT $$ '{PASSWORD}' $$"),
        format!("SELECT $x$ {TOKEN} $x$"),
    ];
    let n = run_corpus!(&pool, ok, failing, either);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&raw)
        .await
        .expect("drop table");
    assert_eq!(t.spans().len() - before, n, "one span per statement");
    let checked = assert_no_secrets(&t, &secrets());
    assert!(checked > 30, "only {checked} exported texts checked");
}

// --- 4: Redis scripts --------------------------------------------------------------------------

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned())
}

/// Literals in script bodies: strings in both quote styles, long brackets, numbers and comments
/// in `EVAL`, `EVAL_RO`, `SCRIPT LOAD` (then `EVALSHA`), `FUNCTION LOAD` (then `FCALL`), and a
/// script that does not compile.
#[tokio::test]
async fn redis_script_literals_never_exported() {
    let t = TestTelemetry::new();
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).unwrap_or_else(|e| panic!("invalid REDIS_URL {url:?}: {e}"));
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    let conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "redis", "REDIS_URL", e));
    let mut conn = otelrs_redis::RedisInstrumentation::new()
        .with_instrumentation(t.instrumentation())
        .connection(conn, client.get_connection_info());
    let pid = std::process::id();
    let key = format!("reliability:classes:{pid}");
    let lib = format!("reliability_{pid}");

    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(format!("return '{TOKEN}' .. \"{EMAIL}\""))
        .query_async(&mut conn)
        .await
        .expect("SCRIPT LOAD");
    let ok: Vec<redis::Cmd> = vec![
        redis::cmd("EVAL")
            .arg(format!("return redis.call('SET', KEYS[1], '{PASSWORD}', 'EX', 60)"))
            .arg(1)
            .arg(&key)
            .clone(),
        redis::cmd("EVAL")
            .arg(format!(
                "local t = [==[{TOKEN} ]] {EMAIL}]==] -- {PASSWORD}\n--[[ {CARD_SPACED} ]]\nreturn #t + {CARD}"
            ))
            .arg(0)
            .clone(),
        redis::cmd("EVAL")
            .arg(format!("local s = \"{NEW_PASSWORD} \\\" '\" return s"))
            .arg(0)
            .clone(),
        redis::cmd("EVAL_RO")
            .arg(format!(
                "if redis.call('GET', KEYS[1]) == \"{PASSWORD}\" then return 0x{CARD} end return 0"
            ))
            .arg(1)
            .arg(&key)
            .clone(),
        redis::cmd("EVALSHA").arg(&loaded).arg(0).clone(),
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(format!(
                "#!lua name={lib}\nredis.register_function('{lib}_f', function(keys, args) return '{PASSWORD}' .. [[{TOKEN}]] end)"
            ))
            .clone(),
        redis::cmd("FCALL").arg(format!("{lib}_f")).arg(0).clone(),
        redis::cmd("FUNCTION").arg("DELETE").arg(&lib).clone(),
        redis::cmd("DEL").arg(&key).clone(),
    ];
    for cmd in &ok {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        r.unwrap_or_else(|e| panic!("{:?}: {e}", cmd.args_iter().next()));
    }
    let failing: Vec<redis::Cmd> = vec![
        // `Error compiling script ...` may quote the script.
        redis::cmd("EVAL").arg(format!("return '{PASSWORD}' +")).arg(0).clone(),
        redis::cmd("EVAL")
            .arg(format!("return redis.call('NOPE', '{TOKEN}')"))
            .arg(0)
            .clone(),
    ];
    for cmd in &failing {
        let r: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        assert!(r.is_err(), "{:?} must fail", cmd.args_iter().next());
    }
    let spans = t.spans();
    assert_eq!(spans.len(), 1 + ok.len() + failing.len(), "one span per command");
    // The code of the script is still there.
    let texts: Vec<String> = spans
        .iter()
        .filter_map(|s| s.attr("db.query.text").map(|v| v.to_string()))
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("EVAL \"return redis.call(?, KEYS[1], ?, ?, ?)\" 1 ")),
        "{texts:#?}"
    );
    let checked = assert_no_secrets(&t, &secrets());
    assert!(checked > 30, "only {checked} exported texts checked");
}

// --- 3 and 6: HTTP ------------------------------------------------------------------------------

/// A query of tokens ending in `=`, a legitimately empty parameter and a bare token.
fn token_query() -> String {
    format!("{B64_TOKEN}=&{B64_TOKEN_2}==&next=&{TOKEN}")
}

/// The request headers a client sends with credentials, and the names the server captures.
const CAPTURED_REQUEST: [&str; 6] = [
    "authorization",
    "Proxy-Authorization",
    "cookie",
    "x-api-key",
    "x-auth-token",
    "x-request-id",
];
const CAPTURED_RESPONSE: [&str; 3] = ["set-cookie", "www-authenticate", "x-served-by"];

fn with_secret_headers(builder: http::request::Builder) -> http::request::Builder {
    builder
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("proxy-authorization", format!("Basic {B64_TOKEN}=="))
        .header("cookie", format!("session={TOKEN}; pw={PASSWORD}"))
        .header("cookie", format!("email={EMAIL}"))
        .header("x-api-key", CARD)
        .header("x-auth-token", NEW_PASSWORD)
        .header("x-request-id", "r-1")
}

async fn login() -> impl axum::response::IntoResponse {
    (
        [
            ("set-cookie", format!("session={TOKEN}; HttpOnly")),
            ("www-authenticate", format!("Bearer realm=\"{EMAIL}\"")),
            ("x-served-by", "node-1".to_owned()),
        ],
        "ok",
    )
}

/// Asserts the server span captured the sensitive headers as `REDACTED` (so the capture ran)
/// and recorded the token query as `REDACTED` pairs.
#[track_caller]
fn assert_server_span_redacted(span: &opentelemetry_sdk::trace::SpanData) {
    let redacted = |n: usize| Value::Array(Array::String(vec!["REDACTED".into(); n]));
    span.assert_attr("url.query", "REDACTED&REDACTED&REDACTED&REDACTED")
        .assert_attr("http.request.header.authorization", redacted(1))
        .assert_attr("http.request.header.cookie", redacted(2))
        .assert_attr("http.request.header.x-api-key", redacted(1))
        .assert_attr("http.response.header.set-cookie", redacted(1))
        .assert_attr(
            "http.request.header.x-request-id",
            Value::Array(Array::String(vec!["r-1".into()])),
        )
        .assert_attr(
            "http.response.header.x-served-by",
            Value::Array(Array::String(vec!["node-1".into()])),
        );
}

/// Class 3 on the axum server layer and both clients (tower over hyper, reqwest), class 6 on the
/// server's request and response header capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_token_queries_and_captured_headers_never_exported() {
    let t = TestTelemetry::new();
    let app = Router::new().route("/login", get(login)).layer(
        HttpServerLayer::new()
            .with_instrumentation(t.instrumentation())
            .with_request_headers(CAPTURED_REQUEST)
            .with_response_headers(CAPTURED_RESPONSE),
    );
    let addr = serve_axum(app).await;
    let url = format!("http://{addr}/login?{}", token_query());

    let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(HttpClientMiddleware::new().with_instrumentation(t.instrumentation()))
        .build();
    let mut req = reqwest_client.get(&url);
    for (name, value) in with_secret_headers(http::Request::builder())
        .body(())
        .expect("headers")
        .headers()
    {
        req = req.header(name.clone(), value.clone());
    }
    let resp = req.send().await.expect("reqwest request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "ok");

    let hyper_client = tower::ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_instrumentation(t.instrumentation()))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let req = with_secret_headers(http::Request::get(&url))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let resp = tower::ServiceExt::oneshot(hyper_client, req)
        .await
        .expect("hyper request");
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.expect("body");

    let spans = t.wait_for_spans(4, Duration::from_secs(20));
    assert_eq!(spans.len(), 4, "two client and two server spans");
    let expected_full = format!("http://{addr}/login?REDACTED&REDACTED&REDACTED&REDACTED");
    for span in &spans {
        match span.span_kind {
            opentelemetry::trace::SpanKind::Server => assert_server_span_redacted(span),
            _ => {
                span.assert_attr("url.full", expected_full.clone());
            }
        }
    }
    assert_no_secrets(&t, &secrets());
}

/// Classes 3 and 6 on the actix-web middleware.
#[test]
fn actix_token_queries_and_captured_headers_never_exported() {
    use actix_web::{web, App, HttpResponse, HttpServer};
    use otelrs_http::HttpServerMiddleware;

    let t = TestTelemetry::new();
    let mw = HttpServerMiddleware::new()
        .with_instrumentation(t.instrumentation())
        .with_request_headers(CAPTURED_REQUEST)
        .with_response_headers(CAPTURED_RESPONSE);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().wrap(mw.clone()).route(
                    "/login",
                    web::get().to(|| async {
                        HttpResponse::Ok()
                            .insert_header(("set-cookie", format!("session={TOKEN}; HttpOnly")))
                            .insert_header(("www-authenticate", format!("Bearer realm=\"{EMAIL}\"")))
                            .insert_header(("x-served-by", "node-1"))
                            .body("ok")
                    }),
                )
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
        let mut req = client.get(format!("http://{addr}/login?{}", token_query()));
        for (name, value) in with_secret_headers(http::Request::builder())
            .body(())
            .expect("headers")
            .headers()
        {
            req = req.header(name.clone(), value.clone());
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "ok");
    });
    let spans = t.wait_for_spans(1, Duration::from_secs(20));
    assert_eq!(spans.len(), 1, "one server span");
    assert_server_span_redacted(&spans[0]);
    assert_no_secrets(&t, &secrets());
    rt.block_on(handle.stop(true));
    server.join().expect("server thread");
}

// --- 6: gRPC metadata --------------------------------------------------------------------------

/// An empty message, as `prost-build` would generate it.
#[derive(Clone, PartialEq, prost::Message)]
struct Empty {}

const PING: &str = "/reliability.v1.Classes/Ping";

/// `reliability.v1.Classes` with one unary method answering with credential metadata.
#[derive(Clone, Default)]
struct Classes;

struct PingSvc;

impl tonic::server::UnaryService<Empty> for PingSvc {
    type Response = Empty;
    type Future = BoxFuture<Response<Empty>, Status>;

    fn call(&mut self, _request: Request<Empty>) -> Self::Future {
        Box::pin(async move {
            let mut response = Response::new(Empty {});
            let md = response.metadata_mut();
            md.insert("x-session-token", MetadataValue::try_from(TOKEN).expect("ascii"));
            md.insert(
                "set-cookie",
                MetadataValue::try_from(format!("session={PASSWORD}; email={EMAIL}")).expect("ascii"),
            );
            md.insert("x-served-by", MetadataValue::from_static("node-1"));
            Ok(response)
        })
    }
}

impl<B> tower::Service<tonic_http::Request<B>> for Classes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = tonic_http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: tonic_http::Request<B>) -> Self::Future {
        let codec = tonic_prost::ProstCodec::default();
        match req.uri().path() {
            PING => Box::pin(async move { Ok(tonic::server::Grpc::new(codec).unary(PingSvc, req).await) }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

impl tonic::server::NamedService for Classes {
    const NAME: &'static str = "reliability.v1.Classes";
}

/// Request metadata (`authorization`, `x-api-key`, `cookie`) and response metadata
/// (`set-cookie`, `x-session-token`) captured by the server and client layers: recorded as
/// `REDACTED`, while a non-sensitive key (`x-served-by`) keeps its value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_captured_sensitive_metadata_never_exported() {
    let t = TestTelemetry::new();
    let request_keys = ["authorization", "x-api-key", "cookie", "x-tenant"];
    let response_keys = ["set-cookie", "x-session-token", "x-served-by"];
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let router = Server::builder()
        .layer(
            GrpcServerLayer::new()
                .with_instrumentation(t.instrumentation())
                .with_request_metadata(request_keys)
                .with_response_metadata(response_keys),
        )
        .add_service(Classes);
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_rx.await;
            })
            .await
            .expect("gRPC server");
    });
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let channel = endpoint.connect().await.expect("connect to the test server");
    let mut client: tonic::client::Grpc<GrpcClientService<Channel>> = tonic::client::Grpc::new(
        ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .with_instrumentation(t.instrumentation())
                    .with_endpoint(&endpoint)
                    .with_request_metadata(request_keys)
                    .with_response_metadata(response_keys),
            )
            .service(channel),
    );
    client.ready().await.expect("ready");
    let mut request = Request::new(Empty {});
    let md = request.metadata_mut();
    md.insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).expect("ascii"),
    );
    md.insert("x-api-key", MetadataValue::try_from(CARD).expect("ascii"));
    md.insert(
        "cookie",
        MetadataValue::try_from(format!("password={PASSWORD}; email={EMAIL}")).expect("ascii"),
    );
    md.insert("x-tenant", MetadataValue::from_static("acme"));
    let reply: Response<Empty> = client
        .unary(
            request,
            tonic_http::uri::PathAndQuery::from_static(PING),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect("ping");
    assert_eq!(reply.metadata().get("x-session-token").expect("metadata"), TOKEN);
    let spans = t.wait_for_spans(2, Duration::from_secs(10));
    shutdown_tx.send(()).ok();
    server.await.expect("server task");
    assert_eq!(spans.len(), 2, "one client and one server span");
    let redacted = Value::Array(Array::String(vec!["REDACTED".into()]));
    for span in &spans {
        span.assert_attr("rpc.request.metadata.authorization", redacted.clone())
            .assert_attr("rpc.request.metadata.cookie", redacted.clone())
            .assert_attr("rpc.request.metadata.x-api-key", redacted.clone())
            .assert_attr(
                "rpc.request.metadata.x-tenant",
                Value::Array(Array::String(vec!["acme".into()])),
            )
            .assert_attr("rpc.response.metadata.set-cookie", redacted.clone())
            .assert_attr("rpc.response.metadata.x-session-token", redacted.clone())
            .assert_attr(
                "rpc.response.metadata.x-served-by",
                Value::Array(Array::String(vec!["node-1".into()])),
            );
    }
    assert_no_secrets(&t, &secrets());
}
