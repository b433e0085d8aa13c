//! `tracing` interop (design principle 1): a `tracing-opentelemetry` span created inside an axum
//! handler behind the server layer is exported as a child of the server span.

mod common;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use otelrs_core::testing::{SpanDataExt, TestTelemetry};
use otelrs_http::HttpServerLayer;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

use common::{client, get as get_req, send, serve_axum, TIMEOUT};

// Single-threaded runtime: the server, its handler and the client all run on the test thread,
// where the subscriber is the default.
#[tokio::test(flavor = "current_thread")]
async fn tracing_span_in_handler_is_a_child_of_the_server_span() {
    let t = TestTelemetry::new();
    let tracer = t.tracer_provider.tracer("tracing-bridge");
    let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer));
    let _default = tracing::subscriber::set_default(subscriber);

    let app = Router::new()
        .route(
            "/work",
            get(|| async {
                async {
                    tokio::task::yield_now().await;
                    // A nested tracing span stays in the tracing hierarchy.
                    tracing::info_span!("tracing-inner").in_scope(|| {});
                }
                .instrument(tracing::info_span!("tracing-work"))
                .await;
                "done"
            }),
        )
        .layer(HttpServerLayer::new().with_instrumentation(t.instrumentation()));
    let addr = serve_axum(app).await;

    let (status, _, body) = send(&client(), get_req(addr, "/work", &[])).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"done"[..]));

    t.wait_for_spans(3, TIMEOUT);
    let server = t.span("GET /work");
    server.assert_kind(SpanKind::Server).assert_root();
    let work = t.span("tracing-work");
    work.assert_child_of(&server);
    t.span("tracing-inner").assert_child_of(&work);
}
