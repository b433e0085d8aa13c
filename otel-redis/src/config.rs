//! [`RedisInstrumentation`]: tracer, instruments and options, built once and shared by every
//! instrumented connection.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute::{
    DB_NAMESPACE, DB_SYSTEM_NAME, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT,
};
use opentelemetry_semantic_conventions::metric::DB_CLIENT_OPERATION_DURATION;
use otelrs_core::conv::pool::default_pool_name;
use otelrs_core::conv::{split_authority, ServerAddress};
use otelrs_core::hotpath::intern::static_str;
use otelrs_core::hotpath::BoundInstruments;
use otelrs_core::instruments::{duration_histogram, DB_DURATION_BUCKETS};
use otelrs_core::Instrumentation;
use redis::{ConnectionAddr, ConnectionInfo};

use crate::connection::InstrumentedConnection;

/// The default Redis port; `server.port` is omitted when it is this.
pub const DEFAULT_PORT: u16 = 6379;

/// What `db.query.text` contains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryText {
    /// The command in `redis-cli` syntax with values replaced by `?` (see [`crate::mask_command`]).
    /// The default.
    #[default]
    Masked,
    /// The command with every argument as sent, values and secrets included. Opt-in; use only
    /// where the data is not sensitive.
    Raw,
    /// No `db.query.text`.
    Off,
}

/// Decides per operation whether it is instrumented (otelrs-core's one filter shape); receives
/// the `db.operation.name` (`"PING"`, `"CLIENT SETNAME"`, `"PIPELINE GET"`, `"MULTI"`).
pub type Filter = otelrs_core::Filter<str>;

/// Tracer, `db.client.operation.duration` histogram and options for instrumented Redis
/// connections. Build it once and share it (cloning is a reference count).
///
/// ```
/// use otelrs_redis::{QueryText, RedisInstrumentation};
///
/// let redis = RedisInstrumentation::new()
///     .with_instrumentation(otelrs_core::Instrumentation::new()) // omit for the global providers
///     .with_query_text(QueryText::Masked)
///     .with_filter(otelrs_redis::Filter::new(|operation: &str| operation != "PING"));
/// # let _ = redis;
/// ```
#[derive(Clone)]
pub struct RedisInstrumentation {
    pub(crate) shared: Arc<Shared>,
}

/// The bound-duration key: (`Target::id`, `db.operation.name`).
pub(crate) type DurationKey = (u64, Cow<'static, str>);

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) tracer: otelrs_core::Tracer,
    // Pool instruments are created from it (feature `deadpool`).
    #[cfg_attr(not(feature = "deadpool"), allow(dead_code))]
    pub(crate) meter: Meter,
    /// Keyed by (`Target::id`, `db.operation.name`): successful operations record through a
    /// bound handle, skipping the SDK's attribute hashing and sorting.
    pub(crate) duration: Arc<BoundInstruments<Histogram<f64>, DurationKey, f64>>,
    pub(crate) query_text: QueryText,
    pub(crate) filter: Option<Filter>,
    pub(crate) require_parent_span: bool,
    /// Bound instruments are on (pool metrics bind their fixed attributes once).
    #[cfg_attr(not(feature = "deadpool"), allow(dead_code))]
    pub(crate) bind: bool,
}

