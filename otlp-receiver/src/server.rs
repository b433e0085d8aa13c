//! The server side: accept loop, TLS, OTLP/HTTP handler and OTLP/gRPC services.

use std::convert::Infallible;
use std::io::Read;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use opentelemetry_proto::tonic::collector::logs::v1::{ExportLogsServiceRequest, ExportLogsServiceResponse};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tonic::codec::CompressionEncoding;
use tonic::codegen::Service;
use tonic::service::Routes;

use crate::{Counts, Failure, ReceiverOptions, ServerTls, Transport};

/// How long a client may take to start and finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the receiver shares between its connections and the [`crate::Receiver`] handle.
pub(crate) struct State {
    counts: Mutex<Counts>,
    traces: Mutex<Vec<ExportTraceServiceRequest>>,
    metrics: Mutex<Vec<ExportMetricsServiceRequest>>,
    logs: Mutex<Vec<ExportLogsServiceRequest>>,
    keep_requests: bool,
    delay: Duration,
    fail_remaining: AtomicU32,
    failure: Option<Failure>,
}

/// One decoded export request.
enum Export {
    Traces(ExportTraceServiceRequest),
    Metrics(ExportMetricsServiceRequest),
    Logs(ExportLogsServiceRequest),
}

#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
    Logs,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not make the receiver unusable for the others.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

fn point_count(request: &ExportMetricsServiceRequest) -> u64 {
    request
        .resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|metric| match &metric.data {
            Some(Data::Gauge(g)) => g.data_points.len() as u64,
            Some(Data::Sum(s)) => s.data_points.len() as u64,
            Some(Data::Histogram(h)) => h.data_points.len() as u64,
            Some(Data::ExponentialHistogram(h)) => h.data_points.len() as u64,
            Some(Data::Summary(s)) => s.data_points.len() as u64,
            None => 0,
        })
        .sum()
}

fn log_record_count(request: &ExportLogsServiceRequest) -> u64 {
    request
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len() as u64)
        .sum()
}

impl State {
    pub(crate) fn new(options: &ReceiverOptions) -> State {
        let (fail_remaining, failure) = match &options.fail_first {
            Some((n, failure)) => (*n, Some(failure.clone())),
            None => (0, None),
        };
        State {
            counts: Mutex::new(Counts::default()),
            traces: Mutex::default(),
            metrics: Mutex::default(),
            logs: Mutex::default(),
            keep_requests: options.keep_requests,
            delay: options.delay,
            fail_remaining: AtomicU32::new(fail_remaining),
            failure,
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        *lock(&self.counts)
    }

    pub(crate) fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        lock(&self.traces).clone()
    }

    pub(crate) fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        lock(&self.metrics).clone()
    }

    pub(crate) fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        lock(&self.logs).clone()
    }

    fn add_bytes(&self, n: usize) {
        lock(&self.counts).bytes += n as u64;
    }

    fn add_handshake_failure(&self) {
        lock(&self.counts).tls_handshake_failures += 1;
    }

    /// Whether this request is one of the first `n` that must fail (decided on arrival).
    fn take_failure(&self) -> Option<Failure> {
        let failure = self.failure.as_ref()?;
        self.fail_remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| failure.clone())
    }

    /// Answers one export request: waits the configured delay, then fails it or records it.
    async fn handle(&self, export: Export) -> Result<(), Failure> {
        let failure = self.take_failure();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if let Some(failure) = failure {
            lock(&self.counts).failed_requests += 1;
            return Err(failure);
        }
        match export {
            Export::Traces(request) => {
                let spans = span_count(&request);
                {
                    let mut counts = lock(&self.counts);
                    counts.trace_requests += 1;
                    counts.spans += spans;
                }
                if self.keep_requests {
                    lock(&self.traces).push(request);
                }
            }
            Export::Metrics(request) => {
                let points = point_count(&request);
                {
                    let mut counts = lock(&self.counts);
                    counts.metric_requests += 1;
                    counts.metric_points += points;
                }
                if self.keep_requests {
                    lock(&self.metrics).push(request);
                }
            }
            Export::Logs(request) => {
                let records = log_record_count(&request);
                {
                    let mut counts = lock(&self.counts);
                    counts.log_requests += 1;
                    counts.log_records += records;
                }
                if self.keep_requests {
                    lock(&self.logs).push(request);
                }
            }
        }
        Ok(())
    }
}

