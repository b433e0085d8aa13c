//! RabbitMQ instrumentation for [`lapin`] (feature `lapin`).
//!
//! * [`RabbitMq::channel`] wraps a [`Channel`]: [`TracedChannel::basic_publish`] makes a PRODUCER
//!   span `publish {destination}`, injects its context into the message's AMQP `headers` table
//!   and returns a [`TracedConfirm`] that ends the span when the broker confirms (publisher
//!   confirms, after `confirm_select`) or when the publish fails.
//! * [`RabbitMq::consumer`] wraps a [`Consumer`]: it yields [`TracedDelivery`]s whose
//!   [`TracedDelivery::process`] runs a handler under a CONSUMER span `process {destination}`,
//!   and whose [`TracedDelivery::ack`] / [`nack`](TracedDelivery::nack) /
//!   [`reject`](TracedDelivery::reject) make CLIENT settle spans (`ack {destination}` …).
//!
//! `error.type` values: the AMQP reply code as a string for protocol errors and returned
//! messages (`"404"`, `"312"`), `nack` for a negative publisher confirm, an I/O classification
//! (`connection_reset`, `broken_pipe`, …) for I/O errors, otherwise `invalid_channel_state`,
//! `invalid_connection_state`, `channels_limit_reached`, `invalid_channel`,
//! `invalid_protocol_version`, `parsing_error`, `serialisation_error`, `missing_heartbeat`,
//! `_OTHER`; for a failing handler, its error type name.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::lapin::message::Delivery;
use ::lapin::options::{BasicAckOptions, BasicNackOptions, BasicPublishOptions, BasicRejectOptions};
use ::lapin::publisher_confirm::{Confirmation, PublisherConfirm};
use ::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use ::lapin::{BasicProperties, Channel, Consumer, ErrorKind};
use futures_core::Stream;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as attr;
use otelrs_core::conv::io_error_type;
use otelrs_core::propagation::{MessageHeaders, MessageHeadersMut};
use otelrs_core::status::ERROR_TYPE_OTHER;

use crate::broker::Broker;
use crate::model::{
    size_i64, Active, Confirmed, Destination, Failure, Operation, OperationType, ServerAddress, Telemetry,
};

/// Read access to an AMQP header table as a propagation carrier. String values
/// (`longstr`, `shortstr`) and byte arrays holding UTF-8 are visible; other types are skipped.
#[derive(Debug, Clone, Copy)]
pub struct AmqpHeaders<'a>(pub &'a FieldTable);

fn amqp_str(v: &AMQPValue) -> Option<&str> {
    match v {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::ByteArray(b) => std::str::from_utf8(b.as_slice()).ok(),
        _ => None,
    }
}

impl MessageHeaders for AmqpHeaders<'_> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for (k, v) in self.0 {
            if k.as_str().eq_ignore_ascii_case(key) {
                if let Some(s) = amqp_str(v) {
                    f(s);
                }
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.0.into_iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Write access to an AMQP header table; values are stored as `longstr`, replacing any previous
/// value of the same key (compared ASCII case-insensitively).
#[derive(Debug)]
pub struct AmqpHeadersMut<'a>(pub &'a mut FieldTable);

impl MessageHeadersMut for AmqpHeadersMut<'_> {
    fn set_value(&mut self, key: &str, value: String) {
        let needs_rebuild = self
            .0
            .into_iter()
            .any(|(k, _)| k.as_str() != key && k.as_str().eq_ignore_ascii_case(key));
        if needs_rebuild {
            let kept = self
                .0
                .inner()
                .iter()
                .filter(|(k, _)| !k.as_str().eq_ignore_ascii_case(key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>();
            *self.0 = FieldTable::from(kept);
        }
        self.0
            .insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
    }
}

/// The low-cardinality `error.type` of a lapin error.
pub fn error_type(err: &::lapin::Error) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    match err.kind() {
        ErrorKind::ProtocolError(e) => Cow::Owned(e.get_id().to_string()),
        ErrorKind::IOError(io) => Cow::Borrowed(io_error_type(io)),
        ErrorKind::InvalidChannelState(..) => Cow::Borrowed("invalid_channel_state"),
        ErrorKind::InvalidConnectionState(_) => Cow::Borrowed("invalid_connection_state"),
        ErrorKind::ChannelsLimitReached => Cow::Borrowed("channels_limit_reached"),
        ErrorKind::InvalidChannel(_) => Cow::Borrowed("invalid_channel"),
        ErrorKind::InvalidProtocolVersion(_) => Cow::Borrowed("invalid_protocol_version"),
        ErrorKind::ParsingError(_) => Cow::Borrowed("parsing_error"),
        ErrorKind::SerialisationError(_) => Cow::Borrowed("serialisation_error"),
        ErrorKind::MissingHeartbeatError => Cow::Borrowed("missing_heartbeat"),
        #[allow(unreachable_patterns)]
        _ => Cow::Borrowed(ERROR_TYPE_OTHER),
    }
}

