//! [`InstrumentedPool`]: a deadpool-redis pool whose connections are instrumented and which records
//! the `db.client.connection.*` pool metrics.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleResult, WeakPool};
use deadpool_redis::{ConfigError, CreatePoolError, Runtime};
use otelrs_core::conv::pool::{PoolMetrics, PoolStatus};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value};

use crate::config::{RedisInstrumentation, Target};
use crate::connection::InstrumentedConnection;

/// A deadpool-redis `Manager` that also records `db.client.connection.create_time`.
struct TimedManager {
    inner: deadpool_redis::Manager,
    metrics: Arc<PoolMetrics>,
}

impl fmt::Debug for TimedManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimedManager")
            .field("inner", &self.inner)
            .field("pool_name", &self.metrics.pool_name())
            .finish_non_exhaustive()
    }
}

impl managed::Manager for TimedManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        let start = Instant::now();
        let conn = managed::Manager::create(&self.inner).await?;
        self.metrics.record_create_time(start.elapsed());
        Ok(conn)
    }

    async fn recycle(&self, conn: &mut MultiplexedConnection, metrics: &Metrics) -> RecycleResult<RedisError> {
        managed::Manager::recycle(&self.inner, conn, metrics).await
    }

    fn detach(&self, conn: &mut MultiplexedConnection) {
        managed::Manager::detach(&self.inner, conn);
    }
}

struct PoolShared {
    redis: RedisInstrumentation,
    target: Arc<Target>,
    name: String,
    metrics: Arc<PoolMetrics>,
}

/// A deadpool-redis pool that hands out instrumented connections and records the pool metrics of
/// semantic conventions (all with `db.client.connection.pool.name`):
///
/// | Metric | Instrument | Unit | Source |
/// | --- | --- | --- | --- |
/// | `db.client.connection.count` | observable up/down counter, `db.client.connection.state` = `idle` / `used` | `{connection}` | `Pool::status()` at collection: `available` / `size - available` |
/// | `db.client.connection.max` | observable up/down counter | `{connection}` | `status().max_size` |
/// | `db.client.connection.pending_requests` | observable up/down counter | `{request}` | `status().waiting` |
/// | `db.client.connection.wait_time` | histogram | `s` | [`InstrumentedPool::get`] call to connection, successful gets |
/// | `db.client.connection.create_time` | histogram | `s` | the manager's `create()`, successful connections |
/// | `db.client.connection.use_time` | histogram | `s` | [`PooledConnection`] handed out to dropped |
/// | `db.client.connection.timeouts` | counter | `{timeout}` | `get()` failing with `PoolError::Timeout` (wait, create or recycle) |
///
/// The pool name defaults to `server.address:server.port/db.namespace` of the configured
/// connection (`127.0.0.1:6379/0`; a Unix socket gives `path/0`); set another with
/// [`InstrumentedPoolBuilder::with_pool_name`]. Names must be unique within the application.
///
/// The observable instruments read the pool through a weak reference: once every clone of the
/// pool is dropped they report nothing.
///
/// Names, units, descriptions and bucket advice are those of [`otelrs_core::conv::pool`], shared
/// with `otelrs-sql`.
#[derive(Clone)]
pub struct InstrumentedPool {
    pool: managed::Pool<TimedManager>,
    shared: Arc<PoolShared>,
}

impl fmt::Debug for InstrumentedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedPool")
            .field("name", &self.shared.name)
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

/// Builder of [`InstrumentedPool`], from a `deadpool_redis::Config`.
#[must_use]
#[derive(Debug)]
pub struct InstrumentedPoolBuilder {
    config: deadpool_redis::Config,
    runtime: Option<Runtime>,
    name: Option<String>,
    connection_config: Option<AsyncConnectionConfig>,
}

impl InstrumentedPoolBuilder {
    /// Connection settings (connect and response timeouts, ...) for the pool's connections, as
    /// `deadpool_redis::Manager::new_with_config` takes them.
    pub fn with_connection_config(mut self, config: AsyncConnectionConfig) -> Self {
        self.connection_config = Some(config);
        self
    }

