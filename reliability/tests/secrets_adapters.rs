//! Secrets corpus, continued (issue 9, item 6): statements, calls and messages carrying passwords,
//! tokens, card numbers and e-mail addresses run through the adapters `secrets.rs` does not
//! cover, all with default options:
//!
//! * otelrs-sql on a real PostgreSQL (`DATABASE_URL`) and a real MariaDB/MySQL (`MYSQL_URL`):
//!   literals, comments, `IN` lists, dialect-specific strings (`E'...'`, `$tag$...$tag$`, MySQL
//!   `"..."` and `\'`), and failing statements whose driver message quotes the data;
//! * otelrs-grpc (tonic server and client layers over 127.0.0.1): secrets in request and response
//!   metadata, in messages, and in the messages of error statuses;
//! * otelrs-mq on a real RabbitMQ (`AMQP_URL`), a real NATS (`NATS_URL`) and librdkafka's
//!   in-process mock cluster: secrets in payloads, headers and (Kafka) message keys.
//!
//! None of the secrets may appear in any exported span name, attribute, status, event or metric
//! attribute (`reliability::assert_no_secrets` reads everything `TestTelemetry` exported). An
//! unreachable service fails its test with the URL tried and how to start it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt as _;
use opentelemetry::trace::{SpanKind, Status as SpanStatus};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use otelrs_sql::{InstrumentedPool, SqlOptions};
use reliability::assert_no_secrets;
use sqlx::mysql::{MySql, MySqlPoolOptions};
use sqlx::postgres::{PgPoolOptions, Postgres};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tower::ServiceBuilder;

use reliability::secrets::{CARD, CARD_SPACED, EMAIL, NEW_PASSWORD, PASSWORD, SECRETS, TOKEN};

/// A name unique to this process and call, so tests (and parallel runs) do not collide.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        nanos % 100_000
    )
}

/// Fails the test with a message naming the URL and how to start the service.
#[track_caller]
fn unreachable_service(url: &str, service: &str, variable: &str, err: impl std::fmt::Display) -> ! {
    panic!(
        "cannot reach {service} at {url}: {err}\n\
         start it with `docker compose up -d {service}` (or set {variable} to a reachable server)"
    )
}

// --- SQL ---------------------------------------------------------------------------------------

fn postgres_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn mysql_url() -> String {
    std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned())
}

/// Runs every statement of `ok` (must succeed), `failing` (must fail) and `either` (outcome
/// depends on server settings) through the instrumented pool; evaluates to how many ran. (A
/// macro: a generic function over `InstrumentedPool<DB>: Executor` overflows the trait solver.)
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

