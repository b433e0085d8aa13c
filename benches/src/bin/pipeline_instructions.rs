//! Instructions the application thread spends per span (start, 8 attributes, end) with
//! otelrs-core's export pipeline and with the SDK's `BatchSpanProcessor`, both exporting to an
//! exporter that discards. Run under callgrind, counting only `emit_spans`:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*emit_spans*' --callgrind-out-file=/dev/null \
//!     $B otelrs-core 10000 2>&1 | grep Collected
//! ```
//!
//! `$B <otelrs-core|sdk> <n>`; instructions per span = (Ir(n) - Ir(0)) / n.

use std::time::Duration;

use benches::http_apps::DiscardSpans;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use otelrs_core::sdk::{BatchConfig, SdkBuilder, SdkConfig};

/// The spans, one after another on this thread (the only function callgrind counts).
#[inline(never)]
fn emit_spans(tracer: &opentelemetry_sdk::trace::SdkTracer, n: u64) {
    for _ in 0..n {
        benches::end_http_server_span(tracer);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "otelrs-core".into());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    // A queue that never fills however far the export thread lags under callgrind.
    let queue = 1 << 20;
    match case.as_str() {
        "otelrs-core" => {
            let guard = SdkBuilder::from_config(SdkConfig::default())
                .with_traces_exporters([])
                .with_metrics_exporters([])
                .with_logs_exporters([])
                .with_span_exporter(DiscardSpans)
                .with_span_batch(BatchConfig::spans().with_max_queue_size(queue))
                .build()
                .expect("otelrs-core SDK");
            let provider = guard.tracer_provider().expect("traces on").clone();
            emit_spans(&provider.tracer("bench"), n);
            guard.shutdown().expect("shutdown");
        }
        "sdk" => {
            let provider = SdkTracerProvider::builder()
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
                .with_span_processor(
                    BatchSpanProcessor::builder(DiscardSpans)
                        .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(queue).build())
                        .build(),
                )
                .build();
            emit_spans(&provider.tracer("bench"), n);
            provider
                .shutdown_with_timeout(Duration::from_secs(30))
                .expect("shutdown");
        }
        other => {
            eprintln!("unknown case {other:?}: otelrs-core or sdk");
            std::process::exit(2);
        }
    }
}