fn failure(err: &::lapin::Error) -> Failure {
    Failure::new(error_type(err), Some(err.to_string()))
}

crate::broker::system!(
    /// The RabbitMQ [`System`](crate::broker::System) (`messaging.system` = `rabbitmq`).
    RabbitMqSystem = RabbitMq
);

/// RabbitMQ instrumentation: configuration, tracer and instruments (created once). Cheap to
/// clone; wrap channels and consumers with it. The settings every broker shares are on
/// [`Broker`]; the RabbitMQ one follows.
pub type RabbitMq = Broker<RabbitMqSystem>;

impl RabbitMq {
    /// Reports the broker host and port of an AMQP URI (`amqp://user:pass@host:port/vhost`);
    /// the credentials are never recorded. An unparsable URI leaves the server unset.
    pub fn with_server_from_uri(mut self, uri: &str) -> Self {
        if let Ok(parsed) = uri.parse::<::lapin::uri::AMQPUri>() {
            self.settings().server = Some(ServerAddress::new(&parsed.authority.host, Some(parsed.authority.port)));
        } else if let Some(s) = ServerAddress::parse(uri) {
            if !uri.contains('/') {
                self.settings().server = Some(s);
            }
        }
        self
    }

    /// Wraps a channel for traced publishing.
    pub fn channel(&self, channel: Channel) -> TracedChannel {
        TracedChannel {
            channel,
            rabbitmq: self.clone(),
        }
    }

    /// Wraps a consumer; it yields [`TracedDelivery`]s.
    pub fn consumer(&self, consumer: Consumer) -> TracedConsumer {
        let queue = consumer.queue().to_string();
        TracedConsumer {
            consumer,
            queue,
            rabbitmq: self.clone(),
        }
    }

    /// Wraps one delivery received from `queue` (e.g. from `basic_get` or an untraced consumer).
    pub fn delivery(&self, delivery: Delivery, queue: &str) -> TracedDelivery {
        let destination = Destination::rabbitmq(delivery.exchange.as_str(), delivery.routing_key.as_str(), Some(queue));
        TracedDelivery {
            delivery,
            destination,
            rabbitmq: self.clone(),
        }
    }
}

/// A [`Channel`] whose publishes are traced. Everything else is reachable through
/// [`TracedChannel::inner`] (or `Deref`).
#[derive(Clone, Debug)]
pub struct TracedChannel {
    channel: Channel,
    rabbitmq: RabbitMq,
}

impl Deref for TracedChannel {
    type Target = Channel;

    fn deref(&self) -> &Channel {
        &self.channel
    }
}

/// The publisher-confirm future of a traced publish; resolves to exactly what
/// [`PublisherConfirm`] resolves to.
pub type TracedConfirm = Confirmed<PublisherConfirm>;

fn classify_confirm(out: &::lapin::Result<Confirmation>) -> Option<Failure> {
    match out {
        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => None,
        Ok(Confirmation::Ack(Some(returned))) | Ok(Confirmation::Nack(Some(returned))) => Some(Failure::new(
            returned.reply_code.to_string(),
            Some(returned.reply_text.to_string()),
        )),
        Ok(Confirmation::Nack(None)) => Some(Failure::new("nack", None)),
        Err(e) => Some(failure(e)),
    }
}

impl TracedChannel {
    /// The wrapped channel.
    pub fn inner(&self) -> &Channel {
        &self.channel
    }

    /// `basic.publish` under a PRODUCER span `publish {destination}` whose context is injected
    /// into the message headers as its creation context.
    ///
    /// Returns the error of `basic_publish` unchanged, or a [`TracedConfirm`] that ends the span
    /// when the broker confirms (a nack, or a returned `mandatory` message, is an error). On a
    /// channel without publisher confirms, the confirmation is immediate.
    pub async fn basic_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> ::lapin::Result<TracedConfirm> {
        self.publish_inner(None, exchange, routing_key, options, payload, properties)
            .await
    }

