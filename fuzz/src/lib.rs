//! Helpers shared by the fuzz targets in `fuzz_targets/` (see `README.md`).

use std::collections::{BTreeMap, HashMap};

use otelrs_core::opentelemetry::baggage::BaggageExt;
use otelrs_core::opentelemetry::propagation::TextMapPropagator;
use otelrs_core::opentelemetry::Context;
use otelrs_core::propagation::W3cPropagator;

/// Splits fuzz input into header lines, one per `\n`: `name:value` (at most one space after the
/// colon is dropped), or, for a line without a colon, `(bare_name, line)`.
///
/// Plain text keeps the seed corpus readable (`traceparent: 00-…`), and every byte sequence is
/// still a valid input.
pub fn header_lines<'a>(data: &'a [u8], bare_name: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
    data.split(|b| *b == b'\n')
        .map(|line| match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (bare_name, line),
        })
        .collect()
}

/// What a context propagates, in a comparable form: the `traceparent` and `tracestate` the
/// family's propagator injects for it, and the baggage entries (key → value, metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagated {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub baggage: BTreeMap<String, (String, String)>,
}

/// See [`Propagated`].
pub fn propagated(cx: &Context) -> Propagated {
    let mut out: HashMap<String, String> = HashMap::new();
    W3cPropagator::trace_context_only().inject_context(cx, &mut out);
    Propagated {
        traceparent: out.remove("traceparent"),
        tracestate: out.remove("tracestate"),
        baggage: baggage_entries(cx.baggage()),
    }
}

/// The entries of a baggage as a sorted map (`Baggage` iterates in hash order).
pub fn baggage_entries(b: &otelrs_core::opentelemetry::baggage::Baggage) -> BTreeMap<String, (String, String)> {
    b.iter()
        .map(|(k, (v, m))| (k.as_str().to_owned(), (v.as_str().to_owned(), m.as_str().to_owned())))
        .collect()
}

/// The members of a serialised list header (`a=1,b=2`), sorted (baggage is serialised in hash
/// order).
pub fn sorted_members(header: &str) -> Vec<&str> {
    let mut m: Vec<&str> = header.split(',').collect();
    m.sort_unstable();
    m
}

/// Spaces and tabs, the only optional whitespace of the W3C headers.
pub fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !matches!(b, b' ' | b'\t')).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &s[start..end]
}
