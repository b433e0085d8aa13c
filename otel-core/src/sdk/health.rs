//! Export health: what the exporters delivered and what they lost, visible to the user.
//!
//! The SDK's batch processors drop telemetry when the collector is down (failed exports) or
//! slow (full queues) and say so only through their internal logs. [`SdkBuilder`] wraps every
//! exporter it builds so that these losses are counted:
//!
//! - [`TelemetryGuard::export_stats`] returns the running totals ([`ExportStats`]);
//! - the semconv SDK self-observability counters `otel.sdk.exporter.span.exported`,
//!   `otel.sdk.exporter.metric_data_point.exported` and `otel.sdk.exporter.log.exported`
//!   (failures carry `error.type`) are recorded on the SDK's own meter provider, so they reach
//!   the metrics backend (or the Prometheus scrape) like any other metric;
//! - a `tracing` warning (target `otel_core::sdk`) when a signal's exports start failing, and an
//!   info event with the number of items lost when they recover.
//!
//! [`SdkBuilder`]: super::SdkBuilder
//! [`TelemetryGuard::export_stats`]: super::TelemetryGuard::export_stats

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::metrics::Meter;
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

/// The signal an exporter sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalKind {
    Traces,
    Metrics,
    Logs,
}

impl SignalKind {
    fn name(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
            SignalKind::Logs => "logs",
        }
    }
}

/// Running totals of one exporter.
#[derive(Debug)]
pub(crate) struct ComponentStats {
    signal: SignalKind,
    /// semconv `otel.component.type`, e.g. `otlp_http_span_exporter`.
    component_type: &'static str,
    /// semconv `otel.component.name`: `<type>/<index>`.
    component_name: String,
    /// Sampled spans handed to this exporter's batch processor (traces only).
    ended: AtomicU64,
    exported: AtomicU64,
    failed_timeout: AtomicU64,
    failed_other: AtomicU64,
    failing: AtomicBool,
    lost_since_failing: AtomicU64,
}

impl ComponentStats {
    fn record(&self, items: u64, result: &OTelSdkResult, health: &HealthInner) {
        match result {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
                if self.failing.swap(false, Ordering::Relaxed) {
                    let lost = self.lost_since_failing.swap(0, Ordering::Relaxed);
                    tracing::info!(
                        target: "otel_core::sdk",
                        signal = self.signal.name(),
                        exporter = %self.component_name,
                        lost,
                        "telemetry export recovered; {lost} items were lost while it failed"
                    );
                }
            }
            Err(e) => {
                let counter = match e {
                    OTelSdkError::Timeout(_) => &self.failed_timeout,
                    _ => &self.failed_other,
                };
                counter.fetch_add(items, Ordering::Relaxed);
                self.lost_since_failing.fetch_add(items, Ordering::Relaxed);
                if let Ok(mut last) = health.last_error.lock() {
                    *last = Some(format!("{}: {e}", self.component_name));
                }
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "otel_core::sdk",
                        signal = self.signal.name(),
                        exporter = %self.component_name,
                        error = %e,
                        "telemetry export failed; {} are being dropped until it recovers \
                         (see TelemetryGuard::export_stats)",
                        match self.signal {
                            SignalKind::Traces => "spans",
                            SignalKind::Metrics => "metric points",
                            SignalKind::Logs => "log records",
                        }
                    );
                }
            }
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct HealthInner {
    components: Mutex<Vec<Arc<ComponentStats>>>,
    last_error: Mutex<Option<String>>,
}

/// Shared by the exporter wrappers of one [`super::TelemetryGuard`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ExportHealth {
    inner: Arc<HealthInner>,
}

impl ExportHealth {
    /// Registers a new exporter and returns its counters.
    pub(crate) fn component(&self, signal: SignalKind, component_type: &'static str) -> Arc<ComponentStats> {
        let mut components = self.inner.components.lock().unwrap_or_else(|p| p.into_inner());
        let index = components.iter().filter(|c| c.component_type == component_type).count();
        let stats = Arc::new(ComponentStats {
            signal,
            component_type,
            component_name: format!("{component_type}/{index}"),
            ended: AtomicU64::new(0),
            exported: AtomicU64::new(0),
            failed_timeout: AtomicU64::new(0),
            failed_other: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            lost_since_failing: AtomicU64::new(0),
        });
        components.push(stats.clone());
        stats
    }

