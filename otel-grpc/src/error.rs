//! What an error means for a call: a gRPC status carried inside it, or a low-cardinality
//! `error.type` for a failure before any status exists.

use std::any::Any;
use std::convert::Infallible;
use std::error::Error;

use otelrs_core::conv::{self, classify_error_chain, error_chain, ERROR_TYPE_TIMEOUT};

/// Views a service or body error as `dyn Error` when its type is one the tonic stack uses (on
/// top of the boxes and I/O errors `otelrs_core::conv::error::as_dyn_error` knows).
pub(crate) fn as_dyn_error<E: 'static>(err: &E) -> Option<&(dyn Error + 'static)> {
    if let Some(e) = conv::error::as_dyn_error(err) {
        return Some(e);
    }
    let any = err as &dyn Any;
    if let Some(s) = any.downcast_ref::<tonic::Status>() {
        return Some(s);
    }
    #[cfg(feature = "transport")]
    if let Some(e) = any.downcast_ref::<tonic::transport::Error>() {
        return Some(e);
    }
    if let Some(e) = any.downcast_ref::<Infallible>() {
        return Some(e);
    }
    None
}

/// The gRPC code of the first `tonic::Status` in the error's source chain.
pub(crate) fn status_code_in<E: 'static>(err: &E) -> Option<i32> {
    let dyn_err = as_dyn_error(err)?;
    error_chain(dyn_err).find_map(|e| e.downcast_ref::<tonic::Status>().map(|s| s.code() as i32))
}

/// Whether the error chain holds a `tonic::TimeoutExpired`: the channel gave up at the call's
/// deadline (`grpc-timeout` set with `Request::set_timeout`, or `Endpoint::timeout`).
pub(crate) fn is_timeout_expired<E: 'static>(err: &E) -> bool {
    as_dyn_error(err).is_some_and(|e| error_chain(e).any(|e| e.is::<tonic::TimeoutExpired>()))
}

/// tonic's own failure types, for the links of an error chain.
fn tonic_error_type(e: &(dyn Error + 'static)) -> Option<&'static str> {
    if e.is::<tonic::TimeoutExpired>() {
        return Some(ERROR_TYPE_TIMEOUT);
    }
    e.is::<tonic::ConnectError>().then_some("connect")
}

/// A low-cardinality `error.type` for a transport or body failure, by otelrs-core's one rule
/// (`otelrs_core::conv::classify_error_chain`):
///
/// | Value | When |
/// | --- | --- |
/// | `timeout`, `connection_refused`, `connection_reset`, `broken_pipe`, ... | an `std::io::Error` in the source chain, by kind (see `otelrs_core::conv::io_error_type`) |
/// | `timeout` | a `tonic::TimeoutExpired` in the chain (`Endpoint::timeout`) |
/// | `connect` | a `tonic::ConnectError` without an I/O cause |
/// | `fallback` | anything else (`transport` for service errors, `body_error` for body errors) |
pub(crate) fn error_type_of<E: 'static>(err: &E, fallback: &'static str) -> &'static str {
    as_dyn_error(err).map_or(fallback, |e| classify_error_chain(e, tonic_error_type, fallback))
}

#[cfg(test)]
mod tests {
    use super::*;

    type BoxError = Box<dyn Error + Send + Sync>;

    #[test]
    fn statuses_and_io_errors_are_found_through_boxes() {
        let boxed: BoxError = Box::new(tonic::Status::not_found("x"));
        assert_eq!(status_code_in(&boxed), Some(5));
        assert_eq!(status_code_in(&tonic::Status::internal("y")), Some(13));
        let io: BoxError = Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "no"));
        assert_eq!(status_code_in(&io), None);
        assert_eq!(error_type_of(&io, "transport"), "connection_refused");
        let timeout: BoxError = Box::new(tonic::TimeoutExpired(()));
        assert_eq!(error_type_of(&timeout, "transport"), "timeout");
        assert!(is_timeout_expired(&timeout));
        assert!(!is_timeout_expired(&io));
        assert_eq!(error_type_of(&42u8, "transport"), "transport");
    }
}
