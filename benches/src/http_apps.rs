//! The axum application the HTTP server benchmarks run, bare and behind each instrumentation,
//! all on one SDK setup (batch span processor and periodic metric reader, both with exporters
//! that discard, so export cost is the same for everyone and never dominated by I/O).

use axum::body::Body;
use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use otelrs_core::propagation::W3cPropagator;
use otelrs_core::Instrumentation;
use tower::ServiceExt;
use tracing_subscriber::Layer as _;

/// Spans the [`DiscardSpans`] exporters of this process received.
pub static SPANS_EXPORTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

discard_exporters!(opentelemetry_sdk);

/// The SDK every variant uses.
#[derive(Clone, Debug)]
pub struct Sdk {
    /// Tracer provider (always-on or always-off sampling).
    pub tracer_provider: SdkTracerProvider,
    /// Meter provider.
    pub meter_provider: SdkMeterProvider,
}

impl Sdk {
    /// Providers with spans sampled (`sampled = true`) or dropped by the sampler.
    pub fn new(sampled: bool) -> Self {
        let tracer_provider = discarding_tracer_provider(sampled);
        let meter_provider = discarding_meter_provider();
        Self {
            tracer_provider,
            meter_provider,
        }
    }

    /// Exports every queued span and returns how many spans the exporter received in all. Call
    /// it at the end of an instruction-count run, so every span's export is counted.
    pub fn flush(&self) -> u64 {
        if let Err(e) = self.tracer_provider.force_flush() {
            eprintln!("flush: {e}");
        }
        SPANS_EXPORTED.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Installs these providers and the SDK's W3C propagator as the OpenTelemetry globals (the
    /// other crates read the globals).
    pub fn install_globals(&self) {
        opentelemetry::global::set_tracer_provider(self.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(self.meter_provider.clone());
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    }

    /// The `Instrumentation` for otelrs-http with explicit providers.
    pub fn instrumentation(&self) -> Instrumentation {
        Instrumentation::new()
            .with_tracer_provider(self.tracer_provider.clone())
            .with_meter_provider(self.meter_provider.clone())
            .with_propagator(W3cPropagator::default())
    }

    /// A `tracing` subscriber exporting `tracing` spans through this SDK, for
    /// axum-tracing-opentelemetry.
    pub fn tracing_subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(self.tracer_provider.tracer("bench"))
                // axum-tracing-opentelemetry creates its spans at TRACE on target `otel::tracing`.
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("otel::tracing", tracing::Level::TRACE)
                        .with_default(tracing::Level::INFO),
                ),
        )
    }
}

/// Which instrumentation wraps the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No instrumentation.
    Bare,
    /// `otelrs_http::HttpServerLayer` with explicit providers.
    OtelHttp,
    /// `otelrs_http::HttpServerLayer` reading the globals.
    OtelHttpGlobals,
    /// `opentelemetry-instrumentation-tower` 0.19 (spans and metrics).
    InstrumentationTower,
    /// `opentelemetry-instrumentation-tower` 0.19 with tracing off (metrics and propagation).
    InstrumentationTowerMetricsOnly,
    /// `axum-tracing-opentelemetry` 0.42 (spans through `tracing-opentelemetry`; no metrics).
    AxumTracingOpentelemetry,
}

impl Variant {
    /// Label used in benchmark ids.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "bare axum",
            Variant::OtelHttp => "otelrs-http",
            Variant::OtelHttpGlobals => "otelrs-http (globals)",
            Variant::InstrumentationTower => "opentelemetry-instrumentation-tower",
            Variant::InstrumentationTowerMetricsOnly => "opentelemetry-instrumentation-tower (metrics only)",
            Variant::AxumTracingOpentelemetry => "axum-tracing-opentelemetry",
        }
    }
}

async fn user(Path(id): Path<u64>) -> String {
    format!("user {id}")
}

fn app() -> Router {
    Router::new().route("/users/{id}", get(user))
}

/// The application wrapped by `variant`, finalised with `with_state(())` as `axum::serve` does
/// (otherwise axum would re-box every route handler on each call).
pub fn router(variant: Variant, sdk: &Sdk) -> Router {
    layered(variant, sdk).with_state(())
}

fn layered(variant: Variant, sdk: &Sdk) -> Router {
    match variant {
        Variant::Bare => app(),
        Variant::OtelHttp => {
            app().layer(otelrs_http::HttpServerLayer::new().with_instrumentation(sdk.instrumentation()))
        }
        Variant::OtelHttpGlobals => app().layer(otelrs_http::HttpServerLayer::new()),
        Variant::InstrumentationTower | Variant::InstrumentationTowerMetricsOnly => {
            let layer = opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
                .with_tracing(variant == Variant::InstrumentationTower)
                .build();
            match layer {
                Ok(layer) => app().layer(layer),
                Err(e) => panic!("opentelemetry-instrumentation-tower layer: {e}"),
            }
        }
        Variant::AxumTracingOpentelemetry => app()
            .layer(axum_tracing_opentelemetry::middleware::OtelInResponseLayer)
            .layer(axum_tracing_opentelemetry::middleware::OtelAxumLayer::default()),
    }
}

/// One request as a browser-facing API sees it: a route with a parameter, the usual headers and
/// an incoming `traceparent` (sampled flag as given).
pub fn request(sampled_parent: bool) -> Request<Body> {
    let traceparent = if sampled_parent {
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    } else {
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    };
    Request::builder()
        .uri("/users/42")
        .header("host", "api.example.com")
        .header("user-agent", "bench/1.0")
        .header("accept", "*/*")
        .header("traceparent", traceparent)
        .body(Body::empty())
        .unwrap_or_default()
}

/// Sends one request through `router` and reads the whole response body (instrumentation that
/// ends spans with the body must see it end). Returns the body length.
pub async fn call(router: &Router, sampled_parent: bool) -> usize {
    let response = match router.clone().oneshot(request(sampled_parent)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes().len(),
        Err(_) => 0,
    }
}

/// A single-threaded runtime, so every allocation of a request happens on the measuring thread.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}
