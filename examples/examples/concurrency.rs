//! Concurrency patterns, one trace each, drawn as waterfalls: a worker pool fed from a request,
//! a pipeline of stages over channels, fan-out/fan-in, a timeout and a cancellation, all on
//! `otelrs_core::task` (see `examples/src/concurrency.rs` for the code of each).
//!
//! ```sh
//! cargo run -p examples --example concurrency
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --example concurrency   # also export
//! ```

use std::io::IsTerminal as _;

use examples::concurrency::{finished, run_all, SpanCapture};
use examples::shop::render::{waterfall, Style};
use opentelemetry::trace::TracerProvider as _;
use otelrs_core::sdk::SdkBuilder;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let set = |var: &str| std::env::var_os(var).is_some_and(|v| !v.is_empty());
    // Spans are kept in memory for the waterfalls; exported too when a collector is configured.
    let mut builder = SdkBuilder::from_env()?
        .with_service_name("concurrency")
        .with_metrics_exporters([])
        .with_logs_exporters([]);
    if !(set("OTEL_TRACES_EXPORTER") || set("OTEL_EXPORTER_OTLP_ENDPOINT")) {
        builder = builder.with_traces_exporters([]);
    }
    let capture = SpanCapture::default();
    let telemetry = builder.with_span_processor(capture.clone()).install()?;
    let Some(provider) = telemetry.tracer_provider() else {
        println!("OTEL_SDK_DISABLED is set: nothing to draw");
        return Ok(());
    };
    let tracer = provider.tracer("concurrency");

    let style = Style {
        color: std::io::stdout().is_terminal(),
    };
    for (n, pattern) in run_all(&tracer).await.into_iter().enumerate() {
        let spans = finished(&capture.trace(pattern.trace_id));
        println!("{}. {}", n + 1, pattern.title);
        println!("   {}", pattern.shows);
        println!("   trace {}, {} spans", pattern.trace_id, spans.len());
        println!("{}", waterfall(&spans, style));
    }
    telemetry.shutdown()?;
    Ok(())
}