    /// Like [`TracedChannel::basic_publish`], but `creation` (a context the caller made, e.g.
    /// with its own create span) is injected as-is: the publish span is then a CLIENT span that
    /// links to it.
    pub async fn basic_publish_with_context(
        &self,
        creation: &Context,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> ::lapin::Result<TracedConfirm> {
        self.publish_inner(Some(creation), exchange, routing_key, options, payload, properties)
            .await
    }

    async fn publish_inner(
        &self,
        creation: Option<&Context>,
        exchange: &str,
        routing_key: &str,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> ::lapin::Result<TracedConfirm> {
        let t = &self.rabbitmq.telemetry;
        let destination = Destination::rabbitmq(exchange, routing_key, None);
        let op = Operation {
            op_type: OperationType::Send,
            name: "publish",
            destination: &destination,
            partition: None,
            batch_count: None,
        };
        let (kind, links) = crate::model::send_kind_and_links(creation);
        let body_size = t.settings.body_size;
        let mut active = t.start(&op, kind, &Context::current(), links, |a| {
            if !routing_key.is_empty() {
                a.push(KeyValue::new(
                    attr::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                    routing_key.to_owned(),
                ));
            }
            if let Some(id) = properties.message_id() {
                a.push(KeyValue::new(attr::MESSAGING_MESSAGE_ID, id.to_string()));
            }
            if let Some(c) = properties.correlation_id() {
                a.push(KeyValue::new(attr::MESSAGING_MESSAGE_CONVERSATION_ID, c.to_string()));
            }
            if body_size {
                a.push(KeyValue::new(
                    attr::MESSAGING_MESSAGE_BODY_SIZE,
                    size_i64(payload.len()),
                ));
            }
        });
        let mut headers = properties.headers().clone().unwrap_or_default();
        t.inject(creation.unwrap_or(&active.cx), &mut AmqpHeadersMut(&mut headers));
        let properties = properties.with_headers(headers);
        match self
            .channel
            .basic_publish(exchange, routing_key, options, payload, properties)
            .await
        {
            Ok(confirm) => Ok(Confirmed::new(confirm, active, classify_confirm)),
            Err(e) => {
                active.finish(Some(failure(&e)));
                Err(e)
            }
        }
    }
}

/// A [`Consumer`] yielding [`TracedDelivery`]s. Items and errors are otherwise exactly the
/// consumer's: an error (e.g. the connection closed) is passed through unchanged.
pub struct TracedConsumer {
    consumer: Consumer,
    queue: String,
    rabbitmq: RabbitMq,
}

impl fmt::Debug for TracedConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedConsumer").field("queue", &self.queue).finish()
    }
}

impl TracedConsumer {
    /// The wrapped consumer.
    pub fn inner(&self) -> &Consumer {
        &self.consumer
    }
}

impl Stream for TracedConsumer {
    type Item = ::lapin::Result<TracedDelivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.consumer).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(delivery))) => Poll::Ready(Some(Ok(this.rabbitmq.delivery(delivery, &this.queue)))),
        }
    }
}

/// A delivery with its destination and creation context. Derefs to [`Delivery`].
pub struct TracedDelivery {
    delivery: Delivery,
    destination: Destination,
    rabbitmq: RabbitMq,
}

impl fmt::Debug for TracedDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedDelivery")
            .field("delivery_tag", &self.delivery.delivery_tag)
            .field("destination", &self.destination)
            .finish()
    }
}

impl Deref for TracedDelivery {
    type Target = Delivery;

    fn deref(&self) -> &Delivery {
        &self.delivery
    }
}

impl TracedDelivery {
    /// The wrapped delivery.
    pub fn into_inner(self) -> Delivery {
        self.delivery
    }

