//! Per-request cost of HTTP server instrumentation on an actix-web app: time (criterion) and
//! heap allocations (counting allocator), bare vs otelrs-http's actix middleware vs
//! opentelemetry-instrumentation-actix-web, all on the same SDK setup in the same run. Requests
//! are driven in-process (`actix_web::test`), see `benches::actix_apps`.
//!
//! Run: `cargo bench -p benches --bench actix_server`

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::rt::SystemRunner;
use benches::actix_apps::{call, system, with_app, Variant, WithApp};
use benches::allocations_per_call;
use benches::http_apps::Sdk;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, BenchmarkId, Criterion};

const SAMPLED: [Variant; 4] = [
    Variant::Bare,
    Variant::OtelHttp,
    Variant::OtelHttpGlobals,
    Variant::InstrumentationActixWeb,
];
const UNSAMPLED: [Variant; 5] = [
    Variant::Bare,
    Variant::OtelHttp,
    Variant::OtelHttpGlobals,
    Variant::InstrumentationActixWeb,
    Variant::InstrumentationActixWebMetricsOnly,
];

struct Allocations {
    sampled: bool,
}

impl WithApp for Allocations {
    type Output = f64;

    fn run<S, B>(self, system: &SystemRunner, app: S) -> f64
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        allocations_per_call(2_000, || system.block_on(call(&app, self.sampled)))
    }
}

struct Time<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, criterion::measurement::WallTime>,
    variant: Variant,
    sampled: bool,
}

impl WithApp for Time<'_, '_> {
    type Output = ();

    fn run<S, B>(self, system: &SystemRunner, app: S)
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        let sampled = self.sampled;
        assert_eq!(
            system.block_on(call(&app, sampled)),
            "user 42".len(),
            "{} must serve the route",
            self.variant.label()
        );
        self.group
            .bench_function(BenchmarkId::from_parameter(self.variant.label()), |b| {
                b.iter(|| system.block_on(call(&app, sampled)))
            });
    }
}

fn run_group(c: &mut Criterion, name: &str, sampled: bool, variants: &[Variant]) {
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let system = system();

    println!("\n{name}: heap allocations per request (counting allocator, 2000 requests)");
    for &v in variants {
        let n = with_app(v, &sdk, &system, Allocations { sampled });
        println!("  {:<56} {n:>7.2}", v.label());
    }

    let mut group = c.benchmark_group(name);
    for &v in variants {
        with_app(
            v,
            &sdk,
            &system,
            Time {
                group: &mut group,
                variant: v,
                sampled,
            },
        );
    }
    group.finish();
    let _ = sdk.tracer_provider.shutdown();
    let _ = sdk.meter_provider.shutdown();
}

fn bench(c: &mut Criterion) {
    run_group(c, "actix_server/sampled", true, &SAMPLED);
    run_group(c, "actix_server/unsampled", false, &UNSAMPLED);
}

criterion_group!(benches, bench);
criterion_main!(benches);
