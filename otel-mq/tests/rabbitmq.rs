//! RabbitMQ (lapin) against a real broker: `AMQP_URL`, default `amqp://guest:guest@127.0.0.1:5672/%2f`.
#![cfg(feature = "lapin")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_mq::rabbitmq::{RabbitMq, TracedConsumer};
use otelrs_mq::ProcessParent;

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

async fn connect() -> Connection {
    let url = amqp_url();
    Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach RabbitMQ at {url} ({e}); start it with `docker compose up -d rabbitmq` or set AMQP_URL"
            )
        })
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "otel-mq-{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn setup(prefix: &str) -> (Connection, Channel, String) {
    let conn = connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm_select");
    let q = unique(prefix);
    ch.queue_declare(&q, QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue_declare");
    (conn, ch, q)
}

async fn cleanup(conn: &Connection, q: &str) {
    let ch = conn.create_channel().await.expect("channel");
    ch.queue_delete(q, QueueDeleteOptions::default())
        .await
        .expect("queue_delete");
}

async fn next(consumer: &mut TracedConsumer) -> otelrs_mq::rabbitmq::TracedDelivery {
    tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("no delivery within 10 s")
        .expect("consumer ended")
        .expect("consumer error")
}

/// Same span (trace and span id); a link to an extracted context is remote, the span itself not.
fn same_span(a: &SpanContext, b: &SpanContext) -> bool {
    a.trace_id() == b.trace_id() && a.span_id() == b.span_id()
}

fn server_attrs() -> Vec<KeyValue> {
    vec![kv("server.address", "127.0.0.1"), kv("server.port", 5672i64)]
}

