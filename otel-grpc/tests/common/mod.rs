//! Test service `test.v1.Echo` on a real tonic server over 127.0.0.1, and helpers.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::SpanData;
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

pub mod pb {
    /// Request of every test method.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoRequest {
        /// What the handler should do / echo.
        #[prost(string, tag = "1")]
        pub message: String,
    }

    /// Reply of every test method.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EchoReply {
        /// The echoed text.
        #[prost(string, tag = "1")]
        pub message: String,
    }

    include!("echo_generated.rs");
}

pub use pb::echo_client::EchoClient;
pub use pb::echo_server::{Echo, EchoServer};
pub use pb::{EchoReply, EchoRequest};

pub const UNARY: &str = "test.v1.Echo/Unary";
pub const SERVER_STREAM: &str = "test.v1.Echo/ServerStream";
pub const CLIENT_STREAM: &str = "test.v1.Echo/ClientStream";
pub const BIDI: &str = "test.v1.Echo/Bidi";

pub type Client = EchoClient<GrpcClientService<Channel>>;
pub type StreamSender = mpsc::Sender<Result<EchoReply, Status>>;

pub fn req(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.to_owned(),
    }
}

fn reply(message: impl Into<String>) -> EchoReply {
    EchoReply {
        message: message.into(),
    }
}

/// The handler. `Unary` behaves by message: `ok` echoes (with response metadata
/// `x-served-by: echo`), `not_found` / `internal` fail, `hang` never answers, `nested` calls
/// `Unary("ok")` on the downstream client first.
struct EchoImpl {
    /// Server-streaming calls hand their sender to the test, which drives the stream.
    streams: mpsc::UnboundedSender<StreamSender>,
    /// Messages received by the client-streaming handler, reported to the test.
    received: mpsc::UnboundedSender<String>,
    downstream: Option<Client>,
}

#[tonic::async_trait]
impl Echo for EchoImpl {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        match request.get_ref().message.as_str() {
            "ok" => {
                let mut response = Response::new(reply("ok"));
                response
                    .metadata_mut()
                    .insert("x-served-by", "echo".parse().expect("valid"));
                Ok(response)
            }
            "not_found" => Err(Status::not_found("no such thing")),
            "internal" => Err(Status::internal("boom")),
            "hang" => std::future::pending().await,
            "nested" => {
                let mut client = self
                    .downstream
                    .clone()
                    .ok_or_else(|| Status::failed_precondition("no downstream"))?;
                let inner = client.unary(req("ok")).await?.into_inner();
                Ok(Response::new(reply(format!("nested:{}", inner.message))))
            }
            other => Err(Status::invalid_argument(format!("unknown test message {other}"))),
        }
    }

    type ServerStreamStream = ReceiverStream<Result<EchoReply, Status>>;

    async fn server_stream(
        &self,
        _request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        self.streams.send(tx).map_err(|_| Status::internal("test gone"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn client_stream(&self, request: Request<Streaming<EchoRequest>>) -> Result<Response<EchoReply>, Status> {
        let mut inbound = request.into_inner();
        let mut all = Vec::new();
        while let Some(msg) = inbound.message().await? {
            let _ = self.received.send(msg.message.clone());
            all.push(msg.message);
        }
        Ok(Response::new(reply(all.join(","))))
    }

    type BidiStream = ReceiverStream<Result<EchoReply, Status>>;

    async fn bidi(&self, request: Request<Streaming<EchoRequest>>) -> Result<Response<Self::BidiStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(item) = inbound.next().await {
                let out = item.map(|m| reply(m.message));
                if tx.send(out).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub streams: mpsc::UnboundedReceiver<StreamSender>,
    pub received: mpsc::UnboundedReceiver<String>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestServer {
    /// The sender of the next server-streaming call.
    pub async fn next_stream(&mut self) -> StreamSender {
        tokio::time::timeout(Duration::from_secs(10), self.streams.recv())
            .await
            .expect("server-streaming handler did not run within 10 s")
            .expect("server gone")
    }

    /// The next message received by the client-streaming handler.
    pub async fn next_received(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.received.recv())
            .await
            .expect("client-streaming handler received nothing within 10 s")
            .expect("server gone")
    }
}

/// Starts `test.v1.Echo` and the standard health service behind `layer` on an ephemeral port.
/// `downstream` (if given) instruments the handler's own client, which calls this same server.
pub async fn start_server(layer: GrpcServerLayer, downstream: Option<GrpcClientLayer>) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (streams_tx, streams) = mpsc::unbounded_channel();
    let (received_tx, received) = mpsc::unbounded_channel();
    let service = EchoImpl {
        streams: streams_tx,
        received: received_tx,
        downstream: downstream.map(|layer| client(addr, layer)),
    };
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<EchoServer<EchoImpl>>().await;
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let result = Server::builder()
            .layer(layer)
            .add_service(health)
            .add_service(EchoServer::new(service))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_rx.await;
            })
            .await;
        if let Err(err) = result {
            eprintln!("test server failed: {err}");
        }
    });
    TestServer {
        addr,
        streams,
        received,
        shutdown: Some(shutdown_tx),
    }
}

pub fn endpoint(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{addr}")).expect("valid endpoint")
}

/// A client for `addr` behind `layer` (given the endpoint as its target).
pub fn client(addr: SocketAddr, layer: GrpcClientLayer) -> Client {
    let endpoint = endpoint(addr);
    let channel = endpoint.connect_lazy();
    EchoClient::new(
        tower::ServiceBuilder::new()
            .layer(layer.with_endpoint(&endpoint))
            .service(channel),
    )
}

/// Waits (up to 10 s) for exactly one finished span named `name` of kind `kind`.
pub async fn wait_span(t: &TestTelemetry, name: &str, kind: SpanKind) -> SpanData {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<SpanData> = t
            .spans_named(name)
            .into_iter()
            .filter(|s| s.span_kind == kind)
            .collect();
        match found.len() {
            1 => return found.into_iter().next().expect("one span"),
            0 if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(5)).await,
            n => panic!(
                "expected one {kind:?} span named {name:?}, found {n}; spans: {:?}",
                t.spans()
                    .iter()
                    .map(|s| (s.name.to_string(), s.span_kind.clone()))
                    .collect::<Vec<_>>()
            ),
        }
    }
}

/// Asserts the span's attributes are exactly `expected` plus a `network.peer.port` integer (the
/// client's ephemeral port, not known to the test).
#[track_caller]
pub fn assert_server_attrs(span: &SpanData, expected: &[KeyValue]) {
    let port = span.attr("network.peer.port").expect("network.peer.port is set");
    assert!(
        matches!(port, opentelemetry::Value::I64(p) if *p > 0),
        "network.peer.port is a positive integer: {port:?}"
    );
    let mut without_port = span.clone();
    without_port
        .attributes
        .retain(|kv| kv.key.as_str() != "network.peer.port");
    without_port.assert_attrs(expected);
}
