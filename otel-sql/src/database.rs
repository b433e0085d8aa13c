//! What differs between the supported databases: dialect, `db.system.name`, where the server
//! address and namespace come from, and how an error maps to `db.response.status_code`.
//!
//! [`ServerInfo`] is shared by every adapter; the rest is sqlx's (feature `sqlx`).

#[cfg(feature = "sqlx")]
use std::borrow::Cow;

#[cfg(feature = "sqlx")]
use futures_core::future::BoxFuture;
#[cfg(feature = "sqlx")]
use sqlx::{Connection, Database};

use otelrs_core::conv::ServerAddress;
#[cfg(any(feature = "sqlx", feature = "diesel"))]
use otelrs_core::hotpath::intern::static_str;

#[cfg(feature = "sqlx")]
use crate::sanitize::Dialect;

/// Where a pool connects to, read from its connect options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `server.address` (host name, IP address or Unix socket path) and `server.port` (set only
    /// when it is not the database's default port), in otelrs-core's one address type.
    pub server: Option<ServerAddress>,
    /// `db.namespace`.
    pub namespace: Option<String>,
}

/// The address of a connection as an interned attribute string (spans clone it for free).
#[cfg(any(feature = "sqlx", feature = "diesel"))]
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "diesel")),
    allow(dead_code)
)]
pub(crate) fn server(address: &str, port: Option<u16>) -> Option<ServerAddress> {
    (!address.is_empty()).then(|| ServerAddress::from_value(static_str(address), port))
}

#[cfg(feature = "sqlx")]
mod sealed {
    pub trait Sealed {}
}

/// A database this crate instruments: PostgreSQL, MySQL/MariaDB and SQLite (each behind its
/// cargo feature). Sealed.
#[cfg(feature = "sqlx")]
pub trait InstrumentedDatabase: Database + sealed::Sealed {
    /// The SQL dialect of the sanitizer.
    const DIALECT: Dialect;
    /// `db.system.name` unless detected otherwise (MySQL may turn out to be `mariadb`).
    const SYSTEM_NAME: &'static str;

    /// Server address, non-default port and namespace from the connect options.
    fn server_info(options: &<Self::Connection as Connection>::Options) -> ServerInfo;

    /// The TCP port as configured, default or not (for the default pool name).
    fn configured_port(options: &<Self::Connection as Connection>::Options) -> Option<u16>;

    /// Asks the server which `db.system.name` it is (MySQL vs MariaDB); others return
    /// [`SYSTEM_NAME`](Self::SYSTEM_NAME) without I/O.
    fn detect_system(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<&'static str, sqlx::Error>> {
        let _ = pool;
        Box::pin(std::future::ready(Ok(Self::SYSTEM_NAME)))
    }

