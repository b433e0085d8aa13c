//! The shop's database: SQLite in memory (the default), PostgreSQL or MySQL/MariaDB, each pool
//! behind otelrs-sql's `InstrumentedPool`. The services call the few queries they need through
//! [`Store`], which writes each one in its database's dialect (placeholders, `RETURNING`,
//! auto-increment keys) so the spans read the same everywhere: `INSERT users`, `SELECT users`.
//!
//! A server database gets a namespace of its own per run (PostgreSQL: a schema `shop_{run}`,
//! MySQL/MariaDB: a database `shop_{run}`), dropped at shutdown, so concurrent runs and tests
//! never see each other's rows.

use std::str::FromStr as _;
use std::time::Duration;

use otelrs_core::Instrumentation;
use otelrs_sql::{InstrumentedPool, SqlOptions};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{AssertSqlSafe, MySql, Postgres, Sqlite};

use super::{unreachable_error, without_credentials, Error};

/// The default PostgreSQL URL (override with `DATABASE_URL`).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The default MySQL / MariaDB URL (override with `MYSQL_URL`).
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// How long connecting to a database server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database the shop uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbBackend {
    /// SQLite in memory, one database per service (nothing to install).
    Sqlite,
    /// PostgreSQL at this URL.
    Postgres {
        /// `postgres://…`
        url: String,
    },
    /// MySQL or MariaDB at this URL.
    MySql {
        /// `mysql://…`
        url: String,
    },
}

fn env_url(var: &str, scheme: &[&str], default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| scheme.iter().any(|s| v.starts_with(s)))
        .unwrap_or_else(|| default.to_owned())
}

impl DbBackend {
    /// `sqlite`, `postgres` (URL from `DATABASE_URL`, else [`DEFAULT_POSTGRES_URL`]), `mysql` /
    /// `mariadb` (URL from `MYSQL_URL`, else [`DEFAULT_MYSQL_URL`]), or a `postgres://` /
    /// `mysql://` URL.
    ///
    /// # Errors
    ///
    /// For anything else, with a message listing the accepted values.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "sqlite" => Ok(Self::Sqlite),
            "postgres" | "postgresql" => Ok(Self::Postgres {
                url: env_url("DATABASE_URL", &["postgres://", "postgresql://"], DEFAULT_POSTGRES_URL),
            }),
            "mysql" | "mariadb" => Ok(Self::MySql {
                url: env_url("MYSQL_URL", &["mysql://", "mariadb://"], DEFAULT_MYSQL_URL),
            }),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres { url: url.to_owned() })
            }
            url if url.starts_with("mysql://") || url.starts_with("mariadb://") => {
                Ok(Self::MySql { url: url.to_owned() })
            }
            other => Err(format!(
                "unknown database {other:?}: use sqlite, postgres, mysql or a postgres:// / mysql:// URL"
            )),
        }
    }

    /// `sqlite`, `postgres` or `mysql`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres { .. } => "postgres",
            Self::MySql { .. } => "mysql",
        }
    }
}

/// The shop's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `users`, written and read by `users`.
    Users,
    /// `orders`, written by `orders`.
    Orders,
    /// `notifications`, written by `notifier`.
    Notifications,
}

