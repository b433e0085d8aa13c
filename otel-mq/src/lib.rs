//! # otelrs-mq
//!
//! OpenTelemetry messaging instrumentation for RabbitMQ ([`lapin`](https://docs.rs/lapin)),
//! Kafka ([`rdkafka`](https://docs.rs/rdkafka)) and NATS ([`async-nats`](https://docs.rs/async-nats)),
//! following semantic conventions 1.42 (messaging, development status). One broker-independent
//! model ([`model`]) holds the span, propagation and metric logic; each adapter is a thin
//! translation behind its feature.
//!
//! Quickstarts: [`lapin`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/lapin.rs), [`rdkafka`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/rdkafka.rs), [`async_nats`](https://github.com/otel-rs/otel-rs/blob/HEAD/examples/examples/async_nats.rs) (`cargo run -p examples --example <name>`).
//!
//! | Operation | Span | Ends |
//! | --- | --- | --- |
//! | send | PRODUCER `send {destination}` (`publish {destination}` for RabbitMQ); its context is injected into the message headers as the creation context. With a caller-supplied creation context (`*_with_context`), that context is injected untouched and the span is CLIENT, linking to it | broker confirmation: RabbitMQ publisher confirm, Kafka delivery report, JetStream ack; core NATS when the client accepted the message |
//! | process | CONSUMER `process {destination}` around the handler; **links** to the creation context (default) or, with [`ProcessParent::CreationContext`], is its child and links the ambient context. Kafka batches: one span, one link per message | when the handler completes |
//! | settle | CLIENT `ack` / `nack` / `reject` / `commit` / `nak` / `term` `{destination}`, `messaging.operation.type = settle` | when the broker call returns |
//!
//! Metrics: `messaging.client.operation.duration` (send, settle), `messaging.process.duration`,
//! `messaging.client.sent.messages`, `messaging.client.consumed.messages` (counted once per
//! delivery, at process), each with exactly the attributes semantic conventions allow on it and
//! the semconv duration buckets. For Kafka, [`kafka_stats`] additionally turns librdkafka's
//! statistics (`statistics.interval.ms`) into custom `messaging.kafka.*` metrics (opt-in; names
//! not defined by semantic conventions). `error.type` is set iff an operation failed, with the same
//! value on the span and its metrics; the status is otherwise left Unset. Telemetry never
//! changes the outcome: every broker result and handler error is returned unchanged.
//!
//! Anonymous and temporary destinations (RabbitMQ `amq.gen-*` and direct reply-to, NATS
//! `_INBOX.*`) are reported as a template plus `messaging.destination.anonymous` /
//! `.temporary`, never by their raw name. `messaging.message.body.size` is opt-in
//! (`with_body_size(true)`), and so is the Kafka message key, `messaging.kafka.message.key`
//! ([`kafka::Kafka::with_message_key`]): keys often carry user identifiers. Messages without, or
//! with malformed, trace headers are processed
//! normally as new roots.
//!
//! **NATS:** semantic conventions define no `messaging.system` value for NATS. This crate uses
//! `nats` (the value of the open proposals; treat it as unstable) and the generic rules.
//!
//! ## Feature flags
//!
//! | Feature | Default | Enables |
//! | --- | --- | --- |
//! | `lapin` | no | [`rabbitmq`]: traced publish with publisher confirms, consumer stream, process, ack/nack/reject |
//! | `kafka` | no | [`kafka`]: traced `FutureProducer` send, single and batch process, commit; [`kafka_stats`]: opt-in bridge from librdkafka statistics to metrics |
//! | `nats` | no | [`nats`]: core and JetStream publish, process, JetStream acks |
//!
//! ## RabbitMQ
//!
//! ```no_run
//! # #[cfg(feature = "lapin")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use lapin::options::*;
//! use lapin::types::FieldTable;
//! use lapin::{BasicProperties, Connection, ConnectionProperties};
//! use otelrs_mq::rabbitmq::RabbitMq;
//!
//! let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
//! let rabbitmq = RabbitMq::new().with_server_from_uri(url);
//! let conn = Connection::connect(url, ConnectionProperties::default()).await?;
//! let channel = conn.create_channel().await?;
//! channel.confirm_select(ConfirmSelectOptions::default()).await?;
//! let traced = rabbitmq.channel(channel.clone());
//! traced
//!     .basic_publish("", "orders", BasicPublishOptions::default(), b"{}", BasicProperties::default())
//!     .await? // published
//!     .await?; // confirmed: the publish span ends here
//!
//! let consumer = channel.basic_consume("orders", "", BasicConsumeOptions::default(), FieldTable::default()).await?;
//! let mut deliveries = rabbitmq.consumer(consumer);
//! while let Some(delivery) = deliveries.next().await {
//!     delivery?
//!         .process(|_cx, d| async move {
//!             // ... handle d.data ...
//!             d.ack(BasicAckOptions::default()).await
//!         })
//!         .await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ## Kafka
//!
//! ```no_run
//! # #[cfg(feature = "kafka")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use otelrs_mq::kafka::Kafka;
//! use rdkafka::config::ClientConfig;
//! use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
//! use rdkafka::producer::{FutureProducer, FutureRecord};
//!
//! let mut config = ClientConfig::new();
//! config.set("bootstrap.servers", "127.0.0.1:9092").set("group.id", "billing");
//! let kafka = Kafka::new().with_client_config(&config);
//! let producer: FutureProducer = config.create()?;
//! kafka
//!     .send(&producer, FutureRecord::to("orders").key("o-1").payload("{}"), Duration::from_secs(5))
//!     .await
//!     .map_err(|(e, _)| e)?;
//!
//! let consumer: StreamConsumer = config.create()?;
//! consumer.subscribe(&["orders"])?;
//! let message = consumer.recv().await?;
//! let (k, c) = (&kafka, &consumer);
//! kafka
//!     .process(message, |_cx, m| async move { k.commit_message(c, &m, CommitMode::Async) })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## NATS
//!
//! ```no_run
//! # #[cfg(feature = "nats")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use otelrs_mq::nats::Nats;
//!
//! let nats = Nats::new().with_server("127.0.0.1", 4222);
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let mut sub = client.subscribe("orders").await?;
//! nats.publish(&client, "orders", async_nats::HeaderMap::new(), "{}".into()).await?;
//! if let Some(msg) = sub.next().await {
//!     nats.process(msg, |_cx, m| async move { Ok::<_, std::io::Error>(m.payload.len()) }).await?;
//! }
//! # Ok(())
//! # }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod broker;
pub mod model;

#[cfg(feature = "lapin")]
#[cfg_attr(docsrs, doc(cfg(feature = "lapin")))]
pub mod rabbitmq;

pub use broker::Broker;
pub use model::{Confirmed, Destination, MessagingSystem, OperationType, ProcessParent};

#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka;

#[cfg(feature = "kafka")]
#[cfg_attr(docsrs, doc(cfg(feature = "kafka")))]
pub mod kafka_stats;

#[cfg(feature = "nats")]
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub mod nats;
