//! The builder's hooks: processors, exporters, readers and a resource added in code next to (or
//! instead of) what the environment configures, each receiving exactly what it should.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{InMemoryLogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, ManualReader};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use otelrs_core::sdk::{SdkBuilder, SdkConfig};

/// Counts what it sees.
#[derive(Debug, Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl SpanProcessor for Counting {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}
    fn on_end(&self, _span: SpanData) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> OTelSdkResult {
        Ok(())
    }
}

impl LogProcessor for Counting {
    fn emit(&self, _record: &mut SdkLogRecord, _scope: &opentelemetry::InstrumentationScope) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
}

#[test]
fn every_hook_receives_its_signal_and_the_resource_reaches_the_exporters() {
    let spans = InMemorySpanExporter::default();
    let metrics = InMemoryMetricExporter::default();
    let logs = InMemoryLogExporter::default();
    let span_processor = Counting::default();
    let log_processor = Counting::default();
    let reader = ManualReader::builder().build();
    let reader_handle = Arc::new(reader);
    let guard = SdkBuilder::from_config(SdkConfig::default())
        .with_service_name("hooks")
        // Nothing from the environment: every signal is on only through the hooks.
        .with_traces_exporters([])
        .with_metrics_exporters([])
        .with_logs_exporters([])
        .with_resource(
            Resource::builder_empty()
                .with_attribute(KeyValue::new("cloud.region", "eu-1"))
                .build(),
        )
        .with_span_exporter(spans.clone())
        .with_span_processor(span_processor.clone())
        .with_metric_exporter(metrics.clone())
        .with_metric_reader(SharedReader(reader_handle.clone()))
        .with_log_exporter(logs.clone())
        .with_log_processor(log_processor.clone())
        .build()
        .expect("builds");

    guard.tracer_provider().unwrap().tracer("t").start("hooked").end();
    guard
        .meter_provider()
        .unwrap()
        .meter("t")
        .u64_counter("hooked.things")
        .build()
        .add(3, &[]);
    let logger = guard.logger_provider().unwrap().logger("t");
    let mut record = logger.create_log_record();
    record.set_body("hooked".into());
    logger.emit(record);

    // The manual reader sees the counter before shutdown.
    let mut collected = opentelemetry_sdk::metrics::data::ResourceMetrics::default();
    opentelemetry_sdk::metrics::reader::MetricReader::collect(&*reader_handle, &mut collected).expect("collect");
    let seen_by_reader: Vec<String> = collected
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| m.name().to_owned())
        .collect();
    assert!(
        seen_by_reader.contains(&"hooked.things".to_owned()),
        "{seen_by_reader:?}"
    );

    // Read before shutdown: the in-memory exporters forget what they hold when shut down.
    guard.force_flush().expect("flushed");

    let finished = spans.get_finished_spans().unwrap();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].name, "hooked");
    assert_eq!(span_processor.0.load(Ordering::SeqCst), 1);
    assert_eq!(log_processor.0.load(Ordering::SeqCst), 1);
    let emitted = logs.get_emitted_logs().unwrap();
    assert_eq!(emitted.len(), 1);
    let region = emitted[0]
        .resource
        .get(&opentelemetry::Key::new("cloud.region"))
        .map(|v| v.to_string());
    assert_eq!(region.as_deref(), Some("eu-1"), "the resource reaches the log exporter");

    let exported = metrics.get_finished_metrics().unwrap();
    let value = exported
        .iter()
        .flat_map(|rm| rm.scope_metrics())
        .flat_map(|s| s.metrics())
        .filter(|m| m.name() == "hooked.things")
        .find_map(|m| match m.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum.data_points().next().map(|p| p.value()),
            _ => None,
        });
    assert_eq!(value, Some(3));
    let region = exported[0]
        .resource()
        .get(&opentelemetry::Key::new("cloud.region"))
        .map(|v| v.to_string());
    assert_eq!(region.as_deref(), Some("eu-1"));

    // Hooked exporters are counted like the built-in ones.
    let stats = guard.export_stats();
    assert_eq!((stats.spans_exported, stats.log_records_exported), (1, 1), "{stats}");
    assert!(stats.metric_points_exported >= 1, "{stats}");
    guard.shutdown().expect("clean shutdown");
}

/// Lets the test keep a handle on a reader the builder owns.
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl opentelemetry_sdk::metrics::reader::MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<opentelemetry_sdk::metrics::Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut opentelemetry_sdk::metrics::data::ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: opentelemetry_sdk::metrics::InstrumentKind) -> opentelemetry_sdk::metrics::Temporality {
        self.0.temporality(kind)
    }
}
