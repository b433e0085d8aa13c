//! Runs the `shop` demo's scenario in-process and asserts the shape of every trace: one trace per
//! step, the span tree across gateway → users / orders → notifier (with the `tracing` span of
//! an `#[instrument]` function, `place order`, between the orders server span and the spans made
//! inside it), error status exactly where the conventions put it, and no SQL on a cache hit. It runs three times: with the defaults
//! (SQLite, the Kafka mock cluster), with PostgreSQL and RabbitMQ, and with MySQL/MariaDB and
//! NATS, checking each backend's `db.system.name` / `messaging.system` on the right spans and
//! that the run's schema, database and queue are gone after shutdown.
//!
//! Needs Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`) for the cache assertions, and for
//! the server runs PostgreSQL (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`),
//! MariaDB or MySQL (`MYSQL_URL`, default `mysql://root@127.0.0.1:3306/test`), RabbitMQ
//! (`AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`) and NATS (`NATS_URL`, default
//! `nats://127.0.0.1:4222`): `docker compose up -d`. A service that cannot be reached fails its
//! test with the URL tried and how to start it.

use examples::shop::broker::BrokerBackend;
use examples::shop::scenario::{self, Outcome};
use examples::shop::store::DbBackend;
use examples::shop::telemetry::FinishedSpan;
use examples::shop::{Cache, Shop, ShopOptions};
use opentelemetry::trace::{SpanKind, Status};
use sqlx::Connection as _;

/// The one span of `o` with this service, kind and name.
#[track_caller]
fn span<'a>(o: &'a Outcome, service: &str, kind: SpanKind, name: &str) -> &'a FinishedSpan {
    let found: Vec<_> = o
        .spans
        .iter()
        .filter(|s| s.service == service && s.kind == kind && s.name == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "step {:?}: expected one {service} {kind:?} span {name:?}; trace has: {:#?}",
        o.title,
        o.spans
            .iter()
            .map(|s| (s.service, s.kind.clone(), s.name.to_string()))
            .collect::<Vec<_>>()
    );
    found[0]
}

#[track_caller]
fn assert_child(o: &Outcome, child: &FinishedSpan, parent: &FinishedSpan) {
    assert_eq!(
        child.parent_span_id,
        Some(parent.span_id()),
        "step {:?}: {} {:?} should be a child of {} {:?}",
        o.title,
        child.service,
        child.name,
        parent.service,
        parent.name
    );
    assert_eq!(child.trace_id(), parent.trace_id());
}

/// Asserts that `s` was made through the `tracing` bridge, not by an adapter or the OpenTelemetry
/// API.
#[track_caller]
fn assert_from_tracing(o: &Outcome, s: &FinishedSpan) {
    assert_eq!(
        s.scope, "tracing-opentelemetry",
        "step {:?}: {} {:?} should be a `tracing` span",
        o.title, s.service, s.name
    );
}

/// Every span in one trace, exactly one root (whose parent is `remote_parent` if given).
#[track_caller]
fn assert_one_trace(o: &Outcome, remote_parent: Option<opentelemetry::trace::SpanId>) -> &FinishedSpan {
    let trace_id = o
        .trace_id
        .unwrap_or_else(|| panic!("step {:?} recorded no trace", o.title));
    assert!(o.spans.iter().all(|s| s.trace_id() == trace_id));
    let ids: Vec<_> = o.spans.iter().map(FinishedSpan::span_id).collect();
    let roots: Vec<_> = o
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none_or(|p| !ids.contains(&p)))
        .collect();
    assert_eq!(roots.len(), 1, "step {:?}: one root span expected", o.title);
    let root = roots[0];
    assert_eq!((root.service, root.kind.clone()), ("gateway", SpanKind::Server));
    assert_eq!(root.parent_span_id, remote_parent, "step {:?}: root's parent", o.title);
    root
}

#[track_caller]
fn assert_errors(o: &Outcome, expected: &[(&str, SpanKind, &str)]) {
    let mut errors: Vec<_> = o
        .spans
        .iter()
        .filter(|s| s.is_error())
        .map(|s| (s.service, s.kind.clone(), s.name.to_string()))
        .collect();
    errors.sort_by(|a, b| a.2.cmp(&b.2));
    let mut expected: Vec<_> = expected
        .iter()
        .map(|(s, k, n)| (*s, k.clone(), (*n).to_owned()))
        .collect();
    expected.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(errors, expected, "step {:?}: spans with status Error", o.title);
}

/// The spans of SQL statements (any `db.system.name` but Redis's).
fn sql_spans(o: &Outcome) -> Vec<&FinishedSpan> {
    o.spans
        .iter()
        .filter(|s| s.attr_string("db.system.name").is_some_and(|system| system != "redis"))
        .collect()
}

