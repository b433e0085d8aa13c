//! The actix-web application the actix server benchmarks run, bare and behind each
//! instrumentation, on the SDK setup of [`crate::http_apps::Sdk`] (batch span processor and
//! periodic metric reader with discarding exporters).
//!
//! Requests are driven in-process: the app is built with `actix_web::test::init_service` and
//! each request goes through `test::call_service` on a single-threaded actix `System`, the whole
//! response body read. No socket is involved, so only the framework and the instrumentation are
//! measured, and every allocation of a request happens on the measuring thread.

use std::net::SocketAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::rt::SystemRunner;
use actix_web::{test, web, App};

use crate::http_apps::Sdk;

/// Which instrumentation wraps the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No instrumentation.
    Bare,
    /// `otelrs_http::actix::HttpServerMiddleware` with explicit providers.
    OtelHttp,
    /// `otelrs_http::actix::HttpServerMiddleware` reading the globals.
    OtelHttpGlobals,
    /// `opentelemetry-instrumentation-actix-web` 0.25: `RequestTracing` and `RequestMetrics`
    /// (spans, duration and active requests).
    InstrumentationActixWeb,
    /// `opentelemetry-instrumentation-actix-web` 0.25, `RequestMetrics` only.
    InstrumentationActixWebMetricsOnly,
}

impl Variant {
    /// Label used in benchmark ids.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "bare actix-web",
            Variant::OtelHttp => "otelrs-http",
            Variant::OtelHttpGlobals => "otelrs-http (globals)",
            Variant::InstrumentationActixWeb => "opentelemetry-instrumentation-actix-web",
            Variant::InstrumentationActixWebMetricsOnly => "opentelemetry-instrumentation-actix-web (metrics only)",
        }
    }

    /// The variant named `name` on the command line.
    pub fn from_arg(name: &str) -> Option<Self> {
        Some(match name {
            "bare" => Variant::Bare,
            "otelrs-http" => Variant::OtelHttp,
            "otelrs-http-globals" => Variant::OtelHttpGlobals,
            "instrumentation-actix-web" => Variant::InstrumentationActixWeb,
            "instrumentation-actix-web-metrics" => Variant::InstrumentationActixWebMetricsOnly,
            _ => return None,
        })
    }
}

async fn user(id: web::Path<u64>) -> String {
    format!("user {}", id.into_inner())
}

/// What to do with the initialised app of a variant: the app's type differs per variant, so the
/// caller's code is generic over it instead of calling through a box.
pub trait WithApp {
    /// Result of [`WithApp::run`].
    type Output;

    /// Runs with the initialised `app`, on `system`.
    fn run<S, B>(self, system: &SystemRunner, app: S) -> Self::Output
    where
        S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
        B: MessageBody;
}

/// Builds the app wrapped by `variant` (in `system`) and hands it to `f`.
pub fn with_app<F: WithApp>(variant: Variant, sdk: &Sdk, system: &SystemRunner, f: F) -> F::Output {
    macro_rules! run {
        ($app:expr) => {{
            let app = system.block_on(test::init_service($app.route("/users/{id}", web::get().to(user))));
            f.run(system, app)
        }};
    }
    match variant {
        Variant::Bare => run!(App::new()),
        Variant::OtelHttp => run!(App::new()
            .wrap(otelrs_http::actix::HttpServerMiddleware::new().with_instrumentation(sdk.instrumentation()))),
        Variant::OtelHttpGlobals => run!(App::new().wrap(otelrs_http::actix::HttpServerMiddleware::new())),
        Variant::InstrumentationActixWeb => run!(App::new()
            .wrap(opentelemetry_instrumentation_actix_web::RequestTracing::new())
            .wrap(
                opentelemetry_instrumentation_actix_web::RequestMetrics::builder()
                    .with_meter_provider(sdk.meter_provider.clone())
                    .build()
            )),
        Variant::InstrumentationActixWebMetricsOnly => run!(App::new().wrap(
            opentelemetry_instrumentation_actix_web::RequestMetrics::builder()
                .with_meter_provider(sdk.meter_provider.clone())
                .build()
        )),
    }
}

/// The peer address every request comes from (actix always knows it for a real connection).
pub const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 54321);

/// One request as in the axum benchmark: `GET /users/42`, the usual headers, an incoming
/// `traceparent` (sampled flag as given), and the peer address.
pub fn request(sampled_parent: bool) -> actix_http::Request {
    let traceparent = if sampled_parent {
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    } else {
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    };
    test::TestRequest::get()
        .uri("/users/42")
        .insert_header(("host", "api.example.com"))
        .insert_header(("user-agent", "bench/1.0"))
        .insert_header(("accept", "*/*"))
        .insert_header(("traceparent", traceparent))
        .peer_addr(PEER)
        .to_request()
}

/// Sends one request through `app` and reads the whole response body (instrumentation that ends
/// spans with the body must see it end). Returns the body length.
pub async fn call<S, B>(app: &S, sampled_parent: bool) -> usize
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, request(sampled_parent)).await;
    test::read_body(response).await.len()
}

/// A single-threaded actix system (one current-thread tokio runtime), so every allocation of a
/// request happens on the measuring thread.
pub fn system() -> SystemRunner {
    actix_web::rt::System::new()
}
