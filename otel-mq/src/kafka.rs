//! Kafka instrumentation for [`rdkafka`] (feature `kafka`).
//!
//! * [`Kafka::send`] sends a [`FutureRecord`] through a [`FutureProducer`] under a PRODUCER span
//!   `send {topic}` whose context is injected into the record headers; the span ends with the
//!   delivery report (partition and offset recorded) or the delivery error.
//! * [`Kafka::process`] runs a handler for one message under a CONSUMER span `process {topic}`;
//!   [`Kafka::process_batch`] makes one span for a batch with one link per message that has a
//!   creation context, each link carrying that message's partition and offset (and key, with
//!   [`Kafka::with_message_key`]).
//! * [`Kafka::commit_message`] commits under a CLIENT span `commit {topic}`
//!   (`messaging.operation.type` = `settle`).
//!
//! `error.type` values: the librdkafka error code name (`MessageTimedOut`, `MessageSizeTooLarge`,
//! `UnknownTopicOrPartition`, …) when there is one, otherwise `_OTHER`; for a failing handler,
//! its error type name.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use ::rdkafka::config::ClientConfig;
use ::rdkafka::consumer::{CommitMode, Consumer, ConsumerContext};
use ::rdkafka::error::{KafkaError, KafkaResult};
use ::rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use ::rdkafka::producer::future_producer::OwnedDeliveryResult;
use ::rdkafka::producer::{FutureProducer, FutureRecord};
use ::rdkafka::util::{AsyncRuntime, Timeout};
use ::rdkafka::ClientContext;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as attr;
use otelrs_core::conv::ServerAddress;
use otelrs_core::propagation::{MessageHeaders, MessageHeadersMut};
use otelrs_core::status::ERROR_TYPE_OTHER;

use crate::broker::Broker;
use crate::model::{size_i64, Destination, Failure, Operation, OperationType, Telemetry};

/// Read access to Kafka record headers (owned or borrowed) as a propagation carrier. Values that
/// are null or not UTF-8 are skipped.
#[derive(Debug, Clone, Copy)]
pub struct KafkaHeaders<'a, H>(pub &'a H);

impl<H: Headers> MessageHeaders for KafkaHeaders<'_, H> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for i in 0..self.0.count() {
            if let Some(h) = self.0.try_get(i) {
                if h.key.eq_ignore_ascii_case(key) {
                    if let Some(Ok(v)) = h.value.map(std::str::from_utf8) {
                        f(v);
                    }
                }
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        (0..self.0.count())
            .filter_map(|i| self.0.try_get(i).map(|h| h.key))
            .collect()
    }
}

/// Write access to record headers being built for a [`FutureRecord`]. Setting a key replaces
/// every previous header of that key (compared ASCII case-insensitively); other headers keep
/// their order.
#[derive(Debug)]
pub struct KafkaHeadersMut<'a>(pub &'a mut Option<OwnedHeaders>);

impl MessageHeadersMut for KafkaHeadersMut<'_> {
    fn set_value(&mut self, key: &str, value: String) {
        let old = self.0.take();
        let mut new = OwnedHeaders::new_with_capacity(old.as_ref().map_or(0, Headers::count) + 1);
        if let Some(old) = &old {
            for h in old.iter() {
                if !h.key.eq_ignore_ascii_case(key) {
                    new = new.insert(Header {
                        key: h.key,
                        value: h.value,
                    });
                }
            }
        }
        new = new.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
        *self.0 = Some(new);
    }
}

/// The low-cardinality `error.type` of a Kafka error: the librdkafka error code name.
pub fn error_type(err: &KafkaError) -> Cow<'static, str> {
    match err.rdkafka_error_code() {
        Some(code) => Cow::Owned(format!("{code:?}")),
        None => Cow::Borrowed(ERROR_TYPE_OTHER),
    }
}

fn failure(err: &KafkaError) -> Failure {
    Failure::new(error_type(err), Some(err.to_string()))
}

