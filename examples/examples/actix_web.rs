//! Quickstart: an actix-web app wrapped in otelrs-http's `HttpServerMiddleware`, served on
//! 127.0.0.1:3000. Each request becomes a `SERVER` span named `{method} {http.route}` and records
//! `http.server.request.duration`; both are printed to the console until you press Ctrl-C.
//!
//! ```sh
//! cargo run -p examples --example actix_web
//! curl http://127.0.0.1:3000/users/7
//! ```

use actix_web::{web, App, HttpServer};
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_http::actix::HttpServerMiddleware;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // actix-web runs on its own (Tokio-based) system; the server stops on Ctrl-C.
    actix_web::rt::System::new().block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("actix-web-quickstart");
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
    let instrumentation = telemetry.instrumentation();

    let server = HttpServer::new(move || {
        App::new()
            .wrap(HttpServerMiddleware::new().with_instrumentation(instrumentation.clone()))
            .route("/", web::get().to(|| async { "hello\n" }))
            .route(
                "/users/{id}",
                web::get().to(|id: web::Path<String>| async move { format!("user {id}\n") }),
            )
    })
    .bind(("127.0.0.1", 3000))?;
    println!("listening on http://127.0.0.1:3000/ (Ctrl-C to stop)");
    server.run().await?;

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
