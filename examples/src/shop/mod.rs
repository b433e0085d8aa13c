//! The `shop` demo: four services in one process on 127.0.0.1 ephemeral ports, talking over real
//! sockets, each instrumented by one of the family's crates.
//!
//! ```text
//! caller ──HTTP──▶ gateway (axum + HttpServerLayer)
//!                    ├──HTTP (reqwest + HttpClientMiddleware)──▶ users (actix-web + HttpServerMiddleware)
//!                    │                                              ├── Redis cache (otel-redis), when reachable
//!                    │                                              └── SQLite (otel-sql)
//!                    └──gRPC (tonic + GrpcClientLayer)──▶ orders (tonic + GrpcServerLayer)
//!                                                           ├── charge payment (internal span)
//!                                                           ├── SQLite (otel-sql)
//!                                                           └── Kafka send order.created (otel-mq) ──▶ notifier
//!                                                                                     process (otel-mq) + SQLite
//! ```
//!
//! Embedded by default: SQLite in memory and Kafka through librdkafka's in-process mock cluster.
//! Redis is used when reachable at `REDIS_URL` (default `redis://127.0.0.1:6379`).

pub mod gateway;
pub mod metrics;
pub mod notifier;
pub mod orders;
pub mod proto;
pub mod render;
pub mod scenario;
pub mod telemetry;
pub mod users;

use std::net::SocketAddr;
use std::time::Duration;

use otel_core::Instrumentation;
use otel_mq::kafka::Kafka;
use otel_mq::ProcessParent;
use otel_sql::{InstrumentedPool, SqlOptions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::Sqlite;

use self::gateway::GatewayService;
use self::orders::{OrdersService, ORDER_CREATED};
use self::telemetry::ShopTelemetry;
use self::users::UsersService;

/// The services, in the order their telemetry is set up.
pub const SERVICES: [&str; 4] = ["gateway", "users", "orders", "notifier"];

/// The default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Any error while starting the shop.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the shop connects to.
#[derive(Clone, Debug)]
pub struct ShopOptions {
    /// Redis for the users cache.
    pub redis_url: String,
    /// Where the gateway listens (`SHOP_GATEWAY_ADDR`, default `127.0.0.1:0`, an ephemeral port).
    pub gateway_addr: SocketAddr,
}

impl ShopOptions {
    /// `REDIS_URL` and `SHOP_GATEWAY_ADDR`, else the defaults.
    ///
    /// # Errors
    ///
    /// When `SHOP_GATEWAY_ADDR` is not a socket address.
    pub fn from_env() -> Result<Self, Error> {
        let gateway_addr = match std::env::var("SHOP_GATEWAY_ADDR") {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map_err(|e| format!("SHOP_GATEWAY_ADDR={v:?} is not an address like 127.0.0.1:8080: {e}"))?,
            _ => SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        Ok(Self {
            redis_url: std::env::var("REDIS_URL")
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
            gateway_addr,
        })
    }
}

/// Whether the users cache is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Redis answered at this URL (credentials removed).
    Redis(String),
    /// Redis could not be reached; users runs without a cache.
    Unavailable {
        /// The URL tried (credentials removed).
        url: String,
        /// Why.
        reason: String,
    },
}

/// `redis://user:secret@host` → `redis://host`.
fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The running shop.
pub struct Shop {
    /// The SDKs and captured spans.
    pub telemetry: ShopTelemetry,
    /// The users cache.
    pub cache: Cache,
    /// The Kafka bootstrap servers (the mock cluster).
    pub kafka_bootstrap: String,
    gateway: GatewayService,
    users: UsersService,
    orders: OrdersService,
    notifier: tokio::task::JoinHandle<()>,
    _cluster: MockCluster<'static, DefaultProducerContext>,
}

async fn sqlite(instrumentation: Instrumentation, name: &'static str) -> Result<InstrumentedPool<Sqlite>, sqlx::Error> {
    // One connection that never expires: an in-memory database lives as long as its connection.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    Ok(InstrumentedPool::new(
        pool,
        SqlOptions::new()
            .with_instrumentation(instrumentation)
            .with_pool_name(name),
    ))
}

