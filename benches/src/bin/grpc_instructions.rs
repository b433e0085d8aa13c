//! Runs N unary calls of one variant of the gRPC benchmark (client and server in one
//! current-thread runtime), for instruction counting under callgrind. Instructions per call =
//! `(Ir(N) - Ir(0)) / N`. Also prints heap allocations per call (counting allocator, calling
//! thread = everything but the SDK's export threads).
//!
//! Usage: `grpc_instructions <variant> <calls> [unsampled]` with variant one of `bare`,
//! `otelrs-grpc`, `tonic-tracing-opentelemetry`.

use benches::allocations;
use benches::grpc_apps::{runtime, App, Sdk, Variant};

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let Some(variant) = Variant::from_name(&name) else {
        eprintln!("unknown variant {name:?}; one of bare, otelrs-grpc, tonic-tracing-opentelemetry");
        std::process::exit(2);
    };
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sampled = args.next().as_deref() != Some("unsampled");
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let rt = runtime();
    let dispatch = tracing::Dispatch::new(sdk.tracing_subscriber());
    let (bytes, allocs) = tracing::dispatcher::with_default(&dispatch, || {
        let mut app = rt.block_on(App::start(variant, &sdk));
        // One warm-up call so lazily initialised state is not counted.
        let mut bytes = rt.block_on(app.call());
        let before = allocations();
        for _ in 0..n {
            bytes += rt.block_on(app.call());
        }
        (bytes, allocations() - before)
    });
    sdk.flush();
    let spans = sdk.exported_spans();
    sdk.shutdown();
    let per_call = if n == 0 { 0.0 } else { allocs as f64 / n as f64 };
    println!(
        "{} ({}): {n} calls (+1 warm-up), {bytes} bytes, {per_call:.2} allocations per call, {spans} spans exported",
        variant.label(),
        if sampled { "sampled" } else { "unsampled" },
    );
}
