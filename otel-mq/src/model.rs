//! The broker-independent messaging model: destinations and their naming rules, operation types,
//! span builders for send / process / settle and the four semconv messaging metrics.
//!
//! Every adapter ([`crate::rabbitmq`], [`crate::kafka`], [`crate::nats`]) is a thin translation into
//! this model; the span and metric logic is written once, here.

// Crate-internal helpers are used by some adapters only; with fewer features some are unused.
#![cfg_attr(not(all(feature = "lapin", feature = "kafka", feature = "nats")), allow(dead_code))]

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use opentelemetry::context::FutureExt as _;
use opentelemetry::metrics::{Counter, Histogram};
use opentelemetry::trace::{Link, Span as _, SpanContext, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as attr;
use opentelemetry_semantic_conventions::metric;
use otelrs_core::instruments::{self, DURATION_BUCKETS};
use otelrs_core::propagation::{MessageExtractor, MessageHeaders, MessageHeadersMut, MessageInjector};
use otelrs_core::status::{emit_exception, ExceptionEvent};
use otelrs_core::Instrumentation;

// The outcomes every adapter shares are defined once in otelrs-core.
pub use otelrs_core::conv::{ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};

/// The messaging system, reported as `messaging.system`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessagingSystem {
    /// RabbitMQ (`rabbitmq`).
    RabbitMq,
    /// Apache Kafka (`kafka`).
    Kafka,
    /// NATS (`nats`). Semantic conventions 1.42 define no value for NATS; `nats` is the value the
    /// open proposals use and is **not stable**.
    Nats,
}

impl MessagingSystem {
    /// The `messaging.system` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessagingSystem::RabbitMq => "rabbitmq",
            MessagingSystem::Kafka => "kafka",
            MessagingSystem::Nats => "nats",
        }
    }
}

/// `messaging.operation.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OperationType {
    /// One or more messages sent to the broker (PRODUCER when its context is injected, else CLIENT).
    Send,
    /// Processing of a delivered message or batch (CONSUMER).
    Process,
    /// Ack, nack, reject or commit (CLIENT).
    Settle,
}

impl OperationType {
    /// The `messaging.operation.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationType::Send => "send",
            OperationType::Process => "process",
            OperationType::Settle => "settle",
        }
    }
}

/// Which context a process span uses as its parent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProcessParent {
    /// The default (semconv): the process span is a child of the ambient context (the current
    /// context when `process` is called, often none) and **links** to the message's creation
    /// context.
    #[default]
    Link,
    /// Opt-in, single messages only: the process span is a **child** of the creation context
    /// extracted from the message; a valid ambient context is added as a link instead. Batches
    /// always use [`ProcessParent::Link`]. A message without a valid creation context falls back
    /// to the ambient context.
    CreationContext,
}

/// A messaging destination as it is reported: a name, or, for anonymous and temporary
/// destinations, a low-cardinality template and flags.
///
/// The raw name of an anonymous or temporary destination (`amq.gen-JzTY20BRgKO-HjmUJj0wLg`,
/// `_INBOX.4TPQm1qhvd2BJ1DQnCC3Rn`) is never reported: it would make every span name and metric
/// stream unique. It is replaced by a template (`amq.gen-*`, `_INBOX.*`) and the
/// `messaging.destination.anonymous` / `messaging.destination.temporary` flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    name: Option<String>,
    template: Option<String>,
    temporary: bool,
    anonymous: bool,
}

/// Prefix of RabbitMQ server-named (anonymous) queues.
const AMQ_GEN: &str = "amq.gen-";
/// RabbitMQ direct reply-to pseudo queue.
const AMQ_REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of NATS reply inboxes.
const NATS_INBOX: &str = "_INBOX.";

