//! diesel-async's deadpool and bb8 pools, with instrumented connections and the
//! `db.client.connection.*` metrics.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use ::diesel::ConnectionResult;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig, SetupCallback};
use diesel_async::AsyncConnection;
use futures_core::future::BoxFuture;
use otelrs_core::conv::pool::{PoolMetrics, PoolStatus};

use super::{target, DieselInstrumentation};
use crate::telemetry::{pool_name, scope};

type Manager<C> = AsyncDieselConnectionManager<C>;

fn to_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl DieselInstrumentation {
    /// `db.client.connection.pool.name` of a pool for `url`: the options' name, else
    /// `{server.address}:{port}/{db.namespace}` with the port as configured (the namespace
    /// alone for SQLite), as for sqlx pools.
    fn pool_name(&self, url: &str) -> Cow<'static, str> {
        let target = target::parse(url);
        pool_name(&self.options, &target.server, target.configured_port)
    }

    /// Registers the pool metrics (observing the pool once `slot` holds it) and wraps the
    /// manager's setup so that every connection it creates is instrumented and its creation
    /// time recorded.
    fn instrumented_manager<C, P>(
        &self,
        url: &str,
        config: ManagerConfig<C>,
        slot: Arc<OnceLock<P>>,
        status: fn(&P) -> Option<PoolStatus>,
    ) -> (Manager<C>, Arc<PoolMetrics>)
    where
        C: AsyncConnection + 'static,
        P: Send + Sync + 'static,
    {
        let meter = self.options.instrumentation.meter(scope());
        let bind = self.options.instrumentation.bound_instrument_capacity() > 0;
        let metrics = Arc::new(PoolMetrics::register(&meter, self.pool_name(url), bind, move || {
            slot.get().and_then(status)
        }));
        let ManagerConfig {
            recycling_method,
            custom_setup,
            ..
        } = config;
        let diesel = self.clone();
        let created = Arc::clone(&metrics);
        let mut config = ManagerConfig::default();
        config.recycling_method = recycling_method;
        config.custom_setup = setup_callback(move |url: &str| {
            let establish = (custom_setup)(url);
            let instrumentation = diesel.connection(url);
            let created = Arc::clone(&created);
            Box::pin(async move {
                let start = Instant::now();
                let mut conn = establish.await?;
                created.record_create_time(start.elapsed());
                conn.set_instrumentation(instrumentation);
                Ok(conn)
            })
        });
        (AsyncDieselConnectionManager::new_with_config(url, config), metrics)
    }

    /// A diesel-async deadpool pool for `url` whose connections carry this instrumentation,
    /// with the pool metrics of the [module](super#metrics). `config` is the manager's
    /// (`ManagerConfig::default()`, or with a recycling method and a custom setup, which still
    /// runs); `build` makes the pool from the instrumented manager, with the sizes and timeouts
    /// you choose.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_async::pooled_connection::deadpool::Pool;
    /// use diesel_async::pooled_connection::ManagerConfig;
    /// use diesel_async::{AsyncPgConnection, RunQueryDsl};
    /// use otelrs_sql::diesel::DieselInstrumentation;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let diesel = DieselInstrumentation::new(SqlOptions::new());
    /// let pool = diesel.deadpool::<AsyncPgConnection, _>(
    ///     "postgres://postgres@127.0.0.1:5432/test",
    ///     ManagerConfig::default(),
    ///     |manager| Pool::builder(manager).max_size(8).build(),
    /// )?;
    /// let mut conn = pool.get().await?;
    /// diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// What `build` returns.
    pub fn deadpool<C, E>(
        &self,
        url: &str,
        config: ManagerConfig<C>,
        build: impl FnOnce(Manager<C>) -> Result<deadpool::managed::Pool<Manager<C>>, E>,
    ) -> Result<InstrumentedDeadpool<C>, E>
    where
        C: AsyncConnection + 'static,
        Manager<C>: deadpool::managed::Manager<Type = C>,
    {
        let slot: Arc<OnceLock<deadpool::managed::WeakPool<Manager<C>>>> = Arc::default();
        let (manager, metrics) = self.instrumented_manager(url, config, Arc::clone(&slot), |weak| {
            weak.upgrade().map(|pool| deadpool_status(&pool.status()))
        });
        let pool = build(manager)?;
        let _ = slot.set(pool.weak());
        Ok(InstrumentedDeadpool { pool, metrics })
    }

    /// A diesel-async bb8 pool for `url` whose connections carry this instrumentation, with the
    /// pool metrics of the [module](super#metrics) (`pending_requests` counts the tasks waiting
    /// in [`InstrumentedBb8Pool::get`]). `build` makes the pool from the instrumented manager.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use diesel_async::pooled_connection::bb8::Pool;
    /// use diesel_async::pooled_connection::ManagerConfig;
    /// use diesel_async::{AsyncMysqlConnection, RunQueryDsl};
    /// use otelrs_sql::diesel::DieselInstrumentation;
    /// use otelrs_sql::SqlOptions;
    ///
    /// let diesel = DieselInstrumentation::new(SqlOptions::new().with_system_name("mariadb"));
    /// let pool = diesel
    ///     .bb8::<AsyncMysqlConnection, _, _>("mysql://root@127.0.0.1:3306/test", ManagerConfig::default(), |manager| {
    ///         Pool::builder().max_size(8).build(manager)
    ///     })
    ///     .await?;
    /// let mut conn = pool.get().await?;
    /// diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// What `build` returns.
    pub async fn bb8<C, E, F>(
        &self,
        url: &str,
        config: ManagerConfig<C>,
        build: impl FnOnce(Manager<C>) -> F,
    ) -> Result<InstrumentedBb8Pool<C>, E>
    where
        C: AsyncConnection + 'static,
        Manager<C>: bb8::ManageConnection<Connection = C>,
        F: Future<Output = Result<bb8::Pool<Manager<C>>, E>>,
    {
        let slot: Arc<OnceLock<Bb8Weak<C>>> = Arc::default();
        let (manager, metrics) = self.instrumented_manager(url, config, Arc::clone(&slot), |weak| {
            let shared = weak.0.upgrade()?;
            let state = shared.pool.state();
            let pending = shared.pending.load(std::sync::atomic::Ordering::Relaxed);
            Some(PoolStatus {
                idle: i64::from(state.idle_connections),
                used: i64::from(state.connections.saturating_sub(state.idle_connections)),
                max: i64::from(shared.pool.config().max_size),
                pending: pending.max(0),
            })
        });
        let pool = build(manager).await?;
        let shared = Arc::new(Bb8Shared {
            pool,
            pending: Default::default(),
        });
        let _ = slot.set(Bb8Weak(Arc::downgrade(&shared)));
        Ok(InstrumentedBb8Pool { shared, metrics })
    }
}