fn instrument(t: &TestTelemetry) -> RabbitMq {
    // The server set before `with_instrumentation` is kept by it.
    RabbitMq::new()
        .with_server_from_uri(&amqp_url())
        .with_instrumentation(t.instrumentation())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_confirm_process_ack_in_one_trace_link_mode() {
    let t = TestTelemetry::new();
    let rmq = instrument(&t);
    let (conn, ch, q) = setup("link").await;
    let traced = rmq.channel(ch.clone());
    let confirm = traced
        .basic_publish(
            "",
            &q,
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default().with_message_id("m-1".into()),
        )
        .await
        .expect("publish");
    let confirmation = confirm.await.expect("confirm");
    assert!(confirmation.is_ack());

    let mut consumer = rmq.consumer(
        ch.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.data, b"hello", "payload unchanged");
    let seen = delivery
        .process(|cx, d| async move {
            d.ack(BasicAckOptions::default()).await?;
            Ok::<_, lapin::Error>(cx.span().span_context().clone())
        })
        .await
        .expect("process");

    let publish = t.span(&format!("publish {q}"));
    let mut expected = vec![
        kv("messaging.operation.name", "publish"),
        kv("messaging.operation.type", "send"),
        kv("messaging.system", "rabbitmq"),
        kv("messaging.destination.name", q.clone()),
        kv("messaging.rabbitmq.destination.routing_key", q.clone()),
        kv("messaging.message.id", "m-1"),
    ];
    expected.extend(server_attrs());
    publish
        .assert_kind(SpanKind::Producer)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected)
        .assert_root();

    let process = t.span(&format!("process {q}"));
    let mut expected = vec![
        kv("messaging.operation.name", "process"),
        kv("messaging.operation.type", "process"),
        kv("messaging.system", "rabbitmq"),
        kv("messaging.destination.name", q.clone()),
        kv("messaging.rabbitmq.destination.routing_key", q.clone()),
        kv("messaging.rabbitmq.message.delivery_tag", 1i64),
        kv("messaging.message.id", "m-1"),
    ];
    expected.extend(server_attrs());
    process
        .assert_kind(SpanKind::Consumer)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected)
        .assert_root();
    assert_eq!(seen, process.span_context, "handler got the process span's context");
    assert_eq!(process.links.links.len(), 1);
    assert!(
        same_span(&process.links.links[0].span_context, &publish.span_context),
        "linked to the creation context"
    );

    let ack = t.span(&format!("ack {q}"));
    let mut expected_ack = expected.clone();
    expected_ack
        .retain(|kv| kv.key.as_str() != "messaging.operation.name" && kv.key.as_str() != "messaging.operation.type");
    expected_ack.push(kv("messaging.operation.name", "ack"));
    expected_ack.push(kv("messaging.operation.type", "settle"));
    ack.assert_kind(SpanKind::Client)
        .assert_attrs(&expected_ack)
        .assert_child_of(&process);

    let m = t.metrics();
    m.assert_metric(
        "messaging.client.operation.duration",
        "s",
        "Duration of messaging operation initiated by a producer or consumer client.",
    );
    m.assert_metric("messaging.process.duration", "s", "Duration of processing operation.");
    m.assert_metric(
        "messaging.client.sent.messages",
        "{message}",
        "Number of messages producer attempted to send to the broker.",
    );
    m.assert_metric(
        "messaging.client.consumed.messages",
        "{message}",
        "Number of messages that were delivered to the application.",
    );
    let base = |op: &'static str| {
        let mut v = vec![
            kv("messaging.operation.name", op),
            kv("messaging.system", "rabbitmq"),
            kv("messaging.destination.name", q.clone()),
        ];
        v.extend(server_attrs());
        v
    };
    let mut send_dur = base("publish");
    send_dur.push(kv("messaging.operation.type", "send"));
    let p = m.assert_histogram_point("messaging.client.operation.duration", &send_dur);
    assert_eq!(p.count, 1);
    assert_eq!(p.bounds, otelrs_core::instruments::DURATION_BUCKETS.to_vec());
    let mut ack_dur = base("ack");
    ack_dur.push(kv("messaging.operation.type", "settle"));
    assert_eq!(
        m.histogram_point("messaging.client.operation.duration", &ack_dur)
            .map(|p| p.count),
        Some(1)
    );
    assert_eq!(
        m.histogram_point("messaging.process.duration", &base("process"))
            .map(|p| p.count),
        Some(1)
    );
    assert_eq!(m.sum_u64("messaging.client.sent.messages", &base("publish")), Some(1));
    assert_eq!(
        m.sum_u64("messaging.client.consumed.messages", &base("process")),
        Some(1)
    );

    cleanup(&conn, &q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_mode_makes_process_a_child_and_links_the_ambient_context() {
    let t = TestTelemetry::new();
    let rmq = instrument(&t).with_process_parent(ProcessParent::CreationContext);
    let (conn, ch, q) = setup("parent").await;
    rmq.channel(ch.clone())
        .basic_publish("", &q, BasicPublishOptions::default(), b"x", BasicProperties::default())
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let mut consumer = rmq.consumer(
        ch.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    let delivery = next(&mut consumer).await;
    let tracer = t.tracer_provider.clone();
    let ambient_span = opentelemetry::trace::TracerProvider::tracer(&tracer, "test").start("ambient");
    let ambient = Context::new().with_span(ambient_span);
    // The ambient context is the one attached while `process` runs (e.g. an HTTP server span).
    delivery
        .process(|_cx, d| async move { d.ack(BasicAckOptions::default()).await })
        .with_context(ambient.clone())
        .await
        .expect("process");
    ambient.span().end();

    let publish = t.span(&format!("publish {q}"));
    let process = t.span(&format!("process {q}"));
    let amb = t.span("ambient");
    process.assert_kind(SpanKind::Consumer).assert_child_of(&publish);
    assert_eq!(process.links.links.len(), 1);
    assert!(
        same_span(&process.links.links[0].span_context, &amb.span_context),
        "ambient context is linked"
    );
    t.span(&format!("ack {q}")).assert_child_of(&process);
    cleanup(&conn, &q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_reject_are_recorded_as_settle_spans() {
    let t = TestTelemetry::new();
    let rmq = instrument(&t);
    let (conn, ch, q) = setup("settle").await;
    let traced = rmq.channel(ch.clone());
    for body in [&b"a"[..], &b"b"[..]] {
        traced
            .basic_publish("", &q, BasicPublishOptions::default(), body, BasicProperties::default())
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
    let mut consumer = rmq.consumer(
        ch.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    let first = next(&mut consumer).await;
    first
        .process(|_, d| async move {
            d.nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await
        })
        .await
        .expect("nack");
    let second = next(&mut consumer).await;
    second
        .process(|_, d| async move { d.reject(BasicRejectOptions { requeue: false }).await })
        .await
        .expect("reject");

    let nack = t.span(&format!("nack {q}"));
    nack.assert_kind(SpanKind::Client)
        .assert_attr("messaging.operation.type", "settle")
        .assert_attr("messaging.operation.name", "nack")
        .assert_attr("messaging.rabbitmq.message.delivery_tag", 1i64)
        .assert_status(&Status::Unset);
    assert_eq!(nack.events.events.len(), 1);
    assert_eq!(nack.events.events[0].name, "nack");
    assert_eq!(nack.events.events[0].attributes, vec![kv("requeue", false)]);
    let reject = t.span(&format!("reject {q}"));
    reject
        .assert_attr("messaging.operation.name", "reject")
        .assert_attr("messaging.rabbitmq.message.delivery_tag", 2i64);
    assert_eq!(reject.events.events[0].name, "reject");
    let processes = t.spans_named(&format!("process {q}"));
    assert_eq!(processes.len(), 2);
    nack.assert_child_of(&processes[0]);
    reject.assert_child_of(&processes[1]);

    // Both were dropped by the broker (no requeue): the queue is empty.
    let check = conn.create_channel().await.expect("channel");
    let declared = check
        .queue_declare(
            &q,
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare");
    assert_eq!(declared.message_count(), 0);
    let mut nack_attrs = vec![
        kv("messaging.operation.name", "nack"),
        kv("messaging.operation.type", "settle"),
        kv("messaging.system", "rabbitmq"),
        kv("messaging.destination.name", q.clone()),
    ];
    nack_attrs.extend(server_attrs());
    assert_eq!(
        t.metrics()
            .histogram_point("messaging.client.operation.duration", &nack_attrs)
            .map(|p| p.count),
        Some(1)
    );
    cleanup(&conn, &q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_malformed_trace_headers_make_new_roots_and_handler_errors_are_recorded() {
    let t = TestTelemetry::new();
    let rmq = instrument(&t);
    let (conn, ch, q) = setup("malformed").await;
    // Published with the bare channel: one without headers, one with a malformed traceparent.
    ch.basic_publish(
        "",
        &q,
        BasicPublishOptions::default(),
        b"none",
        BasicProperties::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-zz-not-a-trace-01".into()),
    );
    headers.insert("tracestate".into(), AMQPValue::LongInt(7));
    ch.basic_publish(
        "",
        &q,
        BasicPublishOptions::default(),
        b"bad",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");

    let mut consumer = rmq.consumer(
        ch.basic_consume(
            &q,
            "",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume"),
    );
    let a = next(&mut consumer).await;
    assert!(!a.creation_context().span().span_context().is_valid());
    a.process(|_, d| async move { Ok::<_, std::io::Error>(d.data.clone()) })
        .await
        .expect("processed normally");
    let b = next(&mut consumer).await;
    let err = b
        .process(|_, _| async move { Err::<(), _>(std::io::Error::other("handler failed")) })
        .await
        .expect_err("the handler's error is returned");
    assert_eq!(err.to_string(), "handler failed");

    let spans = t.spans_named(&format!("process {q}"));
    assert_eq!(spans.len(), 2);
    for s in &spans {
        s.assert_root();
        assert!(s.links.links.is_empty(), "no creation context, no link");
    }
    spans[0].assert_status(&Status::Unset).assert_no_attr("error.type");
    spans[1]
        .assert_status(&Status::error("handler failed"))
        .assert_attr("error.type", "std::io::error::Error");
    let mut attrs = vec![
        kv("messaging.operation.name", "process"),
        kv("messaging.system", "rabbitmq"),
        kv("messaging.destination.name", q.clone()),
        kv("error.type", "std::io::error::Error"),
    ];
    attrs.extend(server_attrs());
    assert_eq!(
        t.metrics()
            .histogram_point("messaging.process.duration", &attrs)
            .map(|p| p.count),
        Some(1)
    );
    cleanup(&conn, &q).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_closing_the_connection_mid_consume_surfaces_the_error_and_loses_nothing() {
    let t = TestTelemetry::new();
    let rmq = instrument(&t);
    let (setup_conn, setup_ch, q) = setup("close").await;
    let traced = rmq.channel(setup_ch.clone());
    for body in [&b"one"[..], &b"two"[..]] {
        traced
            .basic_publish("", &q, BasicPublishOptions::default(), body, BasicProperties::default())
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }

    let conn = connect().await;
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(1, BasicQosOptions::default()).await.expect("qos");
    let mut consumer = rmq.consumer(
        ch.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    let first = next(&mut consumer).await;
    assert_eq!(first.data, b"one");
    // A connection-level protocol error: the broker closes the whole connection (503).
    let other = conn.create_channel().await.expect("channel");
    let declare = other
        .exchange_declare(
            &unique("bad-exchange"),
            ExchangeKind::Custom("no-such-exchange-type".into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert!(declare.is_err(), "the broker refuses the declaration");
    // The consumer surfaces the failure (an error item, or the end of the stream after it).
    let after = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("the consumer must not hang after the connection closed");
    assert!(
        matches!(after, Some(Err(_)) | None),
        "no further delivery on a closed connection"
    );
    // Settling on the closed connection fails; the error is returned and recorded.
    let ack = first.ack(BasicAckOptions::default()).await;
    assert!(ack.is_err(), "ack on a closed connection fails");
    let ack_span = t.span(&format!("ack {q}"));
    ack_span.assert_kind(SpanKind::Client);
    assert!(matches!(ack_span.status, Status::Error { .. }));
    assert!(ack_span.attributes.iter().any(|kv| kv.key.as_str() == "error.type"));

    // Nothing is lost: both messages are delivered again, the unacked one marked redelivered.
    let conn2 = connect().await;
    let ch2 = conn2.create_channel().await.expect("channel");
    let mut consumer2 = rmq.consumer(
        ch2.basic_consume(&q, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume"),
    );
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let d = next(&mut consumer2).await;
        bodies.push((d.data.clone(), d.redelivered));
        d.process(|_, d| async move { d.ack(BasicAckOptions::default()).await })
            .await
            .expect("process");
    }
    bodies.sort();
    assert_eq!(bodies, vec![(b"one".to_vec(), true), (b"two".to_vec(), false)]);
    let publishes = t.spans_named(&format!("publish {q}"));
    let processes = t.spans_named(&format!("process {q}"));
    assert_eq!(processes.len(), 2);
    for p in &processes {
        assert_eq!(p.links.links.len(), 1);
        assert!(publishes
            .iter()
            .any(|s| same_span(&s.span_context, &p.links.links[0].span_context)));
    }
    cleanup(&setup_conn, &q).await;
}
