//! Opt-in bridge from librdkafka's statistics to OpenTelemetry metrics (feature `kafka`).
//!
//! librdkafka emits a JSON statistics document every `statistics.interval.ms` (off by default)
//! through [`ClientContext::stats`]. [`KafkaStats`] registers a set of **observable** instruments
//! once; each client stores its latest [`Statistics`] in a [`KafkaStatsRecorder`], and the
//! instruments read those snapshots whenever the meter provider collects. Nothing is measured
//! unless you create a [`KafkaStats`] and set `statistics.interval.ms`.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use otelrs_mq::kafka_stats::{KafkaStats, KafkaStatsContext};
//! use rdkafka::config::ClientConfig;
//! use rdkafka::consumer::StreamConsumer;
//! use rdkafka::producer::FutureProducer;
//!
//! // Once per process (per meter provider): registers the instruments.
//! let stats = KafkaStats::new();
//! let mut config = ClientConfig::new();
//! config
//!     .set("bootstrap.servers", "127.0.0.1:9092")
//!     .set("group.id", "billing")
//!     .set("statistics.interval.ms", "5000");
//! let producer: FutureProducer<KafkaStatsContext> = config.create_with_context(stats.context())?;
//! let consumer: StreamConsumer<KafkaStatsContext> = config.create_with_context(stats.context())?;
//! # Ok(())
//! # }
//! ```
//!
//! With a context of your own, keep a [`KafkaStatsRecorder`] in it (from
//! [`KafkaStats::recorder`]) and call [`KafkaStatsRecorder::record`] from your
//! [`ClientContext::stats`].
//!
//! ## Metrics
//!
//! Semantic conventions (1.42) define **no** names for client-internal Kafka statistics; these
//! are custom, **unstable** names in the `messaging.kafka.*` namespace and may change. Each
//! point carries `messaging.system` = `kafka` and `messaging.client.id` = the librdkafka handle
//! name (`{client.id}#{producer|consumer}-{n}`, unique per client in the process).
//!
//! | Name | Instrument | Unit | Clients | Source (librdkafka) | Extra attributes |
//! | --- | --- | --- | --- | --- | --- |
//! | [`messaging.kafka.client.produced.messages`](PRODUCED_MESSAGES) | Counter (observable) | `{message}` | producer | `txmsgs` | |
//! | [`messaging.kafka.client.produced.bytes`](PRODUCED_BYTES) | Counter (observable) | `By` | producer | `txmsg_bytes` | |
//! | [`messaging.kafka.client.consumed.messages`](CONSUMED_MESSAGES) | Counter (observable) | `{message}` | consumer | `rxmsgs` | |
//! | [`messaging.kafka.client.consumed.bytes`](CONSUMED_BYTES) | Counter (observable) | `By` | consumer | `rxmsg_bytes` | |
//! | [`messaging.kafka.client.queue.messages`](QUEUE_MESSAGES) | UpDownCounter (observable) | `{message}` | producer | `msg_cnt` | |
//! | [`messaging.kafka.client.queue.size`](QUEUE_SIZE) | UpDownCounter (observable) | `By` | producer | `msg_size` | |
//! | [`messaging.kafka.broker.rtt`](BROKER_RTT) | Gauge (observable, `f64`) | `s` | both | `brokers[*].rtt.avg` (µs) | `server.address`, `server.port`, `messaging.kafka.broker.id` |
//! | [`messaging.kafka.consumer.lag`](CONSUMER_LAG) | Gauge (observable, `i64`) | `{message}` | consumer | `topics[*].partitions[*].consumer_lag` | `messaging.destination.name`, `messaging.destination.partition.id` |
//!
//! * Counters are librdkafka's running totals since the client was created (cumulative). Byte
//!   counts are as librdkafka (2.12) reports them: key + payload for produced and consumed
//!   bytes, payload only for the queue size.
//! * Round-trip time is the average over the last statistics window; a broker with no request
//!   in that window (`rtt.cnt == 0`) and librdkafka's internal broker report no point.
//!   `messaging.kafka.broker.id` is the broker's node id (`-1` for a bootstrap connection not
//!   yet mapped to a node).
//! * Consumer lag is reported for assigned partitions where librdkafka knows it (it reports
//!   `-1` until an offset has been committed and the high watermark fetched); partition `-1`
//!   (unassigned messages) is skipped.
//! * A client's points disappear when the client (and so its context and recorder) is dropped.
//!
//! Observation callbacks only take short, uncontended locks to copy an `Arc` and never panic.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use ::rdkafka::consumer::ConsumerContext;
use ::rdkafka::producer::{DeliveryResult, ProducerContext};
use ::rdkafka::statistics::Statistics;
use ::rdkafka::ClientContext;
use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as attr;
use otelrs_core::conv::ServerAddress;
use otelrs_core::Instrumentation;

