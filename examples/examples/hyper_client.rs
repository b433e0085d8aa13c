//! Quickstart: hyper-util's legacy `Client` wrapped in otelrs-http's `HttpClientLayer` (any tower
//! `Service<http::Request<B>>` works). The request becomes a `CLIENT` span, its context goes out
//! in the `traceparent` header, and `http.client.request.duration` is recorded; both are printed
//! to the console.
//!
//! ```sh
//! cargo run -p examples --example axum       # in another terminal, or pass any http:// URL below
//! cargo run -p examples --example hyper_client -- http://127.0.0.1:3000/
//! ```

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_http::HttpClientLayer;
use tower::{ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3000/".to_owned());

    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("hyper-client-quickstart");
    if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
        builder = builder.with_traces_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_METRICS_EXPORTER").is_none() {
        builder = builder.with_metrics_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_LOGS_EXPORTER").is_none() {
        builder = builder.with_logs_exporters([]);
    }
    let telemetry = builder.install()?;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(HttpClientLayer::new().with_instrumentation(telemetry.instrumentation()))
        .service(client);
    let request = http::Request::get(&url).body(Full::new(Bytes::new()))?;
    // A failed request is recorded on the span (with `error.type`) before it is reported here.
    match client.oneshot(request).await {
        Ok(response) => {
            let status = response.status();
            // The span ends when the body has been read.
            let body = response.into_body().collect().await?.to_bytes();
            println!("GET {url} -> {status}, {} bytes", body.len());
        }
        Err(e) => eprintln!("GET {url} failed: {e}"),
    }

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
