//! otelrs-mq: overhead per publish and per processed message against the bare clients, in the same
//! run, with sampled spans on one SDK setup whose exporters discard (`benches::http_apps::Sdk`).
//!
//! * Publish, RabbitMQ: `basic_publish` on a channel with publisher confirms, confirmation
//!   awaited, against the broker at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//!   bare `lapin::Channel` vs `otelrs_mq::rabbitmq::TracedChannel`.
//! * Publish, Kafka: `FutureProducer::send` with its delivery report awaited, against librdkafka's
//!   in-process mock cluster (`linger.ms` = 0), bare vs `otelrs_mq::kafka::Kafka::send`.
//! * Process: a trivial handler (returns the body length) called directly vs through the process
//!   API, on a delivery / message received once before the loop (rebuilt or cloned per call, in
//!   both variants), so no broker round trip is in the measured loop. The message carries a
//!   `traceparent`, so the process span links to its creation context.
//!
//! Allocation figures count the measuring thread only (lapin's and librdkafka's own threads are
//! not counted); the difference between the two variants is the instrumentation's.
//!
//! `cargo bench -p benches --bench mq`

use std::hint::black_box;
use std::time::Duration;

use benches::allocations_per_call;
use benches::http_apps::{runtime, Sdk};
use criterion::{criterion_group, criterion_main, Criterion};
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use otelrs_mq::kafka::Kafka;
use otelrs_mq::rabbitmq::{RabbitMq, TracedDelivery};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};

const PAYLOAD: &[u8] = br#"{"order":42,"items":[1,2,3]}"#;
const PUBLISH_ALLOC_CALLS: u64 = 500;
const PROCESS_ALLOC_CALLS: u64 = 5_000;
const BARE: &str = "bare";
const TRACED: &str = "otelrs-mq (sampled)";

fn print_allocs(title: &str, bare: f64, traced: f64) {
    println!("\n{title}: heap allocations per operation (counting allocator, measuring thread)");
    println!("  {BARE:<20} {bare:>7.2}");
    println!("  {TRACED:<20} {traced:>7.2}  (+{:.2})", traced - bare);
}

/// A fresh copy of a received delivery (lapin's `Delivery` is not `Clone`; its acker is).
fn copy(d: &Delivery) -> Delivery {
    Delivery {
        delivery_tag: d.delivery_tag,
        exchange: d.exchange.clone(),
        routing_key: d.routing_key.clone(),
        redelivered: d.redelivered,
        properties: d.properties.clone(),
        data: d.data.clone(),
        acker: d.acker.clone(),
    }
}

async fn bare_rabbitmq_handler(_cx: Context, d: Delivery) -> Result<usize, std::io::Error> {
    Ok(d.data.len())
}

async fn traced_rabbitmq_handler(_cx: Context, d: TracedDelivery) -> Result<usize, std::io::Error> {
    Ok(d.data.len())
}

async fn bare_kafka_handler(_cx: Context, m: OwnedMessage) -> Result<usize, std::io::Error> {
    Ok(m.payload().map_or(0, <[u8]>::len))
}

fn rabbitmq(c: &mut Criterion, sdk: &Sdk) {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let rt = runtime();
    let conn = rt
        .block_on(Connection::connect(&url, ConnectionProperties::default()))
        .unwrap_or_else(|e| panic!("RabbitMQ at {url}: {e}; start it with `docker compose up -d rabbitmq`"));
    let channel = rt.block_on(conn.create_channel()).expect("channel");
    rt.block_on(channel.confirm_select(ConfirmSelectOptions::default()))
        .expect("confirm_select");
    let queue = format!("otel-mq-bench-{}", std::process::id());
    // Bounded, so the bench does not pile messages up in the broker (the oldest are dropped; the
    // publisher confirm is unaffected).
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1_000));
    rt.block_on(channel.queue_declare(&queue, QueueDeclareOptions::default(), args))
        .expect("queue_declare");

    let rabbitmq = RabbitMq::new()
        .with_instrumentation(sdk.instrumentation())
        .with_server_from_uri(&url);
    let traced = rabbitmq.channel(channel.clone());
    let bare_publish = || async {
        channel
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                PAYLOAD,
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
    };
    let traced_publish = || async {
        traced
            .basic_publish(
                "",
                &queue,
                BasicPublishOptions::default(),
                PAYLOAD,
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
    };

    print_allocs(
        "mq_publish/rabbitmq",
        allocations_per_call(PUBLISH_ALLOC_CALLS, || rt.block_on(bare_publish())),
        allocations_per_call(PUBLISH_ALLOC_CALLS, || rt.block_on(traced_publish())),
    );
    let mut group = c.benchmark_group("mq_publish/rabbitmq");
    group.bench_function(BARE, |b| b.iter(|| rt.block_on(bare_publish())));
    group.bench_function(TRACED, |b| b.iter(|| rt.block_on(traced_publish())));
    group.finish();

    // One delivery with a creation context, taken off the queue once.
    rt.block_on(channel.queue_purge(&queue, Default::default()))
        .expect("queue_purge");
    rt.block_on(traced_publish());
    let delivery = rt
        .block_on(channel.basic_get(&queue, BasicGetOptions { no_ack: true }))
        .expect("basic_get")
        .expect("a message")
        .delivery;
    assert!(
        rabbitmq
            .delivery(copy(&delivery), &queue)
            .creation_context()
            .has_active_span(),
        "the delivery carries a creation context"
    );
    let bare_process = || rt.block_on(bare_rabbitmq_handler(Context::new(), copy(&delivery)));
    let traced_process = || {
        rt.block_on(
            rabbitmq
                .delivery(copy(&delivery), &queue)
                .process(traced_rabbitmq_handler),
        )
    };
    assert_eq!(bare_process().ok(), Some(PAYLOAD.len()));
    assert_eq!(traced_process().ok(), Some(PAYLOAD.len()));
    print_allocs(
        "mq_process/rabbitmq",
        allocations_per_call(PROCESS_ALLOC_CALLS, bare_process),
        allocations_per_call(PROCESS_ALLOC_CALLS, traced_process),
    );
    let mut group = c.benchmark_group("mq_process/rabbitmq");
    group.bench_function(BARE, |b| b.iter(|| black_box(bare_process())));
    group.bench_function(TRACED, |b| b.iter(|| black_box(traced_process())));
    group.finish();

    rt.block_on(channel.queue_delete(&queue, QueueDeleteOptions::default()))
        .expect("queue_delete");
    let _ = rt.block_on(conn.close(200, "bench done"));
}

