//! Quickstart: otelrs-grpc's `GrpcServerLayer` and `GrpcClientLayer` around a tonic service. The
//! service is the standard `grpc.health.v1.Health` from tonic-health, so nothing needs `protoc`;
//! a `tonic-build` generated service and client are wrapped exactly the same way. Each call makes
//! a `CLIENT` span and, under it (the context travels in the request metadata), a `SERVER` span
//! named `grpc.health.v1.Health/Check`; both record `rpc.*.call.duration`. The second call fails
//! with `NOT_FOUND`, an error on the client span only. Spans and metrics are printed to the console.
//!
//! ```sh
//! cargo run -p examples --example tonic
//! ```

use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_grpc::{GrpcClientLayer, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::ServingStatus;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Console exporters unless `OTEL_*_EXPORTER` says otherwise (the SDK's default is OTLP).
    let mut builder = SdkBuilder::from_env()?.with_service_name("tonic-quickstart");
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

    // Server: the layer goes on the builder, around every service added to it.
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("shop.v1.Orders", ServingStatus::Serving)
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::builder()
            .layer(GrpcServerLayer::new().with_instrumentation(telemetry.instrumentation()))
            .add_service(health)
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = stopped.await;
            }),
    );

    // Client: the layer goes around the channel; any generated client takes the result.
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?;
    let channel = tower::ServiceBuilder::new()
        .layer(
            GrpcClientLayer::new()
                .with_instrumentation(telemetry.instrumentation())
                .with_endpoint(&endpoint), // server.address / server.port
        )
        .service(endpoint.connect().await?);
    let mut client = HealthClient::new(channel);

    for service in ["shop.v1.Orders", "shop.v1.Unknown"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        match client.check(request).await {
            Ok(reply) => println!("{service}: {:?}", reply.into_inner().status()),
            Err(status) => println!("{service}: {:?} ({})", status.code(), status.message()),
        }
    }

    let _ = stop.send(());
    server.await??;
    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
