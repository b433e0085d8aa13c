//! The family's starter demo: initialise the SDK from `OTEL_*` variables, emit a small trace and
//! a few metric points, propagate the context into outgoing headers, and flush on exit.
//!
//! ```sh
//! cargo run -p examples --bin demo                      # prints to the console
//! OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=otlp \
//!   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin demo
//! ```
//!
//! Without `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` / `OTEL_LOGS_EXPORTER` the demo uses
//! the console exporter (the SDK's own default is OTLP, which needs a collector).

use std::time::{Duration, Instant};

use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::{attribute as attr, metric};
use otelrs_core::sdk::{Exporter, SdkBuilder};
use otelrs_core::{instruments, status, Instrumentation};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut builder = SdkBuilder::from_env()?
        .with_service_name(std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "otel-demo".to_owned()));
    if std::env::var_os("OTEL_TRACES_EXPORTER").is_none() {
        builder = builder.with_traces_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_METRICS_EXPORTER").is_none() {
        builder = builder.with_metrics_exporters([Exporter::Console]);
    }
    if std::env::var_os("OTEL_LOGS_EXPORTER").is_none() {
        builder = builder.with_logs_exporters([]);
    }
    let telemetry = builder.install()?;
    let inst: Instrumentation = telemetry.instrumentation();
    let scope = Instrumentation::scope("otel-demo", env!("CARGO_PKG_VERSION"));
    let tracer = inst.tracer(scope.clone());
    let meter = inst.meter(scope);
    let duration = instruments::duration_histogram(
        &meter,
        metric::HTTP_SERVER_REQUEST_DURATION,
        "Duration of HTTP server requests.",
        &instruments::DURATION_BUCKETS,
    );

    for (route, status_code) in [("/users/{id}", 200u16), ("/orders", 201), ("/orders", 503)] {
        let start = Instant::now();
        let mut server = tracer
            .span_builder(format!("GET {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new(attr::HTTP_REQUEST_METHOD, "GET"),
                KeyValue::new(attr::URL_SCHEME, "http"),
                KeyValue::new(attr::HTTP_ROUTE, route),
            ])
            .start(&tracer);
        server.set_attribute(KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(status_code)));
        let cx = Context::new()
            .with_span(server)
            .with_baggage([KeyValue::new("tenant", "acme")]);

        // A downstream call: its context goes into the outgoing headers.
        let client = tracer
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new(attr::HTTP_REQUEST_METHOD, "GET"),
                KeyValue::new(attr::SERVER_ADDRESS, "inventory.internal"),
                KeyValue::new(attr::SERVER_PORT, 8080i64),
            ])
            .start_with_context(&tracer, &cx);
        let client_cx = cx.with_span(client);
        let mut outgoing = http::HeaderMap::new();
        inst.inject_http(&client_cx, &mut outgoing);
        println!(
            "GET {route} -> {status_code}; downstream traceparent: {}, baggage: {}",
            outgoing.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("-"),
            outgoing.get("baggage").and_then(|v| v.to_str().ok()).unwrap_or("-"),
        );
        tokio::time::sleep(Duration::from_millis(15)).await;
        client_cx.span().end();

        let mut metric_attrs = vec![
            KeyValue::new(attr::HTTP_REQUEST_METHOD, "GET"),
            KeyValue::new(attr::URL_SCHEME, "http"),
            KeyValue::new(attr::HTTP_ROUTE, route),
            KeyValue::new(attr::HTTP_RESPONSE_STATUS_CODE, i64::from(status_code)),
        ];
        let span = cx.span();
        if status::http_status_is_error(status_code, &SpanKind::Server) {
            metric_attrs.push(status::record_failure_ref(
                &span,
                status::status_code_str(status_code),
                None,
            ));
        }
        duration.record(instruments::seconds(start.elapsed()), &metric_attrs);
        span.end();
    }

    if let Err(e) = telemetry.shutdown() {
        eprintln!("warning: telemetry was not fully delivered: {e}");
    }
    Ok(())
}
