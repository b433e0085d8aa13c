//! `orders`: a tonic gRPC server behind otelrs-grpc's `GrpcServerLayer`; places the order in an
//! `#[instrument]` function (a `tracing` span, exported through the bridge, between the RPC's
//! server span and the spans below it): charges the payment (an internal span made with the
//! OpenTelemetry API), writes the order through otelrs-sql and publishes `order.created` through
//! otelrs-mq (Kafka, RabbitMQ or NATS).

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry::trace::{Span as _, SpanKind, Status as SpanStatus, Tracer as _};
use opentelemetry::{Context, KeyValue};
use otelrs_core::Instrumentation;
use otelrs_grpc::GrpcServerLayer;
use serde_json::json;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};
use tracing::instrument::WithSubscriber as _;

use super::broker::Publisher;
use super::proto::{Orders, OrdersServer, PlaceOrderReply, PlaceOrderRequest};
use super::store::Store;

/// The topic `orders` publishes to and `notifier` consumes (on a real broker, suffixed with the
/// run's id: see [`super::broker`]).
pub const ORDER_CREATED: &str = "order.created";

/// A card number the payment step declines (the usual test number for "card declined").
pub const DECLINED_CARD: &str = "4000000000000002";

struct OrdersImpl {
    db: Store,
    publisher: Publisher,
    destination: String,
    tracer: otelrs_core::Tracer,
    /// The service's `tracing` subscriber (see [`super::telemetry`]).
    tracing: tracing::Dispatch,
}

impl OrdersImpl {
    /// Charges, writes and publishes one order, under a `tracing` span `place order` (a child of
    /// the RPC's server span; the spans below are its children).
    #[tracing::instrument(
        name = "place order",
        skip_all,
        fields(shop.order.item = %order.item, shop.order.quantity = order.quantity)
    )]
    async fn place(&self, order: PlaceOrderRequest) -> Result<i64, Status> {
        self.charge(&order.card, order.quantity).await?;
        let order_id = self
            .db
            .insert_order(order.user_id, &order.item, order.quantity)
            .await
            .map_err(|_| Status::unavailable("orders database unavailable"))?;
        let payload = json!({ "order_id": order_id, "user_id": order.user_id, "item": order.item }).to_string();
        self.publisher
            .publish(&self.destination, &order_id.to_string(), payload)
            .await
            .map_err(|e| Status::unavailable(format!("cannot publish {}: {e}", self.destination)))?;
        // A log record with this span's trace and span ids (exported when OTEL_LOGS_EXPORTER is set).
        tracing::info!(order_id, "order placed");
        Ok(order_id)
    }

    /// The payment step, as an INTERNAL span under the current context (`place order`).
    async fn charge(&self, card: &str, quantity: u32) -> Result<(), Status> {
        let mut span = self
            .tracer
            .span_builder("charge payment")
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new("shop.order.quantity", i64::from(quantity))])
            .start_with_context(&self.tracer, &Context::current());
        // Stands in for a call to a payment provider.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let declined = card.chars().filter(char::is_ascii_digit).collect::<String>() == DECLINED_CARD;
        if declined {
            span.set_attribute(KeyValue::new("error.type", "payment_declined"));
            span.set_status(SpanStatus::error("payment declined"));
        }
        span.end();
        if declined {
            Err(Status::failed_precondition("payment declined"))
        } else {
            Ok(())
        }
    }
}

#[tonic::async_trait]
impl Orders for OrdersImpl {
    async fn place_order(&self, request: Request<PlaceOrderRequest>) -> Result<Response<PlaceOrderReply>, Status> {
        let order = request.into_inner();
        if order.quantity == 0 || order.item.is_empty() {
            return Err(Status::invalid_argument("item and a positive quantity are required"));
        }
        // Under the service's own subscriber: `place order` is made (and exported) by it.
        let order_id = self.place(order).with_subscriber(self.tracing.clone()).await?;
        Ok(Response::new(PlaceOrderReply {
            order_id,
            status: "placed".to_owned(),
        }))
    }
}

/// A running `orders` service.
pub struct OrdersService {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl OrdersService {
    /// Starts the gRPC server on an ephemeral port of 127.0.0.1.
    pub async fn start(
        instrumentation: Instrumentation,
        tracing: tracing::Dispatch,
        db: Store,
        publisher: Publisher,
        destination: String,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = OrdersImpl {
            db,
            publisher,
            destination,
            tracer: instrumentation.tracer(Instrumentation::scope("shop-orders", env!("CARGO_PKG_VERSION"))),
            tracing,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = tonic::transport::Server::builder()
                .layer(
                    GrpcServerLayer::new()
                        .with_instrumentation(instrumentation)
                        .with_services(["shop.v1.Orders"]),
                )
                .add_service(OrdersServer::new(service))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("orders: server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// Stops the server gracefully.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}
