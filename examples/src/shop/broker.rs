//! The shop's broker: Kafka through librdkafka's in-process mock cluster (the default), RabbitMQ
//! (lapin) or NATS (async-nats core publish/subscribe), each through otelrs-mq. `orders` publishes
//! `order.created` with a [`Publisher`]; `notifier` consumes it (see [`super::notifier`]).
//!
//! On a real broker the destination is unique per run, `order.created.{run}` (a RabbitMQ queue
//! exclusive to the notifier's connection, deleted with it; a NATS subject, which leaves nothing
//! on the server), so concurrent runs and tests never receive each other's messages.

use std::time::Duration;

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use otelrs_core::Instrumentation;
use otelrs_mq::kafka::Kafka;
use otelrs_mq::nats::Nats;
use otelrs_mq::rabbitmq::{RabbitMq, TracedChannel};
use otelrs_mq::ProcessParent;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::orders::ORDER_CREATED;
use super::store::Store;
use super::{notifier, unreachable_error, without_credentials, Error};

/// The default RabbitMQ URL (override with `AMQP_URL`).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The default NATS URL (override with `NATS_URL`).
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// How long connecting to a broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which broker carries `order.created`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerBackend {
    /// Kafka through librdkafka's in-process mock cluster (nothing to install).
    Kafka,
    /// RabbitMQ at this URL.
    RabbitMq {
        /// `amqp://…`
        url: String,
    },
    /// NATS at this URL.
    Nats {
        /// `nats://…`
        url: String,
    },
}

impl BrokerBackend {
    /// `kafka`, `rabbitmq` (URL from `AMQP_URL`, else [`DEFAULT_AMQP_URL`]), `nats` (URL from
    /// `NATS_URL`, else [`DEFAULT_NATS_URL`]), or an `amqp://` / `nats://` URL.
    ///
    /// # Errors
    ///
    /// For anything else, with a message listing the accepted values.
    pub fn parse(value: &str) -> Result<Self, String> {
        let env = |var: &str, default: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        match value {
            "kafka" => Ok(Self::Kafka),
            "rabbitmq" | "amqp" => Ok(Self::RabbitMq {
                url: env("AMQP_URL", DEFAULT_AMQP_URL),
            }),
            "nats" => Ok(Self::Nats {
                url: env("NATS_URL", DEFAULT_NATS_URL),
            }),
            url if url.starts_with("amqp://") || url.starts_with("amqps://") => {
                Ok(Self::RabbitMq { url: url.to_owned() })
            }
            url if url.starts_with("nats://") => Ok(Self::Nats { url: url.to_owned() }),
            other => Err(format!(
                "unknown broker {other:?}: use kafka, rabbitmq, nats or an amqp:// / nats:// URL"
            )),
        }
    }

    /// `kafka`, `rabbitmq` or `nats`: also the `messaging.system` the spans carry.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::RabbitMq { .. } => "rabbitmq",
            Self::Nats { .. } => "nats",
        }
    }
}

#[allow(clippy::large_enum_variant)] // one per run
enum Conn {
    Kafka {
        cluster: MockCluster<'static, DefaultProducerContext>,
        bootstrap: String,
    },
    RabbitMq {
        url: String,
        orders: Connection,
        notifier: Connection,
    },
    Nats {
        url: String,
        server: (String, u16),
        orders: async_nats::Client,
        notifier: async_nats::Client,
    },
}

/// The connected broker of one run.
pub struct Broker {
    destination: String,
    conn: Conn,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("destination", &self.destination)
            .field("broker", &self.describe())
            .finish()
    }
}

async fn amqp_connect(url: &str) -> Result<Connection, Error> {
    let fail = |e: &dyn std::fmt::Display| unreachable_error("RabbitMQ", url, e, "rabbitmq", "AMQP_URL");
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(fail(&e)),
        Err(_) => Err(fail(&"timed out")),
    }
}

async fn nats_connect(url: &str) -> Result<async_nats::Client, Error> {
    async_nats::ConnectOptions::new()
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(url)
        .await
        .map_err(|e| unreachable_error("NATS", url, e, "nats", "NATS_URL"))
}