fn kafka(c: &mut Criterion, sdk: &Sdk) {
    let rt = runtime();
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = "otel-mq-bench";
    cluster.create_topic(topic, 1, 1).expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "0")
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    let kafka = Kafka::new()
        .with_instrumentation(sdk.instrumentation())
        .with_bootstrap_servers(&bootstrap)
        .with_consumer_group("otel-mq-bench");
    let timeout = Duration::from_secs(5);
    let bare_send = || {
        rt.block_on(producer.send(FutureRecord::to(topic).key("order-42").payload(PAYLOAD), timeout))
            .expect("delivered")
    };
    let traced_send = || {
        rt.block_on(kafka.send(
            &producer,
            FutureRecord::to(topic).key("order-42").payload(PAYLOAD),
            timeout,
        ))
        .expect("delivered")
    };

    print_allocs(
        "mq_publish/kafka",
        allocations_per_call(PUBLISH_ALLOC_CALLS, bare_send),
        allocations_per_call(PUBLISH_ALLOC_CALLS, traced_send),
    );
    // librdkafka's latency drifts over a run (the bare client measured after the instrumented
    // one is faster than before it), so the bare client is measured on both sides.
    let mut group = c.benchmark_group("mq_publish/kafka");
    group.bench_function(BARE, |b| b.iter(bare_send));
    group.bench_function(TRACED, |b| b.iter(traced_send));
    group.bench_function("bare (again)", |b| b.iter(bare_send));
    group.finish();

    // One message with a creation context, consumed once (the last one sent).
    let last = traced_send();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "otel-mq-bench")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, last.partition, rdkafka::Offset::Offset(last.offset))
        .expect("offset");
    consumer.assign(&assignment).expect("assign");
    let message = loop {
        if let Some(r) = consumer.poll(Duration::from_secs(10)) {
            break r.expect("no consume error").detach();
        }
    };
    assert!(
        kafka.creation_context(&message).has_active_span(),
        "the message carries a creation context"
    );
    let bare_process = || rt.block_on(bare_kafka_handler(Context::new(), message.clone()));
    let traced_process = || {
        rt.block_on(kafka.process(message.clone(), |_cx, m: OwnedMessage| async move {
            Ok::<_, std::io::Error>(m.payload().map_or(0, <[u8]>::len))
        }))
    };
    assert_eq!(bare_process().ok(), Some(PAYLOAD.len()));
    assert_eq!(traced_process().ok(), Some(PAYLOAD.len()));
    print_allocs(
        "mq_process/kafka",
        allocations_per_call(PROCESS_ALLOC_CALLS, bare_process),
        allocations_per_call(PROCESS_ALLOC_CALLS, traced_process),
    );
    let mut group = c.benchmark_group("mq_process/kafka");
    group.bench_function(BARE, |b| b.iter(|| black_box(bare_process())));
    group.bench_function(TRACED, |b| b.iter(|| black_box(traced_process())));
    group.finish();
}

fn bench(c: &mut Criterion) {
    let sdk = Sdk::new(true);
    rabbitmq(c, &sdk);
    kafka(c, &sdk);
    let _ = sdk.tracer_provider.shutdown();
    let _ = sdk.meter_provider.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
