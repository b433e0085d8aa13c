//! gRPC: `#[instrument]` → tonic with `GrpcClientLayer` → tonic with `GrpcServerLayer` → a
//! `tracing` span in the handler.

use std::convert::Infallible;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::SpanKind;
use otelrs_core::testing::SpanDataExt as _;
use otelrs_grpc::{GrpcClientLayer, GrpcClientService, GrpcServerLayer};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::codegen::{http, Body, BoxFuture, StdError};
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tower::ServiceBuilder;
use tracing::Instrument as _;

use crate::support::{
    assert_from_tracing, assert_log_in, assert_remote_child_of, hop, instrumentation, span, span_in, TIMEOUT,
};

/// Request and reply of `reliability.v1.Directions/Call`, as `prost-build` would generate them.
mod pb {
    /// The request.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CallRequest {
        #[prost(string, tag = "1")]
        pub message: String,
    }

    /// The reply: the `traceparent` metadata the server received.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CallReply {
        #[prost(string, tag = "1")]
        pub traceparent: String,
    }
}
use pb::{CallReply, CallRequest};

const CALL: &str = "/reliability.v1.Directions/Call";
const METHOD: &str = "reliability.v1.Directions/Call";

/// `reliability.v1.Directions`, the glue written out as `tonic-build` would generate it.
#[derive(Clone, Default)]
struct Directions;

struct CallSvc;

impl tonic::server::UnaryService<CallRequest> for CallSvc {
    type Response = CallReply;
    type Future = BoxFuture<Response<CallReply>, Status>;

    fn call(&mut self, request: Request<CallRequest>) -> Self::Future {
        let traceparent = request
            .metadata()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_owned();
        // The common way: the handler's future `.instrument(info_span!(..))`, the `tracing` span
        // made when the method is called, before the future is polled.
        tracing::info!("dir.grpc: handler");
        Box::pin(
            async move {
                hop().await;
                tracing::info!("dir.grpc: handler span");
                Ok(Response::new(CallReply { traceparent }))
            }
            .instrument(tracing::info_span!("dir.grpc.handler")),
        )
    }
}

impl<B> tower::Service<http::Request<B>> for Directions
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let codec = tonic_prost::ProstCodec::default();
        match req.uri().path() {
            CALL => Box::pin(async move { Ok(tonic::server::Grpc::new(codec).unary(CallSvc, req).await) }),
            _ => Box::pin(async move { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

impl tonic::server::NamedService for Directions {
    const NAME: &'static str = "reliability.v1.Directions";
}

type GrpcClient = tonic::client::Grpc<GrpcClientService<Channel>>;

#[tracing::instrument(name = "dir.grpc.caller", skip_all)]
async fn call(client: &mut GrpcClient) -> String {
    tracing::info!("dir.grpc: caller before");
    hop().await;
    client.ready().await.expect("client ready");
    let reply: Response<CallReply> = tokio::time::timeout(
        TIMEOUT,
        client.unary(
            Request::new(CallRequest {
                message: "hello".to_owned(),
            }),
            http::uri::PathAndQuery::from_static(CALL),
            tonic_prost::ProstCodec::default(),
        ),
    )
    .await
    .expect("reply in time")
    .expect("OK reply");
    hop().await;
    tracing::info!("dir.grpc: caller after");
    reply.into_inner().traceparent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_server_and_client() {
    let inst = instrumentation();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let router = Server::builder()
        .layer(GrpcServerLayer::new().with_instrumentation(inst.clone()))
        .add_service(Directions);
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_rx.await;
            })
            .await
            .expect("gRPC server");
    });
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let channel = endpoint.connect().await.expect("connect to the test server");
    let mut client: GrpcClient = tonic::client::Grpc::new(
        ServiceBuilder::new()
            .layer(
                GrpcClientLayer::new()
                    .with_instrumentation(inst)
                    .with_endpoint(&endpoint),
            )
            .service(channel),
    );

    let seen = call(&mut client).await;

    let caller = span("dir.grpc.caller");
    assert_from_tracing(&caller);
    caller.assert_root();
    let trace_id = caller.span_context.trace_id();
    let client_span = span_in(trace_id, SpanKind::Client, METHOD);
    client_span.assert_child_of(&caller);
    assert_eq!(
        seen,
        format!("00-{trace_id}-{}-01", client_span.span_context.span_id()),
        "traceparent metadata received by the server"
    );
    let server_span = span_in(trace_id, SpanKind::Server, METHOD);
    assert_remote_child_of(&server_span, &client_span);
    let handler = span("dir.grpc.handler");
    assert_from_tracing(&handler);
    handler.assert_child_of(&server_span);

    assert_log_in("dir.grpc: caller before", &caller);
    assert_log_in("dir.grpc: caller after", &caller);
    assert_log_in("dir.grpc: handler", &server_span);
    assert_log_in("dir.grpc: handler span", &handler);

    shutdown_tx.send(()).ok();
    server.await.expect("server task");
}
