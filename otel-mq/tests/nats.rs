//! NATS (async-nats) against a real server with JetStream: `NATS_URL`, default `nats://127.0.0.1:4222`.
#![cfg(feature = "nats")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_nats::header::HeaderMap;
use async_nats::jetstream;
use futures_util::StreamExt;
use opentelemetry::trace::{SpanContext, SpanKind, Status};
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_mq::nats::Nats;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn connect() -> async_nats::Client {
    let url = nats_url();
    async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!("cannot reach NATS at {url} ({e}); start it with `docker compose up -d nats` (JetStream enabled) or set NATS_URL")
    })
}

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "otelmq_{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn same_span(a: &SpanContext, b: &SpanContext) -> bool {
    a.trace_id() == b.trace_id() && a.span_id() == b.span_id()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_publish_subscribe_with_headers() {
    let t = TestTelemetry::new();
    // Settings made before `with_instrumentation` are kept by it.
    let nats = Nats::new()
        .with_server("127.0.0.1", 4222)
        .with_instrumentation(t.instrumentation());
    let client = connect().await;
    let subject = unique("core");
    let mut sub = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let mut headers = HeaderMap::new();
    headers.insert("app", "v");
    nats.publish(&client, subject.clone(), headers, "hello".into())
        .await
        .expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message within 10 s")
        .expect("subscription open");
    assert_eq!(
        msg.headers
            .as_ref()
            .and_then(|h| h.get("app"))
            .map(|v| v.as_str().to_owned()),
        Some("v".to_owned())
    );
    nats.process(msg, |_cx, m| async move { Ok::<_, std::io::Error>(m.payload.len()) })
        .await
        .expect("processed");

    let send = t.span(&format!("send {subject}"));
    send.assert_kind(SpanKind::Producer)
        .assert_status(&Status::Unset)
        .assert_attrs(&[
            kv("messaging.operation.name", "send"),
            kv("messaging.operation.type", "send"),
            kv("messaging.system", "nats"),
            kv("messaging.destination.name", subject.clone()),
            kv("server.address", "127.0.0.1"),
            kv("server.port", 4222i64),
        ])
        .assert_root();
    let process = t.span(&format!("process {subject}"));
    process.assert_kind(SpanKind::Consumer).assert_root().assert_attrs(&[
        kv("messaging.operation.name", "process"),
        kv("messaging.operation.type", "process"),
        kv("messaging.system", "nats"),
        kv("messaging.destination.name", subject.clone()),
        kv("server.address", "127.0.0.1"),
        kv("server.port", 4222i64),
    ]);
    assert_eq!(process.links.links.len(), 1);
    assert!(same_span(&process.links.links[0].span_context, &send.span_context));
    let m = t.metrics();
    let sent = [
        kv("messaging.operation.name", "send"),
        kv("messaging.system", "nats"),
        kv("messaging.destination.name", subject.clone()),
        kv("server.address", "127.0.0.1"),
        kv("server.port", 4222i64),
    ];
    assert_eq!(m.sum_u64("messaging.client.sent.messages", &sent), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_subjects_are_reported_as_templates() {
    let t = TestTelemetry::new();
    let nats = Nats::new().with_instrumentation(t.instrumentation());
    let client = connect().await;
    let inbox = client.new_inbox();
    nats.publish(&client, inbox.clone(), HeaderMap::new(), "x".into())
        .await
        .expect("publish");
    let send = t.span("send _INBOX.*");
    send.assert_attr("messaging.destination.template", "_INBOX.*")
        .assert_attr("messaging.destination.temporary", true)
        .assert_attr("messaging.destination.anonymous", true)
        .assert_no_attr("messaging.destination.name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_publish_ack_consume_and_settle() {
    let t = TestTelemetry::new();
    let nats = Nats::new()
        .with_instrumentation(t.instrumentation())
        .with_consumer_group("workers");
    let client = connect().await;
    let js = jetstream::new(client);
    let name = unique("stream");
    let subject = format!("{name}.orders");
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("create stream (is JetStream enabled? start the server with -js)");
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-1");
    let ack = nats
        .jetstream_publish(&js, subject.clone(), headers, "payload".into())
        .await
        .expect("publish")
        .await
        .expect("stream ack");
    assert_eq!(ack.stream, name);

    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("workers".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer
        .fetch()
        .max_messages(1)
        .expires(Duration::from_secs(5))
        .messages()
        .await
        .expect("fetch");
    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("a message within 10 s")
        .expect("a message")
        .expect("no fetch error");
    let n = &nats;
    nats.process_jetstream(msg, |_cx, m| async move {
        n.ack(&m).await?;
        Ok::<_, async_nats::Error>(())
    })
    .await
    .expect("processed");

    let send = t.span(&format!("send {subject}"));
    send.assert_kind(SpanKind::Producer)
        .assert_attr("messaging.message.id", "order-1")
        .assert_no_attr("messaging.consumer.group.name");
    let process = t.span(&format!("process {subject}"));
    process
        .assert_kind(SpanKind::Consumer)
        .assert_attr("messaging.message.id", "order-1")
        .assert_attr("messaging.consumer.group.name", "workers");
    assert!(same_span(&process.links.links[0].span_context, &send.span_context));
    t.span(&format!("ack {subject}"))
        .assert_kind(SpanKind::Client)
        .assert_attr("messaging.operation.type", "settle")
        .assert_child_of(&process);
    js.delete_stream(&name).await.expect("delete stream");
}