impl Destination {
    /// A named destination (`messaging.destination.name`), assumed low-cardinality.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
            ..Self::default()
        }
    }

    /// A destination known only by a template (`messaging.destination.template`), with its flags.
    pub fn templated(template: impl Into<String>, temporary: bool, anonymous: bool) -> Self {
        Self {
            name: None,
            template: Some(template.into()),
            temporary,
            anonymous,
        }
    }

    /// No destination (operations not aimed at one).
    pub fn none() -> Self {
        Self::default()
    }

    /// `messaging.destination.name`, when it is reported.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// `messaging.destination.template`, when there is one.
    pub fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// Whether the destination is temporary.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// Whether the destination is anonymous (unnamed or server-named).
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The `{destination}` part of a span name: the template, else the name, else nothing.
    pub fn span_name_part(&self) -> Option<&str> {
        self.template.as_deref().or(self.name.as_deref())
    }

    /// A NATS subject: `_INBOX.*` reply inboxes are temporary and anonymous and reported as the
    /// template `_INBOX.*`; any other subject is reported as its name.
    pub fn nats_subject(subject: &str) -> Self {
        if subject.starts_with(NATS_INBOX) {
            Self::templated("_INBOX.*", true, true)
        } else {
            Self::named(subject)
        }
    }

    /// A Kafka topic.
    pub fn kafka_topic(topic: &str) -> Self {
        Self::named(topic)
    }

    /// A RabbitMQ destination (semconv `rabbitmq.md`).
    ///
    /// * Producer (`queue = None`): `{exchange}:{routing key}`, or the non-empty one of the two;
    ///   `amq.default` for the default exchange with an empty routing key.
    /// * Consumer: `{exchange}:{routing key}:{queue}`, omitting empty parts; a routing key equal
    ///   to the queue name is written once.
    ///
    /// A server-named queue (`amq.gen-…`) in any part is replaced by `amq.gen-*` and the result
    /// is reported as an anonymous destination template; the direct reply-to queue
    /// (`amq.rabbitmq.reply-to…`) is reported as the template `amq.rabbitmq.reply-to`, temporary
    /// and anonymous.
    pub fn rabbitmq(exchange: &str, routing_key: &str, queue: Option<&str>) -> Self {
        let mut parts: Vec<&str> = Vec::with_capacity(3);
        if !exchange.is_empty() {
            parts.push(exchange);
        }
        if !routing_key.is_empty() && queue != Some(routing_key) {
            parts.push(routing_key);
        }
        match queue {
            Some(q) if !q.is_empty() => parts.push(q),
            _ => {}
        }
        if parts.is_empty() {
            return Self::named("amq.default");
        }
        let mut anonymous = false;
        let mut temporary = false;
        let mut normalised: Vec<&str> = Vec::with_capacity(parts.len());
        for p in parts {
            if p.starts_with(AMQ_REPLY_TO) {
                anonymous = true;
                temporary = true;
                normalised.push(AMQ_REPLY_TO);
            } else if p.starts_with(AMQ_GEN) {
                anonymous = true;
                normalised.push("amq.gen-*");
            } else {
                normalised.push(p);
            }
        }
        let joined = normalised.join(":");
        if anonymous {
            Self::templated(joined, temporary, anonymous)
        } else {
            Self::named(joined)
        }
    }

    fn push_attributes(&self, out: &mut Vec<KeyValue>) {
        if let Some(name) = &self.name {
            out.push(KeyValue::new(attr::MESSAGING_DESTINATION_NAME, name.clone()));
        }
        if let Some(t) = &self.template {
            out.push(KeyValue::new(attr::MESSAGING_DESTINATION_TEMPLATE, t.clone()));
        }
    }

    fn push_flags(&self, out: &mut Vec<KeyValue>) {
        if self.temporary {
            out.push(KeyValue::new(attr::MESSAGING_DESTINATION_TEMPORARY, true));
        }
        if self.anonymous {
            out.push(KeyValue::new(attr::MESSAGING_DESTINATION_ANONYMOUS, true));
        }
    }
}

/// The broker a client talks to (`server.address`, `server.port`): otelrs-core's one type.
pub(crate) use otelrs_core::conv::ServerAddress;

/// Settings shared by the three adapters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    pub(crate) server: Option<ServerAddress>,
    pub(crate) consumer_group: Option<String>,
    pub(crate) process_parent: ProcessParent,
    pub(crate) body_size: bool,
    /// Kafka only: report `messaging.kafka.message.key` (opt-in, see `Kafka::with_message_key`).
    pub(crate) message_key: bool,
}

