//! Quickstart: a reqwest client with otelrs-http's `HttpClientMiddleware` (via reqwest-middleware).
//! The request becomes a `CLIENT` span, its context goes out in the `traceparent` header, and
//! `http.client.request.duration` is recorded; both are printed to the console.
//!
//! ```sh
//! cargo run -p examples --example axum       # in another terminal, or pass any URL below
//! cargo run -p examples --example reqwest -- http://127.0.0.1:3000/
//! ```

use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_http::reqwest::HttpClientMiddleware;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:3000/".to_owned());

    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("reqwest-quickstart");
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

    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(HttpClientMiddleware::new().with_instrumentation(telemetry.instrumentation()))
        .build();
    // A failed request is recorded on the span (with `error.type`) before it is reported here.
    let result = client.get(&url).send().await;
    match result {
        Ok(response) => {
            let status = response.status();
            let body = response.text().await?;
            println!("GET {url} -> {status}, {} bytes", body.len());
        }
        Err(e) => eprintln!("GET {url} failed: {e}"),
    }

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
