//! Bad input to context propagation: `traceparent`, `tracestate` and `baggage` through
//! `W3cPropagator` (the `HeaderExtractor` path and the `HeaderMap` fast path) and the message
//! carriers. No panic, both paths agree, and what is accepted is well formed.

use std::collections::HashMap;

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use otelrs_core::propagation::{
    format_traceparent, parse_traceparent, HeaderExtractor, MessageExtractor, W3cPropagator, BAGGAGE_MAX_BYTES,
    BAGGAGE_MAX_MEMBERS,
};
use proptest::prelude::*;

const VALID_TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// What an extraction produced, in a comparable form.
#[derive(Debug, PartialEq)]
struct Extracted {
    span_context: Option<(String, String, u8, String)>,
    baggage: Vec<(String, String, String)>,
}

fn summarize(cx: &Context) -> Extracted {
    let span = cx.span();
    let sc: &SpanContext = span.span_context();
    let span_context = sc.is_valid().then(|| {
        assert!(sc.is_remote(), "an extracted span context is remote");
        (
            sc.trace_id().to_string(),
            sc.span_id().to_string(),
            sc.trace_flags().to_u8(),
            sc.trace_state().header(),
        )
    });
    let mut baggage: Vec<(String, String, String)> = cx
        .baggage()
        .iter()
        .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
        .collect();
    baggage.sort();
    Extracted { span_context, baggage }
}

/// Checks the invariants of anything extracted: ids valid and lowercase-hex formatted, only the
/// sampled/random flags, baggage within the W3C limits.
fn assert_well_formed(e: &Extracted) {
    if let Some((trace_id, span_id, flags, _)) = &e.span_context {
        assert_eq!(trace_id.len(), 32);
        assert_eq!(span_id.len(), 16);
        assert_ne!(trace_id, &"0".repeat(32));
        assert_ne!(span_id, &"0".repeat(16));
        assert_eq!(flags & !0x03, 0, "only sampled and random flags survive");
    }
    assert!(e.baggage.len() <= BAGGAGE_MAX_MEMBERS, "{} members", e.baggage.len());
}

fn both_paths(headers: &http::HeaderMap) -> (Extracted, Extracted) {
    let p = W3cPropagator::default();
    let slow = summarize(&p.extract_with_context(&Context::new(), &HeaderExtractor(headers)));
    let fast = summarize(&p.extract_headers_with_context(&Context::new(), headers));
    assert_well_formed(&slow);
    assert_well_formed(&fast);
    (slow, fast)
}

/// Header values of every shape a peer could send: near-valid `traceparent`s, list syntax with
/// junk, random visible ASCII, and arbitrary bytes including obs-text (0x80..=0xff).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Mutations of a valid traceparent: one byte replaced.
        (0usize..55, any::<u8>()).prop_map(|(i, b)| {
            let mut v = VALID_TP.as_bytes().to_vec();
            v[i] = b;
            v
        }),
        // Valid traceparents with version, flags, OWS and trailing parts varied.
        (
            "[0-9a-f]{2}",
            "[0-9a-f]{32}",
            "[0-9a-f]{16}",
            "[0-9a-f]{2}",
            "[ \t]{0,2}",
            "(-[ -~]{0,8})?"
        )
            .prop_map(|(v, t, s, f, ows, tail)| format!("{ows}{v}-{t}-{s}-{f}{tail}{ows}").into_bytes()),
        // List syntax (tracestate / baggage) with junk members.
        prop::collection::vec("[ -~]{0,12}=[ -~]{0,12}(;[ -~]{0,6})?", 0..40).prop_map(|m| m.join(",").into_bytes()),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..120),
    ]
}

/// Builds a `HeaderMap` from raw lines, skipping values `http` itself refuses (control bytes).
fn header_map(lines: &[(&'static str, Vec<u8>)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (name, value) in lines {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            h.append(*name, v);
        }
    }
    h
}