/// The kind and links of a send span: `PRODUCER` when the send creates the message; `CLIENT`
/// when the caller created it earlier (`creation`), linking to that creation context when it is
/// valid (semconv: the creation context is the message's, the send only transports it).
pub(crate) fn send_kind_and_links(creation: Option<&Context>) -> (SpanKind, Vec<Link>) {
    match creation {
        Some(cx) if cx.span().span_context().is_valid() => (
            SpanKind::Client,
            vec![Link::with_context(cx.span().span_context().clone())],
        ),
        Some(_) => (SpanKind::Client, Vec::new()),
        None => (SpanKind::Producer, Vec::new()),
    }
}

/// Tracer, instruments and settings of one adapter instance. Instruments are created once, here.
#[derive(Clone)]
pub(crate) struct Telemetry {
    pub(crate) instrumentation: Instrumentation,
    tracer: otelrs_core::Tracer,
    system: MessagingSystem,
    pub(crate) settings: Settings,
    operation_duration: Histogram<f64>,
    process_duration: Histogram<f64>,
    sent: Counter<u64>,
    consumed: Counter<u64>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("system", &self.system)
            .field("settings", &self.settings)
            .field("instrumentation", &self.instrumentation)
            .finish_non_exhaustive()
    }
}

/// A description of one operation, from which span and metric attributes are derived.
#[derive(Debug)]
pub(crate) struct Operation<'a> {
    pub(crate) op_type: OperationType,
    pub(crate) name: &'static str,
    pub(crate) destination: &'a Destination,
    pub(crate) partition: Option<String>,
    pub(crate) batch_count: Option<usize>,
}

/// What went wrong, for `error.type` and the span status description.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) error_type: Cow<'static, str>,
    pub(crate) description: Option<String>,
}

impl Failure {
    pub(crate) fn new(error_type: impl Into<Cow<'static, str>>, description: Option<String>) -> Self {
        Self {
            error_type: error_type.into(),
            description,
        }
    }
}

impl Telemetry {
    pub(crate) fn new(instrumentation: Instrumentation, system: MessagingSystem) -> Self {
        let (tracer, meter) = instrumentation.tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        Self {
            tracer,
            system,
            settings: Settings::default(),
            operation_duration: instruments::duration_histogram(
                &meter,
                metric::MESSAGING_CLIENT_OPERATION_DURATION,
                "Duration of messaging operation initiated by a producer or consumer client.",
                &DURATION_BUCKETS,
            ),
            process_duration: instruments::duration_histogram(
                &meter,
                metric::MESSAGING_PROCESS_DURATION,
                "Duration of processing operation.",
                &DURATION_BUCKETS,
            ),
            sent: instruments::counter(
                &meter,
                metric::MESSAGING_CLIENT_SENT_MESSAGES,
                "{message}",
                "Number of messages producer attempted to send to the broker.",
            ),
            consumed: instruments::counter(
                &meter,
                metric::MESSAGING_CLIENT_CONSUMED_MESSAGES,
                "{message}",
                "Number of messages that were delivered to the application.",
            ),
            instrumentation,
        }
    }

    /// Extracts the creation context from message headers (never the ambient one: a message
    /// without a valid `traceparent` yields a context with no span).
    pub(crate) fn extract<H: MessageHeaders + ?Sized>(&self, headers: Option<&H>) -> Context {
        match headers {
            Some(h) => self
                .instrumentation
                .extract_with_context(&Context::new(), &MessageExtractor(h)),
            None => Context::new(),
        }
    }

    pub(crate) fn inject<H: MessageHeadersMut + ?Sized>(&self, cx: &Context, headers: &mut H) {
        self.instrumentation.inject_context(cx, &mut MessageInjector(headers));
    }