impl fmt::Debug for RedisInstrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInstrumentation")
            .field("query_text", &self.shared.query_text)
            .field("filter", &self.shared.filter.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for RedisInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl Shared {
    /// The tracer and instruments of `instrumentation`, with default options.
    fn new(instrumentation: &Instrumentation) -> Self {
        let (tracer, meter) = instrumentation.tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        let duration = Arc::new(BoundInstruments::new(
            duration_histogram(
                &meter,
                DB_CLIENT_OPERATION_DURATION,
                "Duration of database client operations.",
                &DB_DURATION_BUCKETS,
            ),
            instrumentation.bound_instrument_capacity(),
        ));
        Shared {
            tracer,
            meter,
            duration,
            query_text: QueryText::default(),
            filter: None,
            require_parent_span: false,
            bind: instrumentation.bound_instrument_capacity() > 0,
        }
    }
}

impl RedisInstrumentation {
    /// Default options (masked query text, no filter) with the global tracer and meter
    /// providers.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new(&Instrumentation::new())),
        }
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::make_mut(&mut self.shared)
    }

    /// Uses the providers of `instrumentation` (globals for what it does not set) instead of
    /// the globals; the other options are kept.
    pub fn with_instrumentation(mut self, instrumentation: Instrumentation) -> Self {
        let fresh = Shared::new(&instrumentation);
        let shared = self.shared_mut();
        shared.tracer = fresh.tracer;
        shared.meter = fresh.meter;
        shared.duration = fresh.duration;
        shared.bind = fresh.bind;
        self
    }

    /// Sets what `db.query.text` contains (default [`QueryText::Masked`]).
    pub fn with_query_text(mut self, mode: QueryText) -> Self {
        self.shared_mut().query_text = mode;
        self
    }

    /// Instruments only operations `filter` matches; the others run without a span or metric.
    /// It receives the `db.operation.name` (`"PING"`, `"PIPELINE GET"`).
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.shared_mut().filter = Some(filter);
        self
    }

    /// Records no span for a command that has no parent span (health checks, background jobs,
    /// commands outside any request), off by default. Its `db.client.operation.duration` is
    /// still recorded.
    pub fn with_require_parent_span(mut self, require: bool) -> Self {
        self.shared_mut().require_parent_span = require;
        self
    }

    /// Wraps `inner` (a `MultiplexedConnection`, `ConnectionManager`, deadpool-redis `Connection`,
    /// or any other [`redis::aio::ConnectionLike`]). `info` is the connection info the connection
    /// was opened with (`client.get_connection_info()`); it gives `server.address`,
    /// `server.port`, `network.peer.*` and `db.namespace` (see [`Target`]).
    pub fn connection<C>(&self, inner: C, info: &ConnectionInfo) -> InstrumentedConnection<C> {
        InstrumentedConnection::new(inner, self.clone(), Arc::new(Target::from_connection_info(info)))
    }

    #[cfg_attr(not(feature = "deadpool"), allow(dead_code))]
    pub(crate) fn meter(&self) -> &Meter {
        &self.shared.meter
    }
}

/// Where a connection points, as span and metric attributes.
///
/// * `server.address`: the host of the connection info (or the Unix socket path); `server.port`
///   only when it is not 6379.
/// * `network.peer.address` / `network.peer.port`: only when the host is an IP address literal;
///   for a host name the resolved peer is not visible through `ConnectionLike`.
/// * `db.namespace`: the database index **given at connect time** (`redis://host/3` gives
///   `"3"`), as a string. A later `SELECT` on the connection is not tracked.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Equal for targets with equal attributes (see [`target_id`]): the bound-instrument key.
    pub(crate) id: u64,
    pub(crate) attributes: Vec<KeyValue>,
    /// The server with the port as connected (default or not), for the pool name.
    pub(crate) server: Option<ServerAddress>,
    pub(crate) namespace: String,
}

/// An id per distinct (address, port, namespace), so that connections to the same server share
/// bound metric handles. Past a cap of distinct targets, each new target gets a fresh id (its
/// points are still right; it just binds its own handles, or records unbound once the cache is
/// full), so the table stays bounded.
fn target_id(address: &str, port: Option<u16>, namespace: &str) -> u64 {
    type Ids = HashMap<(String, Option<u16>, String), u64>;
    static IDS: Mutex<Option<Ids>> = Mutex::new(None);
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const MAX_TARGETS: usize = 1024;
    let next = || NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut ids = IDS.lock().unwrap_or_else(|p| p.into_inner());
    let ids = ids.get_or_insert_with(HashMap::new);
    let key = (address.to_owned(), port, namespace.to_owned());
    if let Some(id) = ids.get(&key) {
        return *id;
    }
    let id = next();
    if ids.len() < MAX_TARGETS {
        ids.insert(key, id);
    }
    id
}

