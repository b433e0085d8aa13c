//! Building the OTLP exporters of each signal: transport, endpoint, headers, compression, TLS,
//! and the retry and counting context the pipeline wraps them in.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};

use super::env::{OtlpCompression, OtlpConfig, OtlpProtocol, Signal};
use super::health::ExportHealth;
use super::http_client::{FailureSlot, OtlpHttpClient};
use super::pipeline::{ExportContext, Transport};
use super::retry::RetryPolicy;
use super::tls::TlsMaterial;
use super::SdkError;

fn headers_map(cfg: &OtlpConfig) -> HashMap<String, String> {
    cfg.headers.iter().cloned().collect()
}

fn metadata(cfg: &OtlpConfig) -> opentelemetry_otlp::tonic_types::metadata::MetadataMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        // Validated when the configuration was parsed.
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(h)
}

fn protocol(p: OtlpProtocol) -> opentelemetry_otlp::Protocol {
    match p {
        OtlpProtocol::Grpc => opentelemetry_otlp::Protocol::Grpc,
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::Protocol::HttpBinary,
        OtlpProtocol::HttpJson => opentelemetry_otlp::Protocol::HttpJson,
    }
}

/// semconv `otel.component.type` of an OTLP exporter.
pub(crate) fn component_type(signal: Signal, protocol: OtlpProtocol) -> &'static str {
    match (signal, protocol) {
        (Signal::Traces, OtlpProtocol::Grpc) => "otlp_grpc_span_exporter",
        (Signal::Traces, OtlpProtocol::HttpProtobuf) => "otlp_http_span_exporter",
        (Signal::Traces, OtlpProtocol::HttpJson) => "otlp_http_json_span_exporter",
        (Signal::Metrics, OtlpProtocol::Grpc) => "otlp_grpc_metric_exporter",
        (Signal::Metrics, OtlpProtocol::HttpProtobuf) => "otlp_http_metric_exporter",
        (Signal::Metrics, OtlpProtocol::HttpJson) => "otlp_http_json_metric_exporter",
        (Signal::Logs, OtlpProtocol::Grpc) => "otlp_grpc_log_exporter",
        (Signal::Logs, OtlpProtocol::HttpProtobuf) => "otlp_http_log_exporter",
        (Signal::Logs, OtlpProtocol::HttpJson) => "otlp_http_json_log_exporter",
    }
}

/// What every OTLP exporter of one signal is built from.
pub(crate) struct OtlpParts<'a> {
    pub(crate) signal: Signal,
    pub(crate) config: &'a OtlpConfig,
    pub(crate) retry: RetryPolicy,
    pub(crate) health: &'a ExportHealth,
}

impl OtlpParts<'_> {
    fn build_error(&self, message: impl ToString) -> SdkError {
        SdkError::Exporter {
            signal: self.signal.name(),
            message: message.to_string(),
        }
    }

    /// The counting context of the exporter, with its transport's failure handling.
    fn context(&self, transport: Transport) -> ExportContext {
        ExportContext {
            stats: self.health.exporter(
                self.signal,
                component_type(self.signal, self.config.protocol),
                Some(&self.config.endpoint),
            ),
            health: self.health.clone(),
            transport,
            stop: self.health.stopping(),
        }
    }
}

/// The builder chain of either transport, shared by the three signals (their builders are
/// different types with the same methods).
macro_rules! otlp_exporter {
    ($builder:expr, $cfg:expr, $transport:expr) => {{
        let cfg: &OtlpConfig = $cfg;
        match $transport {
            TransportPart::Grpc(tls_config) => {
                let mut b = $builder
                    .with_tonic()
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_metadata(metadata(cfg))
                    .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled());
                if let Some(tls_config) = tls_config {
                    b = b.with_tls_config(tls_config);
                }
                if cfg.compression == Some(OtlpCompression::Gzip) {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build().map_err(|e| e.to_string())
            }
            TransportPart::Http(client) => {
                let mut b = $builder
                    .with_http()
                    .with_protocol(protocol(cfg.protocol))
                    .with_endpoint(cfg.endpoint.clone())
                    .with_timeout(cfg.timeout)
                    .with_headers(headers_map(cfg))
                    .with_http_client(client)
                    .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled());
                if cfg.compression == Some(OtlpCompression::Gzip) {
                    b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                b.build().map_err(|e| e.to_string())
            }
        }
    }};
}

/// The transport-specific part handed to the exporter builder.
enum TransportPart {
    /// gRPC, with tonic's TLS configuration for `https://` endpoints.
    Grpc(Option<opentelemetry_otlp::tonic_types::transport::ClientTlsConfig>),
    /// HTTP, with the client (TLS and retries inside).
    Http(OtlpHttpClient),
}

/// Loads TLS, builds the transport part and the exporter, and pairs it with its context.
fn build<E>(
    parts: &OtlpParts<'_>,
    build: impl FnOnce(&OtlpConfig, TransportPart) -> Result<E, String>,
) -> Result<(E, ExportContext), SdkError> {
    let cfg = parts.config;
    let tls = TlsMaterial::load(&cfg.tls)?;
    let https = cfg.endpoint.starts_with("https://");
    match cfg.protocol {
        OtlpProtocol::Grpc => {
            let exporter =
                build(cfg, TransportPart::Grpc(https.then(|| tls.tonic_config()))).map_err(|e| parts.build_error(e))?;
            let context = parts.context(Transport::Grpc {
                retry: parts.retry,
                timeout: cfg.timeout,
            });
            Ok((exporter, context))
        }
        OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => {
            let slot = Arc::new(FailureSlot::default());
            let rustls = tls.rustls_config().map_err(|e| parts.build_error(e))?;
            let client = OtlpHttpClient::new(rustls, cfg.timeout, parts.retry, parts.health.stopping(), slot.clone());
            let exporter = build(cfg, TransportPart::Http(client)).map_err(|e| parts.build_error(e))?;
            Ok((exporter, parts.context(Transport::Http(slot))))
        }
    }
}

/// The OTLP span exporter.
pub(crate) fn span_exporter(
    parts: &OtlpParts<'_>,
) -> Result<(opentelemetry_otlp::SpanExporter, ExportContext), SdkError> {
    build(parts, |cfg, t| {
        otlp_exporter!(opentelemetry_otlp::SpanExporter::builder(), cfg, t)
    })
}

/// The OTLP metric exporter.
pub(crate) fn metric_exporter(
    parts: &OtlpParts<'_>,
) -> Result<(opentelemetry_otlp::MetricExporter, ExportContext), SdkError> {
    build(parts, |cfg, t| {
        otlp_exporter!(opentelemetry_otlp::MetricExporter::builder(), cfg, t)
    })
}

/// The OTLP log exporter.
pub(crate) fn log_exporter(
    parts: &OtlpParts<'_>,
) -> Result<(opentelemetry_otlp::LogExporter, ExportContext), SdkError> {
    build(parts, |cfg, t| {
        otlp_exporter!(opentelemetry_otlp::LogExporter::builder(), cfg, t)
    })
}
