//! The semantic-convention rules every adapter shares, written once (the role of the Go
//! contrib's `internal/semconv`): where `server.address` / `server.port` come from
//! ([`address`]), which `error.type` an error gets and how an operation that never completed ends
//! ([`error`]), the connection-pool metrics of database clients ([`pool`]), and which captured
//! header and metadata names carry credentials and are redacted ([`sensitive`]).
//!
//! Adapters translate their framework's types into these calls; a rule changed here changes for
//! every adapter, and is tested here once.

pub mod address;
pub mod error;
pub mod pool;
pub mod sensitive;

pub use address::{split_authority, ServerAddress};
pub use error::{
    classify_error_chain, error_chain, io_error_type, ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC, ERROR_TYPE_TIMEOUT,
};
