//! Messaging: Kafka (librdkafka's mock cluster), RabbitMQ and NATS.
//!
//! Each test sends two messages from an `#[instrument]` function (both send spans are its
//! children, and their contexts travel in the message headers), then processes them:
//!
//! 1. the first with the default `ProcessParent::Link`, inside a consumer loop instrumented with
//!    an `info_span!`: the process span is that `tracing` span's child and links exactly to the
//!    first send span;
//! 2. the second with `ProcessParent::CreationContext`, outside any span: the process span is the
//!    second send span's (remote) child.
//!
//! In both handlers a `tracing` span is our process span's child, whether the handler's future
//! makes it (link mode) or the closure returns its future `.instrument(info_span!(..))` (the
//! common way, creation-context mode: the span is made when `process` calls the closure), and
//! log records carry the ids of the span they were emitted in.

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use otelrs_core::testing::SpanDataExt as _;
use otelrs_mq::ProcessParent;
use tracing::Instrument as _;

use crate::support::{
    assert_from_tracing, assert_links_only_to, assert_log_in, assert_remote_child_of, hop, instrumentation, span,
    span_in, spans_in, unique, unreachable_service, TIMEOUT,
};

#[derive(Clone, Copy)]
enum Broker {
    Kafka,
    RabbitMq,
    Nats,
}

impl Broker {
    fn prefix(self) -> &'static str {
        match self {
            Self::Kafka => "dir.kafka",
            Self::RabbitMq => "dir.rabbitmq",
            Self::Nats => "dir.nats",
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// `ProcessParent::Link` (the default), inside the consumer's `tracing` span.
    Link,
    /// `ProcessParent::CreationContext`, outside any span.
    Child,
}

/// The handler's `tracing` span (span names are static).
fn handler_span(broker: Broker, mode: Mode) -> tracing::Span {
    match (broker, mode) {
        (Broker::Kafka, Mode::Link) => tracing::info_span!("dir.kafka.handler.link"),
        (Broker::Kafka, Mode::Child) => tracing::info_span!("dir.kafka.handler.child"),
        (Broker::RabbitMq, Mode::Link) => tracing::info_span!("dir.rabbitmq.handler.link"),
        (Broker::RabbitMq, Mode::Child) => tracing::info_span!("dir.rabbitmq.handler.child"),
        (Broker::Nats, Mode::Link) => tracing::info_span!("dir.nats.handler.link"),
        (Broker::Nats, Mode::Child) => tracing::info_span!("dir.nats.handler.child"),
    }
}

/// The handler of link mode: a log record in our process span, then a `tracing` span made
/// inside the handler's future (after hopping threads), with a log record in it, running `inside`
/// in it.
async fn handle_with_inner_span(broker: Broker, inside: impl Future<Output = ()>) {
    let prefix = broker.prefix();
    tracing::info!("{prefix}: link handler");
    async move {
        hop().await;
        inside.await;
        tracing::info!("{prefix}: link handler span");
    }
    .instrument(handler_span(broker, Mode::Link))
    .await;
}

/// The handler of creation-context mode, written the common way: the closure returns its future
/// `.instrument(info_span!(..))`, so the `tracing` span is made when `process` calls the closure,
/// before the future is first polled.
fn handle_in_span<T>(
    broker: Broker,
    inside: impl Future<Output = ()>,
) -> tracing::instrument::Instrumented<impl Future<Output = Result<(), T>>> {
    let prefix = broker.prefix();
    async move {
        hop().await;
        inside.await;
        tracing::info!("{prefix}: child handler span");
        Ok(())
    }
    .instrument(handler_span(broker, Mode::Child))
}

/// The handlers' `tracing` spans (link mode, child mode), after asserting every parent, link and
/// log record described in the module docs.
#[track_caller]
fn assert_directions(broker: Broker, send_name: &str, process_name: &str) -> (SpanData, SpanData) {
    let p = broker.prefix();

    // tracing → send: both send spans are children of the producing `#[instrument]` function.
    let producer = span(&format!("{p}.producer"));
    assert_from_tracing(&producer);
    producer.assert_root();
    let trace_id = producer.span_context.trace_id();
    let mut sends = spans_in(trace_id, SpanKind::Producer, 2);
    assert_eq!(sends.len(), 2, "two send spans");
    sends.sort_by_key(|s| s.start_time);
    assert!(sends[0].end_time <= sends[1].start_time, "sent one after the other");
    for send in &sends {
        assert_eq!(send.name, send_name);
        send.assert_child_of(&producer);
    }
    assert_log_in(&format!("{p}: producer"), &producer);

    // Link mode: child of the consumer's tracing span, one link to the first send span.
    let consumer = span(&format!("{p}.consumer"));
    assert_from_tracing(&consumer);
    consumer.assert_root();
    let linked = span_in(consumer.span_context.trace_id(), SpanKind::Consumer, process_name);
    linked.assert_child_of(&consumer);
    assert_links_only_to(&linked, &sends[0]);
    let link_handler = span(&format!("{p}.handler.link"));
    assert_from_tracing(&link_handler);
    link_handler.assert_child_of(&linked);
    assert_log_in(&format!("{p}: link handler"), &linked);
    assert_log_in(&format!("{p}: link handler span"), &link_handler);

    // Creation-context mode: the second send span's child, over the wire.
    let child = span_in(trace_id, SpanKind::Consumer, process_name);
    assert_remote_child_of(&child, &sends[1]);
    assert!(child.links.is_empty(), "no ambient context to link: {:?}", child.links);
    let child_handler = span(&format!("{p}.handler.child"));
    assert_from_tracing(&child_handler);
    child_handler.assert_child_of(&child);
    assert_log_in(&format!("{p}: child handler span"), &child_handler);

    (link_handler, child_handler)
}

// --- Kafka ---------------------------------------------------------------------------------------

mod kafka {
    use super::*;
    use otelrs_mq::kafka::Kafka;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::message::{BorrowedMessage, Message as _};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};