use crate::model::MessagingSystem;

/// Messages produced (sent) to brokers: librdkafka `txmsgs`.
pub const PRODUCED_MESSAGES: &str = "messaging.kafka.client.produced.messages";
/// Message bytes (key and payload) produced to brokers: librdkafka `txmsg_bytes`.
pub const PRODUCED_BYTES: &str = "messaging.kafka.client.produced.bytes";
/// Messages consumed from brokers: librdkafka `rxmsgs`.
pub const CONSUMED_MESSAGES: &str = "messaging.kafka.client.consumed.messages";
/// Message bytes (key and payload) consumed from brokers: librdkafka `rxmsg_bytes`.
pub const CONSUMED_BYTES: &str = "messaging.kafka.client.consumed.bytes";
/// Messages currently in the producer queues: librdkafka `msg_cnt`.
pub const QUEUE_MESSAGES: &str = "messaging.kafka.client.queue.messages";
/// Payload bytes of the messages currently in the producer queues: librdkafka `msg_size`.
pub const QUEUE_SIZE: &str = "messaging.kafka.client.queue.size";
/// Average broker round-trip time over the last statistics window: librdkafka `rtt.avg`.
pub const BROKER_RTT: &str = "messaging.kafka.broker.rtt";
/// Consumer lag of an assigned partition: librdkafka `consumer_lag`.
pub const CONSUMER_LAG: &str = "messaging.kafka.consumer.lag";
/// Attribute: the broker's node id on [`BROKER_RTT`].
pub const BROKER_ID: &str = "messaging.kafka.broker.id";

/// The latest statistics of one client.
#[derive(Default)]
struct Slot {
    latest: Mutex<Option<Arc<Statistics>>>,
}

#[derive(Default)]
struct Shared {
    slots: Mutex<Vec<Weak<Slot>>>,
    /// The instruments are registered when the first client asks for a recorder, so that
    /// configuring (`new().with_instrumentation(..)`) registers on one meter only.
    registered: std::sync::OnceLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data (a list of
    // pointers, an `Arc`) is always consistent, so keep going rather than propagate the panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// The latest statistics of every live client (dead clients are forgotten).
    fn snapshots(&self) -> Vec<Arc<Statistics>> {
        let live: Vec<Arc<Slot>> = {
            let mut slots = lock(&self.slots);
            slots.retain(|w| w.strong_count() > 0);
            slots.iter().filter_map(Weak::upgrade).collect()
        };
        live.iter().filter_map(|s| lock(&s.latest).clone()).collect()
    }
}

fn client_attrs(s: &Statistics) -> Vec<KeyValue> {
    vec![
        KeyValue::new(attr::MESSAGING_SYSTEM, MessagingSystem::Kafka.as_str()),
        KeyValue::new(attr::MESSAGING_CLIENT_ID, s.name.clone()),
    ]
}

fn non_negative(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

const PRODUCER: &str = "producer";
const CONSUMER: &str = "consumer";

/// The statistics bridge: observable instruments registered once, fed by any number of clients.
/// Cheap to clone.
///
/// Create it once per meter provider (observable instruments cannot be unregistered; every
/// `KafkaStats` registers callbacks, when its first recorder is made, that live as long as the
/// provider) and hand [`KafkaStats::context`] or [`KafkaStats::recorder`] to each client. See the
/// [module documentation](self) for the metrics.
#[derive(Clone)]
pub struct KafkaStats {
    shared: Arc<Shared>,
    instrumentation: Instrumentation,
}

impl fmt::Debug for KafkaStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaStats")
            .field("clients", &lock(&self.shared.slots).len())
            .finish()
    }
}