impl Table {
    fn ddl(self, db: &Store) -> &'static str {
        match (self, db) {
            (Self::Users, Store::Sqlite(_)) => {
                "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, \
                 email TEXT NOT NULL)"
            }
            (Self::Users, Store::Postgres(_)) => {
                "CREATE TABLE IF NOT EXISTS users (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL)"
            }
            (Self::Users, Store::MySql(_)) => {
                "CREATE TABLE IF NOT EXISTS users (id BIGINT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(255) NOT NULL, \
                 email VARCHAR(255) NOT NULL)"
            }
            (Self::Orders, Store::Sqlite(_)) => {
                "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY AUTOINCREMENT, user_id INTEGER NOT NULL, \
                 item TEXT NOT NULL, quantity INTEGER NOT NULL, status TEXT NOT NULL)"
            }
            (Self::Orders, Store::Postgres(_)) => {
                "CREATE TABLE IF NOT EXISTS orders (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, \
                 item TEXT NOT NULL, quantity BIGINT NOT NULL, status TEXT NOT NULL)"
            }
            (Self::Orders, Store::MySql(_)) => {
                "CREATE TABLE IF NOT EXISTS orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, user_id BIGINT NOT NULL, \
                 item VARCHAR(255) NOT NULL, quantity BIGINT NOT NULL, status VARCHAR(32) NOT NULL)"
            }
            (Self::Notifications, Store::Sqlite(_)) => {
                "CREATE TABLE IF NOT EXISTS notifications (id INTEGER PRIMARY KEY AUTOINCREMENT, \
                 order_id INTEGER NOT NULL, message TEXT NOT NULL)"
            }
            (Self::Notifications, Store::Postgres(_)) => {
                "CREATE TABLE IF NOT EXISTS notifications (id BIGSERIAL PRIMARY KEY, order_id BIGINT NOT NULL, \
                 message TEXT NOT NULL)"
            }
            (Self::Notifications, Store::MySql(_)) => {
                "CREATE TABLE IF NOT EXISTS notifications (id BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 order_id BIGINT NOT NULL, message VARCHAR(1024) NOT NULL)"
            }
        }
    }
}

/// One service's instrumented pool.
#[derive(Clone, Debug)]
pub enum Store {
    /// SQLite.
    Sqlite(InstrumentedPool<Sqlite>),
    /// PostgreSQL.
    Postgres(InstrumentedPool<Postgres>),
    /// MySQL or MariaDB.
    MySql(InstrumentedPool<MySql>),
}

/// A user row: id, name, email.
pub type UserRow = (i64, String, String);

impl Store {
    /// Creates `table` (uninstrumented: setup is not part of any request).
    pub async fn create_table(&self, table: Table) -> Result<(), sqlx::Error> {
        let ddl = table.ddl(self);
        match self {
            Self::Sqlite(db) => sqlx::query(ddl).execute(db.inner()).await.map(drop),
            Self::Postgres(db) => sqlx::query(ddl).execute(db.inner()).await.map(drop),
            Self::MySql(db) => sqlx::query(ddl).execute(db.inner()).await.map(drop),
        }
    }

    /// Inserts a user; returns its id.
    pub async fn insert_user(&self, name: &str, email: &str) -> Result<i64, sqlx::Error> {
        match self {
            Self::Sqlite(db) => {
                sqlx::query_scalar("INSERT INTO users (name, email) VALUES (?, ?) RETURNING id")
                    .bind(name)
                    .bind(email)
                    .fetch_one(db)
                    .await
            }
            Self::Postgres(db) => {
                sqlx::query_scalar("INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id")
                    .bind(name)
                    .bind(email)
                    .fetch_one(db)
                    .await
            }
            Self::MySql(db) => sqlx::query("INSERT INTO users (name, email) VALUES (?, ?)")
                .bind(name)
                .bind(email)
                .execute(db)
                .await
                .map(|r| r.last_insert_id() as i64),
        }
    }