impl Broker {
    /// Starts the mock cluster, or opens the connections of `orders` and `notifier` to the broker.
    ///
    /// # Errors
    ///
    /// When the broker cannot be reached (one line: the URL and how to start it).
    pub async fn connect(backend: &BrokerBackend, run_id: &str) -> Result<Self, Error> {
        let unique = format!("{ORDER_CREATED}.{run_id}");
        match backend {
            BrokerBackend::Kafka => {
                let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the Kafka mock cluster: {e}"))?;
                cluster
                    .create_topic(ORDER_CREATED, 1, 1)
                    .map_err(|e| format!("cannot create topic {ORDER_CREATED}: {e}"))?;
                let bootstrap = cluster.bootstrap_servers();
                Ok(Self {
                    destination: ORDER_CREATED.to_owned(),
                    conn: Conn::Kafka { cluster, bootstrap },
                })
            }
            BrokerBackend::RabbitMq { url } => {
                let orders = amqp_connect(url).await?;
                let notifier = amqp_connect(url).await?;
                Ok(Self {
                    destination: unique,
                    conn: Conn::RabbitMq {
                        url: url.clone(),
                        orders,
                        notifier,
                    },
                })
            }
            BrokerBackend::Nats { url } => {
                let address: async_nats::ServerAddr = url
                    .parse()
                    .map_err(|e| format!("invalid NATS URL {}: {e}", without_credentials(url)))?;
                let orders = nats_connect(url).await?;
                let notifier = nats_connect(url).await?;
                Ok(Self {
                    destination: unique,
                    conn: Conn::Nats {
                        url: url.clone(),
                        server: (address.host().to_owned(), address.port()),
                        orders,
                        notifier,
                    },
                })
            }
        }
    }

    /// The topic, queue or subject of `order.created` in this run.
    pub fn destination(&self) -> &str {
        &self.destination
    }

    /// `kafka`, `rabbitmq` or `nats` (the spans' `messaging.system`).
    pub fn system(&self) -> &'static str {
        match self.conn {
            Conn::Kafka { .. } => "kafka",
            Conn::RabbitMq { .. } => "rabbitmq",
            Conn::Nats { .. } => "nats",
        }
    }

    /// What the shop uses, for the demo's output.
    pub fn describe(&self) -> String {
        let d = &self.destination;
        match &self.conn {
            Conn::Kafka { bootstrap, .. } => format!("Kafka mock cluster at {bootstrap}, topic {d}"),
            Conn::RabbitMq { url, .. } => {
                format!("RabbitMQ at {}, queue {d} (deleted at exit)", without_credentials(url))
            }
            Conn::Nats { url, .. } => format!("NATS at {}, subject {d}", without_credentials(url)),
        }
    }

    /// The publisher of `orders`.
    ///
    /// # Errors
    ///
    /// When the producer or channel cannot be created.
    pub async fn publisher(&self, instrumentation: Instrumentation) -> Result<Publisher, Error> {
        match &self.conn {
            Conn::Kafka { bootstrap, .. } => {
                let mut config = ClientConfig::new();
                config
                    .set("bootstrap.servers", bootstrap)
                    .set("message.timeout.ms", "5000");
                let producer: FutureProducer = config.create()?;
                Ok(Publisher::Kafka {
                    kafka: Kafka::new()
                        .with_instrumentation(instrumentation)
                        .with_client_config(&config),
                    producer,
                })
            }
            Conn::RabbitMq { url, orders, .. } => {
                let channel = orders.create_channel().await?;
                // Publish spans end when the broker confirms.
                channel.confirm_select(ConfirmSelectOptions::default()).await?;
                let rabbitmq = RabbitMq::new()
                    .with_instrumentation(instrumentation)
                    .with_server_from_uri(url);
                Ok(Publisher::RabbitMq {
                    channel: rabbitmq.channel(channel),
                })
            }
            Conn::Nats { server, orders, .. } => Ok(Publisher::Nats {
                nats: Nats::new()
                    .with_instrumentation(instrumentation)
                    .with_server(server.0.clone(), server.1),
                client: orders.clone(),
            }),
        }
    }

    /// Subscribes `notifier` and spawns its consumer loop (ready before this returns, so nothing
    /// published afterwards is missed).
    ///
    /// # Errors
    ///
    /// When the consumer cannot be set up.
    pub async fn start_notifier(
        &self,
        instrumentation: Instrumentation,
        store: Store,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let destination = self.destination.clone();
        match &self.conn {
            Conn::Kafka { bootstrap, .. } => {
                let mut config = ClientConfig::new();
                config
                    .set("bootstrap.servers", bootstrap)
                    .set("group.id", "notifier")
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest");
                let consumer: StreamConsumer = config.create()?;
                // A fixed assignment: no group rebalance to wait for.
                let mut assignment = TopicPartitionList::new();
                assignment.add_partition_offset(&destination, 0, Offset::Beginning)?;
                consumer.assign(&assignment)?;
                let kafka = Kafka::new()
                    .with_instrumentation(instrumentation)
                    .with_client_config(&config)
                    .with_process_parent(ProcessParent::CreationContext);
                Ok(tokio::spawn(notifier::run_kafka(kafka, consumer, store)))
            }
            Conn::RabbitMq { url, notifier, .. } => {
                let channel = notifier.create_channel().await?;
                channel.basic_qos(16, BasicQosOptions::default()).await?;
                // Exclusive to this connection: RabbitMQ deletes it when the connection closes.
                let queue = QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                };
                channel
                    .queue_declare(&destination, queue, FieldTable::default())
                    .await?;
                let consumer = channel
                    .basic_consume(
                        &destination,
                        "notifier",
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                let rabbitmq = RabbitMq::new()
                    .with_instrumentation(instrumentation)
                    .with_server_from_uri(url)
                    .with_process_parent(ProcessParent::CreationContext);
                Ok(tokio::spawn(notifier::run_rabbitmq(rabbitmq.consumer(consumer), store)))
            }
            Conn::Nats { server, notifier, .. } => {
                let subscriber = notifier.subscribe(destination).await?;
                // The server has the subscription before anything is published.
                notifier.flush().await?;
                let nats = Nats::new()
                    .with_instrumentation(instrumentation)
                    .with_server(server.0.clone(), server.1)
                    .with_process_parent(ProcessParent::CreationContext);
                Ok(tokio::spawn(notifier::run_nats(nats, subscriber, store)))
            }
        }
    }

    /// Closes the connections (RabbitMQ deletes the run's queue with them).
    pub async fn close(self) {
        match self.conn {
            Conn::Kafka { cluster, .. } => {
                drop(cluster);
            }
            Conn::RabbitMq { orders, notifier, .. } => {
                let _ = orders.close(200, "shop stopped").await;
                let _ = notifier.close(200, "shop stopped").await;
            }
            Conn::Nats { orders, notifier, .. } => {
                let _ = orders.drain().await;
                let _ = notifier.drain().await;
            }
        }
    }
}

