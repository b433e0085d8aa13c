//! The `ConnectionLike` wrapper against a real Redis on loopback.

mod common;

use std::time::Duration;

use common::{base_attrs, cleanup, client, connect, prefix, with};
use opentelemetry::trace::{FutureExt as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{Sampler, SpanData};
use otelrs_core::instruments::DB_DURATION_BUCKETS;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_core::Instrumentation;
use otelrs_redis::{QueryText, RedisInstrumentation};
use redis::AsyncCommands;

const DURATION: &str = "db.client.operation.duration";

fn text(s: &SpanData) -> String {
    match s.attr("db.query.text") {
        Some(Value::String(v)) => v.as_str().to_owned(),
        other => panic!("span {:?}: db.query.text is {other:?}", s.name),
    }
}

/// Asserts that `needle` appears in no span name, attribute value or status description.
#[track_caller]
fn assert_nowhere(t: &TestTelemetry, needle: &str) {
    for s in t.spans() {
        assert!(!s.name.contains(needle), "{needle:?} in span name {:?}", s.name);
        for a in &s.attributes {
            assert!(
                !a.value.as_str().contains(needle),
                "{needle:?} in attribute {} = {:?} of span {:?}",
                a.key,
                a.value,
                s.name
            );
        }
        if let Status::Error { description } = &s.status {
            assert!(!description.contains(needle), "{needle:?} in status of {:?}", s.name);
        }
    }
}

#[tokio::test]
async fn async_commands_get_exact_spans_and_duration_points() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("commands");
    let key = format!("{p}:user");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    let () = conn.set(&key, "Ada Lovelace").await.expect("SET");
    let got: String = conn.get(&key).await.expect("GET");
    assert_eq!(got, "Ada Lovelace", "replies pass through unchanged");
    let n: i64 = conn.hset(format!("{p}:h"), "name", "Ada").await.expect("HSET");
    assert_eq!(n, 1);
    let missing: Option<String> = conn.get(format!("{p}:missing")).await.expect("GET missing");
    assert_eq!(missing, None);

    let spans = t.spans();
    assert_eq!(
        spans.len(),
        4,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    spans[0]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_root()
        .assert_attrs(&with(
            &client,
            &[
                kv("db.operation.name", "SET"),
                kv("db.query.text", format!("SET {key} ?")),
            ],
        ));
    assert_eq!(spans[0].name, "SET");
    assert_eq!(spans[1].name, "GET");
    spans[1]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&with(
            &client,
            &[
                kv("db.operation.name", "GET"),
                kv("db.query.text", format!("GET {key}")),
            ],
        ));
    assert_eq!(spans[2].name, "HSET");
    assert_eq!(text(&spans[2]), format!("HSET {p}:h name ?"));
    assert_eq!(spans[0].instrumentation_scope.name(), "otelrs-redis");
    assert_nowhere(&t, "Ada");

    let m = t.metrics();
    m.assert_metric(DURATION, "s", "Duration of database client operations.");
    let get = m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "GET")]));
    assert_eq!(get.count, 2);
    assert_eq!(get.bounds, DB_DURATION_BUCKETS.to_vec());
    let set = m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "SET")]));
    assert_eq!(set.count, 1);
    assert_eq!(m.histogram(DURATION).len(), 3, "GET, SET, HSET");
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn raw_cmd_two_word_commands_scripts_and_noscript() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("raw");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    let secret = "s3cr3t-value-0042";
    let () = redis::cmd("SET")
        .arg(format!("{p}:k"))
        .arg(secret)
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .expect("SET");
    let () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("otel-redis-test")
        .query_async(&mut conn)
        .await
        .expect("CLIENT SETNAME");
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return ARGV[1]")
        .query_async(&mut conn)
        .await
        .expect("SCRIPT LOAD");
    let echoed: String = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(1)
        .arg(format!("{p}:k"))
        .arg(secret)
        .query_async(&mut conn)
        .await
        .expect("EVALSHA");
    assert_eq!(echoed, secret);
    let missing = "0000000000000000000000000000000000000000";
    let err = redis::cmd("EVALSHA")
        .arg(missing)
        .arg(0)
        .query_async::<String>(&mut conn)
        .await
        .expect_err("NOSCRIPT");
    assert_eq!(err.code(), Some("NOSCRIPT"));

    let set = t.span("SET");
    set.assert_attr("db.query.text", format!("SET {p}:k ? ? ?"));
    t.span("CLIENT SETNAME")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&with(
            &client,
            &[
                kv("db.operation.name", "CLIENT SETNAME"),
                kv("db.query.text", "CLIENT SETNAME otel-redis-test"),
            ],
        ));
    t.span("SCRIPT LOAD").assert_attr("db.operation.name", "SCRIPT LOAD");
    let evalsha = t.spans_named("EVALSHA");
    assert_eq!(evalsha.len(), 2);
    evalsha[0].assert_status(&Status::Unset).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "EVALSHA"),
            kv("db.query.text", format!("EVALSHA {sha} 1 {p}:k ?")),
            kv("db.stored_procedure.name", sha.clone()),
        ],
    ));
    evalsha[1].assert_status(&Status::error("")).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "EVALSHA"),
            kv("db.query.text", format!("EVALSHA {missing} 0")),
            kv("db.stored_procedure.name", missing),
            kv("db.response.status_code", "NOSCRIPT"),
            kv("error.type", "NOSCRIPT"),
        ],
    ));
    assert_nowhere(&t, secret);
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn pipelines_are_one_span_with_batch_size() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("pipe");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    let () = redis::pipe()
        .set(format!("{p}:a"), "va-secret")
        .set(format!("{p}:b"), "vb-secret")
        .query_async(&mut conn)
        .await
        .expect("pipeline");
    let (a, len): (String, i64) = redis::pipe()
        .get(format!("{p}:a"))
        .strlen(format!("{p}:b"))
        .query_async(&mut conn)
        .await
        .expect("mixed pipeline");
    assert_eq!((a.as_str(), len), ("va-secret", 9));
    let (one,): (String,) = redis::pipe()
        .get(format!("{p}:a"))
        .query_async(&mut conn)
        .await
        .expect("one");
    assert_eq!(one, "va-secret");

    let spans = t.spans_named("PIPELINE");
    assert_eq!(spans.len(), 3);
    spans[0]
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::Unset)
        .assert_attrs(&with(
            &client,
            &[
                kv("db.operation.name", "PIPELINE SET"),
                kv("db.operation.batch.size", 2i64),
                kv("db.query.text", format!("SET {p}:a ?; SET {p}:b ?")),
            ],
        ));
    spans[1].assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "PIPELINE"),
            kv("db.operation.batch.size", 2i64),
            kv("db.query.text", format!("GET {p}:a; STRLEN {p}:b")),
        ],
    ));
    spans[2]
        .assert_attr("db.operation.name", "PIPELINE GET")
        .assert_no_attr("db.operation.batch.size");
    assert_eq!(t.spans().len(), 3, "one span per pipeline, none per command");
    assert_nowhere(&t, "secret");

    let m = t.metrics();
    let point = m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "PIPELINE SET")]));
    assert_eq!(point.count, 1, "a batch is one operation");
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn transactions_are_one_multi_span_and_errors_inside_fail_it() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("multi");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr(format!("{p}:n"), 1)
        .incr(format!("{p}:n"), 2)
        .query_async(&mut conn)
        .await
        .expect("transaction");
    assert_eq!((x, y), (1, 3));
    let () = bare.set(format!("{p}:s"), "text").await.expect("setup");
    let err = redis::pipe()
        .atomic()
        .incr(format!("{p}:n"), 1)
        .lpush(format!("{p}:s"), "x")
        .query_async::<(i64, i64)>(&mut conn)
        .await
        .expect_err("WRONGTYPE inside EXEC");
    let bare_err = redis::pipe()
        .atomic()
        .incr(format!("{p}:n"), 1)
        .lpush(format!("{p}:s"), "x")
        .query_async::<(i64, i64)>(&mut bare)
        .await
        .expect_err("WRONGTYPE inside EXEC, bare");
    assert_eq!(err.kind(), bare_err.kind());
    assert_eq!(
        err.to_string(),
        bare_err.to_string(),
        "the error is passed through unchanged"
    );
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");

    let spans = t.spans_named("MULTI");
    assert_eq!(spans.len(), 2);
    spans[0].assert_status(&Status::Unset).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "MULTI INCRBY"),
            kv("db.operation.batch.size", 2i64),
            kv("db.query.text", format!("INCRBY {p}:n 1; INCRBY {p}:n 2")),
        ],
    ));
    spans[1].assert_status(&Status::error("")).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "MULTI"),
            kv("db.operation.batch.size", 2i64),
            kv("db.query.text", format!("INCRBY {p}:n 1; LPUSH {p}:s ?")),
            kv("db.response.status_code", "WRONGTYPE"),
            kv("error.type", "WRONGTYPE"),
        ],
    ));
    let m = t.metrics();
    m.assert_histogram_point(
        DURATION,
        &with(
            &client,
            &[
                kv("db.operation.name", "MULTI"),
                kv("db.response.status_code", "WRONGTYPE"),
                kv("error.type", "WRONGTYPE"),
            ],
        ),
    );
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn publish_masks_the_message() {
    let t = TestTelemetry::new();
    let client = client();
    let bare = connect(&client).await;
    let p = prefix("publish");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare, client.get_connection_info());
    let channel = format!("{p}:events");
    let receivers: i64 = conn.publish(&channel, "payload-secret").await.expect("PUBLISH");
    assert_eq!(receivers, 0);
    t.span("PUBLISH").assert_status(&Status::Unset).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "PUBLISH"),
            kv("db.query.text", format!("PUBLISH {channel} ?")),
        ],
    ));
    assert_nowhere(&t, "payload-secret");
}