    #[tracing::instrument(name = "dir.kafka.producer", skip_all)]
    async fn produce(kafka: &Kafka, producer: &FutureProducer, topic: &str) {
        tracing::info!("dir.kafka: producer");
        for key in ["m1", "m2"] {
            hop().await;
            kafka
                .send(
                    producer,
                    FutureRecord::to(topic).key(key).payload("{}"),
                    Duration::from_secs(5),
                )
                .await
                .expect("delivered");
        }
    }

    async fn next<'a>(
        stream: &mut (impl futures_util::Stream<Item = rdkafka::error::KafkaResult<BorrowedMessage<'a>>> + Unpin),
        key: &str,
    ) -> BorrowedMessage<'a> {
        let message = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("no consume error");
        assert_eq!(message.key(), Some(key.as_bytes()), "messages arrive in order");
        message
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kafka_send_and_process() {
        let inst = instrumentation();
        let cluster: MockCluster<'static, DefaultProducerContext> =
            MockCluster::new(1).expect("librdkafka mock cluster");
        let topic = unique("dir-kafka");
        cluster.create_topic(&topic, 1, 1).expect("create topic");
        let bootstrap = cluster.bootstrap_servers();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("message.timeout.ms", "5000")
            .create()
            .expect("producer");
        let sender = Kafka::new()
            .with_instrumentation(inst.clone())
            .with_bootstrap_servers(&bootstrap);

        produce(&sender, &producer, &topic).await;

        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", unique("dir-group"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false");
        let link = Kafka::new()
            .with_instrumentation(inst.clone())
            .with_client_config(&config);
        let child = Kafka::new()
            .with_instrumentation(inst)
            .with_client_config(&config)
            .with_process_parent(ProcessParent::CreationContext);
        let consumer: StreamConsumer = config.create().expect("consumer");
        consumer.subscribe(&[&topic]).expect("subscribe");
        let mut stream = consumer.stream();

        async {
            let message = next(&mut stream, "m1").await;
            link.process(message, |_cx, _m| async {
                handle_with_inner_span(Broker::Kafka, async {}).await;
                Ok::<_, String>(())
            })
            .await
            .expect("processed");
        }
        .instrument(tracing::info_span!("dir.kafka.consumer"))
        .await;
        let message = next(&mut stream, "m2").await;
        child
            .process(message, |_cx, _m| handle_in_span::<String>(Broker::Kafka, async {}))
            .await
            .expect("processed");
        drop(stream);

        assert_directions(Broker::Kafka, &format!("send {topic}"), &format!("process {topic}"));
    }
}

// --- RabbitMQ ------------------------------------------------------------------------------------

mod rabbitmq {
    use super::*;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
        QueueDeleteOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use otelrs_mq::rabbitmq::{RabbitMq, TracedChannel, TracedDelivery};

    fn amqp_url() -> String {
        std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
    }

