//! The SDK setup exporting over OTLP/gRPC to a real tonic collector on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use otelrs_core::sdk::{OtlpProtocol, SdkBuilder, SdkConfig};
use otelrs_core::Instrumentation;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

/// Span names with the `x-tenant` metadata value they arrived with.
type ReceivedSpans = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone, Default)]
struct Collector {
    spans: ReceivedSpans,
    metrics: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let tenant = request
            .metadata()
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut spans = self.spans.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((s.name, tenant.clone()));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let mut names = self.metrics.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                names.extend(sm.metrics.into_iter().map(|m| m.name));
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_flushes_to_an_otlp_grpc_collector_with_headers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let collector = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip))
        .add_service(MetricsServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let server = tokio::spawn(server);

    let config = SdkConfig::from_lookup(|k| match k {
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("grpc".into()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(format!("http://{addr}")),
        "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-tenant=acme".into()),
        "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".into()),
        "OTEL_LOGS_EXPORTER" => Some("none".into()),
        _ => None,
    })
    .expect("valid configuration");
    assert_eq!(config.otlp_traces.protocol, OtlpProtocol::Grpc);
    let guard = SdkBuilder::from_config(config)
        .with_service_name("grpc-test")
        .with_shutdown_timeout(Duration::from_secs(10))
        .build()
        .expect("sdk builds inside the runtime");
    let inst = guard.instrumentation();
    let scope = Instrumentation::scope("grpc-test", "0");
    inst.tracer(scope.clone()).start("grpc-exported").end();
    inst.meter(scope)
        .u64_counter("grpc.test.count")
        .build()
        .add(1, &[KeyValue::new("k", "v")]);

    // Shutdown blocks while the exporters talk to the collector on this runtime's workers.
    let result = tokio::task::spawn_blocking(move || guard.shutdown()).await.unwrap();
    result.expect("shutdown flushes without error");

    assert_eq!(
        collector.spans.lock().unwrap().clone(),
        vec![("grpc-exported".to_string(), Some("acme".to_string()))],
        "the span arrived with the configured header as gRPC metadata"
    );
    assert!(collector
        .metrics
        .lock()
        .unwrap()
        .contains(&"grpc.test.count".to_string()));
    server.abort();
}
