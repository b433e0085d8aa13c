//! The same SDK setup as [`crate::http_apps::Sdk`], built from `opentelemetry_sdk` 0.32, for
//! crates that are still on opentelemetry 0.32 (sqlx-otel 0.5) and read its globals. A batch span
//! processor with a queue no span overflows and a discarding exporter (counted into the same
//! [`SPANS_EXPORTED`](crate::http_apps::SPANS_EXPORTED) total), and a periodic metric reader with a discarding exporter.

use opentelemetry_sdk_032::trace::SdkTracerProvider;

discard_exporters!(opentelemetry_sdk_032);

/// opentelemetry 0.32 providers, installed as that version's globals.
#[derive(Clone, Debug)]
pub struct Sdk032 {
    tracer_provider: SdkTracerProvider,
}

impl Sdk032 {
    /// Builds the providers (spans sampled or not) and installs them as the 0.32 globals.
    pub fn install(sampled: bool) -> Self {
        let tracer_provider = discarding_tracer_provider(sampled);
        let meter_provider = discarding_meter_provider();
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