/// Non-parameterised PostgreSQL statements with secrets as string and numeric literals, in
/// comments, in `IN` lists, in `E'...'` escape strings, in dollar-quoted bodies (also of a `DO`
/// block), and in failing statements whose driver message quotes the value (`invalid input
/// syntax for type integer: "<email>"`), through the instrumented pool with default options.
#[tokio::test]
async fn postgres_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = postgres_url();
    let raw = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "postgres", "DATABASE_URL", e));
    let table = unique("secrets_pg");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, email TEXT UNIQUE, password TEXT, card TEXT, token TEXT)"
    )))
    .execute(&raw)
    .await
    .expect("create table");
    let pool: InstrumentedPool<Postgres> =
        InstrumentedPool::new(raw.clone(), SqlOptions::new().with_instrumentation(t.instrumentation()));

    let ok = [
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
        format!("SELECT id FROM {table} WHERE password = E'{PASSWORD}\\n' OR email = E'o\\'{EMAIL}'"),
        format!("SELECT id FROM {table} WHERE password = 'it''s {PASSWORD}'"),
        format!("SELECT $tag${PASSWORD} for {EMAIL}$tag$ AS a, $${TOKEN}$$ AS b"),
        format!("DO $body$ BEGIN PERFORM 1 WHERE '{PASSWORD}' <> '{CARD}'; END $body$"),
        format!("SELECT text '{EMAIL}', '{CARD}'::bigint, U&'{TOKEN}'"),
        format!("SET application_name = '{TOKEN}'"),
        format!("DELETE FROM {table} WHERE token = '{TOKEN}' AND card <> '{CARD}'"),
    ];
    let failing = [
        format!("INSERT INTO no_such_table_{} VALUES ('{PASSWORD}')", std::process::id()),
        // `duplicate key value violates unique constraint` (detail: `Key (email)=(<email>)`).
        format!("INSERT INTO {table} (id, email) VALUES (10, '{EMAIL}'), (11, '{EMAIL}')"),
        // `invalid input syntax for type integer: "<email>"`: the message quotes the value.
        format!("SELECT '{EMAIL}'::int"),
        format!("SELECT '{CARD_SPACED}'::bigint"),
        format!("SELECT * FROM WHERE password = '{PASSWORD}'"),
        format!("SELECT '{TOKEN}' FROM"),
        format!("SELECT $x${PASSWORD}"),
    ];
    let n = run_corpus!(&pool, ok, failing, [] as [String; 0]);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&raw)
        .await
        .expect("drop table");
    assert_eq!(t.spans().len(), n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

/// Non-parameterised MariaDB/MySQL statements with secrets as literals (single- and
/// double-quoted, with `\'` and `''` escapes, hex), in `#`, `-- ` and `/* */` comments, in `IN`
/// lists, and failing statements whose driver message quotes the data: `Duplicate entry
/// '<email>' for key ...`, `... near '<rest of the statement>'` for syntax errors, `Incorrect
/// integer value: '<email>'`.
#[tokio::test]
async fn mysql_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = mysql_url();
    let raw = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&url)
        .await
        .unwrap_or_else(|e| unreachable_service(&url, "mariadb", "MYSQL_URL", e));
    let table = unique("secrets_my");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, email VARCHAR(100) UNIQUE, password VARCHAR(100), \
         card VARCHAR(40), token VARCHAR(100))"
    )))
    .execute(&raw)
    .await
    .expect("create table");
    let pool: InstrumentedPool<MySql> =
        InstrumentedPool::connect(raw.clone(), SqlOptions::new().with_instrumentation(t.instrumentation()))
            .await
            .expect("version detection");
    // Version detection (if instrumented) is not part of the corpus.
    let before = t.spans().len();

    let ok = [
        format!(
            "INSERT INTO {table} (id, email, password, card, token) \
             VALUES (1, '{EMAIL}', '{PASSWORD}', '{CARD_SPACED}', '{TOKEN}')"
        ),
        format!("SELECT id FROM {table} WHERE email = '{EMAIL}' AND password = '{PASSWORD}'"),
        format!("UPDATE {table} SET password = '{NEW_PASSWORD}' WHERE email = '{EMAIL}'"),
        format!("SELECT id FROM {table} WHERE card = {CARD} OR card = '{CARD_SPACED}'"),
        format!("SELECT id FROM {table} WHERE token IN ('{TOKEN}', 'tok_live_other', {CARD})"),
        format!("SELECT id FROM {table} WHERE email LIKE '%{EMAIL}%' -- lookup {EMAIL}"),
        format!("SELECT id FROM {table} WHERE email = '{EMAIL}' # lookup {EMAIL}"),
        format!("SELECT id FROM {table} /* api key {TOKEN} */ WHERE token = '{TOKEN}'"),
        format!("SELECT id FROM {table} WHERE password = \"{PASSWORD}\" OR email = \"{EMAIL}\""),
        format!("SELECT id FROM {table} WHERE password = 'o\\'{PASSWORD}' OR password = 'it''s {NEW_PASSWORD}'"),
        format!("SELECT id FROM {table} WHERE password = \"say \\\"{PASSWORD}\\\"\""),
        format!(
            "SELECT X'{}' AS b, 0x{} AS h, {CARD} AS n",
            "41".repeat(8),
            "42".repeat(8)
        ),
        format!("DELETE FROM {table} WHERE token = '{TOKEN}'"),
    ];
    let failing = [
        format!("INSERT INTO no_such_table_{} VALUES ('{PASSWORD}')", std::process::id()),
        // `Duplicate entry 'alice.secret@example.com' for key 'email'`.
        format!("INSERT INTO {table} (id, email) VALUES (10, '{EMAIL}'), (11, '{EMAIL}')"),
        // `... right syntax to use near 'WHERE password = 'hunter2-...'' at line 1`.
        format!("SELECT * FROM WHERE password = '{PASSWORD}' AND card = '{CARD}'"),
        format!("SELECT '{TOKEN}' FROM"),
    ];
    // Strict mode (MariaDB's default) rejects it with `Incorrect integer value: '<email>'`; a
    // non-strict server stores 0 with a warning.
    let either = [format!("INSERT INTO {table} (id, email) VALUES ('{EMAIL}', '{CARD}')")];
    let n = run_corpus!(&pool, ok, failing, either);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
        .execute(&raw)
        .await
        .expect("drop table");
    assert_eq!(t.spans().len() - before, n, "one span per statement");
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 100, "only {checked} exported texts checked");
}