crate::broker::system!(
    /// The Kafka [`System`](crate::broker::System) (`messaging.system` = `kafka`).
    KafkaSystem = Kafka, ConsumerGroups
);

/// Kafka instrumentation: configuration, tracer and instruments (created once). Cheap to clone.
/// The settings every broker shares are on [`Broker`]; the Kafka ones follow.
pub type Kafka = Broker<KafkaSystem>;

impl Kafka {
    /// Reads `server.address`/`server.port` from the first entry of `bootstrap.servers` and
    /// `messaging.consumer.group.name` from `group.id`.
    pub fn with_client_config(mut self, config: &ClientConfig) -> Self {
        if let Some(servers) = config.get("bootstrap.servers") {
            self = self.with_bootstrap_servers(servers);
        }
        if let Some(group) = config.get("group.id") {
            self = self.with_consumer_group(group);
        }
        self
    }

    /// Reports `server.address`/`server.port` from the first entry of a `bootstrap.servers` list.
    pub fn with_bootstrap_servers(mut self, servers: &str) -> Self {
        self.settings().server = servers.split(',').next().and_then(ServerAddress::parse);
        self
    }

    /// Reports `messaging.kafka.message.key` (UTF-8 keys) on send and process spans and on batch
    /// links. Off by default although semantic conventions recommend it: keys are often user or
    /// account identifiers (e-mail addresses, customer numbers), which must not reach telemetry
    /// unless the application says they may.
    pub fn with_message_key(mut self, enabled: bool) -> Self {
        self.settings().message_key = enabled;
        self
    }

    /// Sends `record` under a PRODUCER span `send {topic}` whose context is injected into the
    /// record headers (replacing any `traceparent`/`tracestate`/`baggage` there). Returns
    /// exactly what [`FutureProducer::send`] returns.
    pub async fn send<K, P, C, R>(
        &self,
        producer: &FutureProducer<C, R>,
        record: FutureRecord<'_, K, P>,
        queue_timeout: impl Into<Timeout>,
    ) -> OwnedDeliveryResult
    where
        K: ::rdkafka::message::ToBytes + ?Sized,
        P: ::rdkafka::message::ToBytes + ?Sized,
        C: ClientContext + 'static,
        R: AsyncRuntime,
    {
        self.send_inner(None, producer, record, queue_timeout.into()).await
    }

    /// Like [`Kafka::send`], but `creation` (a context the caller made) is injected as-is; the
    /// send span is then a CLIENT span linking to it.
    pub async fn send_with_context<K, P, C, R>(
        &self,
        creation: &Context,
        producer: &FutureProducer<C, R>,
        record: FutureRecord<'_, K, P>,
        queue_timeout: impl Into<Timeout>,
    ) -> OwnedDeliveryResult
    where
        K: ::rdkafka::message::ToBytes + ?Sized,
        P: ::rdkafka::message::ToBytes + ?Sized,
        C: ClientContext + 'static,
        R: AsyncRuntime,
    {
        self.send_inner(Some(creation), producer, record, queue_timeout.into())
            .await
    }

