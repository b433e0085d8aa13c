//! Runs N requests through one variant of the benchmark application, for instruction counting
//! under callgrind. Instructions per request = `(Ir(N) - Ir(0)) / N`.
//!
//! Usage: `http_instructions <variant> <requests> [unsampled]` with variant one of `bare`,
//! `otelrs-http`, `otelrs-http-globals`, `instrumentation-tower`, `instrumentation-tower-metrics`,
//! `axum-tracing-opentelemetry`.

use benches::http_apps::{call, router, runtime, Sdk, Variant};

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = match args.next().as_deref() {
        Some("bare") => Variant::Bare,
        Some("otelrs-http") => Variant::OtelHttp,
        Some("otelrs-http-globals") => Variant::OtelHttpGlobals,
        Some("instrumentation-tower") => Variant::InstrumentationTower,
        Some("instrumentation-tower-metrics") => Variant::InstrumentationTowerMetricsOnly,
        Some("axum-tracing-opentelemetry") => Variant::AxumTracingOpentelemetry,
        other => {
            eprintln!("unknown variant {other:?}");
            std::process::exit(2);
        }
    };
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sampled = args.next().as_deref() != Some("unsampled");
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let rt = runtime();
    let app = router(variant, &sdk);
    let dispatch = tracing::Dispatch::new(sdk.tracing_subscriber());
    // One warm-up request so lazily initialised state is not counted.
    let bytes = tracing::dispatcher::with_default(&dispatch, || {
        let mut bytes = rt.block_on(call(&app, sampled));
        for _ in 0..n {
            bytes += rt.block_on(call(&app, sampled));
        }
        bytes
    });
    let exported = sdk.flush();
    eprintln!("spans exported: {exported}");
    println!("{}: {n} requests, {bytes} bytes", variant.label());
}