// --- gRPC --------------------------------------------------------------------------------------

/// The messages, as `prost-build` would generate them.
mod pb {
    /// Request of `reliability.v1.Vault/Store`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StoreRequest {
        /// What the handler does: `ok`, `invalid`, `internal`, `unauthenticated`.
        #[prost(string, tag = "1")]
        pub action: String,
        /// Secrets in the body.
        #[prost(string, tag = "2")]
        pub email: String,
        #[prost(string, tag = "3")]
        pub password: String,
        #[prost(string, tag = "4")]
        pub card: String,
    }

    /// Reply of `Store`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StoreReply {
        /// Echo of the secrets.
        #[prost(string, tag = "1")]
        pub echo: String,
        #[prost(string, tag = "2")]
        pub token: String,
    }
}
use pb::{StoreReply, StoreRequest};

const STORE: &str = "/reliability.v1.Vault/Store";

/// `reliability.v1.Vault` with one unary method, the glue written out as `tonic-build` would
/// generate it (no `protoc`).
#[derive(Clone, Default)]
struct Vault;

struct StoreSvc;

impl tonic::server::UnaryService<StoreRequest> for StoreSvc {
    type Response = StoreReply;
    type Future = BoxFuture<Response<StoreReply>, Status>;

    fn call(&mut self, request: Request<StoreRequest>) -> Self::Future {
        let has_auth = request.metadata().get("authorization").is_some();
        let r = request.into_inner();
        Box::pin(async move {
            match r.action.as_str() {
                "ok" => {
                    assert!(has_auth, "the authorization metadata reached the handler");
                    let mut response = Response::new(StoreReply {
                        echo: format!("{} {} {}", r.email, r.password, r.card),
                        token: TOKEN.to_owned(),
                    });
                    let md = response.metadata_mut();
                    md.insert("x-session-token", MetadataValue::try_from(TOKEN).unwrap());
                    md.insert(
                        "set-cookie",
                        MetadataValue::try_from(format!("session={PASSWORD}; email={EMAIL}")).unwrap(),
                    );
                    Ok(response)
                }
                // Not a server error (span status Unset), an error for the client.
                "invalid" => Err(Status::invalid_argument(format!("card {CARD} rejected for {EMAIL}"))),
                // A server error: span status Error on both sides.
                "internal" => Err(Status::internal(format!(
                    "password {PASSWORD} of {EMAIL} does not match card {CARD_SPACED}"
                ))),
                // Message, binary details and trailing metadata carrying secrets.
                _ => {
                    let mut status = Status::with_details(
                        Code::Unauthenticated,
                        format!("token {TOKEN} expired"),
                        bytes::Bytes::from(format!("{EMAIL} {CARD}")),
                    );
                    status
                        .metadata_mut()
                        .insert("x-card", MetadataValue::try_from(CARD).unwrap());
                    Err(status)
                }
            }
        })
    }
}

