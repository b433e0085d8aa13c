//! NATS instrumentation for [`async_nats`] (feature `nats`).
//!
//! Semantic conventions 1.42 define nothing for NATS: `messaging.system` is `nats` (the value
//! the open proposals use, **not stable**) and the generic messaging rules apply. The
//! destination is the subject; reply inboxes (`_INBOX.…`) are temporary and anonymous and are
//! reported as the template `_INBOX.*`.
//!
//! * [`Nats::publish`]: PRODUCER span `send {subject}`, context injected into the NATS headers,
//!   ended when the client accepted the message (core NATS has no broker acknowledgement).
//! * [`Nats::jetstream_publish`]: same span, ended when the JetStream publish ack arrives.
//! * [`Nats::process`] / [`Nats::process_jetstream`]: CONSUMER span `process {subject}`.
//! * [`Nats::ack`] / [`Nats::ack_with`]: CLIENT settle spans (`ack`, `nak`, `progress`, `next`,
//!   `term`).
//!
//! `error.type` values: the `async-nats` error kind (`MaxPayloadExceeded`, `BadSubject`, `Send`,
//! `StreamNotFound`, `TimedOut`, `BrokenPipe`, …), `_OTHER` for other errors, or a failing
//! handler's error type name.

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use async_nats::header::HeaderMap;
use async_nats::jetstream::context::PublishError as JsPublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::AckKind;
use async_nats::subject::ToSubject;
use async_nats::{Client, Message, PublishError};
use bytes::Bytes;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as attr;
use otelrs_core::propagation::{MessageHeaders, MessageHeadersMut};
use otelrs_core::status::ERROR_TYPE_OTHER;

use crate::broker::Broker;
use crate::model::{size_i64, Active, Confirmed, Destination, Failure, Operation, OperationType, Telemetry};

/// Read access to NATS headers as a propagation carrier.
#[derive(Debug, Clone, Copy)]
pub struct NatsHeaders<'a>(pub &'a HeaderMap);

impl MessageHeaders for NatsHeaders<'_> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for (k, values) in self.0.iter() {
            if AsRef::<str>::as_ref(k).eq_ignore_ascii_case(key) {
                for v in values {
                    f(v.as_str());
                }
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| AsRef::<str>::as_ref(k)).collect()
    }
}

/// Write access to NATS headers; a set replaces every value of that exact key.
#[derive(Debug)]
pub struct NatsHeadersMut<'a>(pub &'a mut HeaderMap);

