//! The gRPC application the unary-call benchmarks run: a `bench.v1.Echo/Unary` service on a real
//! tonic server over 127.0.0.1 (ephemeral port), called through a tonic client channel, bare and
//! with each instrumentation on both sides. All variants share one SDK setup (batch span processor
//! and periodic metric reader, both with exporters that discard), like [`crate::http_apps`].
//!
//! Client and server run on one current-thread tokio runtime, so every allocation of a call
//! (client stack, h2 on both ends, server stack, handler) happens on the measuring thread and the
//! per-thread [`crate::allocations`] counter sees all of it. Only the SDK's own export threads are
//! outside (the batch span processor and periodic reader, which are the same for every variant).
//!
//! The service glue is what `tonic-build` 0.14 generates (reduced to the one unary method), written
//! out so the benches need no `protoc`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use otelrs_core::propagation::W3cPropagator;
use otelrs_core::Instrumentation;
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::Layer as _;
use tracing_subscriber::Layer as _;

/// Messages and service glue of `bench.v1.Echo` (as `tonic-build` would generate them).
pub mod pb {
    /// Request of `Unary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoRequest {
        /// Text to echo.
        #[prost(string, tag = "1")]
        pub message: String,
    }

    /// Reply of `Unary`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoReply {
        /// The echoed text.
        #[prost(string, tag = "1")]
        pub message: String,
    }

    /// Generated client implementation (unary method only).
    pub mod echo_client {
        #![allow(missing_docs, clippy::wildcard_imports)]
        use tonic::codegen::*;

        #[derive(Debug, Clone)]
        pub struct EchoClient<T> {
            inner: tonic::client::Grpc<T>,
        }

        impl<T> EchoClient<T>
        where
            T: tonic::client::GrpcService<tonic::body::Body>,
            T::Error: Into<StdError>,
            T::ResponseBody: Body<Data = Bytes> + std::marker::Send + 'static,
            <T::ResponseBody as Body>::Error: Into<StdError> + std::marker::Send,
        {
            pub fn new(inner: T) -> Self {
                let inner = tonic::client::Grpc::new(inner);
                Self { inner }
            }

            pub async fn unary(
                &mut self,
                request: impl tonic::IntoRequest<super::EchoRequest>,
            ) -> std::result::Result<tonic::Response<super::EchoReply>, tonic::Status> {
                self.inner
                    .ready()
                    .await
                    .map_err(|e| tonic::Status::unknown(format!("Service was not ready: {}", e.into())))?;
                let codec = tonic_prost::ProstCodec::default();
                let path = http::uri::PathAndQuery::from_static("/bench.v1.Echo/Unary");
                let mut req = request.into_request();
                req.extensions_mut().insert(GrpcMethod::new("bench.v1.Echo", "Unary"));
                self.inner.unary(req, path, codec).await
            }
        }
    }

    /// Generated server implementation (unary method only).
    pub mod echo_server {
        #![allow(missing_docs, clippy::wildcard_imports)]
        use tonic::codegen::*;

        /// Generated trait containing gRPC methods that should be implemented for use with EchoServer.
        #[async_trait]
        pub trait Echo: std::marker::Send + std::marker::Sync + 'static {
            async fn unary(
                &self,
                request: tonic::Request<super::EchoRequest>,
            ) -> std::result::Result<tonic::Response<super::EchoReply>, tonic::Status>;
        }

        #[derive(Debug)]
        pub struct EchoServer<T> {
            inner: Arc<T>,
            accept_compression_encodings: EnabledCompressionEncodings,
            send_compression_encodings: EnabledCompressionEncodings,
            max_decoding_message_size: Option<usize>,
            max_encoding_message_size: Option<usize>,
        }

        impl<T> EchoServer<T> {
            pub fn new(inner: T) -> Self {
                Self {
                    inner: Arc::new(inner),
                    accept_compression_encodings: Default::default(),
                    send_compression_encodings: Default::default(),
                    max_decoding_message_size: None,
                    max_encoding_message_size: None,
                }
            }
        }

        impl<T, B> tonic::codegen::Service<http::Request<B>> for EchoServer<T>
        where
            T: Echo,
            B: Body + std::marker::Send + 'static,
            B::Error: Into<StdError> + std::marker::Send + 'static,
        {
            type Response = http::Response<tonic::body::Body>;
            type Error = std::convert::Infallible;
            type Future = BoxFuture<Self::Response, Self::Error>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: http::Request<B>) -> Self::Future {
                match req.uri().path() {
                    "/bench.v1.Echo/Unary" => {
                        struct UnarySvc<T: Echo>(pub Arc<T>);
                        impl<T: Echo> tonic::server::UnaryService<super::EchoRequest> for UnarySvc<T> {
                            type Response = super::EchoReply;
                            type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;
                            fn call(&mut self, request: tonic::Request<super::EchoRequest>) -> Self::Future {
                                let inner = Arc::clone(&self.0);
                                let fut = async move { <T as Echo>::unary(&inner, request).await };
                                Box::pin(fut)
                            }
                        }
                        let accept_compression_encodings = self.accept_compression_encodings;
                        let send_compression_encodings = self.send_compression_encodings;
                        let max_decoding_message_size = self.max_decoding_message_size;
                        let max_encoding_message_size = self.max_encoding_message_size;
                        let inner = self.inner.clone();
                        let fut = async move {
                            let method = UnarySvc(inner);
                            let codec = tonic_prost::ProstCodec::default();
                            let mut grpc = tonic::server::Grpc::new(codec)
                                .apply_compression_config(accept_compression_encodings, send_compression_encodings)
                                .apply_max_message_size_config(max_decoding_message_size, max_encoding_message_size);
                            let res = grpc.unary(method, req).await;
                            Ok(res)
                        };
                        Box::pin(fut)
                    }
                    _ => Box::pin(async move {
                        let mut response = http::Response::new(tonic::body::Body::default());
                        let headers = response.headers_mut();
                        headers.insert(tonic::Status::GRPC_STATUS, (tonic::Code::Unimplemented as i32).into());
                        headers.insert(http::header::CONTENT_TYPE, tonic::metadata::GRPC_CONTENT_TYPE);
                        Ok(response)
                    }),
                }
            }
        }

        impl<T> Clone for EchoServer<T> {
            fn clone(&self) -> Self {
                Self {
                    inner: self.inner.clone(),
                    accept_compression_encodings: self.accept_compression_encodings,
                    send_compression_encodings: self.send_compression_encodings,
                    max_decoding_message_size: self.max_decoding_message_size,
                    max_encoding_message_size: self.max_encoding_message_size,
                }
            }
        }

        /// Generated gRPC service name
        pub const SERVICE_NAME: &str = "bench.v1.Echo";

        impl<T> tonic::server::NamedService for EchoServer<T> {
            const NAME: &'static str = SERVICE_NAME;
        }
    }
}