#[tokio::test]
async fn wrongtype_error_passes_through_and_marks_span_and_metric() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("wrongtype");
    let key = format!("{p}:s");
    let () = bare.set(&key, "text").await.expect("setup");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    let expected = bare
        .lpush::<_, _, i64>(&key, "elem-secret")
        .await
        .expect_err("bare WRONGTYPE");
    let err = conn
        .lpush::<_, _, i64>(&key, "elem-secret")
        .await
        .expect_err("WRONGTYPE");
    assert_eq!(err.kind(), expected.kind());
    assert_eq!(err.code(), Some("WRONGTYPE"));
    assert_eq!(
        err.to_string(),
        expected.to_string(),
        "the error is passed through unchanged"
    );

    t.span("LPUSH")
        .assert_kind(SpanKind::Client)
        .assert_status(&Status::error(""))
        .assert_attrs(&with(
            &client,
            &[
                kv("db.operation.name", "LPUSH"),
                kv("db.query.text", format!("LPUSH {key} ?")),
                kv("db.response.status_code", "WRONGTYPE"),
                kv("error.type", "WRONGTYPE"),
            ],
        ));
    let m = t.metrics();
    let point = m.assert_histogram_point(
        DURATION,
        &with(
            &client,
            &[
                kv("db.operation.name", "LPUSH"),
                kv("db.response.status_code", "WRONGTYPE"),
                kv("error.type", "WRONGTYPE"),
            ],
        ),
    );
    assert_eq!(point.count, 1);
    assert_nowhere(&t, "elem-secret");
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn auth_secrets_never_appear() {
    let t = TestTelemetry::new();
    let client = client();
    // A dedicated connection: the failed AUTH must not affect other tests.
    let bare = connect(&client).await;
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare, client.get_connection_info());

    let user = "otel-redis-no-such-user";
    let pass = "wrongpass-hunter2";
    let err = redis::cmd("AUTH")
        .arg(user)
        .arg(pass)
        .query_async::<()>(&mut conn)
        .await
        .expect_err("AUTH fails");
    let code = err.code().expect("a server error").to_owned();
    assert!(matches!(code.as_str(), "WRONGPASS" | "ERR"), "{err}");
    let err = redis::cmd("HELLO")
        .arg(3)
        .arg("AUTH")
        .arg(user)
        .arg(pass)
        .query_async::<redis::Value>(&mut conn)
        .await
        .expect_err("HELLO AUTH fails");
    assert!(err.code().is_some(), "{err}");

    t.span("AUTH").assert_status(&Status::error("")).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "AUTH"),
            kv("db.query.text", "AUTH ? ?"),
            kv("db.response.status_code", code.clone()),
            kv("error.type", code),
        ],
    ));
    t.span("HELLO")
        .assert_status(&Status::error(""))
        .assert_attr("db.query.text", "HELLO 3 AUTH ? ?");
    assert_nowhere(&t, pass);
    assert_nowhere(&t, user);
}