impl Target {
    /// The target of connections opened with `info`.
    pub fn from_connection_info(info: &ConnectionInfo) -> Self {
        let namespace = info.redis_settings().db().to_string();
        let server = match info.addr() {
            // The host as the one `server.address` rule reads it (brackets of an IPv6 literal
            // dropped); the port comes from the connection info, not the host text.
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                split_authority(host).map(|(host, _)| ServerAddress::from_value(static_str(host), Some(*port)))
            }
            ConnectionAddr::Unix(path) => Some(ServerAddress::from_value(static_str(&path.to_string_lossy()), None))
                .filter(|s| !s.address.as_str().is_empty()),
            // `ConnectionAddr` is non-exhaustive.
            #[allow(unreachable_patterns)]
            _ => None,
        };
        let mut attributes = vec![
            KeyValue::new(DB_SYSTEM_NAME, "redis"),
            KeyValue::new(DB_NAMESPACE, static_str(&namespace)),
        ];
        if let Some(server) = &server {
            // `server.port` only when it is not Redis's default.
            ServerAddress::from_value(server.address.clone(), server.port.filter(|p| *p != DEFAULT_PORT))
                .push_attributes(&mut attributes);
            if let (Ok(ip), Some(p)) = (server.address.as_str().parse::<std::net::IpAddr>(), server.port) {
                attributes.push(KeyValue::new(NETWORK_PEER_ADDRESS, static_str(&ip.to_string())));
                attributes.push(KeyValue::new(NETWORK_PEER_PORT, i64::from(p)));
            }
        }
        let id = match &server {
            Some(s) => target_id(s.address.as_str(), s.port, &namespace),
            None => target_id("", None, &namespace),
        };
        Self {
            id,
            attributes,
            server,
            namespace,
        }
    }

    /// The default pool name: `server.address:server.port/db.namespace` (`127.0.0.1:6379/0`),
    /// or `path/db.namespace` for a Unix socket.
    pub fn pool_name(&self) -> String {
        default_pool_name(self.server.as_ref(), &self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;

    #[test]
    fn target_attributes() {
        let t = Target::from_connection_info(&"redis://127.0.0.1:6379/3".into_connection_info().unwrap());
        assert_eq!(
            t.attributes,
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("db.namespace", "3"),
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("network.peer.address", "127.0.0.1"),
                KeyValue::new("network.peer.port", 6379i64),
            ]
        );
        assert_eq!(t.pool_name(), "127.0.0.1:6379/3");
        let t = Target::from_connection_info(&"redis://cache.internal:6380".into_connection_info().unwrap());
        assert_eq!(
            t.attributes,
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("db.namespace", "0"),
                KeyValue::new("server.address", "cache.internal"),
                KeyValue::new("server.port", 6380i64),
            ]
        );
        assert_eq!(t.pool_name(), "cache.internal:6380/0");
    }

    #[test]
    fn ipv6_and_unix_targets_follow_the_one_address_rule() {
        let t = Target::from_connection_info(&"redis://[::1]:6380/2".into_connection_info().unwrap());
        assert_eq!(
            t.attributes,
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("db.namespace", "2"),
                KeyValue::new("server.address", "::1"),
                KeyValue::new("server.port", 6380i64),
                KeyValue::new("network.peer.address", "::1"),
                KeyValue::new("network.peer.port", 6380i64),
            ]
        );
        assert_eq!(t.pool_name(), "::1:6380/2");
        let t = Target::from_connection_info(&"redis+unix:///run/redis.sock?db=1".into_connection_info().unwrap());
        assert_eq!(
            t.attributes,
            vec![
                KeyValue::new("db.system.name", "redis"),
                KeyValue::new("db.namespace", "1"),
                KeyValue::new("server.address", "/run/redis.sock"),
            ]
        );
        assert_eq!(t.pool_name(), "/run/redis.sock/1");
    }

    #[test]
    fn equal_targets_share_an_id() {
        let info = |url: &str| url.into_connection_info().unwrap();
        let a = Target::from_connection_info(&info("redis://127.0.0.1:6379/3"));
        let b = Target::from_connection_info(&info("redis://127.0.0.1:6379/3"));
        let c = Target::from_connection_info(&info("redis://127.0.0.1:6379/4"));
        assert_eq!(a.id, b.id);
        assert_ne!(a.id, c.id);
    }
}