    #[tracing::instrument(name = "dir.rabbitmq.producer", skip_all)]
    async fn produce(channel: &TracedChannel, queue: &str) {
        tracing::info!("dir.rabbitmq: producer");
        for _ in 0..2 {
            hop().await;
            let confirm = channel
                .basic_publish(
                    "",
                    queue,
                    BasicPublishOptions::default(),
                    b"{}",
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
            assert!(confirm.await.expect("confirm").is_ack(), "confirmed");
        }
    }

    async fn next(consumer: &mut lapin::Consumer) -> lapin::message::Delivery {
        tokio::time::timeout(TIMEOUT, consumer.next())
            .await
            .expect("a delivery in time")
            .expect("consumer open")
            .expect("no consumer error")
    }

    /// Processes `delivery`, acknowledging it inside the handler's `tracing` span.
    async fn process(delivery: TracedDelivery, mode: Mode) {
        let processed = match mode {
            Mode::Link => {
                delivery
                    .process(|_cx, d| async move {
                        handle_with_inner_span(Broker::RabbitMq, async {
                            d.ack(BasicAckOptions::default()).await.expect("ack");
                        })
                        .await;
                        Ok::<_, lapin::Error>(())
                    })
                    .await
            }
            Mode::Child => {
                delivery
                    .process(|_cx, d| {
                        handle_in_span::<lapin::Error>(Broker::RabbitMq, async move {
                            d.ack(BasicAckOptions::default()).await.expect("ack");
                        })
                    })
                    .await
            }
        };
        processed.expect("processed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rabbitmq_publish_and_process() {
        let inst = instrumentation();
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
        let queue = unique("dir-rabbitmq");
        ch.queue_declare(&queue, QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("queue_declare");
        let link = RabbitMq::new()
            .with_instrumentation(inst.clone())
            .with_server_from_uri(&url);
        let child = RabbitMq::new()
            .with_instrumentation(inst)
            .with_server_from_uri(&url)
            .with_process_parent(ProcessParent::CreationContext);

        produce(&link.channel(ch.clone()), &queue).await;

        let mut consumer = ch
            .basic_consume(&queue, "", BasicConsumeOptions::default(), FieldTable::default())
            .await
            .expect("consume");
        async {
            let delivery = next(&mut consumer).await;
            process(link.delivery(delivery, &queue), Mode::Link).await;
        }
        .instrument(tracing::info_span!("dir.rabbitmq.consumer"))
        .await;
        let delivery = next(&mut consumer).await;
        process(child.delivery(delivery, &queue), Mode::Child).await;
        ch.queue_delete(&queue, QueueDeleteOptions::default())
            .await
            .expect("queue_delete");
        let _ = conn.close(200, "done").await;

        let (link_handler, child_handler) = assert_directions(
            Broker::RabbitMq,
            &format!("publish {queue}"),
            &format!("process {queue}"),
        );
        // A settle call made inside the handler's tracing span is that span's child.
        for handler in [&link_handler, &child_handler] {
            span_in(
                handler.span_context.trace_id(),
                SpanKind::Client,
                &format!("ack {queue}"),
            )
            .assert_child_of(handler);
        }
    }
}

// --- NATS ----------------------------------------------------------------------------------------

mod nats {
    use super::*;
    use otelrs_mq::nats::Nats;

    async fn next(subscription: &mut async_nats::Subscriber) -> async_nats::Message {
        tokio::time::timeout(TIMEOUT, subscription.next())
            .await
            .expect("a message in time")
            .expect("subscription open")
    }

    #[tracing::instrument(name = "dir.nats.producer", skip_all)]
    async fn produce(nats: &Nats, client: &async_nats::Client, subject: &str) {
        tracing::info!("dir.nats: producer");
        for _ in 0..2 {
            hop().await;
            nats.publish(client, subject.to_owned(), async_nats::HeaderMap::new(), "{}".into())
                .await
                .expect("publish");
        }
        client.flush().await.expect("flush");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nats_publish_and_process() {
        let inst = instrumentation();
        let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
        let client = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(&url))
            .await
            .unwrap_or_else(|_| unreachable_service(&url, "nats", "NATS_URL", "no connection within 5 s"))
            .unwrap_or_else(|e| unreachable_service(&url, "nats", "NATS_URL", e));
        let subject = unique("dir-nats");
        let mut subscription = client.subscribe(subject.clone()).await.expect("subscribe");
        client.flush().await.expect("flush");
        let link = Nats::new().with_instrumentation(inst.clone());
        let child = Nats::new()
            .with_instrumentation(inst)
            .with_process_parent(ProcessParent::CreationContext);

        produce(&link, &client, &subject).await;

        async {
            let message = next(&mut subscription).await;
            link.process(message, |_cx, _m| async {
                handle_with_inner_span(Broker::Nats, async {}).await;
                Ok::<_, String>(())
            })
            .await
            .expect("processed");
        }
        .instrument(tracing::info_span!("dir.nats.consumer"))
        .await;
        let message = next(&mut subscription).await;
        child
            .process(message, |_cx, _m| handle_in_span::<String>(Broker::Nats, async {}))
            .await
            .expect("processed");

        assert_directions(Broker::Nats, &format!("send {subject}"), &format!("process {subject}"));
    }
}