impl<B> tower::Service<http::Request<B>> for Vault
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let codec = tonic_prost::ProstCodec::default();
        match req.uri().path() {
            STORE => Box::pin(async move { Ok(tonic::server::Grpc::new(codec).unary(StoreSvc, req).await) }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

impl tonic::server::NamedService for Vault {
    const NAME: &'static str = "reliability.v1.Vault";
}

type GrpcClient = tonic::client::Grpc<GrpcClientService<Channel>>;

async fn store(client: &mut GrpcClient, action: &str) -> Result<Response<StoreReply>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unknown(format!("not ready: {e}")))?;
    let mut request = Request::new(StoreRequest {
        action: action.to_owned(),
        email: EMAIL.to_owned(),
        password: PASSWORD.to_owned(),
        card: CARD_SPACED.to_owned(),
    });
    let md = request.metadata_mut();
    md.insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    md.insert("x-api-key", MetadataValue::try_from(TOKEN).unwrap());
    md.insert(
        "cookie",
        MetadataValue::try_from(format!("password={PASSWORD}; email={EMAIL}")).unwrap(),
    );
    md.insert("x-card", MetadataValue::try_from(CARD).unwrap());
    client
        .unary(
            request,
            http::uri::PathAndQuery::from_static(STORE),
            tonic_prost::ProstCodec::default(),
        )
        .await
}

/// A tonic server with `GrpcServerLayer` and a client with `GrpcClientLayer` (default options):
/// secrets in request metadata (`authorization: Bearer`, `x-api-key`, `cookie`, `x-card`), in
/// request and response messages, in response metadata (`set-cookie`, `x-session-token`), and in
/// the messages, binary details and metadata of error statuses (`INVALID_ARGUMENT`, `INTERNAL`,
/// `UNAUTHENTICATED`). otelrs-grpc documents that it sets no status description ("gRPC status
/// messages are application text"); a status message in a span status would fail here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_secrets_never_exported() {
    let t = TestTelemetry::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let router = Server::builder()
        .layer(GrpcServerLayer::new().with_instrumentation(t.instrumentation()))
        .add_service(Vault);
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
    let mut client: GrpcClient = tonic::client::Grpc::new(
        ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .with_instrumentation(t.instrumentation())
                    .with_endpoint(&endpoint),
            )
            .service(channel),
    );

    let reply = store(&mut client, "ok").await.expect("ok call");
    assert_eq!(reply.metadata().get("x-session-token").unwrap(), TOKEN);
    assert_eq!(reply.into_inner().token, TOKEN);
    let expected = [
        ("invalid", Code::InvalidArgument, EMAIL),
        ("internal", Code::Internal, PASSWORD),
        ("unauthenticated", Code::Unauthenticated, TOKEN),
    ];
    for (action, code, in_message) in expected {
        let status = store(&mut client, action).await.expect_err(action);
        assert_eq!(status.code(), code, "{action}: {status:?}");
        assert!(status.message().contains(in_message), "{action}: {status:?}");
    }
    let calls = 1 + expected.len();
    let spans = t.wait_for_spans(2 * calls, Duration::from_secs(10));
    shutdown_tx.send(()).ok();
    server.await.expect("server task");
    assert_eq!(spans.len(), 2 * calls, "one client and one server span per call");
    assert_eq!(spans.iter().filter(|s| s.span_kind == SpanKind::Client).count(), calls);
    // The error calls are recorded as errors, without a description (the status message is
    // application text).
    for span in &spans {
        if let SpanStatus::Error { description } = &span.status {
            assert!(
                description.is_empty(),
                "otelrs-grpc set a span status description from a gRPC status message: {description:?} on {:?} \
                 (span {:?}); gRPC status messages are application text and must not be exported",
                span.span_kind,
                span.name
            );
        }
    }
    let client_errors = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client && matches!(s.status, SpanStatus::Error { .. }))
        .count();
    assert_eq!(
        client_errors,
        expected.len(),
        "every failed call is an error on the client"
    );
    for s in &spans {
        s.assert_attr("rpc.method", "reliability.v1.Vault/Store");
    }
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 40, "only {checked} exported texts checked");
}