impl Failure {
    /// The HTTP status and `Retry-After` value of this failure.
    fn http(&self) -> (StatusCode, Option<u32>) {
        match *self {
            Failure::Http { status, retry_after } => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                retry_after,
            ),
            Failure::Grpc { code } => {
                let status = match tonic::Code::from(code) {
                    tonic::Code::InvalidArgument | tonic::Code::OutOfRange | tonic::Code::FailedPrecondition => {
                        StatusCode::BAD_REQUEST
                    }
                    tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
                    tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
                    tonic::Code::NotFound => StatusCode::NOT_FOUND,
                    tonic::Code::AlreadyExists | tonic::Code::Aborted => StatusCode::CONFLICT,
                    tonic::Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
                    tonic::Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
                    tonic::Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
                    tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, None)
            }
        }
    }

    /// The gRPC status of this failure.
    fn status(&self) -> tonic::Status {
        let code = match *self {
            Failure::Grpc { code } => tonic::Code::from(code),
            Failure::Http { status, .. } => match status {
                400 => tonic::Code::Internal,
                401 => tonic::Code::Unauthenticated,
                403 => tonic::Code::PermissionDenied,
                404 => tonic::Code::Unimplemented,
                429 | 502 | 503 | 504 => tonic::Code::Unavailable,
                _ => tonic::Code::Unknown,
            },
        };
        tonic::Status::new(code, "configured failure")
    }
}

// ---------------------------------------------------------------------------------------------------
// TLS

fn invalid(what: &str, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("otlp-receiver: {what}: {e}"))
}

fn certs(pem: &str, what: &str) -> std::io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(what, e))?;
    if certs.is_empty() {
        return Err(invalid(what, "no CERTIFICATE in the PEM"));
    }
    Ok(certs)
}

/// Builds the TLS acceptor: ring provider, ALPN `h2` (gRPC) or `h2` + `http/1.1` (HTTP), and a
/// client-certificate requirement when `client_ca_pem` is set.
pub(crate) fn tls_acceptor(tls: &ServerTls, transport: Transport) -> std::io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert_chain = certs(&tls.cert_pem, "server certificate")?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(|e| invalid("server key", e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("TLS protocol versions", e))?;
    let builder = match &tls.client_ca_pem {
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(ca_pem, "client CA certificate")? {
                roots.add(cert).map_err(|e| invalid("client CA certificate", e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid("client certificate verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(cert_chain, key)
        .map_err(|e| invalid("server certificate and key", e))?;
    config.alpn_protocols = match transport {
        Transport::Grpc => vec![b"h2".to_vec()],
        Transport::Http => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Does the TLS handshake on `tcp` and serves the connection, counting failed handshakes.
async fn accept_tls(tcp: TcpStream, acceptor: TlsAcceptor, state: Arc<State>, service: ConnService) {
    // A connection closed before it sent a byte (a port probe) is no failed handshake.
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) => return,
        Ok(Ok(_)) => {}
        Err(_elapsed) => {
            state.add_handshake_failure();
            return;
        }
    }
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => serve_connection(stream, state, service).await,
        Ok(Err(_)) | Err(_) => state.add_handshake_failure(),
    }
}

// ---------------------------------------------------------------------------------------------------
// Accept loop and connections

/// What serves the requests of one connection.
#[derive(Clone)]
enum ConnService {
    Http,
    Grpc(Routes),
}

/// Accepts connections until the task is dropped; each connection runs on its own task.
pub(crate) async fn serve(listener: TcpListener, state: Arc<State>, tls: Option<TlsAcceptor>, transport: Transport) {
    let service = match transport {
        Transport::Http => ConnService::Http,
        Transport::Grpc => ConnService::Grpc(grpc_routes(state.clone())),
    };
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _peer)) => tcp,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("otlp-receiver: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let state = state.clone();
        let service = service.clone();
        match &tls {
            Some(acceptor) => {
                tokio::spawn(accept_tls(tcp, acceptor.clone(), state, service));
            }
            None => {
                tokio::spawn(serve_connection(tcp, state, service));
            }
        }
    }
}

/// Serves one (plain or TLS) connection with HTTP/1.1 or HTTP/2, whichever the client speaks.
async fn serve_connection<IO>(io: IO, state: Arc<State>, service: ConnService)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let io = TokioIo::new(io);
    // Connection errors (a client going away mid-request, a reset) are the client's business.
    let _ = match service {
        ConnService::Http => {
            let svc = service_fn(move |request| handle_http(state.clone(), request));
            builder.serve_connection(io, svc).await
        }
        ConnService::Grpc(routes) => {
            let svc = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                // Count the body as it arrives: compressed, with the gRPC message prefixes.
                let request = request.map(move |body| {
                    body.map_frame(move |frame| {
                        if let Some(data) = frame.data_ref() {
                            state.add_bytes(data.len());
                        }
                        frame
                    })
                });
                let mut routes = routes.clone();
                async move { routes.call(request).await }
            });
            builder.serve_connection(io, svc).await
        }
    };
}

