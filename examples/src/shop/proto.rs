//! The `shop.v1.Orders` gRPC service, written by hand (no `protoc` needed): prost messages and a
//! unary client and server in the shape `tonic-build` generates.
//!
//! ```proto
//! package shop.v1;
//! service Orders { rpc PlaceOrder(PlaceOrderRequest) returns (PlaceOrderReply); }
//! message PlaceOrderRequest { int64 user_id = 1; string item = 2; uint32 quantity = 3; string card = 4; }
//! message PlaceOrderReply { int64 order_id = 1; string status = 2; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, Body, Bytes, StdError};

/// The full method name, as in `rpc.method`.
pub const PLACE_ORDER: &str = "shop.v1.Orders/PlaceOrder";
const PLACE_ORDER_PATH: &str = "/shop.v1.Orders/PlaceOrder";

/// Request of `PlaceOrder`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlaceOrderRequest {
    /// The buyer.
    #[prost(int64, tag = "1")]
    pub user_id: i64,
    /// What is bought.
    #[prost(string, tag = "2")]
    pub item: String,
    /// How many.
    #[prost(uint32, tag = "3")]
    pub quantity: u32,
    /// The payment card (never recorded in telemetry).
    #[prost(string, tag = "4")]
    pub card: String,
}

/// Reply of `PlaceOrder`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlaceOrderReply {
    /// The new order's id.
    #[prost(int64, tag = "1")]
    pub order_id: i64,
    /// `placed`.
    #[prost(string, tag = "2")]
    pub status: String,
}

/// A `shop.v1.Orders` client over any gRPC transport (e.g. a channel behind `GrpcClientLayer`).
#[derive(Clone, Debug)]
pub struct OrdersClient<T> {
    inner: tonic::client::Grpc<T>,
}

impl<T> OrdersClient<T>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    /// A client over `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner: tonic::client::Grpc::new(inner),
        }
    }

    /// Calls `PlaceOrder`.
    pub async fn place_order(
        &mut self,
        request: impl tonic::IntoRequest<PlaceOrderRequest>,
    ) -> Result<tonic::Response<PlaceOrderReply>, tonic::Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("orders service not ready: {}", e.into())))?;
        let codec = tonic_prost::ProstCodec::default();
        let path = http::uri::PathAndQuery::from_static(PLACE_ORDER_PATH);
        let mut req = request.into_request();
        req.extensions_mut()
            .insert(tonic::GrpcMethod::new("shop.v1.Orders", "PlaceOrder"));
        self.inner.unary(req, path, codec).await
    }
}

/// The server-side handler of `shop.v1.Orders`.
#[tonic::async_trait]
pub trait Orders: Send + Sync + 'static {
    /// Handles `PlaceOrder`.
    async fn place_order(
        &self,
        request: tonic::Request<PlaceOrderRequest>,
    ) -> Result<tonic::Response<PlaceOrderReply>, tonic::Status>;
}

/// The tower service routing `shop.v1.Orders` calls to an [`Orders`] implementation.
#[derive(Debug)]
pub struct OrdersServer<S> {
    inner: Arc<S>,
}

impl<S> OrdersServer<S> {
    /// Serves `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner: Arc::new(inner) }
    }
}

impl<S> Clone for OrdersServer<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S: Orders> tonic::server::NamedService for OrdersServer<S> {
    const NAME: &'static str = "shop.v1.Orders";
}

struct PlaceOrderSvc<S>(Arc<S>);

impl<S: Orders> tonic::server::UnaryService<PlaceOrderRequest> for PlaceOrderSvc<S> {
    type Response = PlaceOrderReply;
    type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<PlaceOrderReply>, tonic::Status>> + Send>>;

    fn call(&mut self, request: tonic::Request<PlaceOrderRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.place_order(request).await })
    }
}

type BoxResponseFuture = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, Infallible>> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for OrdersServer<S>
where
    S: Orders,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() == PLACE_ORDER_PATH {
            let inner = Arc::clone(&self.inner);
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(PlaceOrderSvc(inner), req).await)
            })
        } else {
            Box::pin(async move { Ok(tonic::Status::unimplemented("no such method").into_http()) })
        }
    }
}