/// How `orders` publishes `order.created`.
#[derive(Clone)]
pub enum Publisher {
    /// Through rdkafka's `FutureProducer`.
    Kafka {
        /// The instrumentation.
        kafka: Kafka,
        /// The producer.
        producer: FutureProducer,
    },
    /// Through a lapin channel with publisher confirms, to the default exchange.
    RabbitMq {
        /// The traced channel.
        channel: TracedChannel,
    },
    /// Through a core NATS publish.
    Nats {
        /// The instrumentation.
        nats: Nats,
        /// The client.
        client: async_nats::Client,
    },
}

impl Publisher {
    /// Publishes `payload` to `destination`, keyed (Kafka key, AMQP message id) by `key`, and
    /// waits for the broker's acknowledgement where there is one.
    ///
    /// # Errors
    ///
    /// The broker's error, as text.
    pub async fn publish(&self, destination: &str, key: &str, payload: String) -> Result<(), String> {
        match self {
            Self::Kafka { kafka, producer } => kafka
                .send(
                    producer,
                    FutureRecord::to(destination).key(key).payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .map(drop)
                .map_err(|(e, _)| e.to_string()),
            Self::RabbitMq { channel } => {
                let properties = BasicProperties::default()
                    .with_message_id(key.into())
                    .with_content_type("application/json".into());
                let confirmation = channel
                    .basic_publish(
                        "",
                        destination,
                        BasicPublishOptions::default(),
                        payload.as_bytes(),
                        properties,
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())?;
                if confirmation.is_ack() {
                    Ok(())
                } else {
                    Err("the broker did not accept the message".to_owned())
                }
            }
            Self::Nats { nats, client } => nats
                .publish(
                    client,
                    destination.to_owned(),
                    async_nats::HeaderMap::new(),
                    payload.into(),
                )
                .await
                .map_err(|e| e.to_string()),
        }
    }
}
