//! `gateway`: axum behind otelrs-http's `HttpServerLayer`; calls `users` over HTTP (reqwest with
//! otelrs-http's `HttpClientMiddleware`) and `orders` over gRPC (tonic with otelrs-grpc's
//! `GrpcClientLayer`). Serves `/metrics` for Prometheus outside the instrumented routes.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use otelrs_core::sdk::PrometheusHandle;
use otelrs_core::Instrumentation;
use otelrs_grpc::{GrpcClientLayer, GrpcClientService};
use otelrs_http::{HttpClientMiddleware, HttpServerLayer, UrlTemplate};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tonic::transport::{Channel, Endpoint};

use super::proto::{OrdersClient, PlaceOrderRequest};

#[derive(Clone)]
struct Gateway {
    users: ClientWithMiddleware,
    users_base: String,
    orders: OrdersClient<GrpcClientService<Channel>>,
}

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(status, json!({ "error": message }))
}

/// Relays a `users` response (status and JSON body) to the caller.
async fn relay(result: Result<reqwest::Response, reqwest_middleware::Error>) -> Response {
    let Ok(response) = result else {
        return error(StatusCode::BAD_GATEWAY, "users service unavailable");
    };
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    match response.bytes().await {
        Ok(body) => (status, [(http::header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => error(StatusCode::BAD_GATEWAY, "users service closed the response"),
    }
}

async fn create_user(State(gw): State<Gateway>, body: Bytes) -> Response {
    let result = gw
        .users
        .post(format!("{}/users", gw.users_base))
        .header(http::header::CONTENT_TYPE, "application/json")
        .with_extension(UrlTemplate::new("/users"))
        .body(body)
        .send()
        .await;
    relay(result).await
}

impl Gateway {
    async fn fetch_user(&self, id: &str) -> Result<reqwest::Response, reqwest_middleware::Error> {
        self.users
            .get(format!("{}/users/{id}", self.users_base))
            .with_extension(UrlTemplate::new("/users/{id}"))
            .send()
            .await
    }
}

async fn get_user(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    relay(gw.fetch_user(&id).await).await
}

async fn place_order(State(mut gw): State<Gateway>, body: Bytes) -> Response {
    let Ok(input) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be JSON");
    };
    let (Some(user_id), Some(item), Some(quantity), Some(card)) = (
        input["user_id"].as_i64(),
        input["item"].as_str(),
        input["quantity"].as_u64().and_then(|q| u32::try_from(q).ok()),
        input["card"].as_str(),
    ) else {
        return error(StatusCode::BAD_REQUEST, "user_id, item, quantity and card are required");
    };
    // The buyer must exist (served from the users cache when warm).
    match gw.fetch_user(&user_id.to_string()).await {
        Ok(r) if r.status().is_success() => {}
        Ok(r) if r.status().as_u16() == 404 => return error(StatusCode::NOT_FOUND, "user not found"),
        Ok(_) | Err(_) => return error(StatusCode::BAD_GATEWAY, "users service unavailable"),
    }
    let request = PlaceOrderRequest {
        user_id,
        item: item.to_owned(),
        quantity,
        card: card.to_owned(),
    };
    match gw.orders.place_order(request).await {
        Ok(reply) => {
            let reply = reply.into_inner();
            json_response(
                StatusCode::CREATED,
                json!({ "order_id": reply.order_id, "status": reply.status }),
            )
        }
        Err(status) => {
            let http_status = match status.code() {
                tonic::Code::FailedPrecondition => StatusCode::PAYMENT_REQUIRED,
                tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
                tonic::Code::NotFound => StatusCode::NOT_FOUND,
                tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                tonic::Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
                _ => StatusCode::BAD_GATEWAY,
            };
            error(http_status, status.message())
        }
    }
}

/// A running gateway.
pub struct GatewayService {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl GatewayService {
    /// Starts the gateway on `bind` (`127.0.0.1:0` for an ephemeral port).
    pub async fn start(
        bind: SocketAddr,
        instrumentation: Instrumentation,
        users_addr: SocketAddr,
        orders_addr: SocketAddr,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let users = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(HttpClientMiddleware::new().with_instrumentation(instrumentation.clone()))
            .build();
        let endpoint = Endpoint::from_shared(format!("http://{orders_addr}"))?;
        let channel = endpoint.connect_lazy();
        let orders = OrdersClient::new(
            tower::ServiceBuilder::new()
                .layer(
                    GrpcClientLayer::new()
                        .with_instrumentation(instrumentation.clone())
                        .with_endpoint(&endpoint),
                )
                .service(channel),
        );
        let state = Gateway {
            users,
            users_base: format!("http://{users_addr}"),
            orders,
        };
        let mut app = Router::new()
            .route("/users", post(create_user))
            .route("/users/{id}", get(get_user))
            .route("/orders", post(place_order))
            .with_state(state)
            .layer(HttpServerLayer::new().with_instrumentation(instrumentation));
        // Added after the layer: scrapes are not traced.
        if let Some(metrics) = metrics {
            app = app.route_service("/metrics", metrics);
        }
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = result {
                eprintln!("gateway: server stopped: {e}");
            }
        });
        Ok(Self {
            addr,
            shutdown: Some(tx),
            task,
        })
    }

    /// Stops the gateway gracefully.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
    }
}
