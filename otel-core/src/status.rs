//! Span status and `error.type`: the rules of semantic conventions §1 applied the same way by every
//! adapter.
//!
//! * Success leaves the status **Unset**; instrumentation never sets `Ok`.
//! * A failure sets status `Error` **and** `error.type` (low-cardinality), on the span and on the
//!   duration metric alike. [`record_failure`] does both for the span and returns the attribute
//!   for the metric.
//! * A description is set only when it adds non-sensitive information, never repeating the code.
//!
//! Domain rules live here too: which HTTP status codes and gRPC codes are errors for a client and
//! for a server, and the canonical gRPC code names.

use std::borrow::Cow;
use std::sync::OnceLock;

use opentelemetry::trace::{Span, SpanKind, Status};
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;

/// The fallback `error.type` when nothing better is known.
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// Marks `span` as failed: status `Error` (with `description`, or empty) and `error.type`.
/// Returns the `error.type` attribute so the caller records the same value on its metric.
pub fn record_failure<S: Span + ?Sized>(
    span: &mut S,
    error_type: impl Into<Cow<'static, str>>,
    description: Option<Cow<'static, str>>,
) -> KeyValue {
    let kv = KeyValue::new(ERROR_TYPE, error_type.into());
    if span.is_recording() {
        span.set_status(Status::Error {
            description: description.unwrap_or(Cow::Borrowed("")),
        });
        span.set_attribute(kv.clone());
    }
    kv
}

/// [`record_failure`] for a span held in a [`opentelemetry::Context`] (`cx.span()`).
pub fn record_failure_ref(
    span: &opentelemetry::trace::SpanRef<'_>,
    error_type: impl Into<Cow<'static, str>>,
    description: Option<Cow<'static, str>>,
) -> KeyValue {
    let kv = KeyValue::new(ERROR_TYPE, error_type.into());
    if span.is_recording() {
        span.set_status(Status::Error {
            description: description.unwrap_or(Cow::Borrowed("")),
        });
        span.set_attribute(kv.clone());
    }
    kv
}

/// Whether an HTTP response status is an error for a span of `kind` (semconv §2.2):
/// a server fails on 5xx only; a client on 4xx and 5xx; codes outside 100..=599 are errors for
/// both.
pub fn http_status_is_error(status: u16, kind: &SpanKind) -> bool {
    if !(100..=599).contains(&status) {
        return true;
    }
    match kind {
        SpanKind::Server => status >= 500,
        _ => status >= 400,
    }
}

/// The status code as a `&'static str` (`"404"`), for `error.type` without allocating per request.
pub fn status_code_str(status: u16) -> Cow<'static, str> {
    static CODES: OnceLock<Vec<String>> = OnceLock::new();
    let codes = CODES.get_or_init(|| (100..600).map(|c: u16| c.to_string()).collect());
    match status {
        100..=599 => Cow::Borrowed(codes[usize::from(status - 100)].as_str()),
        _ => Cow::Owned(status.to_string()),
    }
}

/// Canonical gRPC status code names, indexed by code (0..=16).
pub const GRPC_CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The canonical name of a gRPC status code (`4` → `DEADLINE_EXCEEDED`); unknown codes map to
/// `UNKNOWN`, as gRPC itself treats them.
pub fn grpc_code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| GRPC_CODE_NAMES.get(i).copied())
        .unwrap_or("UNKNOWN")
}

/// Whether a gRPC status code is an error for a span of `kind` (semconv §4.1): every non-OK code
/// for a client; only UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and
/// DATA_LOSS for a server.
pub fn grpc_code_is_error(code: i32, kind: &SpanKind) -> bool {
    match kind {
        SpanKind::Server => matches!(code, 2 | 4 | 12 | 13 | 14 | 15) || !(0..=16).contains(&code),
        _ => code != 0,
    }
}

/// Domain exception events (semconv §1.3), emitted as log records rather than span events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionEvent {
    /// `http.client.request.exception` (WARN)
    HttpClient,
    /// `http.server.request.exception` (ERROR)
    HttpServer,
    /// `rpc.client.call.exception` (WARN)
    RpcClient,
    /// `rpc.server.call.exception` (ERROR)
    RpcServer,
    /// `db.client.operation.exception` (WARN)
    DbClient,
    /// `messaging.send.exception` (WARN)
    MessagingSend,
    /// `messaging.receive.exception` (WARN)
    MessagingReceive,
    /// `messaging.settle.exception` (WARN)
    MessagingSettle,
    /// `messaging.process.exception` (ERROR)
    MessagingProcess,
}

impl ExceptionEvent {
    /// The semconv event name.
    pub fn name(self) -> &'static str {
        match self {
            ExceptionEvent::HttpClient => "http.client.request.exception",
            ExceptionEvent::HttpServer => "http.server.request.exception",
            ExceptionEvent::RpcClient => "rpc.client.call.exception",
            ExceptionEvent::RpcServer => "rpc.server.call.exception",
            ExceptionEvent::DbClient => "db.client.operation.exception",
            ExceptionEvent::MessagingSend => "messaging.send.exception",
            ExceptionEvent::MessagingReceive => "messaging.receive.exception",
            ExceptionEvent::MessagingSettle => "messaging.settle.exception",
            ExceptionEvent::MessagingProcess => "messaging.process.exception",
        }
    }
}

