//! `notifier`: consumes `order.created` with otel-mq's process API and records a notification
//! row through otel-sql. Its process span is the child of the message's creation context
//! (`ProcessParent::CreationContext`), so an order and its notification are one trace.

use std::fmt;
use std::time::Duration;

use otel_mq::kafka::Kafka;
use otel_sql::InstrumentedPool;
use rdkafka::consumer::{CommitMode, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use sqlx::Sqlite;

/// Creates the `notifications` table (uninstrumented).
pub async fn migrate(db: &InstrumentedPool<Sqlite>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL, \
         message TEXT NOT NULL)",
    )
    .execute(db.inner())
    .await
    .map(drop)
}

/// Why one message was not handled (recorded as the process span's `error.type`).
#[derive(Debug)]
pub enum NotifyError {
    /// The payload is not an `order.created` event.
    Payload,
    /// Writing the notification failed.
    Database(sqlx::Error),
    /// Committing the offset failed.
    Commit(KafkaError),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Payload => f.write_str("malformed order.created payload"),
            Self::Database(e) => write!(f, "database: {e}"),
            Self::Commit(e) => write!(f, "commit: {e}"),
        }
    }
}

async fn handle(
    kafka: &Kafka,
    consumer: &StreamConsumer,
    db: &InstrumentedPool<Sqlite>,
    message: BorrowedMessage<'_>,
) -> Result<(), NotifyError> {
    let event: serde_json::Value = message
        .payload()
        .and_then(|p| serde_json::from_slice(p).ok())
        .ok_or(NotifyError::Payload)?;
    let (Some(order_id), Some(item)) = (event["order_id"].as_i64(), event["item"].as_str()) else {
        return Err(NotifyError::Payload);
    };
    sqlx::query("INSERT INTO notifications (order_id, message) VALUES (?, ?)")
        .bind(order_id)
        .bind(format!("Your {item} is on its way"))
        .execute(db)
        .await
        .map_err(NotifyError::Database)?;
    kafka
        .commit_message(consumer, &message, CommitMode::Async)
        .map_err(NotifyError::Commit)
}

/// Consumes until the task is aborted. Errors of single messages are recorded on their spans;
/// consumer errors are retried after a pause.
pub async fn run(kafka: Kafka, consumer: StreamConsumer, db: InstrumentedPool<Sqlite>) {
    loop {
        match consumer.recv().await {
            Ok(message) => {
                let (k, c, d) = (&kafka, &consumer, &db);
                // The outcome is on the span; a bad message must not stop the consumer.
                let _ = kafka.process(message, |_cx, m| handle(k, c, d, m)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