    fn span_name(&self, op: &Operation<'_>) -> Cow<'static, str> {
        match op.destination.span_name_part() {
            Some(d) => Cow::Owned(format!("{} {}", op.name, d)),
            None => match &self.settings.server {
                Some(s) if op.destination == &Destination::none() => match s.port {
                    Some(p) => Cow::Owned(format!("{} {}:{}", op.name, s.address.as_str(), p)),
                    None => Cow::Owned(format!("{} {}", op.name, s.address.as_str())),
                },
                _ => Cow::Borrowed(op.name),
            },
        }
    }

    fn uses_consumer_group(op: &Operation<'_>) -> bool {
        !matches!(op.op_type, OperationType::Send)
    }

    /// Metric attributes common to the four metrics (without `messaging.operation.type`,
    /// consumer group and `error.type`).
    fn metric_base(&self, op: &Operation<'_>) -> Vec<KeyValue> {
        let mut v = Vec::with_capacity(8);
        v.push(KeyValue::new(attr::MESSAGING_OPERATION_NAME, op.name));
        v.push(KeyValue::new(attr::MESSAGING_SYSTEM, self.system.as_str()));
        op.destination.push_attributes(&mut v);
        if let Some(s) = &self.settings.server {
            s.push_attributes(&mut v);
        }
        if let Some(p) = &op.partition {
            v.push(KeyValue::new(attr::MESSAGING_DESTINATION_PARTITION_ID, p.clone()));
        }
        v
    }

    /// Starts the span of `op`. `links` are added at creation; `extra` adds non-sampling
    /// attributes and runs only when the span is recording.
    pub(crate) fn start(
        self: &Arc<Self>,
        op: &Operation<'_>,
        kind: SpanKind,
        parent: &Context,
        links: Vec<Link>,
        extra: impl FnOnce(&mut Vec<KeyValue>),
    ) -> Active {
        let base = self.metric_base(op);
        let group = if Self::uses_consumer_group(op) {
            self.settings
                .consumer_group
                .as_ref()
                .map(|g| KeyValue::new(attr::MESSAGING_CONSUMER_GROUP_NAME, g.clone()))
        } else {
            None
        };
        let mut span_attrs = Vec::with_capacity(base.len() + 6);
        span_attrs.extend(base.iter().cloned());
        span_attrs.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, op.op_type.as_str()));
        if let Some(g) = &group {
            span_attrs.push(g.clone());
        }
        op.destination.push_flags(&mut span_attrs);
        if let Some(n) = op.batch_count {
            span_attrs.push(KeyValue::new(
                attr::MESSAGING_BATCH_MESSAGE_COUNT,
                i64::try_from(n).unwrap_or(i64::MAX),
            ));
        }
        let mut span = self
            .tracer
            .span_builder(self.span_name(op))
            .with_kind(kind)
            .with_attributes(span_attrs)
            .with_links(links)
            .start_with_context(&self.tracer, parent);
        if span.is_recording() {
            let mut more = Vec::new();
            extra(&mut more);
            for kv in more {
                span.set_attribute(kv);
            }
        }
        let cx = parent.with_span(span);
        Active {
            telemetry: Arc::clone(self),
            cx,
            start: Instant::now(),
            op_type: op.op_type,
            base,
            group,
            messages: op.batch_count.map_or(1, |n| u64::try_from(n).unwrap_or(u64::MAX)),
            done: false,
        }
    }

    /// Starts a process span for messages whose creation contexts are `creations` (one per
    /// message, possibly without a span), following the configured [`ProcessParent`] mode.
    /// Batches (`per_message_link_attrs` given) always link.
    pub(crate) fn start_process(
        self: &Arc<Self>,
        op: &Operation<'_>,
        creations: &[(Context, Vec<KeyValue>)],
        extra: impl FnOnce(&mut Vec<KeyValue>),
    ) -> Active {
        let ambient = Context::current();
        let single = op.batch_count.is_none() && creations.len() == 1;
        let use_parent = single
            && self.settings.process_parent == ProcessParent::CreationContext
            && creations[0].0.span().span_context().is_valid();
        let (parent, links) = if use_parent {
            let amb = ambient.span().span_context().clone();
            let links = if amb.is_valid() {
                vec![Link::with_context(amb)]
            } else {
                Vec::new()
            };
            (creations[0].0.clone(), links)
        } else {
            let links = creations
                .iter()
                .filter_map(|(cx, attrs)| {
                    let sc: SpanContext = cx.span().span_context().clone();
                    sc.is_valid().then(|| Link::new(sc, attrs.clone(), 0))
                })
                .collect();
            (ambient, links)
        };
        let active = self.start(op, SpanKind::Consumer, &parent, links, extra);
        // Counted once per delivery, when handed to the application (no receive span exists).
        let mut consumed_attrs = active.base.clone();
        if let Some(g) = &active.group {
            consumed_attrs.push(g.clone());
        }
        self.consumed.add(active.messages, &consumed_attrs);
        active
    }

    /// Runs a handler under a process span: the span's context is attached while `handler` is
    /// called (so a span the closure makes before returning its future, such as
    /// `fut.instrument(info_span!(..))`, is the process span's child) and while its future is
    /// polled; the span ends (with the handler's outcome) when it completes. `handler` gets the
    /// span's context.
    pub(crate) async fn run_process<H, Fut, T, E>(active: Active, handler: H) -> Result<T, E>
    where
        H: FnOnce(Context) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        let cx = active.cx.clone();
        let fut = {
            let _attached = cx.clone().attach();
            handler(cx.clone())
        };
        let mut active = active;
        let result = fut.with_context(cx).await;
        match &result {
            Ok(_) => active.finish(None),
            Err(e) => {
                let ty = std::any::type_name::<E>();
                let msg = e.to_string();
                active.cx.span().add_event(
                    "exception",
                    vec![
                        KeyValue::new(attr::EXCEPTION_TYPE, ty),
                        KeyValue::new(attr::EXCEPTION_MESSAGE, msg.clone()),
                    ],
                );
                emit_exception(ExceptionEvent::MessagingProcess, ty, &msg);
                active.finish(Some(Failure::new(ty, Some(msg))));
            }
        }
        result
    }
}