#[tokio::test]
async fn query_text_modes_and_filter() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("modes");
    let raw = RedisInstrumentation::new()
        .with_instrumentation(t.instrumentation())
        .with_query_text(QueryText::Raw);
    // Options set before `with_instrumentation` are kept by it.
    let off = RedisInstrumentation::new()
        .with_query_text(QueryText::Off)
        .with_filter(otelrs_redis::Filter::new(|op: &str| op != "PING"))
        .with_instrumentation(t.instrumentation());
    let mut raw_conn = raw.connection(bare.clone(), client.get_connection_info());
    let mut off_conn = off.connection(bare.clone(), client.get_connection_info());

    let () = raw_conn.set(format!("{p}:k"), "visible value").await.expect("SET raw");
    let pong: String = redis::cmd("PING").query_async(&mut off_conn).await.expect("PING");
    assert_eq!(pong, "PONG");
    let v: String = off_conn.get(format!("{p}:k")).await.expect("GET off");
    assert_eq!(v, "visible value");

    t.span("SET")
        .assert_attr("db.query.text", format!("SET {p}:k \"visible value\""));
    t.span("GET")
        .assert_no_attr("db.query.text")
        .assert_attrs(&with(&client, &[kv("db.operation.name", "GET")]));
    assert!(t.spans_named("PING").is_empty(), "filtered out");
    assert_eq!(t.spans().len(), 2);
    let m = t.metrics();
    assert!(
        m.histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "PING")]))
            .is_none(),
        "no metric for filtered operations"
    );
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn unsampled_spans_still_record_metrics() {
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOff);
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("unsampled");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());
    let () = conn.set(format!("{p}:k"), 1).await.expect("SET");
    assert!(t.spans().is_empty());
    let m = t.metrics();
    let point = m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "SET")]));
    assert_eq!(point.count, 1);
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn connection_manager_is_wrapped() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("manager");
    let manager = redis::aio::ConnectionManager::new_with_config(
        client.clone(),
        redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(10)))
            .set_response_timeout(Some(Duration::from_secs(30))),
    )
    .await
    .unwrap_or_else(|e| panic!("ConnectionManager to {}: {e}", common::redis_url()));
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(manager, client.get_connection_info());
    let n: i64 = conn.incr(format!("{p}:c"), 5).await.expect("INCR");
    assert_eq!(n, 5);
    t.span("INCRBY").assert_status(&Status::Unset).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "INCRBY"),
            kv("db.query.text", format!("INCRBY {p}:c 5")),
        ],
    ));
    cleanup(&mut bare, &p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spans_are_children_of_the_callers_context_across_tasks() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("parents");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let conn = redis.connection(bare.clone(), client.get_connection_info());
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));

    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut conn = conn.clone();
        let parent = tracer.start(format!("task-{i}"));
        let cx = Context::new().with_span(parent);
        let key = format!("{p}:{i}");
        tasks.push(tokio::spawn(
            async move {
                let () = conn.set(&key, i).await.expect("SET");
                tokio::task::yield_now().await;
                let v: i64 = conn.get(&key).await.expect("GET");
                assert_eq!(v, i);
                Context::current().span().end();
            }
            .with_context(cx),
        ));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let spans = t.spans();
    assert_eq!(spans.len(), 24);
    for i in 0..8 {
        let parent = t.span(&format!("task-{i}"));
        let key = format!("{p}:{i}");
        let children: Vec<&SpanData> = spans
            .iter()
            .filter(|s| {
                s.attr("db.query.text")
                    .is_some_and(|v| v.as_str().contains(&format!(" {key}")))
            })
            .collect();
        assert_eq!(children.len(), 2, "SET and GET of task {i}");
        for c in children {
            c.assert_child_of(&parent);
        }
    }
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn dropped_future_ends_the_span_as_cancelled_and_records_its_duration() {
    let t = TestTelemetry::new();
    let client = client();
    let bare = connect(&client).await;
    let p = prefix("dropped");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare, client.get_connection_info());
    let key = format!("{p}:empty");
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        conn.blpop::<_, Option<(String, String)>>(&key, 5.0),
    )
    .await;
    assert!(
        r.is_err(),
        "BLPOP on an empty list blocks until the outer timeout drops it"
    );
    // The family's one policy for an operation that never completed (otelrs_core::conv::error).
    t.span("BLPOP").assert_status(&Status::error("")).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "BLPOP"),
            kv("db.query.text", format!("BLPOP {key} 5.0")),
            kv("error.type", "cancelled"),
        ],
    ));
    let m = t.metrics();
    let point = m.assert_histogram_point(
        DURATION,
        &with(
            &client,
            &[kv("db.operation.name", "BLPOP"), kv("error.type", "cancelled")],
        ),
    );
    assert_eq!(point.count, 1);
    assert!(point.sum >= 0.1, "the duration runs until the drop: {}", point.sum);
}

