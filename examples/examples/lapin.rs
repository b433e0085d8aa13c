//! Quickstart: otelrs-mq's RabbitMQ instrumentation for lapin. A publish through the traced channel
//! is a `PRODUCER` span `publish {queue}`, ended by the publisher confirm, whose context travels in
//! the message headers; `process` runs the handler under a `CONSUMER` span `process {queue}` linked
//! to it, and `ack` is a `CLIENT` span `ack {queue}` under that. Spans and messaging metrics are
//! printed to the console.
//!
//! Needs RabbitMQ at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), e.g.
//! `docker run --rm -p 5672:5672 rabbitmq`; without one it says so and exits with status 1.
//!
//! ```sh
//! cargo run -p examples --example lapin
//! ```

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_mq::rabbitmq::RabbitMq;

const QUEUE: &str = "greetings";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());

    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("lapin-quickstart");
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

    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await;
    let conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            eprintln!("cannot connect to RabbitMQ at {url}: {e} (set AMQP_URL or start a broker)");
            if let Err(e) = telemetry.shutdown() {
                eprintln!("warning: telemetry was not fully delivered: {e}");
            }
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("cannot connect to RabbitMQ at {url}: timed out (set AMQP_URL or start a broker)");
            if let Err(e) = telemetry.shutdown() {
                eprintln!("warning: telemetry was not fully delivered: {e}");
            }
            std::process::exit(1);
        }
    };
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?; // publish spans end at the confirm
    let queue_options = QueueDeclareOptions {
        auto_delete: true, // gone once the consumer below is
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(QUEUE, queue_options, FieldTable::default())
        .await?;

    // Build once (`with_server_from_uri` adds server.address / server.port, never credentials).
    let rabbitmq = RabbitMq::new()
        .with_instrumentation(telemetry.instrumentation())
        .with_server_from_uri(&url);
    let consumer = channel
        .basic_consume(
            QUEUE,
            "quickstart",
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut deliveries = rabbitmq.consumer(consumer);

    let confirmation = rabbitmq
        .channel(channel.clone())
        .basic_publish(
            "",
            QUEUE,
            BasicPublishOptions::default(),
            b"hello",
            BasicProperties::default(),
        )
        .await? // sent
        .await?; // confirmed by the broker: the publish span ends here
    println!("published to {QUEUE}, confirmed: {}", confirmation.is_ack());

    let delivery = tokio::time::timeout(Duration::from_secs(10), deliveries.next())
        .await?
        .ok_or("the consumer was cancelled")??;
    delivery
        .process(|_cx, delivery| async move {
            println!("received {:?} from {QUEUE}", String::from_utf8_lossy(&delivery.data));
            delivery.ack(BasicAckOptions::default()).await // span "ack greetings", child of the process span
        })
        .await?;

    conn.close(200, "done").await?;
    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
