//! `error.type`, `db.response.status_code` and status description of a failed command.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::io;
use std::sync::Arc;

use redis::{ErrorKind, RedisError, Value};

/// What a failed operation reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    /// `error.type`.
    pub(crate) error_type: Cow<'static, str>,
    /// `db.response.status_code`: the Redis error prefix, for errors returned by the server.
    pub(crate) status_code: Option<Cow<'static, str>>,
    /// Span status description. Never the server's message, which may echo arguments.
    pub(crate) description: Option<Cow<'static, str>>,
}

impl Failure {
    /// An operation dropped before it completed.
    pub(crate) fn cancelled() -> Self {
        Self {
            error_type: Cow::Borrowed(otelrs_core::conv::ERROR_TYPE_CANCELLED),
            status_code: None,
            description: None,
        }
    }
}

/// A server error prefix as a `Cow`, borrowing the common ones.
fn code(prefix: &str) -> Cow<'static, str> {
    const KNOWN: &[&str] = &[
        "ERR",
        "WRONGTYPE",
        "NOSCRIPT",
        "WRONGPASS",
        "NOAUTH",
        "NOPERM",
        "EXECABORT",
        "LOADING",
        "MOVED",
        "ASK",
        "TRYAGAIN",
        "CLUSTERDOWN",
        "CROSSSLOT",
        "MASTERDOWN",
        "READONLY",
        "NOTBUSY",
        "NOSUB",
        "BUSY",
        "BUSYGROUP",
        "BUSYKEY",
        "OOM",
        "NOGROUP",
        "NOREPLICAS",
        "MISCONF",
        "UNBLOCKED",
    ];
    match KNOWN.iter().find(|k| **k == prefix) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(sanitize_prefix(prefix)),
    }
}

/// Keeps an unknown prefix low-cardinality and free of data: at most 32 upper-case letters,
/// digits and `_`, else `_OTHER`.
fn sanitize_prefix(prefix: &str) -> String {
    if !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        prefix.to_owned()
    } else {
        otelrs_core::status::ERROR_TYPE_OTHER.to_owned()
    }
}

fn server(prefix: &str) -> Failure {
    let c = code(prefix);
    Failure {
        error_type: c.clone(),
        status_code: Some(c),
        description: None,
    }
}

/// The `io::Error` behind a redis error. redis keeps it as an `Arc<dyn Error>`, which a plain
/// `source()` walk with `downcast_ref::<io::Error>` does not see through.
fn io_error(err: &RedisError) -> Option<&io::Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        if let Some(io) = e
            .downcast_ref::<Arc<dyn StdError + Send + Sync>>()
            .and_then(|inner| inner.downcast_ref::<io::Error>())
        {
            return Some(io);
        }
        cur = e.source();
    }
    None
}

/// Classifies an error returned by the connection.
///
/// * Server errors (`-WRONGTYPE ...`): the prefix, as `error.type` and `db.response.status_code`.
/// * I/O failures: the I/O kind (`connection_reset`, `broken_pipe`, `timeout`, ... from
///   `otelrs_core::conv::io_error_type`), or `io` when the connection was dropped without an
///   `io::Error` (the multiplexed connection's driver task ended).
/// * Other client-side failures: a fixed identifier per `redis::ErrorKind` (`parse`,
///   `authentication_failed`, `unexpected_return_type`, `invalid_client_config`, `client`, ...).
pub(crate) fn classify_error(err: &RedisError) -> Failure {
    if let Some(prefix) = err.code() {
        return server(prefix);
    }
    if let Some(io) = io_error(err) {
        return Failure {
            error_type: Cow::Borrowed(otelrs_core::conv::io_error_type(io)),
            status_code: None,
            description: Some(Cow::Owned(io.to_string())),
        };
    }
    let kind = match err.kind() {
        ErrorKind::Io => "io",
        ErrorKind::Parse => "parse",
        ErrorKind::AuthenticationFailed => "authentication_failed",
        ErrorKind::UnexpectedReturnType => "unexpected_return_type",
        ErrorKind::InvalidClientConfig => "invalid_client_config",
        ErrorKind::Client => "client",
        ErrorKind::Extension => "extension",
        ErrorKind::ClusterConnectionNotFound => "cluster_connection_not_found",
        ErrorKind::RESP3NotSupported => "resp3_not_supported",
        _ => otelrs_core::status::ERROR_TYPE_OTHER,
    };
    Failure {
        error_type: Cow::Borrowed(kind),
        status_code: None,
        // The category is a fixed phrase; the error's Display may quote response data.
        description: Some(err.category())
            .filter(|d| !d.is_empty())
            .map(|d| Cow::Owned(d.to_owned())),
    }
}

/// The first server error inside a successful reply: a single command's `Value::ServerError`, or
/// one inside a pipeline's replies or a transaction's `EXEC` array.
pub(crate) fn first_server_error<'v>(values: impl IntoIterator<Item = &'v Value>) -> Option<Failure> {
    for v in values {
        match v {
            Value::ServerError(e) => return Some(server(e.code())),
            Value::Array(items) => {
                if let Some(Value::ServerError(e)) = items.iter().find(|i| matches!(i, Value::ServerError(_))) {
                    return Some(server(e.code()));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_and_client_errors() {
        let io_err = RedisError::from(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
        let f = classify_error(&io_err);
        assert_eq!(f.error_type, "connection_reset");
        assert_eq!(f.status_code, None);
        let parse = RedisError::from((ErrorKind::Parse, "bad"));
        assert_eq!(classify_error(&parse).error_type, "parse");
        assert_eq!(sanitize_prefix("MYMODULE_ERR"), "MYMODULE_ERR");
        assert_eq!(sanitize_prefix("lower"), "_OTHER");
        assert_eq!(sanitize_prefix(""), "_OTHER");
        assert!(matches!(code("WRONGTYPE"), Cow::Borrowed("WRONGTYPE")));
        assert_eq!(first_server_error(&[Value::Okay, Value::Int(1)]), None);
    }
}
