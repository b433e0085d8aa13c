//! Quickstart: otelrs-mq's Kafka instrumentation for rdkafka, against rdkafka's in-process
//! `MockCluster` so it runs anywhere. `Kafka::send` makes a `PRODUCER` span `send {topic}` and
//! injects its context into the record headers; `Kafka::process` runs the handler under a
//! `CONSUMER` span `process {topic}` linked to it. Spans and messaging metrics are printed to the
//! console.
//!
//! ```sh
//! cargo run -p examples --example rdkafka
//! ```

use std::convert::Infallible;
use std::time::Duration;

use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_mq::kafka::Kafka;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "greetings";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("rdkafka-quickstart");
    if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
        builder = builder.with_traces_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_METRICS_EXPORTER").is_none() {
        builder = builder.with_metrics_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_LOGS_EXPORTER").is_none() {
        builder = builder.with_logs_exporters([]);
    }
    let telemetry = builder.install()?;

    // An in-process broker; with a real one, use its `bootstrap.servers` instead.
    let cluster: MockCluster<'static, DefaultProducerContext> = MockCluster::new(1)?;
    cluster.create_topic(TOPIC, 1, 1)?;
    let bootstrap = cluster.bootstrap_servers();

    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", &bootstrap)
        .set("message.timeout.ms", "5000");
    let producer: FutureProducer = producer_config.create()?;
    // `with_client_config` reads `bootstrap.servers` (and `group.id`) for the span attributes.
    let producer_kafka = Kafka::new()
        .with_instrumentation(telemetry.instrumentation())
        .with_client_config(&producer_config);
    let delivery = producer_kafka
        .send(
            &producer,
            FutureRecord::to(TOPIC).key("1").payload("hello"),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)?;
    println!("sent to {TOPIC}[{}] at offset {}", delivery.partition, delivery.offset);

    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "quickstart")
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = consumer_config.create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let consumer_kafka = Kafka::new()
        .with_instrumentation(telemetry.instrumentation())
        .with_client_config(&consumer_config);

    let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await??;
    consumer_kafka
        .process(message, |_cx, message| async move {
            let payload = message.payload().map(String::from_utf8_lossy).unwrap_or_default();
            println!("received {payload:?} from {}", message.topic());
            Ok::<_, Infallible>(())
        })
        .await?;

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
