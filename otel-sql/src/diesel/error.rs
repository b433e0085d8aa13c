//! `error.type` and `db.response.status_code` of Diesel's errors.

use std::borrow::Cow;

use ::diesel::result::{ConnectionError, DatabaseErrorKind, Error};
use otelrs_core::status::ERROR_TYPE_OTHER;

use crate::telemetry::Failure;

/// The low-cardinality `error.type` of a failed Diesel query, and its `db.response.status_code`.
///
/// A database error with a SQLSTATE (PostgreSQL, MySQL and MariaDB through Diesel 2.4 and
/// diesel-async) uses it for both, as the sqlx adapter does for PostgreSQL (`23505`). Other
/// errors map to a fixed identifier:
///
/// | Diesel error | `error.type` |
/// | --- | --- |
/// | `DatabaseError` without SQLSTATE (SQLite, driver-side failures) | its kind: `unique_violation`, `foreign_key_violation`, `not_null_violation`, `check_violation`, `restrict_violation`, `exclusion_violation`, `serialization_failure`, `read_only_transaction`, `closed_connection`, `unable_to_send_command` (an OS error in the driver's message gives the I/O kind instead: `connection_refused`, `connection_reset`, ...), else `_OTHER` |
/// | `NotFound` | `row_not_found` |
/// | `QueryBuilderError` | `query_builder` |
/// | `SerializationError` | `encode` |
/// | `DeserializationError`, `IntegerConversion` | `decode` |
/// | `RollbackErrorOnCommit`, `RollbackTransaction`, `AlreadyInTransaction`, `NotInTransaction`, `BrokenTransactionManager` | `transaction` |
/// | `InvalidCString` | `invalid_argument` |
/// | anything else | `_OTHER` |
pub fn classify_error(error: &Error) -> (Cow<'static, str>, Option<String>) {
    let static_type = match error {
        Error::DatabaseError(kind, info) => {
            if let Some(state) = info.sqlstate() {
                let code = state.as_str().to_owned();
                return (Cow::Owned(code.clone()), Some(code));
            }
            match kind {
                DatabaseErrorKind::UniqueViolation => "unique_violation",
                DatabaseErrorKind::ForeignKeyViolation => "foreign_key_violation",
                DatabaseErrorKind::NotNullViolation => "not_null_violation",
                DatabaseErrorKind::CheckViolation => "check_violation",
                DatabaseErrorKind::RestrictViolation => "restrict_violation",
                DatabaseErrorKind::ExclusionViolation => "exclusion_violation",
                DatabaseErrorKind::SerializationFailure => "serialization_failure",
                DatabaseErrorKind::ReadOnlyTransaction => "read_only_transaction",
                DatabaseErrorKind::ClosedConnection => os_error_type(info.message()).unwrap_or("closed_connection"),
                DatabaseErrorKind::UnableToSendCommand => {
                    os_error_type(info.message()).unwrap_or("unable_to_send_command")
                }
                _ => os_error_type(info.message()).unwrap_or(ERROR_TYPE_OTHER),
            }
        }
        Error::NotFound => "row_not_found",
        Error::QueryBuilderError(_) => "query_builder",
        Error::SerializationError(_) => "encode",
        Error::DeserializationError(_) | Error::IntegerConversion(_) => "decode",
        Error::RollbackErrorOnCommit { .. }
        | Error::RollbackTransaction
        | Error::AlreadyInTransaction
        | Error::NotInTransaction
        | Error::BrokenTransactionManager => "transaction",
        Error::InvalidCString(_) => "invalid_argument",
        _ => ERROR_TYPE_OTHER,
    };
    (Cow::Borrowed(static_type), None)
}