use pb::echo_client::EchoClient;
use pb::echo_server::{Echo, EchoServer};
use pb::{EchoReply, EchoRequest};

/// The message every call sends (and gets back).
pub const MESSAGE: &str = "hello";

/// Drops every span, counting them (so a run can check that each variant really exports its
/// spans).
#[derive(Debug, Default)]
pub struct CountSpans(Arc<AtomicU64>);

impl SpanExporter for CountSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(std::hint::black_box(batch));
        Ok(())
    }
}

/// The SDK every variant uses.
#[derive(Clone, Debug)]
pub struct Sdk {
    /// Tracer provider (always-on or always-off sampling).
    pub tracer_provider: SdkTracerProvider,
    /// Meter provider.
    pub meter_provider: SdkMeterProvider,
    exported: Arc<AtomicU64>,
}

impl Sdk {
    /// Providers with spans sampled (`sampled = true`) or dropped by the sampler.
    pub fn new(sampled: bool) -> Self {
        let exported = Arc::new(AtomicU64::new(0));
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(if sampled { Sampler::AlwaysOn } else { Sampler::AlwaysOff })
            .with_batch_exporter(CountSpans(exported.clone()))
            .build();
        let meter_provider = crate::http_apps::discarding_meter_provider();
        Self {
            tracer_provider,
            meter_provider,
            exported,
        }
    }

    /// Installs these providers and the SDK's W3C propagator as the OpenTelemetry globals
    /// (tonic-tracing-opentelemetry injects and extracts with the global propagator).
    pub fn install_globals(&self) {
        opentelemetry::global::set_tracer_provider(self.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(self.meter_provider.clone());
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    }

    /// The `Instrumentation` for otelrs-grpc with explicit providers.
    pub fn instrumentation(&self) -> Instrumentation {
        Instrumentation::new()
            .with_tracer_provider(self.tracer_provider.clone())
            .with_meter_provider(self.meter_provider.clone())
            .with_propagator(W3cPropagator::default())
    }

    /// A `tracing` subscriber exporting `tracing` spans through this SDK, for
    /// tonic-tracing-opentelemetry. Its spans are at TRACE level on target `otel::tracing` (unless
    /// the crate's `tracing_level_info` feature is on), so that target is enabled at TRACE as
    /// `init-tracing-opentelemetry` does; everything else (tonic, h2, hyper) at INFO.
    pub fn tracing_subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        use tracing_subscriber::layer::SubscriberExt;
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target("otel::tracing", tracing::Level::TRACE)
            .with_default(tracing::Level::INFO);
        tracing_subscriber::registry().with(
            tracing_opentelemetry::layer()
                .with_tracer(self.tracer_provider.tracer("bench"))
                .with_filter(filter),
        )
    }

