//! Quickstart: an axum `Router` behind otelrs-http's `HttpServerLayer`, served on 127.0.0.1:3000.
//! Each request becomes a `SERVER` span named `{method} {http.route}` and records
//! `http.server.request.duration`; both are printed to the console until you press Ctrl-C.
//!
//! ```sh
//! cargo run -p examples --example axum
//! curl http://127.0.0.1:3000/users/7
//! ```

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_http::HttpServerLayer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("axum-quickstart");
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

    let app = Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route(
            "/users/{id}",
            get(|Path(id): Path<String>| async move { format!("user {id}\n") }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(telemetry.instrumentation()));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}/ (Ctrl-C to stop)", listener.local_addr()?);
    // `ConnectInfo` gives the spans `client.address` / `network.peer.*`.
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
