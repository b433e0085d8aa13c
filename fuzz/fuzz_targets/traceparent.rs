//! `cargo +nightly fuzz run traceparent`
//!
//! Input: header lines (`name: value`, a bare line is a `traceparent` value), e.g.
//! `traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01`.
//!
//! Properties:
//! * the strict parser (`parse_traceparent_bytes` / `parse_traceparent`) never panics, agrees on
//!   bytes and `&str`, and only accepts a value whose trimmed form is 55 bytes (or, for a version
//!   other than `00`, longer and continued by `-`), with non-zero ids copied verbatim and only the
//!   sampled / random flags kept;
//! * `format_traceparent` of what it accepted is exactly 55 bytes of version `00` and parses back
//!   to the same ids and flags;
//! * extraction from an `http::HeaderMap` built from the lines (fast path and `HeaderExtractor`,
//!   trace-context-only and composite propagators, small map and > 24 headers) agrees everywhere,
//!   and matches the model "exactly one `traceparent` line, visible ASCII, and it parses";
//! * re-injecting an extracted context yields a 55-byte `traceparent` that parses back to the
//!   same trace id, span id and flags, and extracting that again gives the same span context
//!   (trace state included) and the same baggage.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use otel_rs_fuzz::{header_lines, propagated, trim_ows, Propagated};
use otelrs_core::opentelemetry::propagation::TextMapPropagator;
use otelrs_core::opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceId, TraceState};
use otelrs_core::opentelemetry::Context;
use otelrs_core::propagation::{
    format_traceparent, parse_traceparent, parse_traceparent_bytes, HeaderExtractor, HeaderInjector, W3cPropagator,
    W3cTraceContextPropagator,
};

fuzz_target!(|data: &[u8]| {
    check_parser(data);
    let lines = header_lines(data, b"traceparent");
    for (_, value) in &lines {
        check_parser(value);
    }

    let mut headers = HeaderMap::new();
    for (name, value) in lines {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let small = check_map(&headers);
    // Maps of more than 24 values take the hashed-lookup path: same rules, same result.
    let mut large = headers.clone();
    for i in 0..30 {
        large.append(
            HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    assert_eq!(check_map(&large), small, "filler headers changed the extraction");
});

fn check_parser(value: &[u8]) {
    let parsed = parse_traceparent_bytes(value);
    if let Ok(s) = std::str::from_utf8(value) {
        assert_eq!(parse_traceparent(s), parsed, "bytes and str parsers disagree");
    }
    let Some((trace_id, span_id, flags)) = parsed else {
        return;
    };
    assert_ne!(trace_id, TraceId::INVALID);
    assert_ne!(span_id, SpanId::INVALID);
    assert_eq!(flags.to_u8() & !0x03, 0, "unknown flag bits kept");
    let trimmed = trim_ows(value);
    assert!(
        trimmed.len() == 55 || (trimmed.len() > 55 && &trimmed[..2] != b"00" && trimmed[55] == b'-'),
        "accepted a traceparent of the wrong shape: {value:?}"
    );
    let sc = SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE);
    let out = format_traceparent(&sc);
    assert_eq!(out.len(), 55);
    assert!(out.starts_with("00-"));
    // Only lowercase hex is accepted, so the ids are copied byte for byte.
    assert_eq!(&out.as_bytes()[2..52], &trimmed[2..52]);
    assert_eq!(parse_traceparent(&out), Some((trace_id, span_id, flags)));
}

/// Extracts from `headers` every way there is, checks they agree and round-trip, and returns
/// what the context propagates.
fn check_map(headers: &HeaderMap) -> Propagated {
    let root = Context::new();
    let tc = W3cTraceContextPropagator::new();
    let fast = tc.extract_headers_with_context(&root, headers);
    let generic = tc.extract_with_context(&root, &HeaderExtractor(headers));
    assert_eq!(
        fast.span().span_context(),
        generic.span().span_context(),
        "fast and generic paths disagree"
    );

    let w3c = W3cPropagator::new();
    let fast_all = w3c.extract_headers_with_context(&root, headers);
    let generic_all = w3c.extract_with_context(&root, &HeaderExtractor(headers));
    assert_eq!(fast_all.span().span_context(), fast.span().span_context());
    let got = propagated(&fast_all);
    assert_eq!(
        got,
        propagated(&generic_all),
        "composite fast and generic paths disagree"
    );

    // The model: exactly one `traceparent` line, visible ASCII (`HeaderExtractor` reports any
    // other line as invalid), which the strict parser accepts.
    let lines: Vec<&HeaderValue> = headers.get_all("traceparent").iter().collect();
    let expected = match lines[..] {
        [one] => one.to_str().ok().and_then(parse_traceparent),
        _ => None,
    };
    let span = fast.span();
    let sc = span.span_context();
    match expected {
        Some((trace_id, span_id, flags)) => {
            assert!(sc.is_valid() && sc.is_remote());
            assert_eq!(
                (sc.trace_id(), sc.span_id(), sc.trace_flags()),
                (trace_id, span_id, flags)
            );
        }
        None => assert!(!sc.is_valid(), "extracted a context from {lines:?}"),
    }

    // Round trip through a fresh header map.
    let mut out = HeaderMap::new();
    w3c.inject_context(&fast_all, &mut HeaderInjector(&mut out));
    match out.get("traceparent") {
        Some(tp) => {
            assert!(sc.is_valid());
            assert_eq!(tp.len(), 55);
            assert!(tp.as_bytes().starts_with(b"00-"));
            assert_eq!(
                parse_traceparent_bytes(tp.as_bytes()),
                Some((sc.trace_id(), sc.span_id(), sc.trace_flags()))
            );
        }
        None => assert!(!sc.is_valid(), "a valid context was not injected"),
    }
    let back = w3c.extract_headers_with_context(&root, &out);
    assert_eq!(
        back.span().span_context(),
        fast_all.span().span_context(),
        "round trip changed the span context"
    );
    assert_eq!(propagated(&back), got, "round trip changed what is propagated");
    got
}