#[tokio::test]
async fn killed_connection_error_passes_through_and_ends_the_span() {
    let t = TestTelemetry::new();
    let client = client();
    let mut admin = connect(&client).await;
    let victim = connect(&client).await;
    let p = prefix("kill");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(victim, client.get_connection_info());
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await
        .expect("CLIENT ID");
    let key = format!("{p}:never");

    let blocked = tokio::spawn(async move {
        let r = conn.blpop::<_, Option<(String, String)>>(&key, 30.0).await;
        (r, conn)
    });
    // Wait until the BLPOP is really blocked on the server, then kill the connection.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .expect("CLIENT LIST");
        if info.contains("cmd=blpop") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "BLPOP never blocked: {info}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut admin)
        .await
        .expect("KILL");
    assert_eq!(killed, 1);
    let (result, _conn) = tokio::time::timeout(Duration::from_secs(20), blocked)
        .await
        .expect("BLPOP ends")
        .expect("task");
    let err = result.expect_err("the killed connection fails the blocked command");
    assert!(
        err.is_connection_dropped() || err.is_io_error(),
        "unchanged redis I/O error: {err:?}"
    );

    let span = t.span("BLPOP");
    assert!(
        !span_description(&span).is_empty(),
        "transport failures describe the I/O error"
    );
    span.assert_no_attr("db.response.status_code");
    let error_type = match span.attr("error.type") {
        Some(Value::String(s)) => s.as_str().to_owned(),
        other => panic!("error.type: {other:?}"),
    };
    assert!(
        [
            "io",
            "unexpected_eof",
            "connection_reset",
            "broken_pipe",
            "connection_aborted",
            "not_connected"
        ]
        .contains(&error_type.as_str()),
        "low-cardinality transport error.type, got {error_type:?}"
    );
    let m = t.metrics();
    m.assert_histogram_point(
        DURATION,
        &with(
            &client,
            &[kv("db.operation.name", "BLPOP"), kv("error.type", error_type)],
        ),
    );
    assert_eq!(
        base_attrs(&client).len() + 3,
        span.attributes.len(),
        "base + op + text + error.type"
    );
}

