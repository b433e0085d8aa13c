//! Allocation counts are deterministic, so they are asserted here (timings never are).

use benches::{allocations_per_call, headers};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use otelrs_core::propagation::{W3cPropagator, W3cTraceContextPropagator};

#[test]
fn extracting_a_traceparent_does_not_allocate() {
    let h = headers::request(false);
    let p = W3cTraceContextPropagator::new();
    let n = allocations_per_call(1_000, || p.extract_span_context_from_headers(&h).map(|(sc, _)| sc));
    assert_eq!(n, 0.0, "span-context extraction must not allocate");
}

#[test]
fn extracting_from_string_values_does_not_allocate() {
    let p = W3cTraceContextPropagator::new();
    let n = allocations_per_call(1_000, || {
        p.extract_span_context([headers::TRACEPARENT], std::iter::empty())
            .map(|(sc, _)| sc)
    });
    assert_eq!(n, 0.0);
}

#[test]
fn extracting_into_a_context_allocates_only_the_context_entry() {
    let h = headers::request(false);
    let p = W3cPropagator::default();
    let n = allocations_per_call(1_000, || {
        let cx = p.extract_headers_with_context(&Context::new(), &h);
        cx.span().span_context().is_valid()
    });
    // `Context::with_remote_span_context` boxes the span in an `Arc`: the only allocation.
    assert_eq!(n, 1.0);
}
