//! `cargo +nightly fuzz run tracestate`
//!
//! Input: `tracestate` header lines, one per `\n` (UTF-8, lossily decoded), read together with a
//! valid `traceparent`.
//!
//! Properties:
//! * no panic; the `traceparent` is never rejected because of its `tracestate`;
//! * an accepted `tracestate` has at most 32 members, unique keys, every key and value valid by
//!   the W3C grammar (`is_valid_tracestate_key` / `_value`), and every member is one of the
//!   input's list members (nothing invented, nothing rewritten);
//! * the header the propagator re-injects re-parses to the identical header and trace state;
//! * the `http::HeaderMap` fast path gives the same result as the `&str` lines.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use otelrs_core::opentelemetry::propagation::TextMapPropagator;
use otelrs_core::opentelemetry::trace::{SpanContext, TraceContextExt};
use otelrs_core::opentelemetry::Context;
use otelrs_core::propagation::{
    is_valid_tracestate_key, is_valid_tracestate_value, VerbatimTraceState, W3cTraceContextPropagator,
};
use std::collections::{HashMap, HashSet};

const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The `tracestate` the propagator forwards for an extraction result.
fn forwarded(sc: &SpanContext, verbatim: &Option<VerbatimTraceState>) -> String {
    match verbatim {
        Some(v) => v.header().to_owned(),
        None => sc.trace_state().header(),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    let tc = W3cTraceContextPropagator::new();
    let (sc, verbatim) = tc
        .extract_span_context([TP], lines.iter().copied())
        .expect("a valid traceparent was rejected");
    assert_eq!(sc.trace_id().to_string(), &TP[3..35]);
    let header = forwarded(&sc, &verbatim);

    // The HTTP fast path reads the same lines the same way.
    let values: Result<Vec<HeaderValue>, _> = lines.iter().map(|l| HeaderValue::from_str(l)).collect();
    if let Ok(values) = values {
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(TP));
        for v in values {
            h.append("tracestate", v);
        }
        let (sc_h, verbatim_h) = tc.extract_span_context_from_headers(&h).expect("valid traceparent");
        assert_eq!(sc_h, sc, "HeaderMap and &str extraction disagree");
        assert_eq!(forwarded(&sc_h, &verbatim_h), header);
    }

    if header.is_empty() {
        assert!(verbatim.is_none());
        return;
    }
    let members: Vec<&str> = header.split(',').collect();
    assert!(members.len() <= 32, "{} members", members.len());
    let input_members: HashSet<&str> = lines
        .iter()
        .flat_map(|l| l.split(','))
        .map(|m| m.trim_matches(|c| c == ' ' || c == '\t'))
        .collect();
    let mut keys = HashSet::new();
    for m in &members {
        let (k, v) = m.split_once('=').expect("member without '='");
        assert!(is_valid_tracestate_key(k), "invalid key {k:?}");
        assert!(is_valid_tracestate_value(v), "invalid value {v:?}");
        assert!(keys.insert(k), "repeated key {k:?}");
        assert!(input_members.contains(m), "member {m:?} is not in the input");
    }

    // Re-serialised (through a context and the propagator) and re-parsed: identical.
    let mut cx = Context::new().with_remote_span_context(sc.clone());
    if let Some(v) = verbatim.clone() {
        cx = cx.with_value(v);
    }
    let mut out: HashMap<String, String> = HashMap::new();
    tc.inject_context(&cx, &mut out);
    assert_eq!(out.get("tracestate"), Some(&header));
    let (sc2, verbatim2) = tc
        .extract_span_context([TP], [header.as_str()])
        .expect("a valid traceparent was rejected");
    assert_eq!(forwarded(&sc2, &verbatim2), header, "re-parse changed the header");
    assert_eq!(sc2.trace_state(), sc.trace_state(), "re-parse changed the trace state");
});
