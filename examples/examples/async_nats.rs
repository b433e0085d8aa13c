//! Quickstart: otelrs-mq's NATS instrumentation for async-nats. `Nats::publish` makes a `PRODUCER`
//! span `send {subject}` and injects its context into the NATS headers; `Nats::process` runs the
//! handler under a `CONSUMER` span `process {subject}` linked to it. With JetStream, the send span
//! ends at the stream's ack and `Nats::ack` is a `CLIENT` span `ack {subject}`. Spans and
//! messaging metrics are printed to the console.
//!
//! Needs a NATS server at `NATS_URL` (default `nats://127.0.0.1:4222`), e.g.
//! `docker run --rm -p 4222:4222 nats -js`; without one it says so and exits with status 1.
//! Without JetStream (`-js`) the second part is skipped.
//!
//! ```sh
//! cargo run -p examples --example async_nats
//! ```

use std::convert::Infallible;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use async_nats::{HeaderMap, ServerAddr};
use futures_util::StreamExt;
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_mq::nats::Nats;

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());

    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("async-nats-quickstart");
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

    let connected = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(&url)
        .await;
    let client = match connected {
        Ok(client) => client,
        Err(e) => {
            eprintln!("cannot connect to NATS at {url}: {e} (set NATS_URL or start a server)");
            if let Err(e) = telemetry.shutdown() {
                eprintln!("warning: telemetry was not fully delivered: {e}");
            }
            std::process::exit(1);
        }
    };
    // Build once; `with_server` adds server.address / server.port to every span.
    let server: ServerAddr = url.parse()?;
    let nats = Nats::new()
        .with_instrumentation(telemetry.instrumentation())
        .with_server(server.host(), server.port());

    // Core NATS: publish, then receive and process.
    let mut subscription = client.subscribe("greetings").await?;
    client.flush().await?; // the subscription is registered before the publish
    nats.publish(&client, "greetings", HeaderMap::new(), "hello".into())
        .await?;
    let message = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await?
        .ok_or("the subscription closed")?;
    nats.process(message, |_cx, message| async move {
        println!(
            "received {:?} on {}",
            String::from_utf8_lossy(&message.payload),
            message.subject
        );
        Ok::<_, Infallible>(())
    })
    .await?;

    // JetStream: the send span ends at the stream's ack; the consumer acks under the process span.
    let js = jetstream::new(client.clone());
    let config = jetstream::stream::Config {
        name: "QUICKSTART".into(),
        subjects: vec!["quickstart.orders".into()],
        ..Default::default()
    };
    match js.get_or_create_stream(config).await {
        Ok(stream) => {
            let ack = nats
                .jetstream_publish(&js, "quickstart.orders", HeaderMap::new(), "order 1".into())
                .await?
                .await?;
            println!("stored in stream {} at sequence {}", ack.stream, ack.sequence);
            let consumer = stream
                .create_consumer(consumer::pull::Config {
                    deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                        start_sequence: ack.sequence,
                    },
                    ..Default::default()
                })
                .await?;
            let mut batch = consumer.fetch().max_messages(1).messages().await?;
            let message = batch.next().await.ok_or("no message fetched")??;
            let nats = &nats;
            nats.process_jetstream(message, |_cx, message| async move {
                println!(
                    "received {:?} on {}",
                    String::from_utf8_lossy(&message.payload),
                    message.subject
                );
                nats.ack(&message).await
            })
            .await?;
            js.delete_stream("QUICKSTART").await?;
        }
        Err(e) => println!("JetStream part skipped: {e} (start the server with -js)"),
    }

    client.drain().await?;
    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