macro_rules! exception_event {
    ($level:ident, $name:literal, $ty:expr, $msg:expr) => {
        tracing::event!(
            name: $name,
            target: "otel::exception",
            tracing::Level::$level,
            exception.r#type = $ty,
            exception.message = $msg,
        )
    };
}

/// Emits an exception as a `tracing` event named after `event`, with `exception.type` and
/// `exception.message`. With the `sdk` feature's log pipeline installed, the event becomes an
/// OpenTelemetry log record carrying the active trace and span ids (semconv's log-based
/// exceptions). Without a subscriber this costs a relaxed atomic load.
///
/// `exception_type` must be low-cardinality and `message` must not contain sensitive data.
pub fn emit_exception(event: ExceptionEvent, exception_type: &str, message: &str) {
    match event {
        ExceptionEvent::HttpClient => exception_event!(WARN, "http.client.request.exception", exception_type, message),
        ExceptionEvent::HttpServer => exception_event!(ERROR, "http.server.request.exception", exception_type, message),
        ExceptionEvent::RpcClient => exception_event!(WARN, "rpc.client.call.exception", exception_type, message),
        ExceptionEvent::RpcServer => exception_event!(ERROR, "rpc.server.call.exception", exception_type, message),
        ExceptionEvent::DbClient => exception_event!(WARN, "db.client.operation.exception", exception_type, message),
        ExceptionEvent::MessagingSend => exception_event!(WARN, "messaging.send.exception", exception_type, message),
        ExceptionEvent::MessagingReceive => {
            exception_event!(WARN, "messaging.receive.exception", exception_type, message)
        }
        ExceptionEvent::MessagingSettle => {
            exception_event!(WARN, "messaging.settle.exception", exception_type, message)
        }
        ExceptionEvent::MessagingProcess => {
            exception_event!(ERROR, "messaging.process.exception", exception_type, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    #[test]
    fn failure_sets_error_status_and_type_once() {
        let exp = InMemorySpanExporter::default();
        let tp = SdkTracerProvider::builder().with_simple_exporter(exp.clone()).build();
        let mut span = tp.tracer("t").start("op");
        let kv = record_failure(&mut span, "500", None);
        assert_eq!(kv, KeyValue::new("error.type", "500"));
        span.end();
        let mut ok = tp.tracer("t").start("ok");
        ok.end();
        let spans = exp.get_finished_spans().unwrap();
        assert_eq!(spans[0].status, Status::error(""));
        assert_eq!(spans[0].attributes, vec![KeyValue::new("error.type", "500")]);
        assert_eq!(spans[1].status, Status::Unset, "success leaves Unset");
        assert!(spans[1].attributes.is_empty());
    }

    #[test]
    fn http_status_rules() {
        assert!(!http_status_is_error(200, &SpanKind::Server));
        assert!(!http_status_is_error(404, &SpanKind::Server));
        assert!(http_status_is_error(500, &SpanKind::Server));
        assert!(http_status_is_error(404, &SpanKind::Client));
        assert!(!http_status_is_error(302, &SpanKind::Client));
        assert!(http_status_is_error(99, &SpanKind::Server));
        assert!(http_status_is_error(600, &SpanKind::Client));
        assert_eq!(status_code_str(503), "503");
        assert_eq!(status_code_str(100), "100");
        assert_eq!(status_code_str(599), "599");
        assert_eq!(status_code_str(700), "700");
        assert!(matches!(status_code_str(404), Cow::Borrowed(_)));
    }

    #[test]
    fn grpc_rules() {
        assert_eq!(grpc_code_name(0), "OK");
        assert_eq!(grpc_code_name(4), "DEADLINE_EXCEEDED");
        assert_eq!(grpc_code_name(16), "UNAUTHENTICATED");
        assert_eq!(grpc_code_name(17), "UNKNOWN");
        assert_eq!(grpc_code_name(-1), "UNKNOWN");
        let server_errors: Vec<i32> = (0..=16).filter(|c| grpc_code_is_error(*c, &SpanKind::Server)).collect();
        assert_eq!(server_errors, vec![2, 4, 12, 13, 14, 15]);
        let client_errors: Vec<i32> = (0..=16).filter(|c| grpc_code_is_error(*c, &SpanKind::Client)).collect();
        assert_eq!(client_errors, (1..=16).collect::<Vec<_>>());
        assert!(
            !grpc_code_is_error(5, &SpanKind::Server),
            "NOT_FOUND is Unset on servers"
        );
        assert!(grpc_code_is_error(5, &SpanKind::Client));
    }

    #[test]
    fn exception_event_names() {
        assert_eq!(ExceptionEvent::HttpServer.name(), "http.server.request.exception");
        assert_eq!(ExceptionEvent::MessagingProcess.name(), "messaging.process.exception");
        // No subscriber installed: must be a no-op, not a panic.
        emit_exception(ExceptionEvent::DbClient, "23505", "duplicate key");
    }
}
