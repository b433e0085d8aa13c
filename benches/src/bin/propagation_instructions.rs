//! Runs one propagation case N times, for instruction counting under callgrind (deterministic,
//! unaffected by machine load). See BENCHMARKS.md for the command; instructions per call are
//! `(Ir(N) - Ir(0)) / N`.
//!
//! Usage: `propagation_instructions <case> <iterations> [tracestate]` with case one of
//! `ours-span-context`, `ours-headermap`, `ours-textmap`, `sdk` (extraction) or `ours-inject`,
//! `sdk-inject`; a third argument `tracestate` adds a two-member `tracestate`.

use std::hint::black_box;

use benches::headers;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otelrs_core::propagation::{HeaderExtractor, HeaderInjector, W3cPropagator, W3cTraceContextPropagator};

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let with_state = args.next().as_deref() == Some("tracestate");
    let ours = W3cTraceContextPropagator::new();
    let ours_w3c = W3cPropagator::trace_context_only();
    let sdk = TraceContextPropagator::new();
    let h = headers::request(with_state);
    let inject_cx = ours.extract_headers_with_context(&Context::new(), &h);
    let mut out = http::HeaderMap::with_capacity(8);
    let mut valid = 0u64;
    for _ in 0..n {
        let h = black_box(&h);
        let ok = match case.as_str() {
            "ours-span-context" => ours.extract_span_context_from_headers(h).is_some(),
            "ours-headermap" => ours_w3c
                .extract_headers_with_context(&Context::new(), h)
                .span()
                .span_context()
                .is_valid(),
            "ours-textmap" => ours
                .extract_with_context(&Context::new(), &HeaderExtractor(h))
                .span()
                .span_context()
                .is_valid(),
            "sdk" => sdk
                .extract_with_context(&Context::new(), &opentelemetry_http::HeaderExtractor(h))
                .span()
                .span_context()
                .is_valid(),
            "ours-inject" => {
                out.clear();
                ours.inject_context(&inject_cx, &mut HeaderInjector(&mut out));
                out.contains_key("traceparent")
            }
            "sdk-inject" => {
                out.clear();
                sdk.inject_context(&inject_cx, &mut opentelemetry_http::HeaderInjector(&mut out));
                out.contains_key("traceparent")
            }
            other => {
                eprintln!("unknown case {other:?}");
                std::process::exit(2);
            }
        };
        valid += u64::from(ok);
    }
    println!("{case}: {valid}/{n} valid");
}