fn lines() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["traceparent", "tracestate", "baggage"]),
            header_value(),
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Arbitrary `traceparent` / `tracestate` / `baggage` lines never panic, and when every value
    /// is visible ASCII the extractor path and the `HeaderMap` fast path give the same context.
    #[test]
    fn arbitrary_propagation_headers_never_panic_and_paths_agree(lines in lines()) {
        let headers = header_map(&lines);
        let (slow, fast) = both_paths(&headers);
        let all_ascii = headers.values().all(|v| v.to_str().is_ok());
        if all_ascii {
            prop_assert_eq!(slow, fast);
        }
    }

    /// A well-formed `traceparent` (any version but `ff`, any OWS) is accepted by both paths and
    /// re-formatted canonically; the remote context carries exactly its ids.
    #[test]
    fn valid_traceparent_round_trips(
        trace_id in "[0-9a-f]{32}",
        span_id in "[0-9a-f]{16}",
        flags in any::<u8>(),
        ows in "[ \t]{0,3}",
    ) {
        prop_assume!(trace_id != "0".repeat(32) && span_id != "0".repeat(16));
        let tp = format!("{ows}00-{trace_id}-{span_id}-{flags:02x}{ows}");
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", tp.parse().unwrap());
        let (slow, fast) = both_paths(&h);
        let expected = (trace_id.clone(), span_id.clone(), flags & 0x03, String::new());
        prop_assert_eq!(slow.span_context.as_ref(), Some(&expected));
        prop_assert_eq!(fast.span_context.as_ref(), Some(&expected));
        let (t, s, f) = parse_traceparent(&tp).expect("valid traceparent parses");
        let sc = SpanContext::new(t, s, f, true, Default::default());
        prop_assert_eq!(format_traceparent(&sc), format!("00-{trace_id}-{span_id}-{:02x}", flags & 0x03));
    }

    /// Uppercase hex, a wrong length or any non-hex byte in a `traceparent` is rejected: a new
    /// trace starts, and `tracestate` / no baggage leaks into a span context.
    #[test]
    fn corrupted_traceparent_is_rejected(i in 0usize..55, b in any::<u8>()) {
        let mut v = VALID_TP.as_bytes().to_vec();
        v[i] = b;
        let lower_hex = b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        let still_valid = match i {
            2 | 35 | 52 => b == b'-',
            0 | 1 => lower_hex && v[..2] != *b"ff",
            _ => lower_hex,
        };
        let mut h = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_bytes(&v) {
            h.insert("traceparent", value);
            h.insert("tracestate", http::HeaderValue::from_static("congo=t61rcWkgMzE"));
            let (slow, fast) = both_paths(&h);
            if still_valid {
                prop_assert!(fast.span_context.is_some());
            } else {
                prop_assert_eq!(&fast.span_context, &None, "{:?}", String::from_utf8_lossy(&v));
                prop_assert_eq!(&slow.span_context, &None);
            }
        }
    }

    /// Message carriers (ordered lists, byte-valued lists, maps) never panic on arbitrary keys and
    /// values, and an ordered list with the W3C names in any letter case extracts exactly what the
    /// same lines extract from a `HeaderMap`.
    #[test]
    fn message_carriers_never_panic_and_match_header_maps(
        lines in lines(),
        upper in prop::collection::vec(any::<bool>(), 6),
        junk in prop::collection::vec(("[ -~]{0,10}", prop::collection::vec(any::<u8>(), 0..40)), 0..4),
    ) {
        let p = W3cPropagator::default();
        let headers = header_map(&lines);
        let ascii: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let cased: Vec<(String, String)> = ascii
            .iter()
            .zip(upper.iter().cycle())
            .map(|((k, v), up)| (if *up { k.to_ascii_uppercase() } else { k.clone() }, v.clone()))
            .collect();
        let from_list = summarize(&p.extract_with_context(&Context::new(), &MessageExtractor(&cased)));
        // Only ASCII lines: the header map keeps them, so both see exactly the same lines.
        if ascii.len() == headers.len() {
            let (slow, _) = both_paths(&headers);
            prop_assert_eq!(&from_list, &slow);
        }
        assert_well_formed(&from_list);

        // Byte-valued carriers with arbitrary (also non-UTF-8) values and junk keys.
        let mut bytes: Vec<(String, Vec<u8>)> = lines.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        bytes.extend(junk.iter().cloned());
        assert_well_formed(&summarize(&p.extract_with_context(&Context::new(), &MessageExtractor(&bytes))));

        let map: HashMap<String, String> = cased.into_iter().chain(
            junk.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        ).collect();
        assert_well_formed(&summarize(&p.extract_with_context(&Context::new(), &MessageExtractor(&map))));
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    /// Baggage of any size keeps the W3C limits: at most 64 members and 8192 bytes in total.
    #[test]
    fn baggage_limits_hold_for_any_member_count(
        members in prop::collection::vec(("[a-z]{1,8}", "[a-zA-Z0-9]{0,300}"), 0..150),
    ) {
        let value = members.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let mut h = http::HeaderMap::new();
        h.insert("baggage", value.parse().unwrap());
        let (slow, fast) = both_paths(&h);
        prop_assert_eq!(&slow, &fast);
        let bytes: usize = fast.baggage.iter().map(|(k, v, _)| k.len() + 1 + v.len()).sum::<usize>()
            + fast.baggage.len().saturating_sub(1);
        prop_assert!(bytes <= BAGGAGE_MAX_BYTES, "{} bytes", bytes);
    }
}