// --- Messaging: RabbitMQ -----------------------------------------------------------------------

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Messages whose payload and AMQP headers (`authorization`, `x-card`, `cookie`, `x-email`)
/// carry the secrets, published through `TracedChannel::basic_publish` (confirmed) and processed
/// through `TracedDelivery::process` on a real RabbitMQ with default options. The AMQP URL's
/// password (`guest`) is not part of the corpus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_secrets_never_exported() {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    let t = TestTelemetry::new();
    let url = amqp_url();
    let conn = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    .unwrap_or_else(|_| unreachable_service(&url, "rabbitmq", "AMQP_URL", "no connection within 5 s"))
    .unwrap_or_else(|e| unreachable_service(&url, "rabbitmq", "AMQP_URL", e));
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm_select");
    let queue = unique("reliability-secrets");
    ch.queue_declare(&queue, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue_declare");
    let rmq = otelrs_mq::rabbitmq::RabbitMq::new()
        .with_instrumentation(t.instrumentation())
        .with_server_from_uri(&url);
    let traced = rmq.channel(ch.clone());

    let payloads = [
        format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","card":"{CARD_SPACED}"}}"#),
        format!("token={TOKEN}&card={CARD}&new_password={NEW_PASSWORD}"),
    ];
    for payload in &payloads {
        let mut headers = FieldTable::default();
        headers.insert(
            "authorization".into(),
            AMQPValue::LongString(format!("Bearer {TOKEN}").into()),
        );
        headers.insert("x-card".into(), AMQPValue::LongString(CARD_SPACED.into()));
        headers.insert(
            "cookie".into(),
            AMQPValue::LongString(format!("password={PASSWORD}").into()),
        );
        headers.insert("x-email".into(), AMQPValue::LongString(EMAIL.into()));
        let confirm = traced
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                payload.as_bytes(),
                BasicProperties::default()
                    .with_headers(headers)
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }

    let mut consumer = rmq.consumer(
        ch.basic_consume(&queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    for payload in &payloads {
        let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
            .await
            .expect("no delivery within 10 s")
            .expect("consumer ended")
            .expect("consumer error");
        assert_eq!(delivery.data, payload.as_bytes(), "payload unchanged");
        delivery
            .process(|_cx, d| async move {
                d.ack(BasicAckOptions::default()).await?;
                Ok::<_, lapin::Error>(())
            })
            .await
            .expect("processed");
    }
    ch.queue_delete(&queue, QueueDeleteOptions::default())
        .await
        .expect("queue_delete");
    let spans = t.spans();
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Producer).count(),
        payloads.len()
    );
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).count(),
        payloads.len()
    );
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 20, "only {checked} exported texts checked");
}

// --- Messaging: NATS ---------------------------------------------------------------------------

/// Core NATS publish and process with the secrets in the payload and in the headers; nothing of
/// them may be exported (message headers other than the trace context are never recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_secrets_never_exported() {
    let t = TestTelemetry::new();
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let client = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url))
        .await
        .unwrap_or_else(|_| unreachable_service(&url, "nats", "NATS_URL", "no connection within 5 s"))
        .unwrap_or_else(|e| unreachable_service(&url, "nats", "NATS_URL", e));
    let nats = otelrs_mq::nats::Nats::new().with_instrumentation(t.instrumentation());
    let subject = unique("reliability-secrets");
    let mut sub = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let payloads = [
        format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","card":"{CARD_SPACED}"}}"#),
        format!("token={TOKEN}&card={CARD}&new_password={NEW_PASSWORD}"),
    ];
    for payload in &payloads {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {TOKEN}").as_str());
        headers.insert("x-card", CARD_SPACED);
        headers.insert("cookie", format!("password={PASSWORD}").as_str());
        headers.insert("x-email", EMAIL);
        nats.publish(&client, subject.clone(), headers, payload.clone().into())
            .await
            .expect("publish");
    }
    for payload in &payloads {
        let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("no message within 10 s")
            .expect("subscription open");
        assert_eq!(msg.payload, payload.as_bytes(), "payload unchanged");
        nats.process(msg, |_cx, m| async move { Ok::<_, std::io::Error>(m.payload.len()) })
            .await
            .expect("processed");
    }
    let spans = t.spans();
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Producer).count(),
        payloads.len()
    );
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).count(),
        payloads.len()
    );
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 10, "only {checked} exported texts checked");
}

// --- Messaging: Kafka --------------------------------------------------------------------------

type MockCluster = rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A one-broker mock cluster with a fresh topic.
fn kafka_cluster() -> (MockCluster, String, String) {
    let cluster = MockCluster::new(1).expect("librdkafka mock cluster");
    let topic = unique("reliability-secrets");
    cluster.create_topic(&topic, 1, 1).expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    (cluster, bootstrap, topic)
}

