//! The `shop` demo: four services in one process on 127.0.0.1 ephemeral ports, talking over real
//! sockets, each instrumented by one of the family's crates.
//!
//! ```text
//! caller ──HTTP──▶ gateway (axum + HttpServerLayer)
//!                    ├──HTTP (reqwest + HttpClientMiddleware)──▶ users (actix-web + HttpServerMiddleware)
//!                    │                                              ├── Redis cache (otelrs-redis), when reachable
//!                    │                                              └── SQLite (otelrs-sql)
//!                    └──gRPC (tonic + GrpcClientLayer)──▶ orders (tonic + GrpcServerLayer)
//!                                                           └── place order (`#[instrument]`, a tracing span)
//!                                                                ├── charge payment (internal span)
//!                                                                ├── SQLite (otelrs-sql)
//!                                                                └── Kafka send order.created (otelrs-mq) ──▶ notifier
//!                                                                                          process (otelrs-mq) + SQLite
//! ```
//!
//! Embedded by default: SQLite in memory and Kafka through librdkafka's in-process mock cluster.
//! [`ShopOptions`] selects PostgreSQL or MySQL/MariaDB ([`store`]) and RabbitMQ or NATS
//! ([`broker`]) instead. Redis is used when reachable at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`).

pub mod broker;
pub mod gateway;
pub mod metrics;
pub mod notifier;
pub mod orders;
pub mod proto;
pub mod render;
pub mod scenario;
pub mod store;
pub mod telemetry;
pub mod users;

use std::net::SocketAddr;
use std::time::Duration;

use self::broker::{Broker, BrokerBackend};
use self::gateway::GatewayService;
use self::orders::OrdersService;
use self::store::{Database, DbBackend, Table};
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
    /// The database (`SHOP_DB`, default SQLite in memory).
    pub db: DbBackend,
    /// The broker (`SHOP_BROKER`, default the Kafka mock cluster).
    pub broker: BrokerBackend,
}

impl ShopOptions {
    /// `REDIS_URL`, `SHOP_GATEWAY_ADDR`, `SHOP_DB` (see [`DbBackend::parse`]) and `SHOP_BROKER`
    /// (see [`BrokerBackend::parse`]), else the defaults.
    ///
    /// # Errors
    ///
    /// When `SHOP_GATEWAY_ADDR` is not a socket address, or `SHOP_DB` / `SHOP_BROKER` name
    /// nothing known.
    pub fn from_env() -> Result<Self, Error> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let db = match var("SHOP_DB") {
            Some(v) => DbBackend::parse(&v).map_err(|e| format!("SHOP_DB: {e}"))?,
            None => DbBackend::Sqlite,
        };
        let broker = match var("SHOP_BROKER") {
            Some(v) => BrokerBackend::parse(&v).map_err(|e| format!("SHOP_BROKER: {e}"))?,
            None => BrokerBackend::Kafka,
        };
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
            db,
            broker,
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
pub(crate) fn without_credentials(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}{}", &url[..scheme + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

/// The error of a service that cannot be reached: its URL (credentials removed) and how to start it.
pub(crate) fn unreachable_error(what: &str, url: &str, e: impl std::fmt::Display, service: &str, var: &str) -> Error {
    format!(
        "cannot connect to {what} at {}: {e}; start it with `docker compose up -d {service}` or set {var}",
        without_credentials(url)
    )
    .into()
}

/// A short random id of this run: names its database namespace, queue, subject and cache keys.
fn new_run_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// The running shop.
pub struct Shop {
    /// The SDKs and captured spans.
    pub telemetry: ShopTelemetry,
    /// The users cache.
    pub cache: Cache,
    /// This run's id (in its schema / database, queue or subject names and cache keys).
    pub run_id: String,
    database: Database,
    broker: Broker,
    gateway: GatewayService,
    users: UsersService,
    orders: OrdersService,
    notifier: tokio::task::JoinHandle<()>,
}

/// Services started so far, stopped in reverse if a later one fails.
struct Started {
    database: Database,
    broker: Broker,
}

impl Started {
    async fn abort(self) {
        self.broker.close().await;
        let _ = self.database.drop_namespace().await;
    }
}

impl Shop {
    /// Starts every service. Redis being unreachable is not an error (see [`Shop::cache`]); the
    /// selected database or broker being unreachable is (one line: the URL and how to start it).
    pub async fn start(options: &ShopOptions) -> Result<Self, Error> {
        let telemetry = ShopTelemetry::from_env(&SERVICES)?;
        let run_id = new_run_id();
        // The broker first: it creates nothing on the server until the notifier subscribes.
        let broker = Broker::connect(&options.broker, &run_id).await?;
        let database = match Database::open(&options.db, &run_id).await {
            Ok(database) => database,
            Err(e) => {
                broker.close().await;
                return Err(e);
            }
        };
        let started = Started { database, broker };
        match Self::start_services(options, telemetry, run_id, &started).await {
            Ok(parts) => Ok(parts.into_shop(started)),
            Err(e) => {
                started.abort().await;
                Err(e)
            }
        }
    }