    /// `db.response.status_code` of a database error: the SQLSTATE for PostgreSQL, the error
    /// number for MySQL and MariaDB, the (extended) result code for SQLite.
    fn status_code(error: &(dyn sqlx::error::DatabaseError + 'static)) -> Option<String>;
}

/// The low-cardinality `error.type` of a failed operation, and its `db.response.status_code`.
///
/// Database errors use their status code (SQLSTATE `23505`, MySQL `1062`, SQLite `2067`) for
/// both. Other errors map to a fixed identifier:
///
/// | sqlx error | `error.type` |
/// | --- | --- |
/// | `Io` | the I/O kind: `connection_reset`, `unexpected_eof`, `timeout`, `broken_pipe`, ..., else `io` |
/// | `PoolTimedOut` | `pool_timeout` |
/// | `PoolClosed` | `pool_closed` |
/// | `Tls` | `tls` |
/// | `Protocol` | `protocol` |
/// | `Configuration` | `configuration` |
/// | `Encode` | `encode` |
/// | `Decode`, `ColumnDecode` | `decode` |
/// | `RowNotFound` | `row_not_found` |
/// | `TypeNotFound` | `type_not_found` |
/// | `ColumnNotFound`, `ColumnIndexOutOfBounds` | `column_not_found` |
/// | `WorkerCrashed` | `worker_crashed` |
/// | `InvalidArgument` | `invalid_argument` |
/// | `BeginFailed`, `InvalidSavePointStatement` | `transaction` |
/// | anything else | `_OTHER` |
#[cfg(feature = "sqlx")]
pub fn classify_error<DB: InstrumentedDatabase>(error: &sqlx::Error) -> (Cow<'static, str>, Option<String>) {
    use sqlx::Error as E;
    let static_type = match error {
        E::Database(db) => {
            let code = DB::status_code(db.as_ref());
            return match code {
                Some(code) => (Cow::Owned(code.clone()), Some(code)),
                None => (Cow::Borrowed(otelrs_core::status::ERROR_TYPE_OTHER), None),
            };
        }
        E::Io(io) => otelrs_core::conv::io_error_type(io),
        E::PoolTimedOut => "pool_timeout",
        E::PoolClosed => "pool_closed",
        E::Tls(_) => "tls",
        E::Protocol(_) => "protocol",
        E::Configuration(_) => "configuration",
        E::Encode(_) => "encode",
        E::Decode(_) | E::ColumnDecode { .. } => "decode",
        E::RowNotFound => "row_not_found",
        E::TypeNotFound { .. } => "type_not_found",
        E::ColumnNotFound(_) | E::ColumnIndexOutOfBounds { .. } => "column_not_found",
        E::WorkerCrashed => "worker_crashed",
        E::InvalidArgument(_) => "invalid_argument",
        E::BeginFailed | E::InvalidSavePointStatement => "transaction",
        _ => otelrs_core::status::ERROR_TYPE_OTHER,
    };
    (Cow::Borrowed(static_type), None)
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgDatabaseError};
    use sqlx::Postgres;

    impl sealed::Sealed for Postgres {}

    /// `db.namespace` is the database name; when the connect options name none, PostgreSQL
    /// connects to the database named after the user, and that name is used.
    impl InstrumentedDatabase for Postgres {
        const DIALECT: Dialect = Dialect::PostgreSql;
        const SYSTEM_NAME: &'static str = "postgresql";

        fn server_info(options: &PgConnectOptions) -> ServerInfo {
            let namespace = options
                .get_database()
                .unwrap_or_else(|| options.get_username())
                .to_owned();
            let (address, port) = match options.get_socket() {
                Some(socket) => (socket.to_string_lossy().into_owned(), None),
                None => (
                    options.get_host().to_owned(),
                    Some(options.get_port()).filter(|p| *p != 5432),
                ),
            };
            ServerInfo {
                server: server(&address, port),
                namespace: Some(namespace).filter(|n| !n.is_empty()),
            }
        }

        fn configured_port(options: &PgConnectOptions) -> Option<u16> {
            options.get_socket().is_none().then(|| options.get_port())
        }

        fn status_code(error: &(dyn sqlx::error::DatabaseError + 'static)) -> Option<String> {
            error
                .try_downcast_ref::<PgDatabaseError>()
                .map(|e| e.code().to_owned())
                .or_else(|| error.code().map(Cow::into_owned))
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
    use sqlx::MySql;

    impl sealed::Sealed for MySql {}

    /// `db.namespace` is the database named in the connect options (a later `USE` is not
    /// tracked).
    impl InstrumentedDatabase for MySql {
        const DIALECT: Dialect = Dialect::MySql;
        const SYSTEM_NAME: &'static str = "mysql";

        fn server_info(options: &MySqlConnectOptions) -> ServerInfo {
            let (address, port) = match options.get_socket() {
                Some(socket) => (socket.to_string_lossy().into_owned(), None),
                None => (
                    options.get_host().to_owned(),
                    Some(options.get_port()).filter(|p| *p != 3306),
                ),
            };
            ServerInfo {
                server: server(&address, port),
                namespace: options.get_database().filter(|d| !d.is_empty()).map(str::to_owned),
            }
        }

        fn detect_system(pool: &sqlx::Pool<MySql>) -> BoxFuture<'_, Result<&'static str, sqlx::Error>> {
            Box::pin(async move {
                let version: String = sqlx::query_scalar("SELECT VERSION()").fetch_one(pool).await?;
                Ok(if version.to_ascii_lowercase().contains("mariadb") {
                    "mariadb"
                } else {
                    "mysql"
                })
            })
        }

        fn configured_port(options: &MySqlConnectOptions) -> Option<u16> {
            options.get_socket().is_none().then(|| options.get_port())
        }

        fn status_code(error: &(dyn sqlx::error::DatabaseError + 'static)) -> Option<String> {
            error
                .try_downcast_ref::<MySqlDatabaseError>()
                .map(|e| e.number().to_string())
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::Sqlite;

    impl sealed::Sealed for Sqlite {}

    /// `db.namespace` is the database file name as configured; in-memory databases
    /// (`sqlite::memory:`) are reported as `:memory:`. There is no `server.address`.
    impl InstrumentedDatabase for Sqlite {
        const DIALECT: Dialect = Dialect::Sqlite;
        const SYSTEM_NAME: &'static str = "sqlite";

        fn server_info(options: &SqliteConnectOptions) -> ServerInfo {
            let file = options.get_filename().to_string_lossy();
            let namespace = if file.starts_with("file:sqlx-in-memory-") {
                ":memory:".to_owned()
            } else {
                file.into_owned()
            };
            ServerInfo {
                server: None,
                namespace: Some(namespace).filter(|n| !n.is_empty()),
            }
        }

        fn configured_port(_: &SqliteConnectOptions) -> Option<u16> {
            None
        }

        fn status_code(error: &(dyn sqlx::error::DatabaseError + 'static)) -> Option<String> {
            error.code().map(Cow::into_owned)
        }
    }
}