impl MessageHeadersMut for NatsHeadersMut<'_> {
    fn set_value(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

fn kind_failure<K: fmt::Debug + Clone + PartialEq>(kind: K, message: String) -> Failure {
    Failure::new(Cow::Owned(format!("{kind:?}")), Some(message))
}

const MSG_ID: &str = "Nats-Msg-Id";

crate::broker::system!(
    /// The NATS [`System`](crate::broker::System) (`messaging.system` = `nats`).
    NatsSystem = Nats, ConsumerGroups
);

/// NATS instrumentation: configuration, tracer and instruments (created once). Cheap to clone.
/// Its settings are those every broker shares, on [`Broker`].
pub type Nats = Broker<NatsSystem>;

/// The JetStream publish-ack future of a traced publish; resolves to exactly what
/// `PublishAckFuture` resolves to.
pub type TracedPublishAck = Confirmed<Pin<Box<dyn Future<Output = Result<PublishAck, JsPublishError>> + Send>>>;

fn classify_ack(out: &Result<PublishAck, JsPublishError>) -> Option<Failure> {
    match out {
        Ok(_) => None,
        Err(e) => Some(kind_failure(e.kind(), e.to_string())),
    }
}

impl Nats {
    fn start_send(&self, destination: &Destination, headers: &HeaderMap, payload: &Bytes) -> Active {
        let op = Operation {
            op_type: OperationType::Send,
            name: "send",
            destination,
            partition: None,
            batch_count: None,
        };
        let body_size = self.telemetry.settings.body_size;
        self.telemetry
            .start(&op, SpanKind::Producer, &Context::current(), Vec::new(), |a| {
                if let Some(id) = headers.get(MSG_ID) {
                    a.push(KeyValue::new(attr::MESSAGING_MESSAGE_ID, id.as_str().to_owned()));
                }
                if body_size {
                    a.push(KeyValue::new(
                        attr::MESSAGING_MESSAGE_BODY_SIZE,
                        size_i64(payload.len()),
                    ));
                }
            })
    }

    /// Core NATS publish under a PRODUCER span `send {subject}`; the span's context is injected
    /// into `headers`. The span ends when the client accepted the message. Returns exactly what
    /// [`Client::publish_with_headers`] returns.
    pub async fn publish<S: ToSubject>(
        &self,
        client: &Client,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let subject = subject.to_subject();
        let destination = Destination::nats_subject(&subject);
        let mut active = self.start_send(&destination, &headers, &payload);
        self.telemetry.inject(&active.cx, &mut NatsHeadersMut(&mut headers));
        let result = client.publish_with_headers(subject, headers, payload).await;
        match &result {
            Ok(()) => active.finish(None),
            Err(e) => active.finish(Some(kind_failure(e.kind(), e.to_string()))),
        }
        result
    }

    /// JetStream publish under a PRODUCER span `send {subject}`. Returns the publish error
    /// unchanged, or a [`TracedPublishAck`] that ends the span when the stream acknowledges the
    /// message (or the ack fails).
    pub async fn jetstream_publish<S: ToSubject>(
        &self,
        jetstream: &async_nats::jetstream::Context,
        subject: S,
        mut headers: HeaderMap,
        payload: Bytes,
    ) -> Result<TracedPublishAck, JsPublishError> {
        let subject = subject.to_subject();
        let destination = Destination::nats_subject(&subject);
        let mut active = self.start_send(&destination, &headers, &payload);
        self.telemetry.inject(&active.cx, &mut NatsHeadersMut(&mut headers));
        match jetstream.publish_with_headers(subject, headers, payload).await {
            Ok(ack) => {
                let fut: Pin<Box<dyn Future<Output = Result<PublishAck, JsPublishError>> + Send>> = ack.into_future();
                Ok(Confirmed::new(fut, active, classify_ack))
            }
            Err(e) => {
                active.finish(Some(kind_failure(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    /// The creation context extracted from a message's headers.
    pub fn creation_context(&self, message: &Message) -> Context {
        self.telemetry
            .extract(message.headers.as_ref().map(NatsHeaders).as_ref())
    }

    fn start_process(&self, message: &Message) -> Active {
        let destination = Destination::nats_subject(&message.subject);
        let op = Operation {
            op_type: OperationType::Process,
            name: "process",
            destination: &destination,
            partition: None,
            batch_count: None,
        };
        let creation = self.creation_context(message);
        let body_size = self.telemetry.settings.body_size;
        self.telemetry.start_process(&op, &[(creation, Vec::new())], |a| {
            if let Some(h) = message.headers.as_ref() {
                let mut id: Option<String> = None;
                NatsHeaders(h).for_each_value(MSG_ID, &mut |v| {
                    if id.is_none() {
                        id = Some(v.to_owned());
                    }
                });
                if let Some(id) = id {
                    a.push(KeyValue::new(attr::MESSAGING_MESSAGE_ID, id));
                }
            }
            if body_size {
                a.push(KeyValue::new(
                    attr::MESSAGING_MESSAGE_BODY_SIZE,
                    size_i64(message.payload.len()),
                ));
            }
        })
    }

    /// Runs `handler` for a core NATS message under a CONSUMER span `process {subject}` (linked
    /// to the creation context by default; see [`ProcessParent`](crate::ProcessParent)). The span's
    /// context is attached while the handler is called and its future polled.
    pub async fn process<F, Fut, T, E>(&self, message: Message, handler: F) -> Result<T, E>
    where
        F: FnOnce(Context, Message) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let active = self.start_process(&message);
        Telemetry::run_process(active, |cx| handler(cx, message)).await
    }

    /// Runs `handler` for a JetStream message under a CONSUMER span `process {subject}`.
    pub async fn process_jetstream<F, Fut, T, E>(
        &self,
        message: async_nats::jetstream::Message,
        handler: F,
    ) -> Result<T, E>
    where
        F: FnOnce(Context, async_nats::jetstream::Message) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let active = self.start_process(&message.message);
        Telemetry::run_process(active, |cx| handler(cx, message)).await
    }

    /// Acknowledges a JetStream message under a CLIENT span `ack {subject}`.
    pub async fn ack(&self, message: &async_nats::jetstream::Message) -> Result<(), async_nats::Error> {
        self.ack_with(message, AckKind::Ack).await
    }

    /// Acknowledges a JetStream message with `kind` under a CLIENT span named after the kind
    /// (`ack`, `nak`, `progress`, `next`, `term`), `messaging.operation.type` = `settle`.
    pub async fn ack_with(
        &self,
        message: &async_nats::jetstream::Message,
        kind: AckKind,
    ) -> Result<(), async_nats::Error> {
        let name = match kind {
            AckKind::Ack => "ack",
            AckKind::Nak(_) => "nak",
            AckKind::Progress => "progress",
            AckKind::Next => "next",
            AckKind::Term => "term",
        };
        let destination = Destination::nats_subject(&message.subject);
        let op = Operation {
            op_type: OperationType::Settle,
            name,
            destination: &destination,
            partition: None,
            batch_count: None,
        };
        let mut active = self
            .telemetry
            .start(&op, SpanKind::Client, &Context::current(), Vec::new(), |_| {});
        let result = message.ack_with(kind).await;
        match &result {
            Ok(()) => active.finish(None),
            Err(e) => active.finish(Some(Failure::new(ERROR_TYPE_OTHER, Some(e.to_string())))),
        }
        result
    }
}