    /// Spans exported so far (after [`Sdk::flush`]).
    pub fn exported_spans(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Exports every finished span now.
    pub fn flush(&self) {
        let _ = self.tracer_provider.force_flush();
    }

    /// Shuts both providers down.
    pub fn shutdown(&self) {
        let _ = self.tracer_provider.shutdown();
        let _ = self.meter_provider.shutdown();
    }
}

/// Which instrumentation wraps server and client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// No instrumentation.
    Bare,
    /// `otelrs_grpc::GrpcServerLayer` on the server and `otelrs_grpc::GrpcClientLayer` on the client
    /// channel, explicit providers (spans and `rpc.{server,client}.call.duration`).
    OtelGrpc,
    /// `tonic-tracing-opentelemetry` 0.42 server and client `OtelGrpcLayer`s (spans through
    /// `tracing-opentelemetry`; no metrics).
    TonicTracingOpentelemetry,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 3] = [Variant::Bare, Variant::OtelGrpc, Variant::TonicTracingOpentelemetry];

    /// Label used in benchmark ids.
    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "bare tonic",
            Variant::OtelGrpc => "otelrs-grpc",
            Variant::TonicTracingOpentelemetry => "tonic-tracing-opentelemetry",
        }
    }

    /// Short name used on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Bare => "bare",
            Variant::OtelGrpc => "otelrs-grpc",
            Variant::TonicTracingOpentelemetry => "tonic-tracing-opentelemetry",
        }
    }

    /// The variant with this [`Variant::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Spans a sampled call exports.
    pub fn spans_per_call(self) -> u64 {
        match self {
            Variant::Bare => 0,
            _ => 2,
        }
    }
}

/// The handler: echoes the message.
#[derive(Debug, Default)]
pub struct EchoImpl;

#[tonic::async_trait]
impl Echo for EchoImpl {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Ok(Response::new(EchoReply {
            message: request.into_inner().message,
        }))
    }
}

enum Client {
    Bare(EchoClient<Channel>),
    OtelGrpc(EchoClient<GrpcClientService<Channel>>),
    TonicTracingOpentelemetry(EchoClient<tonic_tracing_opentelemetry::middleware::client::OtelGrpcService<Channel>>),
}

/// A running server and a connected client of one variant. Dropping it stops the server.
pub struct App {
    variant: Variant,
    client: Client,
    server: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("variant", &self.variant)
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn report(result: Result<(), tonic::transport::Error>) {
    if let Err(e) = result {
        eprintln!("bench gRPC server failed: {e}");
    }
}

impl App {
    /// Starts the server of `variant` on an ephemeral port of 127.0.0.1 and connects a client
    /// to it. Must run inside the runtime the calls will use.
    pub async fn start(variant: Variant, sdk: &Sdk) -> App {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind 127.0.0.1:0: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("local addr: {e}"),
        };
        let incoming = TcpListenerStream::new(listener);
        let service = EchoServer::new(EchoImpl);
        let server = match variant {
            Variant::Bare => tokio::spawn(async move {
                report(
                    Server::builder()
                        .add_service(service)
                        .serve_with_incoming(incoming)
                        .await,
                )
            }),
            Variant::OtelGrpc => {
                let layer = GrpcServerLayer::new().with_instrumentation(sdk.instrumentation());
                tokio::spawn(async move {
                    report(
                        Server::builder()
                            .layer(layer)
                            .add_service(service)
                            .serve_with_incoming(incoming)
                            .await,
                    )
                })
            }
            Variant::TonicTracingOpentelemetry => tokio::spawn(async move {
                report(
                    Server::builder()
                        .layer(tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default())
                        .add_service(service)
                        .serve_with_incoming(incoming)
                        .await,
                )
            }),
        };

        let endpoint = match Endpoint::from_shared(format!("http://{addr}")) {
            Ok(e) => e,
            Err(e) => panic!("endpoint: {e}"),
        };
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(e) => panic!("connect to {addr}: {e}"),
        };
        let client = match variant {
            Variant::Bare => Client::Bare(EchoClient::new(channel)),
            Variant::OtelGrpc => Client::OtelGrpc(EchoClient::new(
                GrpcClientLayer::new()
                    .with_instrumentation(sdk.instrumentation())
                    .with_endpoint(&endpoint)
                    .layer(channel),
            )),
            Variant::TonicTracingOpentelemetry => Client::TonicTracingOpentelemetry(EchoClient::new(
                tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer.layer(channel),
            )),
        };
        App {
            variant,
            client,
            server,
            addr,
        }
    }

    /// One unary call `bench.v1.Echo/Unary("hello")`, awaited to the end of the response (status
    /// in the trailers). Returns the length of the echoed message (0 on error).
    pub async fn call(&mut self) -> usize {
        let request = EchoRequest {
            message: MESSAGE.to_owned(),
        };
        let result = match &mut self.client {
            Client::Bare(c) => c.unary(request).await,
            Client::OtelGrpc(c) => c.unary(request).await,
            Client::TonicTracingOpentelemetry(c) => c.unary(request).await,
        };
        match result {
            Ok(reply) => reply.into_inner().message.len(),
            Err(status) => {
                eprintln!("{}: call failed: {status}", self.variant.label());
                0
            }
        }
    }
}

/// A single-threaded runtime: client, server, h2 connection tasks and tonic's channel worker all
/// run on the calling thread.
pub fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    }
}
