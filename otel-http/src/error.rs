//! Low-cardinality `error.type` values for transport, service and body errors.

use std::any::Any;
use std::error::Error;
use std::io;

use otelrs_core::status::io_error_type;

type BoxError = Box<dyn Error + Send + Sync>;

/// Views a concrete error as `dyn Error` when its type is one we know. Services and bodies have
/// arbitrary error types; these are the ones HTTP stacks use.
pub(crate) fn as_dyn_error<E: 'static>(err: &E) -> Option<&(dyn Error + 'static)> {
    let any = err as &dyn Any;
    if let Some(b) = any.downcast_ref::<BoxError>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send>>() {
        return Some(&**b);
    }
    if let Some(b) = any.downcast_ref::<Box<dyn Error>>() {
        return Some(&**b);
    }
    if let Some(e) = any.downcast_ref::<io::Error>() {
        return Some(e);
    }
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
    None
}

fn chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let cur = next?;
        next = cur.source();
        Some(cur)
    })
}

/// Classifies an error by its source chain: the first `std::io::Error` gives its kind
/// (`timeout`, `connection_refused`, ...); with feature `hyper-util`, hyper and hyper-util errors
/// give `timeout`, `connect`, `connection_closed`, `incomplete_message`, `protocol_error`,
/// `canceled`; otherwise `fallback`.
pub(crate) fn error_type_of_dyn(err: &(dyn Error + 'static), fallback: &'static str) -> &'static str {
    if let Some(io) = chain(err).find_map(|e| e.downcast_ref::<io::Error>()) {
        return io_error_type(io);
    }
    #[cfg(feature = "hyper-util")]
    for e in chain(err) {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_timeout() {
                return "timeout";
            }
            if h.is_incomplete_message() {
                return "incomplete_message";
            }
            if h.is_parse() || h.is_parse_status() {
                return "protocol_error";
            }
            if h.is_canceled() {
                return "canceled";
            }
            if h.is_closed() {
                return "connection_closed";
            }
        }
        if let Some(l) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            if l.is_connect() {
                return "connect";
            }
        }
    }
    fallback
}

/// [`error_type_of_dyn`] for an error of any type (`fallback` when the type is unknown).
pub(crate) fn error_type_of<E: 'static>(err: &E, fallback: &'static str) -> &'static str {
    as_dyn_error(err).map_or(fallback, |e| error_type_of_dyn(e, fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

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