impl Default for KafkaStats {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaStats {
    /// A bridge recording through the global meter provider (scope `otelrs-mq`).
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            instrumentation: Instrumentation::new(),
        }
    }

    /// Records through the meter provider of `instrumentation` instead of the global one. A
    /// bridge that already gave out recorders starts over: they keep feeding the old meter.
    pub fn with_instrumentation(self, instrumentation: Instrumentation) -> Self {
        Self {
            shared: Arc::new(Shared::default()),
            instrumentation,
        }
    }

    /// A recorder for one client, to call from a [`ClientContext::stats`] of your own. The
    /// first one registers the instruments.
    pub fn recorder(&self) -> KafkaStatsRecorder {
        self.shared.registered.get_or_init(|| {
            let meter = self.instrumentation.meter(Instrumentation::scope(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            ));
            register(&meter, &self.shared);
        });
        let slot = Arc::new(Slot::default());
        let mut slots = lock(&self.shared.slots);
        slots.retain(|w| w.strong_count() > 0);
        slots.push(Arc::downgrade(&slot));
        KafkaStatsRecorder { slot }
    }

    /// A ready-made client context for one client (producer or consumer) that records its
    /// statistics.
    pub fn context(&self) -> KafkaStatsContext {
        KafkaStatsContext {
            recorder: self.recorder(),
        }
    }
}

fn register(meter: &Meter, shared: &Arc<Shared>) {
    fn counter(
        meter: &Meter,
        shared: &Arc<Shared>,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        client_type: &'static str,
        value: fn(&Statistics) -> i64,
    ) {
        let shared = Arc::clone(shared);
        meter
            .u64_observable_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |obs: &dyn AsyncInstrument<u64>| {
                for s in shared.snapshots() {
                    if s.client_type == client_type {
                        obs.observe(non_negative(value(&s)), &client_attrs(&s));
                    }
                }
            })
            .build();
    }
    fn queue(
        meter: &Meter,
        shared: &Arc<Shared>,
        name: &'static str,
        unit: &'static str,
        description: &'static str,
        value: fn(&Statistics) -> u64,
    ) {
        let shared = Arc::clone(shared);
        meter
            .i64_observable_up_down_counter(name)
            .with_unit(unit)
            .with_description(description)
            .with_callback(move |obs: &dyn AsyncInstrument<i64>| {
                for s in shared.snapshots() {
                    if s.client_type == PRODUCER {
                        obs.observe(saturating_i64(value(&s)), &client_attrs(&s));
                    }
                }
            })
            .build();
    }

    counter(
        meter,
        shared,
        PRODUCED_MESSAGES,
        "{message}",
        "Messages the Kafka producer transmitted to brokers (librdkafka txmsgs).",
        PRODUCER,
        |s| s.txmsgs,
    );
    counter(
        meter,
        shared,
        PRODUCED_BYTES,
        "By",
        "Message bytes (key and payload) the Kafka producer transmitted to brokers (librdkafka txmsg_bytes).",
        PRODUCER,
        |s| s.txmsg_bytes,
    );
    counter(
        meter,
        shared,
        CONSUMED_MESSAGES,
        "{message}",
        "Messages the Kafka consumer received from brokers (librdkafka rxmsgs).",
        CONSUMER,
        |s| s.rxmsgs,
    );
    counter(
        meter,
        shared,
        CONSUMED_BYTES,
        "By",
        "Message bytes (key and payload) the Kafka consumer received from brokers (librdkafka rxmsg_bytes).",
        CONSUMER,
        |s| s.rxmsg_bytes,
    );
    queue(
        meter,
        shared,
        QUEUE_MESSAGES,
        "{message}",
        "Messages waiting in the Kafka producer queues (librdkafka msg_cnt).",
        |s| s.msg_cnt,
    );
    queue(
        meter,
        shared,
        QUEUE_SIZE,
        "By",
        "Payload bytes of the messages waiting in the Kafka producer queues (librdkafka msg_size).",
        |s| s.msg_size,
    );

    let rtt_shared = Arc::clone(shared);
    meter
        .f64_observable_gauge(BROKER_RTT)
        .with_unit("s")
        .with_description("Average Kafka broker round-trip time over the last statistics window (librdkafka rtt.avg).")
        .with_callback(move |obs: &dyn AsyncInstrument<f64>| {
            for s in rtt_shared.snapshots() {
                for b in s.brokers.values() {
                    let Some(rtt) = &b.rtt else { continue };
                    if rtt.cnt <= 0 || b.source == "internal" {
                        continue;
                    }
                    let mut attrs = client_attrs(&s);
                    attrs.push(KeyValue::new(BROKER_ID, i64::from(b.nodeid)));
                    if let Some(server) = ServerAddress::parse(&b.nodename) {
                        attrs.push(KeyValue::new(attr::SERVER_ADDRESS, server.address.clone()));
                        if let Some(port) = server.port {
                            attrs.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
                        }
                    }
                    // librdkafka reports microseconds.
                    obs.observe(rtt.avg as f64 / 1_000_000.0, &attrs);
                }
            }
        })
        .build();

    let lag_shared = Arc::clone(shared);
    meter
        .i64_observable_gauge(CONSUMER_LAG)
        .with_unit("{message}")
        .with_description("Kafka consumer lag of an assigned partition (librdkafka consumer_lag).")
        .with_callback(move |obs: &dyn AsyncInstrument<i64>| {
            for s in lag_shared.snapshots() {
                if s.client_type != CONSUMER {
                    continue;
                }
                for t in s.topics.values() {
                    for p in t.partitions.values() {
                        if p.partition < 0 || p.consumer_lag < 0 {
                            continue;
                        }
                        let mut attrs = client_attrs(&s);
                        attrs.push(KeyValue::new(attr::MESSAGING_DESTINATION_NAME, t.topic.clone()));
                        attrs.push(KeyValue::new(
                            attr::MESSAGING_DESTINATION_PARTITION_ID,
                            p.partition.to_string(),
                        ));
                        obs.observe(p.consumer_lag, &attrs);
                    }
                }
            }
        })
        .build();
}