// ---------------------------------------------------------------------------------------------------
// OTLP/gRPC

#[derive(Clone)]
struct Grpc {
    state: Arc<State>,
}

fn grpc_routes(state: Arc<State>) -> Routes {
    let grpc = Grpc { state };
    Routes::new(
        TraceServiceServer::new(grpc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(usize::MAX),
    )
    .add_service(
        MetricsServiceServer::new(grpc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(usize::MAX),
    )
    .add_service(
        LogsServiceServer::new(grpc)
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(usize::MAX),
    )
    .prepare()
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.state
            .handle(Export::Traces(request.into_inner()))
            .await
            .map_err(|f| f.status())?;
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.state
            .handle(Export::Metrics(request.into_inner()))
            .await
            .map_err(|f| f.status())?;
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.state
            .handle(Export::Logs(request.into_inner()))
            .await
            .map_err(|f| f.status())?;
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

// ---------------------------------------------------------------------------------------------------
// OTLP/HTTP

type HttpResponse = Response<Full<Bytes>>;

fn plain(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(message.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The media type of a header value, lower-cased and without parameters (`application/json; charset=utf-8`
/// → `application/json`).
fn media_type(value: Option<&HeaderValue>) -> Option<String> {
    let value = value?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn decode(signal: Signal, body: &[u8], json: bool) -> Result<Export, String> {
    let json_error = |e: serde_json::Error| format!("invalid OTLP JSON: {e}");
    let proto_error = |e: prost::DecodeError| format!("invalid OTLP protobuf: {e}");
    Ok(match (signal, json) {
        (Signal::Traces, true) => Export::Traces(serde_json::from_slice(body).map_err(json_error)?),
        (Signal::Traces, false) => Export::Traces(Message::decode(body).map_err(proto_error)?),
        (Signal::Metrics, true) => Export::Metrics(serde_json::from_slice(body).map_err(json_error)?),
        (Signal::Metrics, false) => Export::Metrics(Message::decode(body).map_err(proto_error)?),
        (Signal::Logs, true) => Export::Logs(serde_json::from_slice(body).map_err(json_error)?),
        (Signal::Logs, false) => Export::Logs(Message::decode(body).map_err(proto_error)?),
    })
}

fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len() * 4);
    flate2::read::MultiGzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

fn success(signal: Signal, json: bool) -> HttpResponse {
    let (content_type, body) = if json {
        ("application/json", Bytes::from_static(b"{}"))
    } else {
        let body = match signal {
            Signal::Traces => ExportTraceServiceResponse::default().encode_to_vec(),
            Signal::Metrics => ExportMetricsServiceResponse::default().encode_to_vec(),
            Signal::Logs => ExportLogsServiceResponse::default().encode_to_vec(),
        };
        ("application/x-protobuf", Bytes::from(body))
    };
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn failure(failure: &Failure) -> HttpResponse {
    let (status, retry_after) = failure.http();
    let mut response = plain(status, "configured failure");
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn handle_http(state: Arc<State>, request: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let signal = match request.uri().path() {
        "/v1/traces" => Signal::Traces,
        "/v1/metrics" => Signal::Metrics,
        "/v1/logs" => Signal::Logs,
        other => return Ok(plain(StatusCode::NOT_FOUND, format!("no OTLP endpoint at {other}"))),
    };
    if request.method() != Method::POST {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "OTLP/HTTP takes POST");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return Ok(response);
    }
    let json = match media_type(request.headers().get(header::CONTENT_TYPE)).as_deref() {
        Some("application/x-protobuf") => false,
        Some("application/json") => true,
        other => {
            return Ok(plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {other:?} is neither application/x-protobuf nor application/json"),
            ))
        }
    };
    let gzip = match media_type(request.headers().get(header::CONTENT_ENCODING)).as_deref() {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            return Ok(plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Encoding {other} is not supported (gzip is)"),
            ))
        }
    };
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}"))),
    };
    state.add_bytes(body.len());
    let body = if gzip {
        match gunzip(&body) {
            Ok(body) => Bytes::from(body),
            Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"))),
        }
    } else {
        body
    };
    let export = match decode(signal, &body, json) {
        Ok(export) => export,
        Err(e) => return Ok(plain(StatusCode::BAD_REQUEST, e)),
    };
    Ok(match state.handle(export).await {
        Ok(()) => success(signal, json),
        Err(f) => failure(&f),
    })
}