impl Shop {
    /// Starts every service. Redis being unreachable is not an error (see [`Shop::cache`]).
    pub async fn start(options: &ShopOptions) -> Result<Self, Error> {
        let telemetry = ShopTelemetry::from_env(&SERVICES)?;
        let inst = |name: &str| telemetry.service(name).instrumentation();

        let cluster = MockCluster::new(1).map_err(|e| format!("cannot start the Kafka mock cluster: {e}"))?;
        cluster
            .create_topic(ORDER_CREATED, 1, 1)
            .map_err(|e| format!("cannot create topic {ORDER_CREATED}: {e}"))?;
        let bootstrap = cluster.bootstrap_servers();

        let users_db = sqlite(inst("users"), "users").await?;
        users::migrate(&users_db).await?;
        let orders_db = sqlite(inst("orders"), "orders").await?;
        orders::migrate(&orders_db).await?;
        let notifier_db = sqlite(inst("notifier"), "notifier").await?;
        notifier::migrate(&notifier_db).await?;

        let redis_url = without_credentials(&options.redis_url);
        let (cache_pool, cache) = match users::connect_cache(&options.redis_url, inst("users")).await {
            Ok(pool) => (Some(pool), Cache::Redis(redis_url)),
            Err(reason) => (None, Cache::Unavailable { url: redis_url, reason }),
        };
        let users = UsersService::start(inst("users"), users_db, cache_pool)?;

        let mut producer_config = ClientConfig::new();
        producer_config
            .set("bootstrap.servers", &bootstrap)
            .set("message.timeout.ms", "5000");
        let producer: FutureProducer = producer_config.create()?;
        let orders_kafka = Kafka::from_client_config(inst("orders"), &producer_config);
        let orders = OrdersService::start(inst("orders"), orders_db, orders_kafka, producer).await?;

        let mut consumer_config = ClientConfig::new();
        consumer_config
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "notifier")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: StreamConsumer = consumer_config.create()?;
        // A fixed assignment: no group rebalance to wait for.
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(ORDER_CREATED, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let notifier_kafka = Kafka::from_client_config(inst("notifier"), &consumer_config)
            .with_process_parent(ProcessParent::CreationContext);
        let notifier = tokio::spawn(notifier::run(notifier_kafka, consumer, notifier_db));

        let gateway = GatewayService::start(
            options.gateway_addr,
            inst("gateway"),
            users.addr,
            orders.addr,
            telemetry.service("gateway").prometheus(),
        )
        .await?;

        Ok(Self {
            telemetry,
            cache,
            kafka_bootstrap: bootstrap,
            gateway,
            users,
            orders,
            notifier,
            _cluster: cluster,
        })
    }

    /// The gateway's address.
    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    /// The users service's address.
    pub fn users_addr(&self) -> SocketAddr {
        self.users.addr
    }

    /// The orders service's address.
    pub fn orders_addr(&self) -> SocketAddr {
        self.orders.addr
    }

    /// The RED rows of every service, read from their metrics.
    pub fn red_rows(&self) -> Vec<metrics::RedRow> {
        self.telemetry
            .services()
            .iter()
            .filter_map(|s| s.prometheus().map(|p| metrics::red_rows(s.name, &p.render())))
            .flatten()
            .collect()
    }

    /// Stops every service, then flushes and shuts down telemetry (bounded by its timeouts).
    pub async fn shutdown(self) -> Result<(), Error> {
        self.gateway.stop().await;
        self.orders.stop().await;
        self.users.stop().await;
        self.notifier.abort();
        let _ = self.notifier.await;
        let telemetry = self.telemetry;
        // Flushing exporters blocks; keep it off the async workers.
        tokio::task::spawn_blocking(move || telemetry.shutdown())
            .await
            .map_err(|e| format!("telemetry shutdown task: {e}"))??;
        // Give librdkafka's mock cluster a moment after the clients are gone.
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(())
    }
}
