//! Runs the `shop` demo's scenario in-process and asserts the shape of every trace: one trace per
//! step, the span tree across gateway → users / orders → notifier, error status exactly where
//! the conventions put it, and no SQL on a cache hit.
//!
//! Redis must be reachable at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the cache
//! assertions; everything else is embedded.

use examples::shop::scenario::{self, Outcome};
use examples::shop::telemetry::FinishedSpan;
use examples::shop::{Cache, Shop, ShopOptions};
use opentelemetry::trace::{SpanKind, Status};

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

fn sql_spans(o: &Outcome) -> Vec<&FinishedSpan> {
    o.spans
        .iter()
        .filter(|s| s.attr_string("db.system.name").as_deref() == Some("sqlite"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_traces_have_the_expected_shapes() {
    let shop = Shop::start(&ShopOptions::from_env().expect("valid options"))
        .await
        .expect("the shop starts");
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
    let charge = span(order, "orders", SpanKind::Internal, "charge payment");
    let insert = span(order, "orders", client.clone(), "INSERT orders");
    let send = span(order, "orders", SpanKind::Producer, "send order.created");
    for child in [charge, insert, send] {
        assert_child(order, child, rpc_server);
    }
    assert!(
        charge.end <= insert.start && insert.end <= send.start,
        "payment, then insert, then publish"
    );
    let process = span(order, "notifier", SpanKind::Consumer, "process order.created");
    assert_child(order, process, send);
    assert!(
        process.parent_is_remote,
        "the creation context travels in the message headers"
    );
    assert!(
        process.links.is_empty(),
        "child of the creation context, no ambient context to link"
    );
    assert_child(
        order,
        span(order, "notifier", client.clone(), "INSERT notifications"),
        process,
    );
    assert_child(
        order,
        span(order, "notifier", client.clone(), "commit order.created"),
        process,
    );
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
    let charge = span(declined, "orders", SpanKind::Internal, "charge payment");
    assert_child(declined, charge, rpc_server);
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
    assert_eq!(
        sql_spans(not_found).len(),
        1,
        "a missing user is looked up in the database"
    );

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

    shop.shutdown().await.expect("clean shutdown");
}