    /// The runtime deadpool uses for its timeouts (required when the pool config sets any).
    pub fn with_runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Sets `db.client.connection.pool.name` (default `server.address:server.port/db.namespace`).
    pub fn with_pool_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Builds the pool and registers its metrics with the meter of `redis`.
    ///
    /// # Errors
    ///
    /// The errors of `deadpool_redis::Config::create_pool`: an invalid URL or connection info,
    /// both a URL and connection info set, or a pool config deadpool rejects (timeouts without a
    /// runtime).
    pub fn build(self, redis: &RedisInstrumentation) -> Result<InstrumentedPool, CreatePoolError> {
        let info: ConnectionInfo = match (&self.config.url, &self.config.connection) {
            (Some(url), None) => url.as_str().into_connection_info(),
            (None, Some(connection)) => connection.clone().into_connection_info(),
            (None, None) => deadpool_redis::ConnectionInfo::default().into_connection_info(),
            (Some(_), Some(_)) => return Err(CreatePoolError::Config(ConfigError::UrlAndConnectionSpecified)),
        }
        .map_err(|e| CreatePoolError::Config(ConfigError::Redis(e)))?;
        let manager = match self.connection_config {
            Some(cc) => deadpool_redis::Manager::new_with_config(info.clone(), cc),
            None => deadpool_redis::Manager::new(info.clone()),
        }
        .map_err(|e| CreatePoolError::Config(ConfigError::Redis(e)))?;
        let target = Arc::new(Target::from_connection_info(&info));
        let name = self.name.unwrap_or_else(|| target.pool_name());
        // deadpool refuses timeouts without a runtime (its only build error): refuse before the
        // metrics are registered, so that a failed build leaves no observers behind.
        let pool_config = self.config.get_pool_config();
        let timeouts = &pool_config.timeouts;
        if (timeouts.wait.is_some() || timeouts.create.is_some() || timeouts.recycle.is_some())
            && self.runtime.is_none()
        {
            return Err(CreatePoolError::Build(managed::BuildError::NoRuntimeSpecified));
        }

        // The manager records create times, so the metrics exist before the pool; the observers
        // read the pool through a weak reference set once it is built (nothing is observed
        // before, nor once every clone of the pool is dropped).
        let weak: Arc<OnceLock<WeakPool<TimedManager>>> = Arc::default();
        let read = Arc::clone(&weak);
        let metrics = Arc::new(PoolMetrics::register(
            redis.meter(),
            name.clone(),
            redis.shared.bind,
            move || read.get()?.upgrade().map(|pool| pool_status(&pool.status())),
        ));
        let mut builder = managed::Pool::builder(TimedManager {
            inner: manager,
            metrics: Arc::clone(&metrics),
        })
        .config(pool_config);
        if let Some(rt) = self.runtime {
            builder = builder.runtime(rt);
        }
        let pool = builder.build().map_err(CreatePoolError::Build)?;
        let _ = weak.set(pool.weak());

        let shared = Arc::new(PoolShared {
            redis: redis.clone(),
            target,
            name,
            metrics,
        });
        Ok(InstrumentedPool { pool, shared })
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// deadpool's status as the pool gauges report it: `available` idle, `size - available` used,
/// `max_size`, `waiting`.
fn pool_status(s: &deadpool::Status) -> PoolStatus {
    PoolStatus {
        idle: to_i64(s.available),
        used: to_i64(s.size.saturating_sub(s.available)),
        max: to_i64(s.max_size),
        pending: to_i64(s.waiting),
    }
}

impl InstrumentedPool {
    /// A builder from a deadpool-redis config (its URL or connection info and its pool config).
    pub fn builder(config: &deadpool_redis::Config) -> InstrumentedPoolBuilder {
        InstrumentedPoolBuilder {
            config: config.clone(),
            runtime: None,
            name: None,
            connection_config: None,
        }
    }

    /// Takes a connection from the pool, waiting or creating one as deadpool does, and wraps it
    /// so every command is instrumented. Errors are deadpool's, unchanged.
    ///
    /// # Errors
    ///
    /// `deadpool_redis::PoolError`: a timeout (counted in `db.client.connection.timeouts`), a
    /// connection error, or a closed pool.
    pub async fn get(&self) -> Result<PooledConnection, deadpool_redis::PoolError> {
        let start = Instant::now();
        match self.pool.get().await {
            Ok(object) => {
                let shared = &self.shared;
                shared.metrics.record_wait_time(start.elapsed());
                Ok(PooledConnection {
                    conn: InstrumentedConnection::new(PoolObject(object), shared.redis.clone(), shared.target.clone()),
                    borrowed: Instant::now(),
                    shared: shared.clone(),
                })
            }
            Err(e) => {
                if matches!(e, PoolError::Timeout(_)) {
                    self.shared.metrics.record_timeout();
                }
                Err(e)
            }
        }
    }

    /// The pool's current status (size, available, waiting, max size).
    pub fn status(&self) -> deadpool::Status {
        self.pool.status()
    }

    /// `db.client.connection.pool.name` of this pool.
    pub fn pool_name(&self) -> &str {
        &self.shared.name
    }

    /// Closes the pool: pending and future `get()` calls fail with `PoolError::Closed`.
    pub fn close(&self) {
        self.pool.close();
    }
}

/// A pooled connection object as a `ConnectionLike`.
struct PoolObject(Object<TimedManager>);

impl ConnectionLike for PoolObject {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        (*self.0).req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        (*self.0).req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        (*self.0).get_db()
    }
}

/// A connection borrowed from an [`InstrumentedPool`]: an instrumented `ConnectionLike` that
/// returns to the pool when dropped, recording `db.client.connection.use_time`.
pub struct PooledConnection {
    conn: InstrumentedConnection<PoolObject>,
    borrowed: Instant,
    shared: Arc<PoolShared>,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("pool", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        self.shared.metrics.record_use_time(self.borrowed.elapsed());
    }
}

impl ConnectionLike for PooledConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.conn.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
