//! Low-cardinality `error.type` values for transport, service and body errors.

use std::any::Any;
use std::error::Error;

use otelrs_core::conv::{self, classify_error_chain};

/// Views a concrete error as `dyn Error` when its type is one we know: the boxes and I/O errors
/// every stack uses (`otelrs_core::conv::error::as_dyn_error`), and the HTTP stacks' own types.
pub(crate) fn as_dyn_error<E: 'static>(err: &E) -> Option<&(dyn Error + 'static)> {
    if let Some(e) = conv::error::as_dyn_error(err) {
        return Some(e);
    }
    let any = err as &dyn Any;
    #[cfg(feature = "axum")]
    if let Some(e) = any.downcast_ref::<axum::Error>() {
        return Some(e);
    }
    #[cfg(feature = "hyper-util")]
    if let Some(e) = any.downcast_ref::<hyper::Error>() {
        return Some(e);
    }
    #[cfg(feature = "hyper-util")]
    if let Some(e) = any.downcast_ref::<hyper_util::client::legacy::Error>() {
        return Some(e);
    }
    let _ = any;
    None
}

/// hyper's and hyper-util's error kinds (`timeout`, `incomplete_message`, `protocol_error`,
/// `cancelled`, `connection_closed`, `connect`), for the links of an error chain.
#[cfg_attr(not(feature = "hyper-util"), allow(unused_variables))]
fn hyper_error_type(e: &(dyn Error + 'static)) -> Option<&'static str> {
    #[cfg(feature = "hyper-util")]
    {
        use otelrs_core::conv::{ERROR_TYPE_CANCELLED, ERROR_TYPE_TIMEOUT};
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return Some(ERROR_TYPE_TIMEOUT);
            }
            if h.is_incomplete_message() {
                return Some("incomplete_message");
            }
            if h.is_parse() || h.is_parse_status() {
                return Some("protocol_error");
            }
            if h.is_canceled() {
                return Some(ERROR_TYPE_CANCELLED);
            }
            if h.is_closed() {
                return Some("connection_closed");
            }
        }
        if let Some(l) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if l.is_connect() {
                return Some("connect");
            }
        }
    }
    None
}

/// Classifies an error by otelrs-core's one rule (`otelrs_core::conv::classify_error_chain`):
/// the first `std::io::Error` gives its kind; with feature `hyper-util`, hyper and hyper-util
/// errors give `timeout`, `connect`, `connection_closed`, `incomplete_message`,
/// `protocol_error`, `cancelled`; otherwise `fallback`.
pub(crate) fn error_type_of_dyn(err: &(dyn Error + 'static), fallback: &'static str) -> &'static str {
    classify_error_chain(err, hyper_error_type, fallback)
}

/// [`error_type_of_dyn`] for an error of any type (`fallback` when the type is unknown).
pub(crate) fn error_type_of<E: 'static>(err: &E, fallback: &'static str) -> &'static str {
    as_dyn_error(err).map_or(fallback, |e| error_type_of_dyn(e, fallback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    type BoxError = Box<dyn Error + Send + Sync>;

    #[test]
    fn known_error_types_are_classified() {
        let io = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(error_type_of(&io, "x"), "connection_reset");
        let boxed: BoxError = Box::new(io::Error::new(io::ErrorKind::TimedOut, "slow"));
        assert_eq!(error_type_of(&boxed, "x"), "timeout");
        let other: BoxError = "plain".into();
        assert_eq!(error_type_of(&other, "fallback"), "fallback");
        assert_eq!(error_type_of(&42u8, "_OTHER"), "_OTHER");
    }
}