#[track_caller]
fn assert_attr(o: &Outcome, s: &FinishedSpan, key: &str, expected: &str) {
    assert_eq!(
        s.attr_string(key).as_deref(),
        Some(expected),
        "step {:?}: {} {:?} {key}",
        o.title,
        s.service,
        s.name
    );
}

/// The `db.system.name` otelrs-sql should report for this database: for MySQL URLs, what the
/// server says it is (`mariadb` or `mysql`).
async fn expected_db_system(db: &DbBackend) -> &'static str {
    match db {
        DbBackend::Sqlite => "sqlite",
        DbBackend::Postgres { .. } => "postgresql",
        DbBackend::MySql { url } => {
            let mut conn = sqlx::MySqlConnection::connect(url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to MySQL/MariaDB at {url} ({e}); start it with `docker compose up -d mariadb` or set MYSQL_URL"));
            let version: String = sqlx::query_scalar("SELECT VERSION()")
                .fetch_one(&mut conn)
                .await
                .expect("SELECT VERSION()");
            if version.to_ascii_lowercase().contains("mariadb") {
                "mariadb"
            } else {
                "mysql"
            }
        }
    }
}

/// Whether the run's schema (PostgreSQL) or database (MySQL) still exists.
async fn namespace_exists(db: &DbBackend, namespace: &str) -> bool {
    let sql = "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ";
    let count: i64 = match db {
        DbBackend::Sqlite => return false,
        DbBackend::Postgres { url } => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("connect to PostgreSQL");
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{sql}$1")))
                .bind(namespace)
                .fetch_one(&mut conn)
                .await
                .expect("query information_schema")
        }
        DbBackend::MySql { url } => {
            let mut conn = sqlx::MySqlConnection::connect(url).await.expect("connect to MySQL");
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("{sql}?")))
                .bind(namespace)
                .fetch_one(&mut conn)
                .await
                .expect("query information_schema")
        }
    };
    count > 0
}