/// An operation in flight: its span (inside a context) and what its metrics need.
///
/// Ends exactly once: through [`Active::finish`], or on drop (`error.type` = `panic` while
/// unwinding, `cancelled` otherwise).
pub(crate) struct Active {
    telemetry: Arc<Telemetry>,
    pub(crate) cx: Context,
    start: Instant,
    op_type: OperationType,
    base: Vec<KeyValue>,
    group: Option<KeyValue>,
    messages: u64,
    done: bool,
}

impl fmt::Debug for Active {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Active")
            .field("op_type", &self.op_type)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Active {
    /// Ends the span and records the metrics; `failure` sets `error.type` on both.
    pub(crate) fn finish(&mut self, failure: Option<Failure>) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed = instruments::seconds(self.start.elapsed());
        let span = self.cx.span();
        let mut attrs = self.base.clone();
        if let Some(f) = failure {
            let kv = otelrs_core::status::record_failure_ref(&span, f.error_type, f.description.map(Cow::Owned));
            attrs.push(kv);
        }
        span.end();
        let t = &self.telemetry;
        match self.op_type {
            OperationType::Send => {
                t.sent.add(self.messages, &attrs);
                attrs.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "send"));
                t.operation_duration.record(elapsed, &attrs);
            }
            OperationType::Process => {
                if let Some(g) = &self.group {
                    attrs.push(g.clone());
                }
                t.process_duration.record(elapsed, &attrs);
            }
            OperationType::Settle => {
                if let Some(g) = &self.group {
                    attrs.push(g.clone());
                }
                attrs.push(KeyValue::new(attr::MESSAGING_OPERATION_TYPE, "settle"));
                t.operation_duration.record(elapsed, &attrs);
            }
        }
    }

    /// Adds a span event if the span is recording.
    pub(crate) fn add_event(&self, name: &'static str, attributes: Vec<KeyValue>) {
        let span = self.cx.span();
        if span.is_recording() {
            span.add_event(name, attributes);
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        if !self.done {
            let ty = if std::thread::panicking() {
                ERROR_TYPE_PANIC
            } else {
                ERROR_TYPE_CANCELLED
            };
            self.finish(Some(Failure::new(ty, None)));
        }
    }
}