/// The `error.type` of a failed connection establishment, and its `db.response.status_code`
/// (only when the server answered a setup statement with a SQLSTATE).
///
/// | Diesel error | `error.type` |
/// | --- | --- |
/// | `BadConnection` | the I/O kind of an OS error in the driver's message (`connection_refused`, `timeout`, ...), else `bad_connection` |
/// | `InvalidConnectionUrl` | `invalid_connection_url` |
/// | `InvalidCString` | `invalid_argument` |
/// | `CouldntSetupConfiguration(e)` | as [`classify_error`] of `e` (diesel-async's PostgreSQL connection reports a refused connection this way) |
/// | anything else | `_OTHER` |
///
/// The messages are read for the OS error number only; they are never exported (they can quote
/// the URL, credentials included).
pub fn classify_connection_error(error: &ConnectionError) -> (Cow<'static, str>, Option<String>) {
    let static_type = match error {
        ConnectionError::BadConnection(message) => os_error_type(message).unwrap_or("bad_connection"),
        ConnectionError::InvalidConnectionUrl(_) => "invalid_connection_url",
        ConnectionError::InvalidCString(_) => "invalid_argument",
        ConnectionError::CouldntSetupConfiguration(e) => return classify_error(e),
        _ => ERROR_TYPE_OTHER,
    };
    (Cow::Borrowed(static_type), None)
}

pub(crate) fn failure((error_type, status_code): (Cow<'static, str>, Option<String>)) -> Failure {
    Failure {
        error_type,
        status_code,
    }
}

/// The I/O kind (`otelrs_core::conv::io_error_type`) of the last `(os error N)` in a driver's
/// message: Rust's `io::Error` prints OS errors that way, and the drivers keep only the text.
fn os_error_type(message: &str) -> Option<&'static str> {
    let start = message.rfind("(os error ")? + "(os error ".len();
    let digits = &message[start..];
    let end = digits.find(')')?;
    let code: i32 = digits[..end].parse().ok()?;
    Some(otelrs_core::conv::io_error_type(&std::io::Error::from_raw_os_error(
        code,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_without_sqlstate_use_their_kind() {
        let e = Error::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("UNIQUE constraint failed: users.name".to_owned()),
        );
        assert_eq!(classify_error(&e), (Cow::Borrowed("unique_violation"), None));
        let e = Error::DatabaseError(DatabaseErrorKind::Unknown, Box::new("no such table: x".to_owned()));
        assert_eq!(classify_error(&e).0, "_OTHER");
    }

    #[test]
    fn os_errors_in_driver_messages_give_the_io_kind() {
        // 111 is ECONNREFUSED on Linux.
        let e = Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("error connecting to server: Connection refused (os error 111)".to_owned()),
        );
        let (t, code) = classify_error(&e);
        assert!(code.is_none());
        if cfg!(target_os = "linux") {
            assert_eq!(t, "connection_refused");
            let c = ConnectionError::BadConnection("Connection refused (os error 111)".to_owned());
            assert_eq!(classify_connection_error(&c).0, "connection_refused");
        }
        let c = ConnectionError::BadConnection("unable to open database file".to_owned());
        assert_eq!(classify_connection_error(&c).0, "bad_connection");
        let c = ConnectionError::CouldntSetupConfiguration(Error::DatabaseError(
            DatabaseErrorKind::UnableToSendCommand,
            Box::new("db error".to_owned()),
        ));
        assert_eq!(classify_connection_error(&c).0, "unable_to_send_command");
        assert_eq!(
            classify_connection_error(&ConnectionError::InvalidConnectionUrl("x".into())).0,
            "invalid_connection_url"
        );
    }

    #[test]
    fn other_errors() {
        assert_eq!(classify_error(&Error::NotFound).0, "row_not_found");
        assert_eq!(classify_error(&Error::RollbackTransaction).0, "transaction");
        assert_eq!(classify_error(&Error::DeserializationError("x".into())).0, "decode");
        assert_eq!(classify_error(&Error::SerializationError("x".into())).0, "encode");
        assert_eq!(classify_error(&Error::QueryBuilderError("x".into())).0, "query_builder");
    }
}
