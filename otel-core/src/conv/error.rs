//! `error.type` for failures that are not a protocol status, and the one policy for an operation
//! that never completed.
//!
//! # Errors
//!
//! [`classify_error_chain`] walks an error's `source()` chain (seeing through `Arc<dyn Error>`
//! links, as redis keeps its I/O cause): the first [`std::io::Error`] gives its kind
//! ([`io_error_type`]: `timeout`, `connection_refused`, `connection_reset`, ...); otherwise the
//! adapter's own recognizer is asked about each link (hyper's, tonic's error types); otherwise the
//! adapter's fallback.
//!
//! # Operations that never complete
//!
//! A future dropped before it produced its result (the caller gave up, an outer timeout fired,
//! the client went away) still ends its span and still records its duration, in every adapter:
//!
//! | What happened | Span status | `error.type` (span and duration metric) |
//! | --- | --- | --- |
//! | the future was dropped before completing | `Error` | [`ERROR_TYPE_CANCELLED`] (`cancelled`) |
//! | the instrumented code panicked | `Error` | [`ERROR_TYPE_PANIC`] (`panic`) |
//! | a deadline the instrumentation knows of expired | `Error` | [`ERROR_TYPE_TIMEOUT`] (`timeout`) |
//!
//! [`record_cancelled`] applies the first row.

use std::any::Any;
use std::error::Error;
use std::io;
use std::sync::Arc;

use opentelemetry::trace::Span;
use opentelemetry::KeyValue;

use crate::status::record_failure;

/// `error.type` of an operation whose future was dropped before it completed.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";
/// `error.type` of an operation whose instrumented code panicked.
pub const ERROR_TYPE_PANIC: &str = "panic";
/// `error.type` of an operation that ran past a deadline (or an I/O timeout).
pub const ERROR_TYPE_TIMEOUT: &str = "timeout";

/// Ends the bookkeeping of an operation that never completed: status `Error` and `error.type` =
/// `cancelled` on the span; returns the attribute for the duration metric, which the caller still
/// records.
pub fn record_cancelled<S: Span + ?Sized>(span: &mut S) -> KeyValue {
    record_failure(span, ERROR_TYPE_CANCELLED, None)
}

/// A low-cardinality `error.type` for an I/O failure (`timeout`, `connection_refused`, ...).
pub fn io_error_type(err: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    match err.kind() {
        TimedOut => ERROR_TYPE_TIMEOUT,
        ConnectionRefused => "connection_refused",
        ConnectionReset => "connection_reset",
        ConnectionAborted => "connection_aborted",
        NotConnected => "not_connected",
        AddrInUse => "address_in_use",
        AddrNotAvailable => "address_not_available",
        BrokenPipe => "broken_pipe",
        UnexpectedEof => "unexpected_eof",
        PermissionDenied => "permission_denied",
        NotFound => "not_found",
        InvalidData => "invalid_data",
        InvalidInput => "invalid_input",
        Interrupted => "interrupted",
        WouldBlock => "would_block",
        OutOfMemory => "out_of_memory",
        _ => "io",
    }
}

/// An error and its `source()` chain, following `Arc<dyn Error + Send + Sync>` links too.
pub fn error_chain<'a>(err: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    let mut next = Some(err);
    std::iter::from_fn(move || {
        let cur = next?;
        next = match cur.downcast_ref::<Arc<dyn Error + Send + Sync>>() {
            Some(inner) => Some(&**inner),
            None => cur.source(),
        };
        Some(cur)
    })
}

/// The first [`io::Error`] in an error's chain.
pub fn io_error_in<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a io::Error> {
    error_chain(err).find_map(|e| e.downcast_ref::<io::Error>())
}

/// The `error.type` of an error, by the rule of the [module](self): the first I/O error's kind,
/// else the first link `recognize` knows, else `fallback`.
pub fn classify_error_chain(
    err: &(dyn Error + 'static),
    recognize: impl Fn(&(dyn Error + 'static)) -> Option<&'static str>,
    fallback: &'static str,
) -> &'static str {
    if let Some(io) = io_error_in(err) {
        return io_error_type(io);
    }
    error_chain(err).find_map(recognize).unwrap_or(fallback)
}

/// Views an error of a type only known as generic as `dyn Error` when it is one of the boxes
/// services use (`Box<dyn Error + Send + Sync>`, `Box<dyn Error + Send>`, `Box<dyn Error>`) or an
/// [`io::Error`]. Adapters add their framework's types on top.
pub fn as_dyn_error<E: 'static>(err: &E) -> Option<&(dyn Error + 'static)> {
    let any = err as &dyn Any;
    if let Some(b) = any.downcast_ref::<Box<dyn Error + Send + Sync>>() {
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
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(Box<dyn Error + Send + Sync>);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapper")
        }
    }
    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[derive(Debug)]
    struct Special;
    impl std::fmt::Display for Special {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("special")
        }
    }
    impl Error for Special {}

    #[derive(Debug)]
    struct ArcHolder(Arc<dyn Error + Send + Sync>);
    impl std::fmt::Display for ArcHolder {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("arc holder")
        }
    }
    impl Error for ArcHolder {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    fn special(e: &(dyn Error + 'static)) -> Option<&'static str> {
        e.is::<Special>().then_some("special")
    }

    #[test]
    fn io_kind_then_recognized_link_then_fallback() {
        let io = Wrapper(Box::new(io::Error::new(io::ErrorKind::ConnectionRefused, "no")));
        assert_eq!(classify_error_chain(&io, special, "other"), "connection_refused");
        let timed_out = Wrapper(Box::new(io::Error::from(io::ErrorKind::TimedOut)));
        assert_eq!(classify_error_chain(&timed_out, special, "other"), ERROR_TYPE_TIMEOUT);
        assert_eq!(
            classify_error_chain(&Wrapper(Box::new(Special)), special, "other"),
            "special"
        );
        assert_eq!(classify_error_chain(&Special, |_| None, "other"), "other");
        assert_eq!(io_error_type(&io::Error::other("x")), "io");
    }

    #[test]
    fn the_chain_sees_through_arc_links() {
        let inner: Arc<dyn Error + Send + Sync> = Arc::new(io::Error::from(io::ErrorKind::BrokenPipe));
        let outer = ArcHolder(inner);
        assert_eq!(classify_error_chain(&outer, |_| None, "other"), "broken_pipe");
    }

    #[test]
    fn boxes_and_io_errors_are_viewed_as_errors() {
        let boxed: Box<dyn Error + Send + Sync> = Box::new(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(
            as_dyn_error(&boxed).map(|e| classify_error_chain(e, |_| None, "x")),
            Some("connection_reset")
        );
        assert!(as_dyn_error(&io::Error::from(io::ErrorKind::Other)).is_some());
        assert!(as_dyn_error(&42u8).is_none());
    }

    #[test]
    fn a_cancelled_operation_fails_its_span() {
        use opentelemetry::trace::{Status, Tracer as _, TracerProvider as _};
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let mut span = provider.tracer("t").start("op");
        let kv = record_cancelled(&mut span);
        span.end();
        assert_eq!(kv, KeyValue::new("error.type", "cancelled"));
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans[0].status, Status::error(""));
        assert!(spans[0].attributes.contains(&KeyValue::new("error.type", "cancelled")));
    }
}