    async fn send_inner<K, P, C, R>(
        &self,
        creation: Option<&Context>,
        producer: &FutureProducer<C, R>,
        mut record: FutureRecord<'_, K, P>,
        queue_timeout: Timeout,
    ) -> OwnedDeliveryResult
    where
        K: ::rdkafka::message::ToBytes + ?Sized,
        P: ::rdkafka::message::ToBytes + ?Sized,
        C: ClientContext + 'static,
        R: AsyncRuntime,
    {
        let t = &self.telemetry;
        let destination = Destination::kafka_topic(record.topic);
        let op = Operation {
            op_type: OperationType::Send,
            name: "send",
            destination: &destination,
            partition: record.partition.map(|p| p.to_string()),
            batch_count: None,
        };
        let (kind, links) = crate::model::send_kind_and_links(creation);
        let body_size = t.settings.body_size;
        let message_key = t.settings.message_key;
        let mut active = t.start(&op, kind, &Context::current(), links, |a| {
            if let Some(key) = record.key.filter(|_| message_key).map(|k| k.to_bytes()) {
                if let Ok(key) = std::str::from_utf8(key) {
                    a.push(KeyValue::new(attr::MESSAGING_KAFKA_MESSAGE_KEY, key.to_owned()));
                }
            }
            match record.payload.map(|p| p.to_bytes()) {
                None => a.push(KeyValue::new(attr::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, true)),
                Some(p) if body_size => a.push(KeyValue::new(attr::MESSAGING_MESSAGE_BODY_SIZE, size_i64(p.len()))),
                Some(_) => {}
            }
        });
        t.inject(
            creation.unwrap_or(&active.cx),
            &mut KafkaHeadersMut(&mut record.headers),
        );
        let result = producer.send(record, queue_timeout).await;
        match &result {
            Ok(delivery) => {
                let span = active.cx.span();
                if span.is_recording() {
                    if op.partition.is_none() {
                        span.set_attribute(KeyValue::new(
                            attr::MESSAGING_DESTINATION_PARTITION_ID,
                            delivery.partition.to_string(),
                        ));
                    }
                    span.set_attribute(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, delivery.offset));
                }
                active.finish(None);
            }
            Err((e, _)) => active.finish(Some(failure(e))),
        }
        result
    }

    /// The creation context extracted from a message's headers (no span when it has none).
    pub fn creation_context<M: Message>(&self, message: &M) -> Context {
        self.telemetry.extract(message.headers().map(KafkaHeaders).as_ref())
    }

    fn message_attrs<M: Message>(&self, m: &M, a: &mut Vec<KeyValue>) {
        if self.telemetry.settings.message_key {
            if let Some(Ok(key)) = m.key().map(std::str::from_utf8) {
                a.push(KeyValue::new(attr::MESSAGING_KAFKA_MESSAGE_KEY, key.to_owned()));
            }
        }
        a.push(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, m.offset()));
        match m.payload() {
            None => a.push(KeyValue::new(attr::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, true)),
            Some(p) if self.telemetry.settings.body_size => {
                a.push(KeyValue::new(attr::MESSAGING_MESSAGE_BODY_SIZE, size_i64(p.len())))
            }
            Some(_) => {}
        }
    }

    /// Runs `handler` for one message under a CONSUMER span `process {topic}` (linked to the
    /// message's creation context by default; see [`ProcessParent`](crate::ProcessParent)). The handler gets the span's
    /// context (also attached while it is called and its future polled, so a `tracing` span made
    /// with `.instrument(info_span!(..))` in the closure is a child) and the message; its result
    /// is returned unchanged, an `Err` recorded with its type name as `error.type`.
    pub async fn process<M, F, Fut, T, E>(&self, message: M, handler: F) -> Result<T, E>
    where
        M: Message,
        F: FnOnce(Context, M) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let destination = Destination::kafka_topic(message.topic());
        let op = Operation {
            op_type: OperationType::Process,
            name: "process",
            destination: &destination,
            partition: Some(message.partition().to_string()),
            batch_count: None,
        };
        let creation = self.creation_context(&message);
        let active = self
            .telemetry
            .start_process(&op, &[(creation, Vec::new())], |a| self.message_attrs(&message, a));
        Telemetry::run_process(active, |cx| handler(cx, message)).await
    }

    /// Runs `handler` for a batch under one CONSUMER span `process {topic}` (`process` alone when
    /// the messages come from several topics) with `messaging.batch.message_count`. Each message
    /// with a creation context contributes one link carrying its partition, offset (and key, with
    /// [`Kafka::with_message_key`]);
    /// topic and partition are on the span when all messages share them.
    pub async fn process_batch<M, F, Fut, T, E>(&self, messages: Vec<M>, handler: F) -> Result<T, E>
    where
        M: Message,
        F: FnOnce(Context, Vec<M>) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let first_topic = messages.first().map(|m| m.topic());
        let same_topic = messages.iter().all(|m| Some(m.topic()) == first_topic);
        let first_partition = messages.first().map(|m| m.partition());
        let same_partition = same_topic && messages.iter().all(|m| Some(m.partition()) == first_partition);
        let destination = match first_topic {
            Some(t) if same_topic => Destination::kafka_topic(t),
            _ => Destination::none(),
        };
        let op = Operation {
            op_type: OperationType::Process,
            name: "process",
            destination: &destination,
            partition: first_partition.filter(|_| same_partition).map(|p| p.to_string()),
            batch_count: Some(messages.len()),
        };
        let creations: Vec<(Context, Vec<KeyValue>)> = messages
            .iter()
            .map(|m| {
                let mut attrs = Vec::with_capacity(4);
                if !same_topic {
                    attrs.push(KeyValue::new(attr::MESSAGING_DESTINATION_NAME, m.topic().to_owned()));
                }
                if !same_partition {
                    attrs.push(KeyValue::new(
                        attr::MESSAGING_DESTINATION_PARTITION_ID,
                        m.partition().to_string(),
                    ));
                }
                attrs.push(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, m.offset()));
                if self.telemetry.settings.message_key {
                    if let Some(Ok(key)) = m.key().map(std::str::from_utf8) {
                        attrs.push(KeyValue::new(attr::MESSAGING_KAFKA_MESSAGE_KEY, key.to_owned()));
                    }
                }
                (self.creation_context(m), attrs)
            })
            .collect();
        let active = self.telemetry.start_process(&op, &creations, |_| {});
        Telemetry::run_process(active, |cx| handler(cx, messages)).await
    }

    /// Commits `message`'s offset under a CLIENT span `commit {topic}` (`messaging.operation.type`
    /// = `settle`). Returns the consumer's result unchanged.
    pub fn commit_message<C, K>(&self, consumer: &K, message: &BorrowedMessage<'_>, mode: CommitMode) -> KafkaResult<()>
    where
        C: ConsumerContext + 'static,
        K: Consumer<C>,
    {
        let destination = Destination::kafka_topic(message.topic());
        let op = Operation {
            op_type: OperationType::Settle,
            name: "commit",
            destination: &destination,
            partition: Some(message.partition().to_string()),
            batch_count: None,
        };
        let mut active = self
            .telemetry
            .start(&op, SpanKind::Client, &Context::current(), Vec::new(), |a| {
                a.push(KeyValue::new(attr::MESSAGING_KAFKA_OFFSET, message.offset()));
            });
        let result = consumer.commit_message(message, mode);
        match &result {
            Ok(()) => active.finish(None),
            Err(e) => active.finish(Some(failure(e))),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::{Extractor, Injector};
    use otelrs_core::propagation::{MessageExtractor, MessageInjector};

    #[test]
    fn kafka_header_carrier_round_trip() {
        let mut headers = Some(
            OwnedHeaders::new()
                .insert(Header {
                    key: "TRACEPARENT",
                    value: Some("old"),
                })
                .insert(Header {
                    key: "other",
                    value: Some(&[0xffu8, 0xfe][..]),
                })
                .insert::<[u8]>(Header {
                    key: "null",
                    value: None,
                }),
        );
        MessageInjector(&mut KafkaHeadersMut(&mut headers)).set("traceparent", "new".into());
        let Some(h) = headers.as_ref() else {
            panic!("headers were removed")
        };
        let carrier = KafkaHeaders(h);
        let e = MessageExtractor(&carrier);
        assert_eq!(e.get_all("traceparent"), Some(vec!["new"]));
        assert_eq!(e.get("other"), None, "non-UTF-8 is skipped");
        assert_eq!(e.get("null"), None);
        assert_eq!(e.keys(), vec!["other", "null", "traceparent"]);
    }
}