/// The manager setup as diesel-async stores it (the closure's future borrows the URL).
fn setup_callback<C, F>(f: F) -> SetupCallback<C>
where
    F: for<'a> Fn(&'a str) -> BoxFuture<'a, ConnectionResult<C>> + Send + Sync + 'static,
{
    Box::new(f)
}

/// deadpool's status as the pool gauges report it: `available` idle, `size - available` used,
/// `max_size`, `waiting`.
fn deadpool_status(s: &deadpool::managed::Status) -> PoolStatus {
    PoolStatus {
        idle: to_i64(s.available),
        used: to_i64(s.size.saturating_sub(s.available)),
        max: to_i64(s.max_size),
        pending: to_i64(s.waiting),
    }
}

/// A diesel-async deadpool pool whose connections are instrumented, recording the pool metrics
/// of semantic conventions; made by [`DieselInstrumentation::deadpool`]. Cheap to clone.
///
/// The gauges read the pool through a weak reference: once every clone is dropped they report
/// nothing.
pub struct InstrumentedDeadpool<C: AsyncConnection + 'static>
where
    Manager<C>: deadpool::managed::Manager,
{
    pool: deadpool::managed::Pool<Manager<C>>,
    metrics: Arc<PoolMetrics>,
}

impl<C: AsyncConnection + 'static> Clone for InstrumentedDeadpool<C>
where
    Manager<C>: deadpool::managed::Manager,
{
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<C: AsyncConnection + 'static> fmt::Debug for InstrumentedDeadpool<C>
where
    Manager<C>: deadpool::managed::Manager,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedDeadpool")
            .field("pool_name", &self.metrics.pool_name())
            .field("status", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl<C: AsyncConnection + 'static> InstrumentedDeadpool<C>
where
    Manager<C>: deadpool::managed::Manager<Type = C>,
{
    /// Takes a connection as deadpool does, recording `db.client.connection.wait_time` (every
    /// attempt) and `db.client.connection.timeouts`; `use_time` is recorded when the
    /// connection is dropped. Errors are deadpool's, unchanged.
    ///
    /// # Errors
    ///
    /// deadpool's `PoolError`: a timeout, a connection error, a closed pool.
    pub async fn get(
        &self,
    ) -> Result<
        PooledConnection<deadpool::managed::Object<Manager<C>>>,
        deadpool::managed::PoolError<<Manager<C> as deadpool::managed::Manager>::Error>,
    > {
        let start = Instant::now();
        let result = self.pool.get().await;
        self.metrics.record_wait_time(start.elapsed());
        match result {
            Ok(conn) => Ok(PooledConnection::new(conn, Arc::clone(&self.metrics))),
            Err(e) => {
                if matches!(e, deadpool::managed::PoolError::Timeout(_)) {
                    self.metrics.record_timeout();
                }
                Err(e)
            }
        }
    }

    /// The wrapped pool (connections taken from it directly are instrumented too, but their
    /// wait and use times are not recorded).
    pub fn inner(&self) -> &deadpool::managed::Pool<Manager<C>> {
        &self.pool
    }

    /// `db.client.connection.pool.name` of this pool.
    pub fn pool_name(&self) -> &str {
        self.metrics.pool_name()
    }
}

struct Bb8Shared<C: AsyncConnection + 'static>
where
    Manager<C>: bb8::ManageConnection,
{
    pool: bb8::Pool<Manager<C>>,
    /// Tasks waiting in [`InstrumentedBb8Pool::get`].
    pending: std::sync::atomic::AtomicI64,
}

/// The pool as the gauges see it (they must not keep it alive).
struct Bb8Weak<C: AsyncConnection + 'static>(Weak<Bb8Shared<C>>)
where
    Manager<C>: bb8::ManageConnection;

/// A diesel-async bb8 pool whose connections are instrumented, recording the pool metrics of
/// semantic conventions; made by [`DieselInstrumentation::bb8`]. Cheap to clone.
///
/// The gauges read the pool through a weak reference: once every clone is dropped they report
/// nothing (keep clones of this type, not of the inner pool).
pub struct InstrumentedBb8Pool<C: AsyncConnection + 'static>
where
    Manager<C>: bb8::ManageConnection,
{
    shared: Arc<Bb8Shared<C>>,
    metrics: Arc<PoolMetrics>,
}

impl<C: AsyncConnection + 'static> Clone for InstrumentedBb8Pool<C>
where
    Manager<C>: bb8::ManageConnection,
{
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<C: AsyncConnection + 'static> fmt::Debug for InstrumentedBb8Pool<C>
where
    Manager<C>: bb8::ManageConnection,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedBb8Pool")
            .field("pool_name", &self.metrics.pool_name())
            .field("state", &self.shared.pool.state())
            .finish_non_exhaustive()
    }
}

impl<C: AsyncConnection + 'static> InstrumentedBb8Pool<C>
where
    Manager<C>: bb8::ManageConnection<Connection = C>,
{
    /// Takes a connection as bb8's `get_owned` does, recording `db.client.connection.wait_time`
    /// (every attempt), `pending_requests` while waiting and `timeouts`; `use_time` is
    /// recorded when the connection is dropped. Errors are bb8's, unchanged.
    ///
    /// # Errors
    ///
    /// bb8's `RunError`: a timeout or a connection error.
    pub async fn get(
        &self,
    ) -> Result<
        PooledConnection<bb8::PooledConnection<'static, Manager<C>>>,
        bb8::RunError<<Manager<C> as bb8::ManageConnection>::Error>,
    > {
        use std::sync::atomic::Ordering;
        let start = Instant::now();
        let result = {
            struct Waiting<'a>(&'a std::sync::atomic::AtomicI64);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::Relaxed);
                }
            }
            self.shared.pending.fetch_add(1, Ordering::Relaxed);
            let _waiting = Waiting(&self.shared.pending);
            self.shared.pool.get_owned().await
        };
        self.metrics.record_wait_time(start.elapsed());
        match result {
            Ok(conn) => Ok(PooledConnection::new(conn, Arc::clone(&self.metrics))),
            Err(e) => {
                if matches!(e, bb8::RunError::TimedOut) {
                    self.metrics.record_timeout();
                }
                Err(e)
            }
        }
    }

    /// The wrapped pool (connections taken from it directly are instrumented too, but their
    /// wait and use times are not recorded).
    pub fn inner(&self) -> &bb8::Pool<Manager<C>> {
        &self.shared.pool
    }

    /// `db.client.connection.pool.name` of this pool.
    pub fn pool_name(&self) -> &str {
        self.metrics.pool_name()
    }
}