/// A broker confirmation future (RabbitMQ publisher confirm, JetStream publish ack) whose send
/// span ends when the confirmation arrives or fails.
///
/// Resolves to exactly what the wrapped future resolves to. If it is dropped before it
/// completes, the message was already handed to the client, so the send span ends without an
/// error (the outcome is unknown) and the span gets the event `confirmation_dropped`.
pub struct Confirmed<F: Future> {
    inner: F,
    active: Option<Active>,
    classify: fn(&F::Output) -> Option<Failure>,
}

impl<F: Future> fmt::Debug for Confirmed<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Confirmed")
            .field("pending", &self.active.is_some())
            .finish()
    }
}

impl<F: Future + Unpin> Confirmed<F> {
    pub(crate) fn new(inner: F, active: Active, classify: fn(&F::Output) -> Option<Failure>) -> Self {
        Self {
            inner,
            active: Some(active),
            classify,
        }
    }

    /// The context of the send span (for example to link other work to it).
    pub fn span_context(&self) -> Option<SpanContext> {
        self.active.as_ref().map(|a| a.cx.span().span_context().clone())
    }
}

impl<F: Future + Unpin> Future for Confirmed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(out) => {
                if let Some(mut active) = this.active.take() {
                    active.finish((this.classify)(&out));
                }
                Poll::Ready(out)
            }
        }
    }
}

impl<F: Future> Drop for Confirmed<F> {
    fn drop(&mut self) {
        if let Some(mut active) = self.active.take() {
            active.add_event("confirmation_dropped", Vec::new());
            active.finish(None);
        }
    }
}

/// Size as an `i64` attribute value.
pub(crate) fn size_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_destination_rules() {
        assert_eq!(Destination::rabbitmq("", "", None), Destination::named("amq.default"));
        assert_eq!(Destination::rabbitmq("orders", "", None), Destination::named("orders"));
        assert_eq!(Destination::rabbitmq("", "q1", None), Destination::named("q1"));
        assert_eq!(Destination::rabbitmq("ex", "rk", None), Destination::named("ex:rk"));
        assert_eq!(
            Destination::rabbitmq("ex", "rk", Some("q")),
            Destination::named("ex:rk:q")
        );
        assert_eq!(Destination::rabbitmq("", "q", Some("q")), Destination::named("q"));
        assert_eq!(Destination::rabbitmq("ex", "", Some("q")), Destination::named("ex:q"));
        let anon = Destination::rabbitmq("logs", "", Some("amq.gen-JzTY20BRgKO-HjmUJj0wLg"));
        assert_eq!(anon, Destination::templated("logs:amq.gen-*", false, true));
        assert_eq!(anon.span_name_part(), Some("logs:amq.gen-*"));
        assert_eq!(anon.name(), None);
        let reply = Destination::rabbitmq("", "amq.rabbitmq.reply-to.g1h2AA==.abc", None);
        assert_eq!(reply, Destination::templated("amq.rabbitmq.reply-to", true, true));
    }

    #[test]
    fn nats_inboxes_are_templates() {
        let d = Destination::nats_subject("_INBOX.4TPQm1qhvd2BJ1DQnCC3Rn.1");
        assert_eq!(d.template(), Some("_INBOX.*"));
        assert!(d.is_temporary() && d.is_anonymous());
        assert_eq!(d.name(), None);
        assert_eq!(
            Destination::nats_subject("orders.created").name(),
            Some("orders.created")
        );
    }

    #[test]
    fn host_port_parsing() {
        assert_eq!(
            ServerAddress::parse("127.0.0.1:9092"),
            Some(ServerAddress::new("127.0.0.1", Some(9092)))
        );
        assert_eq!(
            ServerAddress::parse("[::1]:4222"),
            Some(ServerAddress::new("::1", Some(4222)))
        );
        assert_eq!(ServerAddress::parse("broker"), Some(ServerAddress::new("broker", None)));
        assert_eq!(ServerAddress::parse("  "), None);
        // otelrs-core's one rule: userinfo never reaches server.address, a signed port is none.
        assert_eq!(
            ServerAddress::parse("guest:secret@broker:5672"),
            Some(ServerAddress::new("broker", Some(5672)))
        );
        assert_eq!(
            ServerAddress::parse("broker:+5672"),
            Some(ServerAddress::new("broker", None))
        );
    }
}