/// Sends `records` (key, payload) with secret headers through `Kafka::send`, then consumes them
/// and runs each through `Kafka::process` (committing inside).
async fn kafka_round_trip(t: &TestTelemetry, records: &[(&str, String)]) {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    use rdkafka::message::{Header, Message, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};

    let (_cluster, bootstrap, topic) = kafka_cluster();
    let producer_kafka = otelrs_mq::kafka::Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_bootstrap_servers(&bootstrap);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    for (key, payload) in records {
        let authorization = format!("Bearer {TOKEN}");
        let cookie = format!("password={PASSWORD}; email={EMAIL}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "authorization",
                value: Some(authorization.as_str()),
            })
            .insert(Header {
                key: "x-card",
                value: Some(CARD_SPACED),
            })
            .insert(Header {
                key: "cookie",
                value: Some(cookie.as_str()),
            });
        producer_kafka
            .send(
                &producer,
                FutureRecord::to(&topic).key(*key).payload(payload).headers(headers),
                Duration::from_secs(5),
            )
            .await
            .expect("delivered");
    }

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", unique("reliability-group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let kafka = otelrs_mq::kafka::Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_client_config(&config);
    let consumer: StreamConsumer = config.create().expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut stream = consumer.stream();
    for (key, payload) in records {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a message within 10 s")
            .expect("stream open")
            .expect("no consume error");
        assert_eq!(msg.key(), Some(key.as_bytes()));
        assert_eq!(msg.payload(), Some(payload.as_bytes()));
        let (k, c) = (&kafka, &consumer);
        kafka
            .process(msg, |_cx, m| async move {
                k.commit_message(c, &m, CommitMode::Sync)?;
                Ok::<_, rdkafka::error::KafkaError>(())
            })
            .await
            .expect("processed");
    }
    drop(stream);
    let spans = t.spans();
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Producer).count(),
        records.len()
    );
    assert_eq!(
        spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).count(),
        records.len()
    );
}

/// Kafka (librdkafka's in-process mock cluster): payloads and headers (`authorization`,
/// `x-card`, `cookie`) carrying the secrets, with neutral keys, through `Kafka::send`,
/// `Kafka::process` and `Kafka::commit_message` with default options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_payload_and_header_secrets_never_exported() {
    let t = TestTelemetry::new();
    let records = [
        (
            "order-1",
            format!(r#"{{"email":"{EMAIL}","password":"{PASSWORD}","card":"{CARD_SPACED}"}}"#),
        ),
        (
            "order-2",
            format!("token={TOKEN}&card={CARD}&new_password={NEW_PASSWORD}"),
        ),
    ];
    kafka_round_trip(&t, &records).await;
    let checked = assert_no_secrets(&t, SECRETS);
    assert!(checked > 20, "only {checked} exported texts checked");
}

/// A Kafka message whose key is an e-mail address (a common partitioning key: per-customer
/// ordering). otelrs-mq records `messaging.kafka.message.key` on every send and process span (and
/// on each link of a batch process span) by default, with no option to turn it off, so the
/// address is exported. This test states the issue's requirement (no e-mail address in any
/// exported attribute with default options) and fails while the key is recorded by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_email_message_key_not_exported_by_default() {
    let t = TestTelemetry::new();
    let records = [(EMAIL, "{}".to_owned())];
    kafka_round_trip(&t, &records).await;
    let keyed: Vec<String> = t
        .spans()
        .iter()
        .filter(|s| s.attr("messaging.kafka.message.key").is_some())
        .map(|s| format!("{:?} ({:?})", s.name, s.span_kind))
        .collect();
    assert!(
        keyed.is_empty(),
        "otelrs-mq exports the Kafka message key (an e-mail address here) as `messaging.kafka.message.key` \
         with default options, on spans {keyed:?} (otel-mq/src/kafka.rs: `send`, `message_attrs` used by \
         `process`, and the link attributes of `process_batch`); message keys are application data \
         (user ids, e-mail addresses) and must be opt-in"
    );
    assert_no_secrets(&t, SECRETS);
}