/// Holds the latest statistics of one client for the [`KafkaStats`] instruments. When it is
/// dropped (with the client that owns it), that client's points stop being reported.
pub struct KafkaStatsRecorder {
    slot: Arc<Slot>,
}

impl fmt::Debug for KafkaStatsRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaStatsRecorder")
            .field("client", &lock(&self.slot.latest).as_ref().map(|s| s.name.clone()))
            .finish()
    }
}

impl KafkaStatsRecorder {
    /// Replaces the stored statistics with `statistics` (a pointer swap: never blocks for long,
    /// never panics). Call it from [`ClientContext::stats`].
    pub fn record(&self, statistics: Statistics) {
        let new = Arc::new(statistics);
        let old = lock(&self.slot.latest).replace(new);
        // The previous snapshot is freed outside the lock.
        drop(old);
    }

    /// The statistics last recorded, if any.
    pub fn latest(&self) -> Option<Arc<Statistics>> {
        lock(&self.slot.latest).clone()
    }
}

/// A client context that records librdkafka statistics for [`KafkaStats`] and otherwise
/// behaves like rdkafka's default contexts (logging through `log`, no rebalance hooks, no
/// per-message delivery callback). Usable with `FutureProducer`, `BaseProducer`,
/// `ThreadedProducer`, `BaseConsumer` and `StreamConsumer`.
///
/// Set `statistics.interval.ms` on the client configuration, or it never receives statistics.
#[derive(Debug)]
pub struct KafkaStatsContext {
    recorder: KafkaStatsRecorder,
}

impl KafkaStatsContext {
    /// The recorder behind this context.
    pub fn recorder(&self) -> &KafkaStatsRecorder {
        &self.recorder
    }
}

impl ClientContext for KafkaStatsContext {
    fn stats(&self, statistics: Statistics) {
        self.recorder.record(statistics);
    }
}

impl ConsumerContext for KafkaStatsContext {}

