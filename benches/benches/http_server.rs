//! Per-request cost of HTTP server instrumentation on an axum router: time (criterion) and heap
//! allocations (counting allocator), bare vs otelrs-http vs opentelemetry-instrumentation-tower vs
//! axum-tracing-opentelemetry, all on the same SDK setup in the same run.
//!
//! Run: `cargo bench -p benches --bench http_server`

use benches::allocations_per_call;
use benches::http_apps::{call, router, runtime, Sdk, Variant};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SAMPLED: [Variant; 5] = [
    Variant::Bare,
    Variant::OtelHttp,
    Variant::OtelHttpGlobals,
    Variant::InstrumentationTower,
    Variant::AxumTracingOpentelemetry,
];
const UNSAMPLED: [Variant; 4] = [
    Variant::Bare,
    Variant::OtelHttp,
    Variant::OtelHttpGlobals,
    Variant::InstrumentationTowerMetricsOnly,
];

fn run_group(c: &mut Criterion, name: &str, sampled: bool, variants: &[Variant]) {
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let rt = runtime();
    let subscriber = sdk.tracing_subscriber();
    let dispatch = tracing::Dispatch::new(subscriber);

    println!("\n{name}: heap allocations per request (counting allocator, 2000 requests)");
    for &v in variants {
        let app = router(v, &sdk);
        let n = tracing::dispatcher::with_default(&dispatch, || {
            allocations_per_call(2_000, || rt.block_on(call(&app, sampled)))
        });
        println!("  {:<52} {n:>7.2}", v.label());
    }

    let mut group = c.benchmark_group(name);
    for &v in variants {
        let app = router(v, &sdk);
        assert_eq!(
            rt.block_on(call(&app, sampled)),
            "user 42".len(),
            "{} must serve the route",
            v.label()
        );
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(BenchmarkId::from_parameter(v.label()), |b| {
                b.iter(|| rt.block_on(call(&app, sampled)))
            });
        });
    }
    group.finish();
    let _ = sdk.tracer_provider.shutdown();
    let _ = sdk.meter_provider.shutdown();
}

fn bench(c: &mut Criterion) {
    run_group(c, "http_server/sampled", true, &SAMPLED);
    run_group(c, "http_server/unsampled", false, &UNSAMPLED);
}

criterion_group!(benches, bench);
criterion_main!(benches);