/// A connection taken from an [`InstrumentedDeadpool`] or [`InstrumentedBb8Pool`]: it derefs
/// to the diesel-async connection, so `&mut conn` is what `RunQueryDsl` takes. Dropping it
/// returns it to the pool and records `db.client.connection.use_time`.
pub struct PooledConnection<T> {
    conn: T,
    since: Instant,
    metrics: Arc<PoolMetrics>,
}

impl<T> PooledConnection<T> {
    fn new(conn: T, metrics: Arc<PoolMetrics>) -> Self {
        Self {
            conn,
            since: Instant::now(),
            metrics,
        }
    }

    /// The pool's own guard (deadpool's `Object`, bb8's `PooledConnection`).
    pub fn inner(&self) -> &T {
        &self.conn
    }
}

impl<T> fmt::Debug for PooledConnection<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("pool_name", &self.metrics.pool_name())
            .finish_non_exhaustive()
    }
}

impl<T: Deref> Deref for PooledConnection<T> {
    type Target = T::Target;
    fn deref(&self) -> &T::Target {
        &self.conn
    }
}

impl<T: DerefMut> DerefMut for PooledConnection<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.conn
    }
}

impl<T> Drop for PooledConnection<T> {
    fn drop(&mut self) {
        self.metrics.record_use_time(self.since.elapsed());
    }
}
