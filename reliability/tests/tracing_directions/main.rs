//! Both directions between `tracing` and every adapter (issue 17, item 2), on multi-thread
//! runtimes where work hops between worker threads:
//!
//! * **server → `tracing`**: a `tracing` span created inside each server adapter's handler (axum
//!   and hyper behind `HttpServerLayer`, actix-web behind `HttpServerMiddleware`, tonic behind
//!   `GrpcServerLayer`, the `process` handlers of Kafka, RabbitMQ and NATS) is exported as a child
//!   of our SERVER / CONSUMER span;
//! * **`tracing` → client**: a call made inside an `#[instrument]` function (or a future
//!   instrumented with an `info_span!`) through each client adapter (`HttpClientLayer` over
//!   hyper-util, reqwest's `HttpClientMiddleware`, `GrpcClientLayer`, otelrs-sql's pool,
//!   connection and transaction on PostgreSQL, otelrs-redis's connection and deadpool pool on
//!   Redis, Kafka / RabbitMQ / NATS send) is exported as a child of that `tracing` span, and the
//!   other side of the wire (our server span, or the consumer's process span) continues that
//!   client span: its parent (or, with the default messaging `ProcessParent::Link`, its link) is
//!   exactly the client span;
//! * **log records**: `tracing::info!` events, through the log bridge, carry the trace and span
//!   ids of the span they were emitted in (our span, or the `tracing` span inside it).
//!
//! Every assertion is on exact span ids (parent span id, link span context), never on "same trace
//! id" alone.
//!
//! # Setup
//!
//! The one-call setup with the bridge (`SdkBuilder::with_tracing_bridge(..).install()`) exports
//! `tracing` spans, adapter spans (through `TelemetryGuard::instrumentation`) and log records to
//! in-memory exporters. It is installed **once per test binary as the global subscriber**: a
//! thread-local default (`tracing::subscriber::set_default`) does not reach the worker threads of
//! a multi-thread runtime, nor the tasks servers spawn per connection (tonic, hyper, axum), nor
//! actix-web's own worker threads, and wrapping futures with `WithSubscriber` would only reach the
//! futures the test itself spawns. Tests run in parallel against the shared exporters, so each
//! test names its `tracing` spans, routes, queues and log messages uniquely and looks spans up
//! by those names (and by trace id plus kind for the adapter spans, asserting there is exactly
//! one).
//!
//! # Services
//!
//! PostgreSQL (`DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`), Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379/0`), RabbitMQ (`AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`) and NATS (`NATS_URL`, default
//! `nats://127.0.0.1:4222`): `docker compose up -d postgres redis rabbitmq nats`. Kafka runs on
//! librdkafka's in-process mock cluster. An unreachable service fails its test with the URL
//! tried and how to start it; nothing is skipped.

mod grpc;
mod http;
mod messaging;
mod sql_redis;
mod support;
