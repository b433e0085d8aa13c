//! Per-call cost of gRPC instrumentation on a tonic unary call over loopback (client and server
//! in one current-thread runtime): time (criterion) and heap allocations (counting allocator),
//! bare tonic vs otelrs-grpc (server and client layers) vs tonic-tracing-opentelemetry (server and
//! client layers), all on the same SDK setup in the same run.
//!
//! Run: `cargo bench -p benches --bench grpc`

use benches::allocations_per_call;
use benches::grpc_apps::{runtime, App, Sdk, Variant, MESSAGE};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const CALLS: u64 = 2_000;

fn run_group(c: &mut Criterion, name: &str, sampled: bool) {
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let rt = runtime();
    let dispatch = tracing::Dispatch::new(sdk.tracing_subscriber());

    println!("\n{name}: heap allocations per unary call, client + server (counting allocator, {CALLS} calls)");
    for v in Variant::ALL {
        tracing::dispatcher::with_default(&dispatch, || {
            let mut app = rt.block_on(App::start(v, &sdk));
            sdk.flush();
            let before = sdk.exported_spans();
            let n = allocations_per_call(CALLS, || rt.block_on(app.call()));
            sdk.flush();
            let spans = (sdk.exported_spans() - before) as f64 / (CALLS + 1) as f64;
            println!(
                "  {:<32} {n:>8.2} allocations   {spans:.2} spans exported per call",
                v.label()
            );
        });
    }

    let mut group = c.benchmark_group(name);
    for v in Variant::ALL {
        tracing::dispatcher::with_default(&dispatch, || {
            let mut app = rt.block_on(App::start(v, &sdk));
            assert_eq!(
                rt.block_on(app.call()),
                MESSAGE.len(),
                "{} must answer the call",
                v.label()
            );
            group.bench_function(BenchmarkId::from_parameter(v.label()), |b| {
                b.iter(|| rt.block_on(app.call()))
            });
        });
    }
    group.finish();
    sdk.shutdown();
}

fn bench(c: &mut Criterion) {
    run_group(c, "grpc_unary/sampled", true);
    run_group(c, "grpc_unary/unsampled", false);
}

criterion_group!(benches, bench);
criterion_main!(benches);