fn span_description(span: &SpanData) -> String {
    match &span.status {
        Status::Error { description } => description.to_string(),
        other => panic!("span {:?} should have failed, status {other:?}", span.name),
    }
}

#[tokio::test]
async fn instrumented_connection_is_usable_as_a_generic_connection() {
    // `InstrumentedConnection` is `ConnectionLike + Clone`: code generic over connections takes it.
    async fn bump<C: redis::aio::ConnectionLike + Send + Sync>(conn: &mut C, key: &str) -> redis::RedisResult<i64> {
        conn.incr(key, 1).await
    }
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("generic");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());
    assert_eq!(bump(&mut conn, &format!("{p}:n")).await.expect("INCR"), 1);
    assert_eq!(conn.target().pool_name(), {
        let info = client.get_connection_info();
        match info.addr() {
            redis::ConnectionAddr::Tcp(h, port) => format!("{h}:{port}/{}", info.redis_settings().db()),
            other => panic!("tests run over TCP, got {other:?}"),
        }
    });
    t.span("INCRBY").assert_status(&Status::Unset);
    cleanup(&mut bare, &p).await;
}

#[tokio::test]
async fn span_built_while_the_command_is_in_flight_keeps_the_issue_time_and_parent() {
    use redis::aio::ConnectionLike as _;

    let t = TestTelemetry::new();
    let client = client();
    let bare = connect(&client).await;
    let p = prefix("deferred");
    let redis = RedisInstrumentation::new().with_instrumentation(t.instrumentation());
    let mut conn = redis.connection(bare, client.get_connection_info());
    let key = format!("{p}:k");
    let cmd = redis::cmd("GET").arg(&key).clone();

    // Completed command: the span starts when the command was issued (before the first poll),
    // although it is built only after the request has been handed to the connection.
    let parent = t
        .instrumentation()
        .tracer(Instrumentation::scope("test", "0"))
        .start("parent");
    let parent_cx = Context::new().with_span(parent);
    let before = std::time::SystemTime::now();
    let future = {
        let _guard = parent_cx.clone().attach();
        conn.req_packed_command(&cmd)
    };
    let issued = std::time::SystemTime::now();
    // Polled outside the parent's context: the parent is the one current at issue.
    let reply = future.await.expect("GET");
    assert_eq!(reply, redis::Value::Nil);
    parent_cx.span().end();
    let span = t.span("GET");
    assert!(
        before <= span.start_time && span.start_time <= issued,
        "start time is the moment the command was issued"
    );
    assert!(span.end_time >= span.start_time);
    span.assert_child_of(&t.span("parent"));

    // Dropped after its first poll, before the span was built: the span is still built and
    // ended as cancelled (status Error), and its duration is recorded with `error.type`.
    t.reset();
    let mut future = conn.req_packed_command(&cmd);
    let waker = std::task::Waker::noop();
    let mut task = std::task::Context::from_waker(waker);
    assert!(future.as_mut().poll(&mut task).is_pending());
    drop(future);
    t.span("GET").assert_status(&Status::error("")).assert_attrs(&with(
        &client,
        &[
            kv("db.operation.name", "GET"),
            kv("db.query.text", format!("GET {key}")),
            kv("error.type", "cancelled"),
        ],
    ));
    let m = t.metrics();
    let completed = m
        .histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "GET")]))
        .map(|p| p.count);
    assert_eq!(completed, Some(1), "the completed GET has its own point");
    let cancelled = m
        .histogram_point(
            DURATION,
            &with(
                &client,
                &[kv("db.operation.name", "GET"), kv("error.type", "cancelled")],
            ),
        )
        .map(|p| p.count);
    assert_eq!(cancelled, Some(1), "the cancelled GET is recorded with error.type");
}

