//! [`Broker`]: the one configured type behind [`Kafka`](crate::kafka::Kafka),
//! [`Nats`](crate::nats::Nats) and [`RabbitMq`](crate::rabbitmq::RabbitMq), so the settings the
//! three share are written, documented and stored once.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use otelrs_core::conv::ServerAddress;
use otelrs_core::Instrumentation;

use crate::model::{MessagingSystem, ProcessParent, Settings, Telemetry};

/// A messaging system a [`Broker`] instruments (implemented by the marker types of the
/// adapters; not implementable outside this crate).
pub trait System: sealed::Sealed {
    /// `messaging.system` of the adapter.
    const SYSTEM: MessagingSystem;
}

/// A [`System`] whose consumers belong to named groups (`messaging.consumer.group.name`):
/// Kafka consumer groups, NATS queue groups and durable consumers.
pub trait ConsumerGroups: System {}

pub(crate) mod sealed {
    pub trait Sealed {}
}

macro_rules! system {
    ($(#[$doc:meta])* $name:ident = $system:ident $(, $extra:ident)?) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $name {}
        impl $crate::broker::sealed::Sealed for $name {}
        impl $crate::broker::System for $name {
            const SYSTEM: $crate::model::MessagingSystem = $crate::model::MessagingSystem::$system;
        }
        $(impl $crate::broker::$extra for $name {})?
    };
}
pub(crate) use system;

/// Instrumentation of one messaging system: configuration, tracer and instruments (created
/// once, when configured). Cheap to clone. Used through its aliases
/// [`Kafka`](crate::kafka::Kafka), [`Nats`](crate::nats::Nats) and
/// [`RabbitMq`](crate::rabbitmq::RabbitMq), configured like every adapter of the family:
/// `new()`, then `with_instrumentation(..)` and `with_*` setters.
pub struct Broker<S: System> {
    pub(crate) telemetry: Arc<Telemetry>,
    system: PhantomData<fn() -> S>,
}

impl<S: System> Clone for Broker<S> {
    fn clone(&self) -> Self {
        Self {
            telemetry: Arc::clone(&self.telemetry),
            system: PhantomData,
        }
    }
}

impl<S: System> fmt::Debug for Broker<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker").field("telemetry", &self.telemetry).finish()
    }
}

impl<S: System> Default for Broker<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: System> Broker<S> {
    /// Default settings (process spans link to the creation context, no body size, no server
    /// address) with the global tracer and meter providers and propagator.
    pub fn new() -> Self {
        Self {
            telemetry: Arc::new(Telemetry::new(Instrumentation::new(), S::SYSTEM)),
            system: PhantomData,
        }
    }

    pub(crate) fn settings(&mut self) -> &mut Settings {
        &mut Arc::make_mut(&mut self.telemetry).settings
    }

    /// Uses the providers and propagator of `instrumentation` (globals for what it does not
    /// set) instead of the globals; the other settings are kept.
    pub fn with_instrumentation(mut self, instrumentation: Instrumentation) -> Self {
        let settings = std::mem::take(self.settings());
        let mut telemetry = Telemetry::new(instrumentation, S::SYSTEM);
        telemetry.settings = settings;
        self.telemetry = Arc::new(telemetry);
        self
    }

    /// Reports `server.address` and `server.port` of the broker.
    pub fn with_server(mut self, address: impl Into<String>, port: u16) -> Self {
        self.settings().server = Some(ServerAddress::new(&address.into(), Some(port)));
        self
    }

    /// Chooses the parent of process spans (default [`ProcessParent::Link`]).
    pub fn with_process_parent(mut self, mode: ProcessParent) -> Self {
        self.settings().process_parent = mode;
        self
    }

    /// Reports `messaging.message.body.size` (an opt-in attribute in semantic conventions).
    pub fn with_body_size(mut self, enabled: bool) -> Self {
        self.settings().body_size = enabled;
        self
    }
}

impl<S: ConsumerGroups> Broker<S> {
    /// Reports `messaging.consumer.group.name` (Kafka consumer group; NATS queue group or
    /// durable consumer name) on process, commit and consumer metrics.
    pub fn with_consumer_group(mut self, group: impl Into<String>) -> Self {
        self.settings().consumer_group = Some(group.into());
        self
    }
}
