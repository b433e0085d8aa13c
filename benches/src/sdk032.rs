//! The same SDK setup as [`crate::http_apps::Sdk`], built from `opentelemetry_sdk` 0.32, for
//! crates that are still on opentelemetry 0.32 (sqlx-otel 0.5) and read its globals. A batch span
//! processor with a queue no span overflows and a discarding exporter (counted into the same
//! [`SPANS_EXPORTED`] total), and a periodic metric reader with a discarding exporter.

use std::time::Duration;

use opentelemetry_sdk_032::error::OTelSdkResult;
use opentelemetry_sdk_032::metrics::data::ResourceMetrics;
use opentelemetry_sdk_032::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk_032::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk_032::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
};

use crate::http_apps::SPANS_EXPORTED;

#[derive(Debug, Default)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        SPANS_EXPORTED.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        drop(std::hint::black_box(batch));
        Ok(())
    }
}

#[derive(Debug, Default)]
struct DiscardMetrics;

impl PushMetricExporter for DiscardMetrics {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        std::hint::black_box(metrics);
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }

    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

/// opentelemetry 0.32 providers, installed as that version's globals.
#[derive(Clone, Debug)]
pub struct Sdk032 {
    tracer_provider: SdkTracerProvider,
}

impl Sdk032 {
    /// Builds the providers (spans sampled or not) and installs them as the 0.32 globals.
    pub fn install(sampled: bool) -> Self {
        let processor = BatchSpanProcessor::builder(DiscardSpans)
            .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(1 << 20).build())
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(if sampled { Sampler::AlwaysOn } else { Sampler::AlwaysOff })
            .with_span_processor(processor)
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(
                PeriodicReader::builder(DiscardMetrics)
                    .with_interval(Duration::from_secs(3600))
                    .build(),
            )
            .build();
        opentelemetry_032::global::set_tracer_provider(tracer_provider.clone());
        opentelemetry_032::global::set_meter_provider(meter_provider);
        Self { tracer_provider }
    }

    /// Exports every queued span.
    pub fn flush(&self) {
        if let Err(e) = self.tracer_provider.force_flush() {
            eprintln!("flush (0.32): {e}");
        }
    }
}