#[tokio::test]
async fn require_parent_span_records_no_orphan_spans_but_keeps_metrics() {
    let t = TestTelemetry::new();
    let client = client();
    let mut bare = connect(&client).await;
    let p = prefix("orphans");
    let key = format!("{p}:k");
    let redis = RedisInstrumentation::new()
        .with_instrumentation(t.instrumentation())
        .with_require_parent_span(true);
    let mut conn = redis.connection(bare.clone(), client.get_connection_info());

    // No parent (a health check): no span, the duration still recorded.
    let () = conn.set(&key, "v").await.expect("SET");
    let _: String = redis::cmd("PING").query_async(&mut conn).await.expect("PING");
    assert!(t.spans().is_empty(), "orphan spans exported: {:?}", t.spans());
    let m = t.metrics();
    assert_eq!(
        m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "SET")]))
            .count,
        1
    );
    assert_eq!(
        m.assert_histogram_point(DURATION, &with(&client, &[kv("db.operation.name", "PING")]))
            .count,
        1
    );

    // Under a parent span: a child span as usual.
    let tracer = t.instrumentation().tracer(Instrumentation::scope("test", "0"));
    let cx = Context::new().with_span(tracer.start("job"));
    let got: String = conn.get(&key).with_context(cx.clone()).await.expect("GET");
    assert_eq!(got, "v");
    cx.span().end();
    let parent = t.span("job");
    t.span("GET").assert_child_of(&parent).assert_kind(SpanKind::Client);
    assert_eq!(t.spans().len(), 2);
    cleanup(&mut bare, &p).await;
}
