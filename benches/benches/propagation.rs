//! Extract and inject: otelrs-core's strict W3C propagator vs `opentelemetry_sdk`'s
//! `TraceContextPropagator`, in the same run. Time from criterion; heap allocations per call from
//! the counting allocator, printed as a table before the timings.
//!
//! Run: `cargo bench -p benches --bench propagation`

use benches::{allocations_per_call, headers};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otelrs_core::propagation::{HeaderExtractor, HeaderInjector, W3cPropagator, W3cTraceContextPropagator};
use std::hint::black_box;

type Case = (&'static str, Box<dyn Fn(&http::HeaderMap) -> bool>);

fn extract_cases() -> Vec<Case> {
    let ours = W3cPropagator::trace_context_only();
    let ours_tc = W3cTraceContextPropagator::new();
    let ours_span_only = W3cTraceContextPropagator::new();
    let sdk = TraceContextPropagator::new();
    vec![
        (
            "otelrs-core span context (no Context)",
            Box::new(move |h: &http::HeaderMap| ours_span_only.extract_span_context_from_headers(h).is_some()),
        ),
        (
            "otelrs-core HeaderMap fast path",
            Box::new(move |h: &http::HeaderMap| {
                ours.extract_headers_with_context(&Context::new(), h)
                    .span()
                    .span_context()
                    .is_valid()
            }),
        ),
        (
            "otelrs-core TextMapPropagator",
            Box::new(move |h: &http::HeaderMap| {
                ours_tc
                    .extract_with_context(&Context::new(), &HeaderExtractor(h))
                    .span()
                    .span_context()
                    .is_valid()
            }),
        ),
        (
            "opentelemetry_sdk TraceContextPropagator",
            Box::new(move |h: &http::HeaderMap| {
                sdk.extract_with_context(&Context::new(), &opentelemetry_http::HeaderExtractor(h))
                    .span()
                    .span_context()
                    .is_valid()
            }),
        ),
    ]
}

fn inject_context(with_state: bool) -> Context {
    let state = if with_state {
        headers::TRACESTATE.parse::<TraceState>().unwrap_or_default()
    } else {
        TraceState::NONE
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap_or(TraceId::INVALID),
        SpanId::from_hex("b7ad6b7169203331").unwrap_or(SpanId::INVALID),
        TraceFlags::SAMPLED,
        false,
        state,
    ))
}

type InjectCase = (&'static str, Box<dyn Fn(&Context, &mut http::HeaderMap)>);

fn inject_cases() -> Vec<InjectCase> {
    let ours = W3cTraceContextPropagator::new();
    let sdk = TraceContextPropagator::new();
    vec![
        (
            "otelrs-core",
            Box::new(move |cx: &Context, h: &mut http::HeaderMap| ours.inject_context(cx, &mut HeaderInjector(h))),
        ),
        (
            "opentelemetry_sdk TraceContextPropagator",
            Box::new(move |cx: &Context, h: &mut http::HeaderMap| {
                sdk.inject_context(cx, &mut opentelemetry_http::HeaderInjector(h))
            }),
        ),
    ]
}

fn print_allocations() {
    println!("\nheap allocations per call (counting allocator, 10000 calls)");
    for (label, with_state) in [("traceparent", false), ("traceparent+tracestate", true)] {
        let h = headers::request(with_state);
        for (name, f) in extract_cases() {
            let n = allocations_per_call(10_000, || f(&h));
            println!("  extract {label:<24} {name:<42} {n:>5.2}");
        }
    }
    for (label, with_state) in [("traceparent", false), ("traceparent+tracestate", true)] {
        let cx = inject_context(with_state);
        for (name, f) in inject_cases() {
            let mut h = http::HeaderMap::with_capacity(8);
            let n = allocations_per_call(10_000, || {
                h.clear();
                f(&cx, &mut h)
            });
            println!("  inject  {label:<24} {name:<42} {n:>5.2}");
        }
    }
    println!();
}

fn bench(c: &mut Criterion) {
    print_allocations();
    for (label, with_state) in [("traceparent", false), ("traceparent+tracestate", true)] {
        let mut group = c.benchmark_group(format!("extract/{label}"));
        let h = headers::request(with_state);
        for (name, f) in extract_cases() {
            assert!(f(&h), "{name} must accept the benchmark headers");
            group.bench_with_input(BenchmarkId::from_parameter(name), &h, |b, h| b.iter(|| f(black_box(h))));
        }
        group.finish();
    }
    for (label, with_state) in [("traceparent", false), ("traceparent+tracestate", true)] {
        let mut group = c.benchmark_group(format!("inject/{label}"));
        let cx = inject_context(with_state);
        for (name, f) in inject_cases() {
            let mut h = http::HeaderMap::with_capacity(8);
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    h.clear();
                    f(black_box(&cx), &mut h)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
