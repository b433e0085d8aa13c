//! `notifier`: consumes `order.created` with otelrs-mq's process API (Kafka, RabbitMQ or NATS) and
//! records a notification row through otelrs-sql. Its process span is the child of the message's
//! creation context (`ProcessParent::CreationContext`), so an order and its notification are one
//! trace; the settle step (Kafka commit, RabbitMQ ack) is a span under it.

use std::fmt;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::BasicAckOptions;
use otelrs_mq::kafka::Kafka;
use otelrs_mq::nats::Nats;
use otelrs_mq::rabbitmq::TracedConsumer;
use rdkafka::consumer::{CommitMode, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};

use super::store::Store;

/// Why one message was not handled (recorded as the process span's `error.type`).
#[derive(Debug)]
pub enum NotifyError {
    /// The payload is not an `order.created` event.
    Payload,
    /// Writing the notification failed.
    Database(sqlx::Error),
    /// Committing the offset or acknowledging the delivery failed.
    Settle(String),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payload => f.write_str("malformed order.created payload"),
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Settle(e) => write!(f, "settle: {e}"),
        }
    }
}

/// Records the notification of one `order.created` event.
async fn notify(store: &Store, payload: Option<&[u8]>) -> Result<(), NotifyError> {
    let event: serde_json::Value = payload
        .and_then(|p| serde_json::from_slice(p).ok())
        .ok_or(NotifyError::Payload)?;
    let (Some(order_id), Some(item)) = (event["order_id"].as_i64(), event["item"].as_str()) else {
        return Err(NotifyError::Payload);
    };
    store
        .insert_notification(order_id, &format!("Your {item} is on its way"))
        .await
        .map_err(NotifyError::Database)
}

async fn handle_kafka(
    kafka: &Kafka,
    consumer: &StreamConsumer,
    store: &Store,
    message: BorrowedMessage<'_>,
) -> Result<(), NotifyError> {
    notify(store, message.payload()).await?;
    kafka
        .commit_message(consumer, &message, CommitMode::Async)
        .map_err(|e| NotifyError::Settle(e.to_string()))
}

/// Consumes from Kafka until the task is aborted. Errors of single messages are recorded on
/// their spans; consumer errors are retried after a pause.
pub async fn run_kafka(kafka: Kafka, consumer: StreamConsumer, store: Store) {
    loop {
        match consumer.recv().await {
            Ok(message) => {
                let (k, c, s) = (&kafka, &consumer, &store);
                // The outcome is on the span; a bad message must not stop the consumer.
                let _ = kafka.process(message, |_cx, m| handle_kafka(k, c, s, m)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Consumes from RabbitMQ until the consumer ends or the task is aborted; each delivery is
/// acknowledged once its notification is written.
pub async fn run_rabbitmq(mut deliveries: TracedConsumer, store: Store) {
    while let Some(delivery) = deliveries.next().await {
        let Ok(delivery) = delivery else {
            // The channel or connection closed: the shop is stopping.
            return;
        };
        let store = &store;
        let _ = delivery
            .process(|_cx, d| async move {
                notify(store, Some(&d.data)).await?;
                d.ack(BasicAckOptions::default())
                    .await
                    .map(drop)
                    .map_err(|e| NotifyError::Settle(e.to_string()))
            })
            .await;
    }
}

/// Consumes from a NATS subscription until it ends or the task is aborted (core NATS has no
/// acknowledgement).
pub async fn run_nats(nats: Nats, mut subscriber: async_nats::Subscriber, store: Store) {
    while let Some(message) = subscriber.next().await {
        let store = &store;
        let _ = nats
            .process(message, |_cx, m| async move { notify(store, Some(&m.payload)).await })
            .await;
    }
}
