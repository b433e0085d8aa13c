//! Runs N requests through one variant of the actix benchmark application, for instruction
//! counting under callgrind. Instructions per request = `(Ir(N) - Ir(0)) / N`.
//!
//! Usage: `actix_instructions <variant> <requests> [unsampled]` with variant one of `bare`,
//! `otelrs-http`, `otelrs-http-globals`, `instrumentation-actix-web`,
//! `instrumentation-actix-web-metrics`.

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::rt::SystemRunner;
use benches::actix_apps::{call, system, with_app, Variant, WithApp};
use benches::http_apps::Sdk;

struct Requests {
    n: u64,
    sampled: bool,
}

impl WithApp for Requests {
    type Output = usize;

    fn run<S, B>(self, system: &SystemRunner, app: S) -> usize
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody,
    {
        // One warm-up request so lazily initialised state is not counted.
        let mut bytes = system.block_on(call(&app, self.sampled));
        for _ in 0..self.n {
            bytes += system.block_on(call(&app, self.sampled));
        }
        bytes
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(variant) = args.next().as_deref().and_then(Variant::from_arg) else {
        eprintln!("unknown variant; see the usage in the source");
        std::process::exit(2);
    };
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sampled = args.next().as_deref() != Some("unsampled");
    let sdk = Sdk::new(sampled);
    sdk.install_globals();
    let system = system();
    let bytes = with_app(variant, &sdk, &system, Requests { n, sampled });
    let exported = sdk.flush();
    eprintln!("spans exported: {exported}");
    println!("{}: {n} requests, {bytes} bytes", variant.label());
}
