//! The opt-in response header that tells a client which trace its request joined: W3C Trace
//! Context Level 2 `traceresponse`, or a `traceparent` response header.

use http::{HeaderName, HeaderValue};
use opentelemetry::trace::SpanContext;
use otelrs_core::propagation::format_traceparent;

/// Which response header, if any, carries the server span's trace context back to the client.
///
/// The value is `00-{trace-id}-{server span id}-{trace-flags}` (the `traceparent` format, with
/// the server span as the parent a client would continue from). Off by default: it tells every
/// caller the trace ids of the service. A header the application already set is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceResponseHeader {
    /// No header (the default).
    #[default]
    Off,
    /// W3C Trace Context Level 2 `traceresponse`.
    TraceResponse,
    /// `traceparent`, which some tools read from responses.
    TraceParent,
}

/// When the header is sent, beyond the choice of [`TraceResponseHeader`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TraceResponse {
    pub(crate) header: TraceResponseHeader,
    /// Also for requests whose span is not sampled (the flags then say so).
    pub(crate) unsampled: bool,
}

impl TraceResponse {
    /// The header for a request served under `span` as (lower-case name, value), or `None`
    /// (off, no valid span, or not sampled and not asked for). Filtered-out requests have no
    /// span and never get one.
    pub(crate) fn header(&self, span: &SpanContext) -> Option<(&'static str, String)> {
        let name = match self.header {
            TraceResponseHeader::Off => return None,
            TraceResponseHeader::TraceResponse => "traceresponse",
            TraceResponseHeader::TraceParent => "traceparent",
        };
        if !span.is_valid() || !(span.is_sampled() || self.unsampled) {
            return None;
        }
        Some((name, format_traceparent(span)))
    }

    /// Adds the header to `headers` unless the application set one of that name.
    pub(crate) fn insert(&self, span: &SpanContext, headers: &mut http::HeaderMap) {
        if let Some((name, value)) = self.header(span) {
            // Hex digits and dashes only: always a valid header value.
            if let Ok(value) = HeaderValue::try_from(value) {
                headers.entry(HeaderName::from_static(name)).or_insert(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn span(sampled: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn off_by_default_and_only_for_sampled_spans_unless_asked() {
        assert_eq!(TraceResponse::default().header(&span(true)), None);
        let on = TraceResponse {
            header: TraceResponseHeader::TraceResponse,
            unsampled: false,
        };
        assert_eq!(
            on.header(&span(true)),
            Some((
                "traceresponse",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned()
            ))
        );
        assert_eq!(on.header(&span(false)), None);
        assert_eq!(on.header(&SpanContext::empty_context()), None);
        let all = TraceResponse {
            header: TraceResponseHeader::TraceParent,
            unsampled: true,
        };
        assert_eq!(
            all.header(&span(false)),
            Some((
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00".to_owned()
            ))
        );
    }

    #[test]
    fn an_application_header_is_kept() {
        let on = TraceResponse {
            header: TraceResponseHeader::TraceResponse,
            unsampled: false,
        };
        let mut headers = http::HeaderMap::new();
        headers.insert("traceresponse", HeaderValue::from_static("app"));
        on.insert(&span(true), &mut headers);
        assert_eq!(headers.get_all("traceresponse").iter().collect::<Vec<_>>(), ["app"]);
    }
}