    fn components(&self) -> Vec<Arc<ComponentStats>> {
        self.inner.components.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn snapshot(&self) -> ExportStats {
        let mut s = ExportStats::default();
        for c in self.components() {
            let exported = c.exported.load(Ordering::Relaxed);
            let failed = c.failed_timeout.load(Ordering::Relaxed) + c.failed_other.load(Ordering::Relaxed);
            match c.signal {
                SignalKind::Traces => {
                    s.spans_ended += c.ended.load(Ordering::Relaxed);
                    s.spans_exported += exported;
                    s.spans_failed += failed;
                }
                SignalKind::Metrics => {
                    s.metric_points_exported += exported;
                    s.metric_points_failed += failed;
                }
                SignalKind::Logs => {
                    s.log_records_exported += exported;
                    s.log_records_failed += failed;
                }
            }
        }
        s
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.inner.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Registers the semconv SDK exporter counters, read from the running totals at each
    /// collection (observable: nothing is recorded on the export path).
    pub(crate) fn register_metrics(&self, meter: &Meter) {
        for (signal, name, unit, description) in [
            (
                SignalKind::Traces,
                "otel.sdk.exporter.span.exported",
                "{span}",
                "The number of spans for which the export has finished, either successful or failed.",
            ),
            (
                SignalKind::Metrics,
                "otel.sdk.exporter.metric_data_point.exported",
                "{data_point}",
                "The number of metric data points for which the export has finished, either successful or failed.",
            ),
            (
                SignalKind::Logs,
                "otel.sdk.exporter.log.exported",
                "{log_record}",
                "The number of log records for which the export has finished, either successful or failed.",
            ),
        ] {
            let health = self.clone();
            meter
                .u64_observable_counter(name)
                .with_unit(unit)
                .with_description(description)
                .with_callback(move |observer| {
                    for c in health.components().iter().filter(|c| c.signal == signal) {
                        let component = [
                            KeyValue::new("otel.component.type", c.component_type),
                            KeyValue::new("otel.component.name", c.component_name.clone()),
                        ];
                        observer.observe(c.exported.load(Ordering::Relaxed), &component);
                        for (error_type, counter) in
                            [("timeout", &c.failed_timeout), ("export_failed", &c.failed_other)]
                        {
                            let failed = counter.load(Ordering::Relaxed);
                            if failed > 0 {
                                let [a, b] = component.clone();
                                observer.observe(failed, &[a, b, KeyValue::new("error.type", error_type)]);
                            }
                        }
                    }
                })
                .build();
        }
    }
}

/// Running totals of what the SDK's exporters delivered and lost since the providers were built
/// (summed over the exporters of each signal). See [`super::TelemetryGuard::export_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Sampled spans that ended and were handed to a span exporter's batch processor.
    pub spans_ended: u64,
    /// Spans the span exporters delivered.
    pub spans_exported: u64,
    /// Spans in exports that failed (collector down, rejected, timed out): lost.
    pub spans_failed: u64,
    /// Metric data points the metric exporters delivered.
    pub metric_points_exported: u64,
    /// Metric data points in exports that failed: lost.
    pub metric_points_failed: u64,
    /// Log records the log exporters delivered.
    pub log_records_exported: u64,
    /// Log records in exports that failed: lost.
    pub log_records_failed: u64,
}

impl ExportStats {
    /// Spans that ended but have neither been exported nor failed: still queued in a batch
    /// processor, or dropped because its queue was full. After
    /// [`super::TelemetryGuard::force_flush`] or shutdown, the queues are empty and this is the
    /// number of spans dropped for a full queue.
    pub fn spans_pending_or_dropped(&self) -> u64 {
        self.spans_ended.saturating_sub(self.spans_exported + self.spans_failed)
    }

    /// Everything lost so far that is known to be lost: failed spans, metric points and log
    /// records (queue-full drops are in [`ExportStats::spans_pending_or_dropped`]).
    pub fn failed(&self) -> u64 {
        self.spans_failed + self.metric_points_failed + self.log_records_failed
    }
}

impl fmt::Display for ExportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spans: {} ended, {} exported, {} failed; metric points: {} exported, {} failed; \
             log records: {} exported, {} failed",
            self.spans_ended,
            self.spans_exported,
            self.spans_failed,
            self.metric_points_exported,
            self.metric_points_failed,
            self.log_records_exported,
            self.log_records_failed
        )
    }
}