    async fn start_services(
        options: &ShopOptions,
        telemetry: ShopTelemetry,
        run_id: String,
        started: &Started,
    ) -> Result<Parts, Error> {
        let inst = |name: &str| telemetry.service(name).instrumentation();
        let (database, broker) = (&started.database, &started.broker);

        let users_db = database.store(inst("users"), "users").await?;
        users_db.create_table(Table::Users).await?;
        let orders_db = database.store(inst("orders"), "orders").await?;
        orders_db.create_table(Table::Orders).await?;
        let notifier_db = database.store(inst("notifier"), "notifier").await?;
        notifier_db.create_table(Table::Notifications).await?;

        let redis_url = without_credentials(&options.redis_url);
        let (cache_pool, cache) = match users::connect_cache(&options.redis_url, inst("users")).await {
            Ok(pool) => (Some(pool), Cache::Redis(redis_url)),
            Err(reason) => (None, Cache::Unavailable { url: redis_url, reason }),
        };
        let users = UsersService::start(inst("users"), users_db, cache_pool, format!("shop:{run_id}:"))?;

        // The notifier subscribes before anything can be published.
        let notifier = broker.start_notifier(inst("notifier"), notifier_db).await?;
        let publisher = broker.publisher(inst("orders")).await?;
        let orders = OrdersService::start(
            inst("orders"),
            telemetry.service("orders").tracing_dispatch(),
            orders_db,
            publisher,
            broker.destination().to_owned(),
        )
        .await?;

        let gateway = GatewayService::start(
            options.gateway_addr,
            inst("gateway"),
            users.addr,
            orders.addr,
            telemetry.service("gateway").prometheus(),
        )
        .await?;

        Ok(Parts {
            telemetry,
            cache,
            run_id,
            gateway,
            users,
            orders,
            notifier,
        })
    }

    /// The database in use, for display.
    pub fn database(&self) -> String {
        self.database.describe()
    }

    /// The broker in use, for display.
    pub fn broker(&self) -> String {
        self.broker.describe()
    }

    /// The topic, queue or subject `order.created` goes to in this run (`order.created` on the
    /// Kafka mock cluster, `order.created.{run}` on a real broker).
    pub fn order_destination(&self) -> &str {
        self.broker.destination()
    }

    /// The `messaging.system` of the broker in use (`kafka`, `rabbitmq`, `nats`).
    pub fn messaging_system(&self) -> &'static str {
        self.broker.system()
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
        self.broker.close().await;
        let dropped = self.database.drop_namespace().await;
        let telemetry = self.telemetry;
        // Flushing exporters blocks; keep it off the async workers. Telemetry that could not be
        // delivered (a collector down or too slow) is a warning, not a failed run.
        match tokio::task::spawn_blocking(move || telemetry.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: telemetry was not fully delivered: {e}"),
            Err(e) => eprintln!("warning: the telemetry shutdown task failed: {e}"),
        }
        // Give librdkafka's mock cluster a moment after the clients are gone.
        tokio::time::sleep(Duration::from_millis(10)).await;
        dropped
    }
}

/// The services of a shop being started.
struct Parts {
    telemetry: ShopTelemetry,
    cache: Cache,
    run_id: String,
    gateway: GatewayService,
    users: UsersService,
    orders: OrdersService,
    notifier: tokio::task::JoinHandle<()>,
}

impl Parts {
    fn into_shop(self, started: Started) -> Shop {
        Shop {
            telemetry: self.telemetry,
            cache: self.cache,
            run_id: self.run_id,
            database: started.database,
            broker: started.broker,
            gateway: self.gateway,
            users: self.users,
            orders: self.orders,
            notifier: self.notifier,
        }
    }
}
