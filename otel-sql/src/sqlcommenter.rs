//! [sqlcommenter](https://google.github.io/sqlcommenter/spec/): the statement's trace context
//! appended as a SQL comment (`/*traceparent='00-…'*/`), so database-side tools (query logs,
//! `pg_stat_activity`, slow-query logs, Cloud SQL Insights) can join a statement to its trace.
//!
//! **Trade-off.** The comment makes every statement's text unique, which defeats prepared-
//! statement caches (the driver's and the server's): a cached statement would never be reused
//! and the cache would churn. So commented statements are sent **not persistent** (sqlx does
//! not prepare-and-cache them), and commenting is opt-in, either on the statements the
//! application marks ([`QueryInfo::sql_comment`](crate::QueryInfo::sql_comment), mode
//! [`SqlCommenter::Marked`]) or on every statement ([`SqlCommenter::All`]). `db.query.text` and
//! `db.query.summary` are computed from the statement as written, without the comment.
//!
//! The comment carries the context of the statement's own CLIENT span (its span id, the
//! caller's trace id), and `tracestate` when there is one; statements that already contain a
//! comment (`/*` or `--`) are left untouched, as the specification requires. A statement whose
//! span has no valid context (no tracer provider) gets no comment.
//!
//! Only the sqlx executors can rewrite a statement: Diesel's instrumentation hook sees the
//! statement but cannot change it, so the option has no effect on the Diesel adapter
//! (feature `diesel`).
// Unused in a Diesel-only build (no sqlx executor to comment).
#![cfg_attr(not(feature = "sqlx"), allow(dead_code))]

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;
use otelrs_core::propagation::format_traceparent;

use crate::query_info::QueryInfo;

/// Which statements carry a sqlcommenter comment; see the [module docs](self) for the cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqlCommenter {
    /// No comment (the default).
    #[default]
    Off,
    /// Only statements run under a [`QueryInfo`] with
    /// [`sql_comment(true)`](crate::QueryInfo::sql_comment).
    Marked,
    /// Every query (not `BEGIN`/`COMMIT`/`ROLLBACK`, not `prepare`).
    All,
}

impl SqlCommenter {
    /// Whether a statement run under `cx` (the parent context, or one derived from it) gets a
    /// comment.
    pub(crate) fn applies(self, cx: &Context) -> bool {
        match self {
            SqlCommenter::Off => false,
            SqlCommenter::All => true,
            SqlCommenter::Marked => cx.get::<QueryInfo>().is_some_and(|info| info.sql_comment),
        }
    }
}

/// `sql` with the comment for the span current in `cx` appended, or `None` (no valid span, or
/// the statement already has a comment).
pub(crate) fn commented(sql: &str, cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() || sql.contains("/*") || sql.contains("--") {
        return None;
    }
    let trimmed = sql.trim_end();
    let (body, semicolon) = match trimmed.strip_suffix(';') {
        Some(body) => (body.trim_end(), ";"),
        None => (trimmed, ""),
    };
    // Keys in lexicographic order; values URL-encoded, then quoted (the spec's serialisation).
    let mut out = String::with_capacity(body.len() + 80);
    out.push_str(body);
    out.push_str(" /*traceparent='");
    out.push_str(&format_traceparent(sc));
    out.push('\'');
    let state = sc.trace_state().header();
    if !state.is_empty() {
        out.push_str(",tracestate='");
        url_encode(&state, &mut out);
        out.push('\'');
    }
    out.push_str("*/");
    out.push_str(semicolon);
    Some(out)
}

/// Percent-encodes everything but RFC 3986's unreserved characters (so no `'` survives).
fn url_encode(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use proptest::prelude::*;

    fn cx(state: &[(&str, &str)]) -> Context {
        let state = TraceState::from_key_value(state.iter().copied()).unwrap();
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            state,
        ))
    }

    #[test]
    fn appends_the_trace_context_as_the_spec_serialises_it() {
        assert_eq!(
            commented("SELECT * FROM users WHERE id = $1", &cx(&[])).as_deref(),
            Some("SELECT * FROM users WHERE id = $1 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/")
        );
        assert_eq!(
            commented(
                "UPDATE t SET a = 1;  ",
                &cx(&[("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
            )
            .as_deref(),
            Some(
                "UPDATE t SET a = 1 /*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',\
                 tracestate='congo%3Dt61rcWkgMzE%2Crojo%3D00f067aa0ba902b7'*/;"
            )
        );
    }

    #[test]
    fn statements_with_a_comment_or_without_a_span_are_left_alone() {
        assert_eq!(commented("SELECT 1 /* mine */", &cx(&[])), None);
        assert_eq!(commented("SELECT 1 -- mine", &cx(&[])), None);
        assert_eq!(commented("SELECT 1", &Context::new()), None);
    }

    #[test]
    fn marked_mode_follows_the_query_info() {
        assert!(!SqlCommenter::Off.applies(&Context::new().with_value(QueryInfo::new().sql_comment(true))));
        assert!(SqlCommenter::All.applies(&Context::new()));
        assert!(!SqlCommenter::Marked.applies(&Context::new()));
        assert!(!SqlCommenter::Marked.applies(&Context::new().with_value(QueryInfo::new())));
        assert!(SqlCommenter::Marked.applies(&Context::new().with_value(QueryInfo::new().sql_comment(true))));
    }

    proptest! {
        /// Whatever the statement, the comment is one well-formed block at the end that the
        /// statement's own text cannot close early, and the statement before it is unchanged.
        #[test]
        fn comment_is_appended_intact(sql in "[ -~]{0,80}") {
            if let Some(out) = commented(&sql, &cx(&[("k", "v'*/x")])) {
                let start = out.rfind(" /*traceparent='").unwrap();
                let body = sql.trim_end();
                let body = body.strip_suffix(';').map_or(body, str::trim_end);
                prop_assert_eq!(&out[..start], body);
                prop_assert_eq!(out[start..].matches("*/").count(), 1);
                prop_assert!(!out[start..].contains("v'"));
            } else {
                prop_assert!(sql.contains("/*") || sql.contains("--"));
            }
        }
    }
}