    /// The destination as reported (`{exchange}:{routing key}:{queue}`).
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The creation context extracted from the message headers (no span when the message has
    /// no valid trace headers).
    pub fn creation_context(&self) -> Context {
        self.rabbitmq
            .telemetry
            .extract(self.delivery.properties.headers().as_ref().map(AmqpHeaders).as_ref())
    }

    fn message_attrs(&self, a: &mut Vec<KeyValue>) {
        let d = &self.delivery;
        if !d.routing_key.as_str().is_empty() {
            a.push(KeyValue::new(
                attr::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
                d.routing_key.to_string(),
            ));
        }
        if let Ok(tag) = i64::try_from(d.delivery_tag) {
            a.push(KeyValue::new(attr::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG, tag));
        }
        if let Some(id) = d.properties.message_id() {
            a.push(KeyValue::new(attr::MESSAGING_MESSAGE_ID, id.to_string()));
        }
        if let Some(c) = d.properties.correlation_id() {
            a.push(KeyValue::new(attr::MESSAGING_MESSAGE_CONVERSATION_ID, c.to_string()));
        }
        if self.rabbitmq.telemetry.settings.body_size {
            a.push(KeyValue::new(attr::MESSAGING_MESSAGE_BODY_SIZE, size_i64(d.data.len())));
        }
    }

    /// Runs `handler` under a CONSUMER span `process {destination}`.
    ///
    /// The handler gets the process span's context (also attached while it is called and its
    /// future polled, so spans it starts, including a `tracing` span made with
    /// `.instrument(info_span!(..))` in the closure, are children) and the delivery. By default
    /// the span links to the message's creation context; see [`ProcessParent`](crate::ProcessParent). An `Err` from the handler is returned unchanged
    /// and recorded (`error.type` = the error's type name, status description = its message).
    /// The delivery is not settled automatically.
    pub async fn process<F, Fut, T, E>(self, handler: F) -> Result<T, E>
    where
        F: FnOnce(Context, TracedDelivery) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let t = Arc::clone(&self.rabbitmq.telemetry);
        let creation = self.creation_context();
        let op = Operation {
            op_type: OperationType::Process,
            name: "process",
            destination: &self.destination,
            partition: None,
            batch_count: None,
        };
        let active = t.start_process(&op, &[(creation, Vec::new())], |a| self.message_attrs(a));
        Telemetry::run_process(active, |cx| handler(cx, self)).await
    }

    async fn settle<R>(
        &self,
        name: &'static str,
        requeue: Option<bool>,
        fut: impl Future<Output = ::lapin::Result<R>>,
    ) -> ::lapin::Result<R> {
        let t = &self.rabbitmq.telemetry;
        let op = Operation {
            op_type: OperationType::Settle,
            name,
            destination: &self.destination,
            partition: None,
            batch_count: None,
        };
        let mut active: Active = t.start(&op, SpanKind::Client, &Context::current(), Vec::new(), |a| {
            self.message_attrs(a)
        });
        if let Some(requeue) = requeue {
            active.add_event(name, vec![KeyValue::new("requeue", requeue)]);
        }
        let out = fut.await;
        match &out {
            Ok(_) => active.finish(None),
            Err(e) => active.finish(Some(failure(e))),
        }
        out
    }

    /// `basic.ack` under a CLIENT span `ack {destination}` (`messaging.operation.type` =
    /// `settle`). Returns the acker's result unchanged.
    pub async fn ack(&self, options: BasicAckOptions) -> ::lapin::Result<bool> {
        self.settle("ack", None, self.delivery.acker.ack(options)).await
    }

    /// `basic.nack` under a CLIENT span `nack {destination}`, with a span event `nack` carrying
    /// `requeue` (bool). Returns the acker's result unchanged.
    pub async fn nack(&self, options: BasicNackOptions) -> ::lapin::Result<bool> {
        self.settle("nack", Some(options.requeue), self.delivery.acker.nack(options))
            .await
    }

    /// `basic.reject` under a CLIENT span `reject {destination}`, with a span event `reject`
    /// carrying `requeue` (bool). Returns the acker's result unchanged.
    pub async fn reject(&self, options: BasicRejectOptions) -> ::lapin::Result<bool> {
        self.settle("reject", Some(options.requeue), self.delivery.acker.reject(options))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::propagation::{Extractor, Injector};
    use otelrs_core::propagation::{MessageExtractor, MessageInjector};

    #[test]
    fn amqp_header_carrier_round_trip() {
        let mut table = FieldTable::default();
        table.insert("TraceParent".into(), AMQPValue::LongString("old".into()));
        table.insert("n".into(), AMQPValue::LongInt(3));
        table.insert("b".into(), AMQPValue::ByteArray(b"bytes".to_vec().into()));
        MessageInjector(&mut AmqpHeadersMut(&mut table)).set("traceparent", "new".into());
        let h = AmqpHeaders(&table);
        let e = MessageExtractor(&h);
        assert_eq!(e.get("traceparent"), Some("new"));
        assert_eq!(e.get_all("traceparent"), Some(vec!["new"]));
        assert_eq!(e.get("n"), None, "non-string values are skipped");
        assert_eq!(e.get("B"), Some("bytes"));
        let mut keys = e.keys();
        keys.sort_unstable();
        assert_eq!(keys, vec!["b", "n", "traceparent"]);
    }
}