/// A span exporter that counts what its inner exporter delivered and lost.
#[derive(Debug)]
pub(crate) struct CountingSpanExporter<E> {
    pub(crate) inner: E,
    pub(crate) stats: Arc<ComponentStats>,
    pub(crate) health: ExportHealth,
}

impl<E: SpanExporter> SpanExporter for CountingSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let items = batch.len() as u64;
        let result = self.inner.export(batch).await;
        self.stats.record(items, &result, &self.health.inner);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts the sampled spans handed to a batch processor (the spans its exporter should see), so
/// that queue-full drops show up as the difference.
#[derive(Debug)]
pub(crate) struct CountingSpanProcessor<P> {
    pub(crate) inner: P,
    pub(crate) stats: Arc<ComponentStats>,
}

impl<P: SpanProcessor> SpanProcessor for CountingSpanProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // The batch processor exports only sampled spans.
        if span.span_context.is_sampled() {
            self.stats.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// A push metric exporter that counts the data points its inner exporter delivered and lost.
pub(crate) struct CountingMetricExporter<E> {
    pub(crate) inner: E,
    pub(crate) stats: Arc<ComponentStats>,
    pub(crate) health: ExportHealth,
}

impl<E> fmt::Debug for CountingMetricExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingMetricExporter")
            .field("component", &self.stats.component_name)
            .finish_non_exhaustive()
    }
}

/// Number of data points in one collection.
fn data_points(metrics: &ResourceMetrics) -> u64 {
    fn of<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(g) => g.data_points().count(),
            MetricData::Sum(s) => s.data_points().count(),
            MetricData::Histogram(h) => h.data_points().count(),
            MetricData::ExponentialHistogram(e) => e.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| match m.data() {
            AggregatedMetrics::F64(d) => of(d),
            AggregatedMetrics::U64(d) => of(d),
            AggregatedMetrics::I64(d) => of(d),
        } as u64)
        .sum()
}

impl<E: PushMetricExporter> PushMetricExporter for CountingMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let items = data_points(metrics);
        let result = self.inner.export(metrics).await;
        self.stats.record(items, &result, &self.health.inner);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// A log exporter that counts the records its inner exporter delivered and lost.
#[derive(Debug)]
pub(crate) struct CountingLogExporter<E> {
    pub(crate) inner: E,
    pub(crate) stats: Arc<ComponentStats>,
    pub(crate) health: ExportHealth,
}

impl<E: LogExporter> LogExporter for CountingLogExporter<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let items = batch.iter().count() as u64;
        let result = self.inner.export(batch).await;
        self.stats.record(items, &result, &self.health.inner);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(&self, level: opentelemetry::logs::Severity, target: &str, name: Option<&str>) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct FlakyExporter(AtomicBool);

    impl SpanExporter for FlakyExporter {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            if self.0.load(Ordering::Relaxed) {
                Err(OTelSdkError::InternalFailure("connection refused".into()))
            } else {
                Ok(())
            }
        }
    }

    fn span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(1),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "s".into(),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn failed_and_delivered_spans_are_counted_per_exporter() {
        let health = ExportHealth::default();
        let stats = health.component(SignalKind::Traces, "otlp_http_span_exporter");
        let exporter = CountingSpanExporter {
            inner: FlakyExporter(AtomicBool::new(true)),
            stats: stats.clone(),
            health: health.clone(),
        };
        let run = |n: usize| futures_executor_block_on(exporter.export((0..n).map(|_| span()).collect()));
        assert!(run(3).is_err());
        assert!(run(2).is_err());
        exporter.inner.0.store(false, Ordering::Relaxed);
        assert!(run(4).is_ok());
        let s = health.snapshot();
        assert_eq!((s.spans_exported, s.spans_failed), (4, 5));
        assert_eq!(s.failed(), 5);
        assert_eq!(
            health.last_error().as_deref(),
            Some("otlp_http_span_exporter/0: Operation failed: connection refused")
        );
        // Recovery resets the streak, so the next failure warns again.
        assert!(!stats.failing.load(Ordering::Relaxed));
        assert_eq!(stats.lost_since_failing.load(Ordering::Relaxed), 0);
        assert_eq!(
            health
                .component(SignalKind::Traces, "otlp_http_span_exporter")
                .component_name,
            "otlp_http_span_exporter/1"
        );
    }

    /// Polls a future that never waits (the test exporters are synchronous).
    fn futures_executor_block_on<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context as TaskContext, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = TaskContext::from_waker(Waker::noop());
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("test exporter future was pending"),
        }
    }
}
