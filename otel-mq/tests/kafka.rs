//! Kafka (rdkafka) against librdkafka's in-process mock cluster.
#![cfg(feature = "kafka")]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use opentelemetry::trace::{SpanContext, SpanKind, Status, TraceContextExt};
use opentelemetry::KeyValue;
use otelrs_core::testing::{kv, SpanDataExt, TestTelemetry};
use otelrs_mq::kafka::Kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

fn same_span(a: &SpanContext, b: &SpanContext) -> bool {
    a.trace_id() == b.trace_id() && a.span_id() == b.span_id()
}

struct Fixture {
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    bootstrap: String,
    topic: String,
}

fn cluster(prefix: &str) -> Fixture {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = unique(prefix);
    cluster.create_topic(&topic, 1, 1).expect("create topic");
    Fixture {
        bootstrap: cluster.bootstrap_servers(),
        _cluster: cluster,
        topic,
    }
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer")
}

fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    c
}

fn server(bootstrap: &str) -> Vec<KeyValue> {
    let first = bootstrap.split(',').next().expect("a bootstrap server");
    let (host, port) = first.rsplit_once(':').expect("host:port");
    vec![
        kv("server.address", host.to_owned()),
        kv("server.port", port.parse::<i64>().expect("port")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_with_delivery_report_then_stream_consume_process_and_commit() {
    let t = TestTelemetry::new();
    let f = cluster("single");
    let producer_kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_message_key(true)
        .with_bootstrap_servers(&f.bootstrap);
    let producer = producer(&f.bootstrap);
    let headers = OwnedHeaders::new().insert(Header {
        key: "app",
        value: Some("v"),
    });
    let delivery = producer_kafka
        .send(
            &producer,
            FutureRecord::to(&f.topic)
                .key("order-1")
                .payload("hello")
                .headers(headers),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");

    let group = unique("group");
    let config = consumer_config(&f.bootstrap, &group);
    let kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_client_config(&config)
        .with_message_key(true);
    let consumer: StreamConsumer = config.create().expect("consumer");
    consumer.subscribe(&[&f.topic]).expect("subscribe");
    let mut stream = consumer.stream();
    let msg = tokio::time::timeout(Duration::from_secs(20), stream.next())
        .await
        .expect("a message within 20 s")
        .expect("stream open")
        .expect("no consume error");
    let app_header = msg.headers().and_then(|h| {
        h.iter()
            .find(|h| h.key == "app")
            .and_then(|h| h.value.map(<[u8]>::to_vec))
    });
    assert_eq!(app_header, Some(b"v".to_vec()), "user headers are kept");
    let (k, c) = (&kafka, &consumer);
    kafka
        .process(msg, |_cx, m| async move {
            k.commit_message(c, &m, CommitMode::Sync)?;
            Ok::<_, rdkafka::error::KafkaError>(())
        })
        .await
        .expect("processed");

    let send = t.span(&format!("send {}", f.topic));
    let mut expected = vec![
        kv("messaging.operation.name", "send"),
        kv("messaging.operation.type", "send"),
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", f.topic.clone()),
        kv("messaging.kafka.message.key", "order-1"),
        kv("messaging.destination.partition.id", delivery.partition.to_string()),
        kv("messaging.kafka.offset", delivery.offset),
    ];
    expected.extend(server(&f.bootstrap));
    send.assert_kind(SpanKind::Producer)
        .assert_status(&Status::Unset)
        .assert_attrs(&expected)
        .assert_root();

    let process = t.span(&format!("process {}", f.topic));
    let mut expected = vec![
        kv("messaging.operation.name", "process"),
        kv("messaging.operation.type", "process"),
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", f.topic.clone()),
        kv("messaging.destination.partition.id", "0"),
        kv("messaging.consumer.group.name", group.clone()),
        kv("messaging.kafka.message.key", "order-1"),
        kv("messaging.kafka.offset", delivery.offset),
    ];
    expected.extend(server(&f.bootstrap));
    process
        .assert_kind(SpanKind::Consumer)
        .assert_attrs(&expected)
        .assert_root();
    assert_eq!(process.links.links.len(), 1);
    assert!(same_span(&process.links.links[0].span_context, &send.span_context));

    let commit = t.span(&format!("commit {}", f.topic));
    commit
        .assert_kind(SpanKind::Client)
        .assert_attr("messaging.operation.type", "settle")
        .assert_attr("messaging.operation.name", "commit")
        .assert_attr("messaging.consumer.group.name", group.clone())
        .assert_child_of(&process);

    let m = t.metrics();
    let mut sent = vec![
        kv("messaging.operation.name", "send"),
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", f.topic.clone()),
    ];
    sent.extend(server(&f.bootstrap));
    assert_eq!(m.sum_u64("messaging.client.sent.messages", &sent), Some(1));
    let mut consumed = vec![
        kv("messaging.operation.name", "process"),
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", f.topic.clone()),
        kv("messaging.destination.partition.id", "0"),
        kv("messaging.consumer.group.name", group.clone()),
    ];
    consumed.extend(server(&f.bootstrap));
    assert_eq!(m.sum_u64("messaging.client.consumed.messages", &consumed), Some(1));
    assert_eq!(
        m.histogram_point("messaging.process.duration", &consumed)
            .map(|p| p.count),
        Some(1)
    );
    let mut send_dur = sent.clone();
    send_dur.push(kv("messaging.operation.type", "send"));
    assert_eq!(
        m.histogram_point("messaging.client.operation.duration", &send_dur)
            .map(|p| p.count),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_process_makes_one_span_with_a_link_per_message() {
    let t = TestTelemetry::new();
    let f = cluster("batch");
    let kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_message_key(true);
    let producer = producer(&f.bootstrap);
    for key in ["k0", "k1", "k2"] {
        kafka
            .send(
                &producer,
                FutureRecord::to(&f.topic).key(key).payload("p"),
                Duration::from_secs(5),
            )
            .await
            .expect("delivered");
    }
    // A message without trace headers, sent with the bare producer.
    producer
        .send(
            FutureRecord::to(&f.topic).key("bare").payload("p"),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");
    let config = consumer_config(&f.bootstrap, &unique("group"));
    let consumer: StreamConsumer = config.create().expect("consumer");
    consumer.subscribe(&[&f.topic]).expect("subscribe");
    let mut batch = Vec::new();
    while batch.len() < 4 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("a message within 20 s")
            .expect("no consume error");
        batch.push(m);
    }
    let count = kafka
        .process_batch(batch, |_cx, msgs| async move { Ok::<_, std::io::Error>(msgs.len()) })
        .await
        .expect("processed");
    assert_eq!(count, 4);

    let sends = t.spans_named(&format!("send {}", f.topic));
    assert_eq!(sends.len(), 3);
    let process = t.span(&format!("process {}", f.topic));
    process
        .assert_kind(SpanKind::Consumer)
        .assert_attr("messaging.batch.message_count", 4i64)
        .assert_attr("messaging.destination.partition.id", "0")
        .assert_no_attr("messaging.kafka.offset")
        .assert_no_attr("messaging.kafka.message.key")
        .assert_root();
    let links = &process.links.links;
    assert_eq!(links.len(), 3, "one link per message with a creation context");
    for (i, (link, send)) in links.iter().zip(&sends).enumerate() {
        assert!(same_span(&link.span_context, &send.span_context));
        assert_eq!(
            link.attributes,
            vec![
                kv("messaging.kafka.offset", i64::try_from(i).expect("small")),
                kv("messaging.kafka.message.key", format!("k{i}")),
            ]
        );
    }
    let consumed = t.metrics().sum_u64(
        "messaging.client.consumed.messages",
        &[
            kv("messaging.operation.name", "process"),
            kv("messaging.system", "kafka"),
            kv("messaging.destination.name", f.topic.clone()),
            kv("messaging.destination.partition.id", "0"),
        ],
    );
    assert_eq!(consumed, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_broker_fails_the_send_span_and_returns_the_error_unchanged() {
    let t = TestTelemetry::new();
    let f = cluster("fail");
    let kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_message_key(true);
    let producer = producer(&f.bootstrap);
    // Non-retriable produce errors injected by the mock.
    f._cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE; 3],
    );
    let result = kafka
        .send(
            &producer,
            FutureRecord::to(&f.topic).key("k").payload("p"),
            Duration::from_secs(5),
        )
        .await;
    let (err, msg) = result.expect_err("the injected error is returned");
    assert_eq!(
        err.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge)
    );
    assert_eq!(msg.payload(), Some(&b"p"[..]), "the message is handed back");
    let send = t.span(&format!("send {}", f.topic));
    send.assert_kind(SpanKind::Producer)
        .assert_attr("error.type", "MessageSizeTooLarge")
        .assert_no_attr("messaging.kafka.offset");
    assert!(matches!(send.status, Status::Error { .. }));
    let attrs = [
        kv("messaging.operation.name", "send"),
        kv("messaging.system", "kafka"),
        kv("messaging.destination.name", f.topic.clone()),
        kv("error.type", "MessageSizeTooLarge"),
    ];
    assert_eq!(t.metrics().sum_u64("messaging.client.sent.messages", &attrs), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_mode_and_malformed_headers() {
    let t = TestTelemetry::new();
    let f = cluster("parent");
    let kafka = Kafka::new()
        .with_instrumentation(t.instrumentation())
        .with_message_key(true)
        .with_process_parent(otelrs_mq::ProcessParent::CreationContext);
    let producer = producer(&f.bootstrap);
    kafka
        .send(
            &producer,
            FutureRecord::to(&f.topic).key("good").payload("p"),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");
    let bad = OwnedHeaders::new().insert(Header {
        key: "traceparent",
        value: Some(&[0xffu8, 0x00, 0x01][..]),
    });
    producer
        .send(
            FutureRecord::to(&f.topic).key("bad").payload("p").headers(bad),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered");
    let consumer: StreamConsumer = consumer_config(&f.bootstrap, &unique("group"))
        .create()
        .expect("consumer");
    consumer.subscribe(&[&f.topic]).expect("subscribe");
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(20), consumer.recv())
            .await
            .expect("a message within 20 s")
            .expect("no consume error");
        kafka
            .process(m, |cx, _| async move {
                assert!(cx.span().span_context().is_valid());
                Ok::<_, std::io::Error>(())
            })
            .await
            .expect("processed");
    }
    let send = t.span(&format!("send {}", f.topic));
    let processes = t.spans_named(&format!("process {}", f.topic));
    assert_eq!(processes.len(), 2);
    processes[0].assert_child_of(&send);
    assert!(processes[0].links.links.is_empty(), "no ambient context to link");
    processes[1].assert_root();
    assert!(processes[1].links.links.is_empty());
    processes[1].assert_attr("messaging.kafka.message.key", "bad");
}
