//! `cargo +nightly fuzz run message_headers`
//!
//! Input: message headers, one per `\n` (`key: value`, a bare line is a `traceparent` value);
//! keys are decoded lossily, values stay raw bytes (so they may be invalid UTF-8, as Kafka record
//! headers can be).
//!
//! Properties, over the carriers `Vec<(String, Vec<u8>)>`, `Vec<(String, String)>`,
//! `HashMap<String, String>` and `BTreeMap<String, String>` (`MessageExtractor` /
//! `MessageInjector` with the family's `W3cPropagator`):
//! * extraction never panics; the byte carrier (which skips non-UTF-8 values) and the string
//!   carrier holding the UTF-8 entries extract the same context;
//! * the trace context matches the model "exactly one `traceparent` value (keys matched ASCII
//!   case-insensitively), and the strict parser accepts it";
//! * injecting a context (the extracted one if valid, else one derived from the input, with the
//!   input's baggage and a trace state) into a carrier that already holds the junk headers, then
//!   extracting, returns exactly the injected context (traceparent, tracestate, baggage), for
//!   every carrier type.
#![no_main]

use std::collections::{BTreeMap, HashMap};

use libfuzzer_sys::fuzz_target;
use otel_rs_fuzz::{header_lines, propagated, Propagated};
use otelrs_core::opentelemetry::baggage::{Baggage, BaggageExt, KeyValueMetadata};
use otelrs_core::opentelemetry::propagation::TextMapPropagator;
use otelrs_core::opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use otelrs_core::opentelemetry::Context;
use otelrs_core::propagation::{
    parse_traceparent, MessageExtractor, MessageHeaders, MessageHeadersMut, MessageInjector, W3cPropagator,
};

fuzz_target!(|data: &[u8]| {
    let entries: Vec<(String, Vec<u8>)> = header_lines(data, b"traceparent")
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), v.to_vec()))
        .collect();
    let strings: Vec<(String, String)> = entries
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.clone()).ok()?)))
        .collect();
    let hash: HashMap<String, String> = strings.iter().cloned().collect();
    let tree: BTreeMap<String, String> = strings.iter().cloned().collect();

    let p = W3cPropagator::new();
    let root = Context::new();
    let from_bytes = p.extract_with_context(&root, &MessageExtractor(&entries));
    let from_strings = p.extract_with_context(&root, &MessageExtractor(&strings));
    assert_eq!(
        from_bytes.span().span_context(),
        from_strings.span().span_context(),
        "byte and string carriers disagree"
    );
    assert_eq!(propagated(&from_bytes), propagated(&from_strings));

    // The model.
    let traceparents: Vec<&str> = strings
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("traceparent"))
        .map(|(_, v)| v.as_str())
        .collect();
    let expected = match traceparents[..] {
        [one] => parse_traceparent(one),
        _ => None,
    };
    let span = from_bytes.span();
    let sc = span.span_context();
    match expected {
        Some((t, s, f)) => {
            assert!(sc.is_valid() && sc.is_remote());
            assert_eq!((sc.trace_id(), sc.span_id(), sc.trace_flags()), (t, s, f));
        }
        None => assert!(!sc.is_valid(), "extracted a context from {traceparents:?}"),
    }
    // The map carriers: no panic, and a context only where the model allows one.
    for cx in [
        p.extract_with_context(&root, &MessageExtractor(&hash)),
        p.extract_with_context(&root, &MessageExtractor(&tree)),
    ] {
        if cx.span().span_context().is_valid() {
            assert!(strings
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("traceparent") && parse_traceparent(v).is_some()));
        }
    }

    // Inject, then extract from a carrier that still holds the junk.
    let cx = if sc.is_valid() {
        from_bytes.clone()
    } else {
        synthetic(data, &from_bytes)
    };
    let want = propagated(&cx);
    assert!(want.traceparent.is_some());
    round_trip(&p, &cx, entries, &want);
    round_trip(&p, &cx, strings, &want);
    round_trip(&p, &cx, hash, &want);
    round_trip(&p, &cx, tree, &want);
});

fn round_trip<H: MessageHeaders + MessageHeadersMut + std::fmt::Debug>(
    p: &W3cPropagator,
    cx: &Context,
    mut carrier: H,
    want: &Propagated,
) {
    p.inject_context(cx, &mut MessageInjector(&mut carrier));
    let back = p.extract_with_context(&Context::new(), &MessageExtractor(&carrier));
    assert_eq!(
        &propagated(&back),
        want,
        "inject then extract changed the context: {carrier:?}"
    );
}

/// A valid remote context derived from the input, with the input's baggage and a trace state.
fn synthetic(data: &[u8], extracted: &Context) -> Context {
    use std::hash::{Hash, Hasher};
    let hash = |salt: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, data).hash(&mut h);
        h.finish() | 1
    };
    let trace_id = (u128::from(hash(1)) << 64) | u128::from(hash(2));
    let span_id = hash(3);
    let flags = TraceFlags::new(data.first().copied().unwrap_or(1));
    let state = TraceState::from_key_value([("fuzz", "1"), ("vendor@tenant", "x y")]).unwrap();
    let sc = SpanContext::new(TraceId::from(trace_id), SpanId::from(span_id), flags, true, state);
    Context::new().with_remote_span_context(sc).with_baggage(
        extracted
            .baggage()
            .iter()
            .map(|(k, (v, m))| KeyValueMetadata::new(k.clone(), v.clone(), m.clone()))
            .collect::<Baggage>(),
    )
}