impl ProducerContext for KafkaStatsContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _delivery_result: &DeliveryResult<'_>, _delivery_opaque: Self::DeliveryOpaque) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use otelrs_core::testing::{kv, TestTelemetry};
    use std::collections::HashMap;

    fn producer_stats() -> Statistics {
        Statistics {
            name: "app#producer-7".into(),
            client_id: "app".into(),
            client_type: "producer".into(),
            msg_cnt: 4,
            msg_size: 400,
            txmsgs: 42,
            txmsg_bytes: 4200,
            rxmsgs: 5,
            ..Default::default()
        }
    }

    #[test]
    fn recorded_statistics_become_points_and_vanish_with_the_recorder() {
        let t = TestTelemetry::new();
        let stats = KafkaStats::new().with_instrumentation(t.instrumentation());
        let recorder = stats.recorder();
        assert!(
            t.metrics().sums_u64(PRODUCED_MESSAGES).is_empty(),
            "nothing before stats"
        );
        let mut s = producer_stats();
        let broker = rdkafka::statistics::Broker {
            nodeid: 3,
            nodename: "kafka-3.local:9093".into(),
            source: "learned".into(),
            rtt: Some(rdkafka::statistics::Window {
                avg: 2500,
                cnt: 2,
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut idle = broker.clone();
        idle.nodeid = 4;
        idle.rtt = Some(Default::default());
        let mut internal = broker.clone();
        internal.source = "internal".into();
        internal.nodeid = -1;
        s.brokers = HashMap::from([
            ("kafka-3.local:9093/3".to_owned(), broker),
            ("kafka-3.local:9093/4".to_owned(), idle),
            (":0/internal".to_owned(), internal),
        ]);
        recorder.record(s);

        let client = [
            kv("messaging.system", "kafka"),
            kv("messaging.client.id", "app#producer-7"),
        ];
        let m = t.metrics();
        assert_eq!(m.sum_u64(PRODUCED_MESSAGES, &client), Some(42));
        assert_eq!(m.sum_u64(PRODUCED_BYTES, &client), Some(4200));
        assert_eq!(m.is_monotonic(PRODUCED_MESSAGES), Some(true));
        assert_eq!(m.sum_i64(QUEUE_MESSAGES, &client), Some(4));
        assert_eq!(m.sum_i64(QUEUE_SIZE, &client), Some(400));
        assert_eq!(m.is_monotonic(QUEUE_MESSAGES), Some(false));
        assert!(
            m.sums_u64(CONSUMED_MESSAGES).is_empty(),
            "a producer reports no consumption"
        );
        m.assert_metric(
            BROKER_RTT,
            "s",
            "Average Kafka broker round-trip time over the last statistics window (librdkafka rtt.avg).",
        );
        m.assert_metric(
            PRODUCED_BYTES,
            "By",
            "Message bytes (key and payload) the Kafka producer transmitted to brokers (librdkafka txmsg_bytes).",
        );
        let rtt = rtt_points(&m);
        assert_eq!(
            rtt,
            vec![(
                vec![
                    kv("messaging.client.id", "app#producer-7"),
                    kv(BROKER_ID, 3i64),
                    kv("messaging.system", "kafka"),
                    kv("server.address", "kafka-3.local"),
                    kv("server.port", 9093i64),
                ],
                0.0025
            )],
            "idle and internal brokers report no round-trip time"
        );

        // A second, live client keeps the export non-empty (the SDK skips exporting an empty
        // collection, which would leave the previous snapshot in place).
        let consumer = stats.recorder();
        consumer.record(Statistics {
            name: "app#consumer-8".into(),
            client_type: "consumer".into(),
            rxmsgs: 5,
            ..Default::default()
        });
        drop(recorder);
        let m = t.metrics();
        assert_eq!(
            m.sum_u64(
                CONSUMED_MESSAGES,
                &[
                    kv("messaging.system", "kafka"),
                    kv("messaging.client.id", "app#consumer-8")
                ]
            ),
            Some(5)
        );
        assert!(
            m.sums_u64(PRODUCED_MESSAGES).is_empty(),
            "a dropped client is no longer observed"
        );
        assert!(rtt_points(&m).is_empty());
    }

    fn rtt_points(m: &otelrs_core::testing::MetricsSnapshot) -> Vec<(Vec<KeyValue>, f64)> {
        use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
        match m.metric(BROKER_RTT).map(|x| x.data()) {
            Some(AggregatedMetrics::F64(MetricData::Gauge(g))) => g
                .data_points()
                .map(|p| {
                    let mut a: Vec<KeyValue> = p.attributes().cloned().collect();
                    a.sort_by(|x, y| x.key.as_str().cmp(y.key.as_str()));
                    (a, p.value())
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}