    /// The user with this id, if any.
    pub async fn find_user(&self, id: i64) -> Result<Option<UserRow>, sqlx::Error> {
        match self {
            Self::Sqlite(db) => {
                sqlx::query_as("SELECT id, name, email FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(db)
                    .await
            }
            Self::Postgres(db) => {
                sqlx::query_as("SELECT id, name, email FROM users WHERE id = $1")
                    .bind(id)
                    .fetch_optional(db)
                    .await
            }
            Self::MySql(db) => {
                sqlx::query_as("SELECT id, name, email FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_optional(db)
                    .await
            }
        }
    }

    /// Inserts a placed order; returns its id.
    pub async fn insert_order(&self, user_id: i64, item: &str, quantity: u32) -> Result<i64, sqlx::Error> {
        let quantity = i64::from(quantity);
        match self {
            Self::Sqlite(db) => {
                sqlx::query_scalar(
                    "INSERT INTO orders (user_id, item, quantity, status) VALUES (?, ?, ?, 'placed') RETURNING id",
                )
                .bind(user_id)
                .bind(item)
                .bind(quantity)
                .fetch_one(db)
                .await
            }
            Self::Postgres(db) => {
                sqlx::query_scalar(
                    "INSERT INTO orders (user_id, item, quantity, status) VALUES ($1, $2, $3, 'placed') RETURNING id",
                )
                .bind(user_id)
                .bind(item)
                .bind(quantity)
                .fetch_one(db)
                .await
            }
            Self::MySql(db) => {
                sqlx::query("INSERT INTO orders (user_id, item, quantity, status) VALUES (?, ?, ?, 'placed')")
                    .bind(user_id)
                    .bind(item)
                    .bind(quantity)
                    .execute(db)
                    .await
                    .map(|r| r.last_insert_id() as i64)
            }
        }
    }

    /// Records a notification for an order.
    pub async fn insert_notification(&self, order_id: i64, message: &str) -> Result<(), sqlx::Error> {
        match self {
            Self::Sqlite(db) => sqlx::query("INSERT INTO notifications (order_id, message) VALUES (?, ?)")
                .bind(order_id)
                .bind(message)
                .execute(db)
                .await
                .map(drop),
            Self::Postgres(db) => sqlx::query("INSERT INTO notifications (order_id, message) VALUES ($1, $2)")
                .bind(order_id)
                .bind(message)
                .execute(db)
                .await
                .map(drop),
            Self::MySql(db) => sqlx::query("INSERT INTO notifications (order_id, message) VALUES (?, ?)")
                .bind(order_id)
                .bind(message)
                .execute(db)
                .await
                .map(drop),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(db) => db.close().await,
            Self::Postgres(db) => db.close().await,
            Self::MySql(db) => db.close().await,
        }
    }
}

/// The shop's database for one run: opens the services' pools and owns the run's namespace.
#[derive(Debug)]
pub struct Database {
    backend: DbBackend,
    admin: Admin,
    /// The run's schema (PostgreSQL) or database (MySQL/MariaDB).
    namespace: Option<String>,
}

#[derive(Debug)]
enum Admin {
    None,
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

fn pg_options(url: &str) -> Result<PgConnectOptions, Error> {
    PgConnectOptions::from_str(url)
        .map_err(|e| format!("invalid PostgreSQL URL {}: {e}", without_credentials(url)).into())
}

fn mysql_options(url: &str) -> Result<MySqlConnectOptions, Error> {
    MySqlConnectOptions::from_str(url)
        .map_err(|e| format!("invalid MySQL URL {}: {e}", without_credentials(url)).into())
}

/// One direct connection first: a pool's error ("timed out") would hide the reason (refused,
/// authentication, unknown database).
async fn probe<C: sqlx::Connection>(options: &<C as sqlx::Connection>::Options) -> Result<(), String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, C::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".to_owned()),
    }
}

impl Database {
    /// Connects to the server (if any) and creates the run's namespace `shop_{run_id}`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached (one line: the URL and how to start it) or refuses to
    /// create the namespace.
    pub async fn open(backend: &DbBackend, run_id: &str) -> Result<Self, Error> {
        let namespace = format!("shop_{run_id}");
        let admin = match backend {
            DbBackend::Sqlite => {
                return Ok(Self {
                    backend: backend.clone(),
                    admin: Admin::None,
                    namespace: None,
                })
            }
            DbBackend::Postgres { url } => {
                let options = pg_options(url)?;
                probe::<sqlx::PgConnection>(&options)
                    .await
                    .map_err(|e| unreachable_error("PostgreSQL", url, e, "postgres", "DATABASE_URL"))?;
                let pool = PgPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| unreachable_error("PostgreSQL", url, e, "postgres", "DATABASE_URL"))?;
                sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{namespace}\"")))
                    .execute(&pool)
                    .await
                    .map_err(|e| format!("cannot create schema {namespace} in PostgreSQL: {e}"))?;
                Admin::Postgres(pool)
            }
            DbBackend::MySql { url } => {
                let options = mysql_options(url)?;
                probe::<sqlx::MySqlConnection>(&options)
                    .await
                    .map_err(|e| unreachable_error("MySQL/MariaDB", url, e, "mariadb", "MYSQL_URL"))?;
                let pool = MySqlPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(|e| unreachable_error("MySQL/MariaDB", url, e, "mariadb", "MYSQL_URL"))?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE `{namespace}`")))
                    .execute(&pool)
                    .await
                    .map_err(|e| format!("cannot create database {namespace} in MySQL/MariaDB: {e}"))?;
                Admin::MySql(pool)
            }
        };
        Ok(Self {
            backend: backend.clone(),
            admin,
            namespace: Some(namespace),
        })
    }

    /// What the shop uses, for the demo's output.
    pub fn describe(&self) -> String {
        match (&self.backend, &self.namespace) {
            (DbBackend::Postgres { url }, Some(ns)) => {
                format!(
                    "PostgreSQL at {}, schema {ns} (dropped at exit)",
                    without_credentials(url)
                )
            }
            (DbBackend::MySql { url }, Some(ns)) => {
                format!(
                    "MySQL/MariaDB at {}, database {ns} (dropped at exit)",
                    without_credentials(url)
                )
            }
            _ => "SQLite in memory, one database per service".to_owned(),
        }
    }

    /// A pool for one service, instrumented with its telemetry.
    ///
    /// # Errors
    ///
    /// When the pool cannot connect.
    pub async fn store(&self, instrumentation: Instrumentation, service: &'static str) -> Result<Store, Error> {
        let options = SqlOptions::new()
            .with_instrumentation(instrumentation)
            .with_pool_name(service);
        match (&self.backend, &self.namespace) {
            (DbBackend::Postgres { url }, Some(ns)) => {
                // Every connection resolves the unqualified table names in the run's schema.
                let connect = pg_options(url)?.options([("search_path", ns.as_str())]);
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(connect)
                    .await
                    .map_err(|e| unreachable_error("PostgreSQL", url, e, "postgres", "DATABASE_URL"))?;
                Ok(Store::Postgres(InstrumentedPool::new(pool, options)))
            }
            (DbBackend::MySql { url }, Some(ns)) => {
                let connect = mysql_options(url)?.database(ns);
                let pool = MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(CONNECT_TIMEOUT)
                    .connect_with(connect)
                    .await
                    .map_err(|e| unreachable_error("MySQL/MariaDB", url, e, "mariadb", "MYSQL_URL"))?;
                // `connect` asks the server for its version: `db.system.name` is `mariadb` for MariaDB.
                Ok(Store::MySql(InstrumentedPool::connect(pool, options).await?))
            }
            _ => {
                // One connection that never expires: an in-memory database lives as long as its connection.
                let pool = SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect("sqlite::memory:")
                    .await?;
                Ok(Store::Sqlite(InstrumentedPool::new(pool, options)))
            }
        }
    }

    /// Drops the run's namespace (and everything in it) and closes the connection.
    ///
    /// # Errors
    ///
    /// When the server refuses.
    pub async fn drop_namespace(&self) -> Result<(), Error> {
        match (&self.admin, &self.namespace) {
            (Admin::Postgres(pool), Some(ns)) => {
                sqlx::query(AssertSqlSafe(format!("DROP SCHEMA IF EXISTS \"{ns}\" CASCADE")))
                    .execute(pool)
                    .await
                    .map_err(|e| format!("cannot drop schema {ns}: {e}"))?;
                pool.close().await;
            }
            (Admin::MySql(pool), Some(ns)) => {
                sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{ns}`")))
                    .execute(pool)
                    .await
                    .map_err(|e| format!("cannot drop database {ns}: {e}"))?;
                pool.close().await;
            }
            _ => {}
        }
        Ok(())
    }
}