/// Whether the run's RabbitMQ queue still exists (a passive declare fails when it does not).
async fn queue_exists(url: &str, queue: &str) -> bool {
    let conn = lapin::Connection::connect(url, lapin::ConnectionProperties::default())
        .await
        .expect("connect to RabbitMQ");
    let channel = conn.create_channel().await.expect("channel");
    let options = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let exists = channel
        .queue_declare(queue, options, lapin::types::FieldTable::default())
        .await
        .is_ok();
    let _ = conn.close(200, "checked").await;
    exists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_sqlite_and_kafka_mock_cluster() {
    check_scenario(DbBackend::Sqlite, BrokerBackend::Kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_rabbitmq() {
    check_scenario(
        DbBackend::parse("postgres").expect("known database"),
        BrokerBackend::parse("rabbitmq").expect("known broker"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_and_nats() {
    check_scenario(
        DbBackend::parse("mysql").expect("known database"),
        BrokerBackend::parse("nats").expect("known broker"),
    )
    .await;
}

async fn check_scenario(db: DbBackend, broker: BrokerBackend) {
    let db_system = expected_db_system(&db).await;
    let options = ShopOptions {
        db: db.clone(),
        broker: broker.clone(),
        ..ShopOptions::from_env().expect("valid options")
    };
    let shop = Shop::start(&options)
        .await
        .unwrap_or_else(|e| panic!("the shop did not start: {e}"));
    let destination = shop.order_destination().to_owned();
    let (messaging_system, send_name, settle_name) = match &broker {
        BrokerBackend::Kafka => {
            assert_eq!(destination, "order.created", "the mock cluster is private to the run");
            (
                "kafka",
                format!("send {destination}"),
                Some(format!("commit {destination}")),
            )
        }
        BrokerBackend::RabbitMq { .. } => (
            "rabbitmq",
            format!("publish {destination}"),
            Some(format!("ack {destination}")),
        ),
        BrokerBackend::Nats { .. } => ("nats", format!("send {destination}"), None),
    };
    if broker != BrokerBackend::Kafka {
        assert_eq!(
            destination,
            format!("order.created.{}", shop.run_id),
            "a real broker gets a destination of the run's own"
        );
    }
    let outcomes = scenario::run(&shop).await.expect("the scenario runs");
    let statuses: Vec<u16> = outcomes.iter().map(|o| o.status).collect();
    assert_eq!(statuses, [201, 200, 200, 201, 402, 404, 200], "gateway responses");
    let [create, miss, hit, order, declined, not_found, traced] = &outcomes[..] else {
        panic!("seven steps expected, got {}", outcomes.len());
    };
    let server = SpanKind::Server;
    let client = SpanKind::Client;

    // Create: gateway → users (HTTP) → SQLite.
    let root = assert_one_trace(create, None);
    let gw_client = span(create, "gateway", client.clone(), "POST /users");
    let users_server = span(create, "users", server.clone(), "POST /users");
    let insert = span(create, "users", client.clone(), "INSERT users");
    assert_child(create, gw_client, root);
    assert_child(create, users_server, gw_client);
    assert!(
        users_server.parent_is_remote,
        "the users span continues the propagated context"
    );
    assert_child(create, insert, users_server);
    assert_attr(create, insert, "db.system.name", db_system);
    assert_eq!(create.spans.len(), 4);
    assert_errors(create, &[]);

    // Place an order: every service, in order.
    let root = assert_one_trace(order, None);
    assert_eq!(root.name, "POST /orders");
    let check_user = span(order, "gateway", client.clone(), "GET /users/{id}");
    assert_child(order, check_user, root);
    assert_child(
        order,
        span(order, "users", server.clone(), "GET /users/{id}"),
        check_user,
    );
    let rpc_client = span(order, "gateway", client.clone(), "shop.v1.Orders/PlaceOrder");
    let rpc_server = span(order, "orders", server.clone(), "shop.v1.Orders/PlaceOrder");
    assert_child(order, rpc_client, root);
    assert_child(order, rpc_server, rpc_client);
    assert!(rpc_server.parent_is_remote);
    // `place order` is an `#[instrument]` function: a `tracing` span exported through the bridge,
    // the RPC server span's child and the parent of the spans made inside it.
    let place = span(order, "orders", SpanKind::Internal, "place order");
    assert_child(order, place, rpc_server);
    assert_from_tracing(order, place);
    assert_attr(order, place, "shop.order.item", "keyboard");
    assert_attr(order, place, "shop.order.quantity", "1");
    let charge = span(order, "orders", SpanKind::Internal, "charge payment");
    let insert = span(order, "orders", client.clone(), "INSERT orders");
    assert_attr(order, insert, "db.system.name", db_system);
    let send = span(order, "orders", SpanKind::Producer, &send_name);
    assert_attr(order, send, "messaging.system", messaging_system);
    assert_attr(order, send, "messaging.destination.name", &destination);
    for child in [charge, insert, send] {
        assert_child(order, child, place);
    }
    assert!(
        place.start <= charge.start && send.end <= place.end,
        "place order covers the payment, the insert and the publish"
    );
    assert!(
        charge.end <= insert.start && insert.end <= send.start,
        "payment, then insert, then publish"
    );
    let process = span(order, "notifier", SpanKind::Consumer, &format!("process {destination}"));
    assert_attr(order, process, "messaging.system", messaging_system);
    assert_attr(order, process, "messaging.destination.name", &destination);
    assert_child(order, process, send);
    assert!(
        process.parent_is_remote,
        "the creation context travels in the message headers"
    );
    assert!(
        process.links.is_empty(),
        "child of the creation context, no ambient context to link"
    );
    let notification = span(order, "notifier", client.clone(), "INSERT notifications");
    assert_child(order, notification, process);
    assert_attr(order, notification, "db.system.name", db_system);
    match &settle_name {
        Some(name) => {
            let settle = span(order, "notifier", client.clone(), name);
            assert_child(order, settle, process);
            assert_attr(order, settle, "messaging.system", messaging_system);
            assert_attr(order, settle, "messaging.operation.type", "settle");
            assert!(notification.end <= settle.start, "written, then settled");
        }
        None => assert_eq!(
            order.spans.iter().filter(|s| s.service == "notifier").count(),
            2,
            "core NATS has no acknowledgement: process and INSERT only"
        ),
    }
    let mut services: Vec<_> = order.spans.iter().map(|s| s.service).collect();
    services.dedup();
    services.sort_unstable();
    services.dedup();
    assert_eq!(services, ["gateway", "notifier", "orders", "users"]);
    assert_errors(order, &[]);

    // Payment declined: the error is on the payment step and the gRPC client span only; the
    // orders server span (FAILED_PRECONDITION) and the gateway server span (402) stay Unset.
    let root = assert_one_trace(declined, None);
    assert_eq!(root.attr_string("http.response.status_code").as_deref(), Some("402"));
    assert_eq!(root.status, Status::Unset);
    let rpc_client = span(declined, "gateway", client.clone(), "shop.v1.Orders/PlaceOrder");
    let rpc_server = span(declined, "orders", server.clone(), "shop.v1.Orders/PlaceOrder");
    assert_child(declined, rpc_server, rpc_client);
    assert_eq!(
        rpc_client.attr_string("error.type").as_deref(),
        Some("FAILED_PRECONDITION")
    );
    assert_eq!(
        rpc_server.attr_string("rpc.response.status_code").as_deref(),
        Some("FAILED_PRECONDITION")
    );
    assert_eq!(rpc_server.status, Status::Unset);
    let place = span(declined, "orders", SpanKind::Internal, "place order");
    assert_child(declined, place, rpc_server);
    assert_from_tracing(declined, place);
    let charge = span(declined, "orders", SpanKind::Internal, "charge payment");
    assert_child(declined, charge, place);
    assert_eq!(charge.attr_string("error.type").as_deref(), Some("payment_declined"));
    assert_errors(
        declined,
        &[
            ("gateway", client.clone(), "shop.v1.Orders/PlaceOrder"),
            ("orders", SpanKind::Internal, "charge payment"),
        ],
    );
    assert!(
        !declined
            .spans
            .iter()
            .any(|s| s.name == "INSERT orders" || s.kind == SpanKind::Producer),
        "a declined order is neither written nor published"
    );

    // Not found: a 404 is an error for the client span only.
    assert_one_trace(not_found, None);
    let gw_client = span(not_found, "gateway", client.clone(), "GET /users/{id}");
    assert_eq!(gw_client.attr_string("error.type").as_deref(), Some("404"));
    let users_server = span(not_found, "users", server.clone(), "GET /users/{id}");
    assert_eq!(
        users_server.attr_string("http.response.status_code").as_deref(),
        Some("404")
    );
    assert_errors(not_found, &[("gateway", client.clone(), "GET /users/{id}")]);
    let lookups = sql_spans(not_found);
    assert_eq!(lookups.len(), 1, "a missing user is looked up in the database");
    assert_eq!(lookups[0].name, "SELECT users");
    assert_attr(not_found, lookups[0], "db.system.name", db_system);

    // The caller's traceparent: same trace id, the gateway span is the child of the caller's span.
    let root = assert_one_trace(traced, traced.caller_span_id);
    assert_eq!(traced.trace_id, traced.caller_trace_id, "the trace id is the caller's");
    assert!(root.parent_is_remote);

    // Metrics: the RED rows come from the recorded histograms.
    let rows = shop.red_rows();
    let orders_row = rows
        .iter()
        .find(|r| r.service == "gateway" && r.signal == "HTTP server" && r.operation == "POST /orders")
        .expect("a RED row for the gateway's POST /orders");
    assert_eq!(
        (orders_row.requests, orders_row.errors),
        (2, 0),
        "402 is not a server error"
    );
    let rpc_row = rows
        .iter()
        .find(|r| r.service == "gateway" && r.signal == "RPC client")
        .expect("a RED row for the gRPC client");
    assert_eq!((rpc_row.requests, rpc_row.errors), (2, 1));
    let insert_row = format!("{db_system} INSERT orders");
    assert!(
        rows.iter().any(|r| r.service == "orders" && r.operation == insert_row),
        "a RED row {insert_row:?} for orders: {rows:#?}"
    );

    // The cache: a miss reads SQLite and fills Redis; the hit touches Redis only.
    if let Cache::Unavailable { url, reason } = &shop.cache {
        panic!(
            "Redis is not reachable at {url} ({reason}), so the cache-hit trace cannot be checked; \
             start it with `docker compose up -d redis` or point REDIS_URL at one"
        );
    }
    let users_server = span(miss, "users", server.clone(), "GET /users/{id}");
    let get = span(miss, "users", client.clone(), "GET");
    let select = span(miss, "users", client.clone(), "SELECT users");
    let set = span(miss, "users", client.clone(), "SET");
    for child in [get, select, set] {
        assert_child(miss, child, users_server);
    }
    assert_eq!(get.attr_string("db.system.name").as_deref(), Some("redis"));
    assert_attr(miss, select, "db.system.name", db_system);
    assert!(
        get.end <= select.start && select.end <= set.start,
        "GET (miss), SELECT, SET"
    );
    assert_one_trace(hit, None);
    let users_server = span(hit, "users", server, "GET /users/{id}");
    assert_child(hit, span(hit, "users", client, "GET"), users_server);
    assert!(
        sql_spans(hit).is_empty(),
        "a cache hit runs no SQL: {:?}",
        sql_spans(hit)
    );
    assert_eq!(hit.spans.len(), 4);
    assert_errors(hit, &[]);

    let namespace = format!("shop_{}", shop.run_id);
    shop.shutdown().await.expect("clean shutdown");
    assert!(
        !namespace_exists(&db, &namespace).await,
        "the run's schema / database {namespace} is dropped at shutdown"
    );
    if let BrokerBackend::RabbitMq { url } = &broker {
        assert!(
            !queue_exists(url, &destination).await,
            "the run's queue {destination} is deleted at shutdown"
        );
    }
}
