//! The librdkafka statistics bridge against the in-process mock cluster: a producer and a
//! consumer with `statistics.interval.ms` = 100 feed the observable instruments.
#![cfg(feature = "kafka")]

use std::time::{Duration, Instant};

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use otelrs_core::testing::{kv, MetricsSnapshot, Point, TestTelemetry};
use otelrs_mq::kafka_stats::{
    KafkaStats, KafkaStatsContext, BROKER_ID, BROKER_RTT, CONSUMED_BYTES, CONSUMED_MESSAGES, CONSUMER_LAG,
    PRODUCED_BYTES, PRODUCED_MESSAGES, QUEUE_MESSAGES, QUEUE_SIZE,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// Collects metrics until `done` holds for them, or panics after 15 s.
#[track_caller]
fn wait_for(t: &TestTelemetry, what: &str, mut done: impl FnMut(&MetricsSnapshot) -> bool) -> MetricsSnapshot {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let m = t.metrics();
        if done(&m) {
            return m;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; metrics: {:?}", m.names());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

/// The one point of a client-level metric, checking its attributes are exactly
/// `messaging.system` and a `messaging.client.id` of the client named `{client.id}#{kind}-…`.
#[track_caller]
fn single_client_point<T: Copy + std::fmt::Debug>(points: Vec<Point<T>>, kind: &str) -> (String, T) {
    assert_eq!(points.len(), 1, "one point per client: {points:?}");
    let p = &points[0];
    let Some(Value::String(id)) = attr(&p.attributes, "messaging.client.id") else {
        panic!("no messaging.client.id on {p:?}")
    };
    let id = id.as_str().to_owned();
    assert!(
        id.starts_with(&format!("stats-test#{kind}-")),
        "librdkafka handle name expected, got {id}"
    );
    assert_eq!(
        p.attributes,
        vec![kv("messaging.client.id", id.clone()), kv("messaging.system", "kafka")]
    );
    (id, p.value)
}

fn rtt_points(m: &MetricsSnapshot) -> Vec<(Vec<KeyValue>, f64)> {
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

fn client_id_of(attrs: &[KeyValue]) -> String {
    match attr(attrs, "messaging.client.id") {
        Some(v) => v.as_str().into_owned(),
        None => String::new(),
    }
}

#[test]
fn producer_and_consumer_statistics_become_metrics() {
    let t = TestTelemetry::new();
    let stats = KafkaStats::new().with_instrumentation(t.instrumentation());
    let cluster = MockCluster::new(1).expect("mock cluster");
    let topic = format!("stats-{}", std::process::id());
    cluster.create_topic(&topic, 1, 1).expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let (host, port) = bootstrap.rsplit_once(':').expect("host:port");
    let port: i64 = port.parse().expect("port");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // --- producer: messages held in the queue by a long linger, then delivered -----------------
    let producer: FutureProducer<KafkaStatsContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("client.id", "stats-test")
        .set("statistics.interval.ms", "100")
        .set("linger.ms", "2000")
        .set("message.timeout.ms", "10000")
        .create_with_context(stats.context())
        .expect("producer");
    // Three messages with 2-byte keys and 8-byte payloads.
    let deliveries: Vec<_> = ["k0", "k1", "k2"]
        .iter()
        .map(|key| {
            producer
                .send_result(FutureRecord::to(&topic).key(*key).payload("payload1"))
                .map_err(|(e, _)| e)
                .expect("enqueued")
        })
        .collect();
    // Round-trip times are averages over one statistics window and absent for windows without
    // requests, so every point seen while the clients work is kept.
    let mut rtt_seen: Vec<(Vec<KeyValue>, f64)> = Vec::new();
    let m = wait_for(&t, "3 queued messages", |m| {
        rtt_seen.extend(rtt_points(m));
        m.sums_i64(QUEUE_MESSAGES).iter().any(|p| p.value == 3)
    });
    let (producer_id, queued) = single_client_point(m.sums_i64(QUEUE_MESSAGES), "producer");
    assert_eq!(queued, 3);
    // librdkafka's msg_size counts payload bytes: 3 × 8.
    assert_eq!(single_client_point(m.sums_i64(QUEUE_SIZE), "producer").1, 24);
    assert_eq!(m.is_monotonic(QUEUE_MESSAGES), Some(false));
    m.assert_metric(
        QUEUE_MESSAGES,
        "{message}",
        "Messages waiting in the Kafka producer queues (librdkafka msg_cnt).",
    );

    for d in deliveries {
        rt.block_on(d).expect("delivery report").expect("delivered");
    }
    let m = wait_for(&t, "3 produced messages and an empty queue", |m| {
        rtt_seen.extend(rtt_points(m));
        m.sums_u64(PRODUCED_MESSAGES).iter().any(|p| p.value == 3)
            && m.sums_i64(QUEUE_MESSAGES).iter().any(|p| p.value == 0)
    });
    let client = [
        kv("messaging.system", "kafka"),
        kv("messaging.client.id", producer_id.clone()),
    ];
    assert_eq!(m.sum_u64(PRODUCED_MESSAGES, &client), Some(3));
    assert_eq!(m.sum_i64(QUEUE_MESSAGES, &client), Some(0));
    assert_eq!(m.sum_i64(QUEUE_SIZE, &client), Some(0));
    // txmsg_bytes counts key + payload: 3 × (2 + 8).
    assert_eq!(m.sum_u64(PRODUCED_BYTES, &client), Some(30));
    assert_eq!(m.is_monotonic(PRODUCED_MESSAGES), Some(true));
    m.assert_metric(
        PRODUCED_MESSAGES,
        "{message}",
        "Messages the Kafka producer transmitted to brokers (librdkafka txmsgs).",
    );
    assert!(m.sums_u64(CONSUMED_MESSAGES).is_empty(), "no consumer yet");

    // --- consumer: all three messages fetched, the first one committed -----------------------
    let consumer: BaseConsumer<KafkaStatsContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("client.id", "stats-test")
        .set("group.id", format!("stats-group-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "100")
        .create_with_context(stats.context())
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut received = 0;
    while received < 3 {
        assert!(Instant::now() < deadline, "3 messages within 20 s, got {received}");
        if let Some(r) = consumer.poll(Duration::from_millis(100)) {
            let msg = r.expect("no consume error");
            assert_eq!(msg.offset(), received);
            received += 1;
        }
    }
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(1))
        .expect("offset");
    consumer.commit(&offsets, CommitMode::Sync).expect("commit");
    // Statistics are delivered while the consumer is polled.
    let deadline = Instant::now() + Duration::from_secs(15);
    let m = loop {
        assert!(consumer.poll(Duration::from_millis(50)).is_none(), "no more messages");
        let m = t.metrics();
        rtt_seen.extend(rtt_points(&m));
        let lag_known = m.gauges_i64(CONSUMER_LAG).iter().any(|p| p.value == 2);
        let consumed = m.sums_u64(CONSUMED_MESSAGES).iter().any(|p| p.value == 3);
        if lag_known && consumed {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "lag and consumption within 15 s: {:?}",
            m.names()
        );
    };
    let (consumer_id, consumed) = single_client_point(m.sums_u64(CONSUMED_MESSAGES), "consumer");
    assert_eq!(consumed, 3);
    assert_ne!(consumer_id, producer_id);
    let consumer_client = [
        kv("messaging.system", "kafka"),
        kv("messaging.client.id", consumer_id.clone()),
    ];
    assert_eq!(m.sum_u64(CONSUMED_BYTES, &consumer_client), Some(30), "key + payload");
    let lag = m.gauges_i64(CONSUMER_LAG);
    assert_eq!(
        lag,
        vec![Point {
            attributes: vec![
                kv("messaging.client.id", consumer_id.clone()),
                kv("messaging.destination.name", topic.clone()),
                kv("messaging.destination.partition.id", "0"),
                kv("messaging.system", "kafka"),
            ],
            value: 2,
        }],
        "high watermark 3 - committed offset 1, for the consumer only"
    );
    // The producer is still alive and still reported; consumption is not reported for it.
    assert_eq!(m.sum_u64(PRODUCED_MESSAGES, &client), Some(3));
    assert_eq!(
        m.sums_u64(PRODUCED_MESSAGES).len(),
        1,
        "a consumer reports no production"
    );
    assert!(m
        .sums_i64(QUEUE_MESSAGES)
        .iter()
        .all(|p| client_id_of(&p.attributes) == producer_id));

    // Round-trip times: both clients talk to the one mock broker (node 1, or -1 while only the
    // bootstrap connection is known); every point has exactly these attributes and a sane value.
    let deadline = Instant::now() + Duration::from_secs(15);
    let has_rtt = |seen: &[(Vec<KeyValue>, f64)], id: &str| seen.iter().any(|(a, _)| client_id_of(a) == id);
    while !(has_rtt(&rtt_seen, &producer_id) && has_rtt(&rtt_seen, &consumer_id)) {
        assert!(
            Instant::now() < deadline,
            "round-trip times of both clients: {rtt_seen:?}"
        );
        // Polling serves the consumer's statistics (and its fetches make round trips).
        assert!(consumer.poll(Duration::from_millis(50)).is_none(), "no more messages");
        rtt_seen.extend(rtt_points(&t.metrics()));
    }
    for (attrs, seconds) in rtt_seen {
        let id = client_id_of(&attrs);
        let Some(Value::I64(node)) = attr(&attrs, BROKER_ID).cloned() else {
            panic!("no broker id on {attrs:?}")
        };
        assert!(node == 1 || node == -1, "mock broker node id: {node}");
        assert_eq!(
            attrs,
            vec![
                kv("messaging.client.id", id.clone()),
                kv(BROKER_ID, node),
                kv("messaging.system", "kafka"),
                kv("server.address", host.to_owned()),
                kv("server.port", port),
            ]
        );
        assert!(seconds > 0.0 && seconds < 5.0, "rtt in seconds: {seconds}");
    }
    let m = t.metrics();
    m.assert_metric(
        BROKER_RTT,
        "s",
        "Average Kafka broker round-trip time over the last statistics window (librdkafka rtt.avg).",
    );
    m.assert_metric(
        CONSUMER_LAG,
        "{message}",
        "Kafka consumer lag of an assigned partition (librdkafka consumer_lag).",
    );

    // Dropping a client drops its context and recorder: its points are no longer reported.
    drop(consumer);
    let m = wait_for(&t, "the consumer's points to disappear", |m| {
        m.sums_u64(CONSUMED_MESSAGES).is_empty()
    });
    assert!(m.gauges_i64(CONSUMER_LAG).is_empty());
    assert_eq!(m.sum_u64(PRODUCED_MESSAGES, &client), Some(3));
}
