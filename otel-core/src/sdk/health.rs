//! Export health: what the pipelines delivered and lost, visible to the user three ways.
//!
//! - [`super::TelemetryGuard::export_stats`] returns running totals ([`ExportStats`]);
//! - the SDK self-observability metrics of the semantic conventions (`otel.sdk.span.started` /
//!   `live`, `otel.sdk.processor.{span,log}.processed` / `queue.size` / `queue.capacity`,
//!   `otel.sdk.exporter.{span,log,metric_data_point}.inflight` / `exported`,
//!   `otel.sdk.exporter.operation.duration`, `otel.sdk.log.created`) are observed on the SDK's
//!   own meter provider at every collection;
//! - a warning the first time anything is lost, then at most one summary a minute while losses
//!   continue, through `tracing` when a subscriber is installed and on stderr otherwise.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};
use opentelemetry_semantic_conventions::{attribute as attr, metric as m};

use super::batch::{QueueCounts, QueueProbe};
use super::env::Signal;

/// How often a summary of continuing losses is printed at most.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

fn noun(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Metrics => "metric points",
        Signal::Logs => "log records",
    }
}

fn signal_index(signal: Signal) -> usize {
    match signal {
        Signal::Traces => 0,
        Signal::Metrics => 1,
        Signal::Logs => 2,
    }
}

/// Why an export failed, as far as the exporter can tell.
#[derive(Debug, Clone)]
pub(crate) struct ExportFailure {
    /// Low-cardinality `error.type`.
    pub(crate) error_type: String,
    /// The full message.
    pub(crate) detail: String,
}

/// Running totals of one exporter (semconv `otel.component.*`).
#[derive(Debug)]
pub(crate) struct ExporterStats {
    signal: Signal,
    component_type: &'static str,
    component_name: String,
    server: Vec<KeyValue>,
    exported: AtomicU64,
    inflight: AtomicU64,
    /// Failed items by `error.type` (failures are rare: a lock is fine).
    failed: Mutex<Vec<(String, u64)>>,
}

impl ExporterStats {
    fn failed_total(&self) -> u64 {
        self.failed.lock().map(|f| f.iter().map(|(_, n)| n).sum()).unwrap_or(0)
    }

    /// Marks `items` as being exported.
    pub(crate) fn begin(&self, items: u64) -> Instant {
        self.inflight.fetch_add(items, Ordering::Relaxed);
        Instant::now()
    }

    /// Records the outcome of an export that began at `start`.
    pub(crate) fn finish(&self, health: &ExportHealth, items: u64, start: Instant, outcome: Result<(), ExportFailure>) {
        self.inflight.fetch_sub(items, Ordering::Relaxed);
        let mut attrs = vec![
            KeyValue::new(attr::OTEL_COMPONENT_TYPE, self.component_type),
            KeyValue::new(attr::OTEL_COMPONENT_NAME, self.component_name.clone()),
        ];
        attrs.extend(self.server.iter().cloned());
        match outcome {
            Ok(()) => {
                self.exported.fetch_add(items, Ordering::Relaxed);
            }
            Err(failure) => {
                if let Ok(mut failed) = self.failed.lock() {
                    match failed.iter_mut().find(|(t, _)| *t == failure.error_type) {
                        Some((_, n)) => *n += items,
                        None => failed.push((failure.error_type.clone(), items)),
                    }
                }
                attrs.push(KeyValue::new(attr::ERROR_TYPE, failure.error_type));
                if let Ok(mut last) = health.inner.last_error[signal_index(self.signal)].lock() {
                    *last = Some(format!("{}: {}", self.component_name, failure.detail));
                }
                if let Ok(mut last) = health.inner.last_error_any.lock() {
                    *last = Some(format!("{}: {}", self.component_name, failure.detail));
                }
            }
        }
        if let Some(h) = health.inner.duration.get() {
            h.record(start.elapsed().as_secs_f64(), &attrs);
        }
        health.report_losses(false);
    }
}

/// A registered queue (a span or log pipeline).
struct QueueEntry {
    signal: Signal,
    component_type: &'static str,
    component_name: String,
    probe: Arc<dyn QueueProbe>,
}

/// Spans started by sampling result and parent origin, and ended by sampling result.
#[derive(Debug, Default)]
pub(crate) struct SpanCounters {
    /// `[sampling result][parent origin]`: DROP, RECORD_ONLY, RECORD_AND_SAMPLE × none, local, remote.
    started: [[AtomicU64; 3]; 3],
    /// Ended recording spans that no pipeline counted: RECORD_ONLY, and RECORD_AND_SAMPLE when
    /// there is no span pipeline.
    ended: [AtomicU64; 2],
}

const SAMPLING_RESULTS: [&str; 3] = ["DROP", "RECORD_ONLY", "RECORD_AND_SAMPLE"];
const PARENT_ORIGINS: [&str; 3] = ["none", "local", "remote"];

impl SpanCounters {
    /// Counts a recording span that ended.
    pub(crate) fn ended(&self, sampled: bool) {
        self.ended[usize::from(sampled)].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct ReportState {
    warned: bool,
    last_report: Option<Instant>,
    reported_lost: u64,
}

struct HealthInner {
    exporters: Mutex<Vec<Arc<ExporterStats>>>,
    queues: Mutex<Vec<QueueEntry>>,
    spans: Arc<SpanCounters>,
    logs_created: AtomicU64,
    last_error: [Mutex<Option<String>>; 3],
    last_error_any: Mutex<Option<String>>,
    duration: OnceLock<Histogram<f64>>,
    report: Mutex<ReportState>,
    /// Set at shutdown: exporters stop retrying.
    stopping: Arc<AtomicBool>,
}

/// Shared by the pipelines and exporters of one [`super::TelemetryGuard`].
#[derive(Clone)]
pub(crate) struct ExportHealth {
    inner: Arc<HealthInner>,
}

impl fmt::Debug for ExportHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExportHealth({})", self.snapshot())
    }
}

impl Default for ExportHealth {
    fn default() -> Self {
        Self {
            inner: Arc::new(HealthInner {
                exporters: Mutex::default(),
                queues: Mutex::default(),
                spans: Arc::default(),
                logs_created: AtomicU64::new(0),
                last_error: Default::default(),
                last_error_any: Mutex::default(),
                duration: OnceLock::new(),
                report: Mutex::default(),
                stopping: Arc::default(),
            }),
        }
    }
}

fn component_name(existing: impl Iterator<Item = &'static str>, component_type: &'static str) -> String {
    format!("{component_type}/{}", existing.filter(|t| *t == component_type).count())
}

impl ExportHealth {
    /// Registers an exporter; `endpoint` gives `server.address`/`server.port`.
    pub(crate) fn exporter(
        &self,
        signal: Signal,
        component_type: &'static str,
        endpoint: Option<&str>,
    ) -> Arc<ExporterStats> {
        let mut exporters = self.inner.exporters.lock().unwrap_or_else(|p| p.into_inner());
        let stats = Arc::new(ExporterStats {
            signal,
            component_type,
            component_name: component_name(exporters.iter().map(|e| e.component_type), component_type),
            server: endpoint.map(server_attributes).unwrap_or_default(),
            exported: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
            failed: Mutex::default(),
        });
        exporters.push(stats.clone());
        stats
    }

    /// Registers a pipeline's queue.
    pub(crate) fn queue(&self, signal: Signal, component_type: &'static str, probe: Arc<dyn QueueProbe>) {
        let mut queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let component_name = component_name(queues.iter().map(|q| q.component_type), component_type);
        queues.push(QueueEntry {
            signal,
            component_type,
            component_name,
            probe,
        });
    }

    pub(crate) fn span_counters(&self) -> Arc<SpanCounters> {
        self.inner.spans.clone()
    }

    pub(crate) fn log_created(&self) {
        self.inner.logs_created.fetch_add(1, Ordering::Relaxed);
    }

    /// The flag exporters watch to stop retrying.
    pub(crate) fn stopping(&self) -> Arc<AtomicBool> {
        self.inner.stopping.clone()
    }

    fn exporters(&self) -> Vec<Arc<ExporterStats>> {
        self.inner.exporters.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn queue_counts(&self) -> Vec<(Signal, &'static str, String, QueueCounts)> {
        let queues = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues
            .iter()
            .map(|q| (q.signal, q.component_type, q.component_name.clone(), q.probe.counts()))
            .collect()
    }

    pub(crate) fn snapshot(&self) -> ExportStats {
        let mut s = ExportStats::default();
        for e in self.exporters() {
            let exported = e.exported.load(Ordering::Relaxed);
            let failed = e.failed_total();
            match e.signal {
                Signal::Traces => {
                    s.spans_exported += exported;
                    s.spans_failed += failed;
                }
                Signal::Metrics => {
                    s.metric_points_exported += exported;
                    s.metric_points_failed += failed;
                }
                Signal::Logs => {
                    s.log_records_exported += exported;
                    s.log_records_failed += failed;
                }
            }
        }
        for (signal, _, _, c) in self.queue_counts() {
            match signal {
                Signal::Traces => {
                    s.spans_ended += c.accepted + c.dropped_queue_full + c.dropped_shutdown;
                    s.spans_queued += c.queued;
                    s.spans_dropped_queue_full += c.dropped_queue_full;
                    s.spans_dropped_shutdown += c.dropped_shutdown;
                }
                Signal::Logs => {
                    s.log_records_emitted += c.accepted + c.dropped_queue_full + c.dropped_shutdown;
                    s.log_records_queued += c.queued;
                    s.log_records_dropped_queue_full += c.dropped_queue_full;
                    s.log_records_dropped_shutdown += c.dropped_shutdown;
                }
                Signal::Metrics => {}
            }
        }
        s
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.inner.last_error_any.lock().ok().and_then(|e| e.clone())
    }

    pub(crate) fn last_error_of(&self, signal: Signal) -> Option<String> {
        self.inner.last_error[signal_index(signal)]
            .lock()
            .ok()
            .and_then(|e| e.clone())
    }

    /// Says that telemetry is being lost: at once the first time, then at most once per
    /// [`SUMMARY_INTERVAL`]; `final_report` (shutdown) reports whatever is unreported.
    pub(crate) fn report_losses(&self, final_report: bool) {
        let stats = self.snapshot();
        let lost = stats.lost();
        let Ok(mut st) = self.inner.report.lock() else { return };
        if lost <= st.reported_lost {
            return;
        }
        let now = Instant::now();
        let due = st.last_report.is_none_or(|t| now.duration_since(t) >= SUMMARY_INTERVAL);
        if !(due || final_report) {
            return;
        }
        let message = if st.warned {
            format!(
                "{} more telemetry items lost since the last report ({stats})",
                lost - st.reported_lost
            )
        } else {
            let reason = self
                .last_error()
                .map(|e| format!("; last export error: {e}"))
                .unwrap_or_default();
            format!(
                "telemetry is being lost ({stats}){reason}. Totals: TelemetryGuard::export_stats(); \
                 a summary follows at most once a minute while it continues"
            )
        };
        st.warned = true;
        st.last_report = Some(now);
        st.reported_lost = lost;
        drop(st);
        if tracing::dispatcher::has_been_set() {
            tracing::warn!(target: "otelrs_core::sdk", lost, "{message}");
        } else {
            eprintln!("otelrs-core: {message}");
        }
    }

    /// The histogram of `otel.sdk.exporter.operation.duration`, once the meter exists.
    pub(crate) fn set_meter(&self, meter: &Meter) {
        let _ = self.inner.duration.set(
            meter
                .f64_histogram(m::OTEL_SDK_EXPORTER_OPERATION_DURATION)
                .with_unit("s")
                .with_description("The duration of exporting a batch of telemetry records.")
                .with_boundaries(vec![
                    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                ])
                .build(),
        );
        self.register_metrics(meter);
    }

    /// Registers the observable self-observability instruments, read from the running totals at
    /// each collection (nothing is recorded on the application's path).
    fn register_metrics(&self, meter: &Meter) {
        let h = self.clone();
        meter
            .u64_observable_counter(m::OTEL_SDK_SPAN_STARTED)
            .with_unit("{span}")
            .with_description("The number of created spans.")
            .with_callback(move |o| {
                for (s, result) in SAMPLING_RESULTS.iter().enumerate() {
                    for (p, origin) in PARENT_ORIGINS.iter().enumerate() {
                        let n = h.inner.spans.started[s][p].load(Ordering::Relaxed);
                        if n > 0 {
                            o.observe(
                                n,
                                &[
                                    KeyValue::new(attr::OTEL_SPAN_SAMPLING_RESULT, *result),
                                    KeyValue::new(attr::OTEL_SPAN_PARENT_ORIGIN, *origin),
                                ],
                            );
                        }
                    }
                }
            })
            .build();
        let h = self.clone();
        meter
            .i64_observable_up_down_counter(m::OTEL_SDK_SPAN_LIVE)
            .with_unit("{span}")
            .with_description("The number of created spans with `recording=true` for which the end operation has not been called yet.")
            .with_callback(move |o| {
                // Sampled spans that ended are counted by the first span pipeline (every pipeline
                // sees every sampled span); the others by the processor.
                let in_pipeline = h
                    .queue_counts()
                    .into_iter()
                    .find(|(signal, ..)| *signal == Signal::Traces)
                    .map_or(0, |(.., c)| c.accepted + c.dropped_queue_full + c.dropped_shutdown);
                for (i, result) in SAMPLING_RESULTS[1..].iter().enumerate() {
                    let started: u64 = h.inner.spans.started[i + 1].iter().map(|c| c.load(Ordering::Relaxed)).sum();
                    let ended = h.inner.spans.ended[i].load(Ordering::Relaxed) + if i == 1 { in_pipeline } else { 0 };
                    if started > 0 {
                        o.observe(
                            started.saturating_sub(ended) as i64,
                            &[KeyValue::new(attr::OTEL_SPAN_SAMPLING_RESULT, *result)],
                        );
                    }
                }
            })
            .build();
        let h = self.clone();
        meter
            .u64_observable_counter(m::OTEL_SDK_LOG_CREATED)
            .with_unit("{log_record}")
            .with_description("The number of logs submitted to enabled SDK Loggers.")
            .with_callback(move |o| {
                let n = h.inner.logs_created.load(Ordering::Relaxed);
                if n > 0 {
                    o.observe(n, &[]);
                }
            })
            .build();

        for (signal, processed, size, capacity, unit) in [
            (
                Signal::Traces,
                m::OTEL_SDK_PROCESSOR_SPAN_PROCESSED,
                m::OTEL_SDK_PROCESSOR_SPAN_QUEUE_SIZE,
                m::OTEL_SDK_PROCESSOR_SPAN_QUEUE_CAPACITY,
                "{span}",
            ),
            (
                Signal::Logs,
                m::OTEL_SDK_PROCESSOR_LOG_PROCESSED,
                m::OTEL_SDK_PROCESSOR_LOG_QUEUE_SIZE,
                m::OTEL_SDK_PROCESSOR_LOG_QUEUE_CAPACITY,
                "{log_record}",
            ),
        ] {
            let h = self.clone();
            meter
                .u64_observable_counter(processed)
                .with_unit(unit)
                .with_description(format!(
                    "The number of {} for which the processing has finished, either successful or failed.",
                    noun(signal)
                ))
                .with_callback(move |o| {
                    for (sig, ty, name, c) in h.queue_counts() {
                        if sig != signal {
                            continue;
                        }
                        let base = [
                            KeyValue::new(attr::OTEL_COMPONENT_TYPE, ty),
                            KeyValue::new(attr::OTEL_COMPONENT_NAME, name),
                        ];
                        // Processed = handed to the exporter (taken off the queue) or dropped.
                        o.observe(c.accepted - c.queued, &base);
                        for (error_type, n) in [
                            ("queue_full", c.dropped_queue_full),
                            ("already_shutdown", c.dropped_shutdown),
                        ] {
                            if n > 0 {
                                let mut a = base.to_vec();
                                a.push(KeyValue::new(attr::ERROR_TYPE, error_type));
                                o.observe(n, &a);
                            }
                        }
                    }
                })
                .build();
            for (name, capacity_metric) in [(size, false), (capacity, true)] {
                let h = self.clone();
                meter
                    .i64_observable_up_down_counter(name)
                    .with_unit(unit)
                    .with_description(if capacity_metric {
                        "The maximum number of items the queue of a given instance of an SDK processor can hold."
                    } else {
                        "The number of items in the queue of a given instance of an SDK processor."
                    })
                    .with_callback(move |o| {
                        for (sig, ty, name, c) in h.queue_counts() {
                            if sig == signal {
                                let v = if capacity_metric { c.capacity } else { c.queued };
                                o.observe(
                                    v as i64,
                                    &[
                                        KeyValue::new(attr::OTEL_COMPONENT_TYPE, ty),
                                        KeyValue::new(attr::OTEL_COMPONENT_NAME, name),
                                    ],
                                );
                            }
                        }
                    })
                    .build();
            }
        }

        for (signal, exported, inflight, unit) in [
            (
                Signal::Traces,
                m::OTEL_SDK_EXPORTER_SPAN_EXPORTED,
                m::OTEL_SDK_EXPORTER_SPAN_INFLIGHT,
                "{span}",
            ),
            (
                Signal::Metrics,
                m::OTEL_SDK_EXPORTER_METRIC_DATA_POINT_EXPORTED,
                m::OTEL_SDK_EXPORTER_METRIC_DATA_POINT_INFLIGHT,
                "{data_point}",
            ),
            (
                Signal::Logs,
                m::OTEL_SDK_EXPORTER_LOG_EXPORTED,
                m::OTEL_SDK_EXPORTER_LOG_INFLIGHT,
                "{log_record}",
            ),
        ] {
            let h = self.clone();
            meter
                .u64_observable_counter(exported)
                .with_unit(unit)
                .with_description(format!(
                    "The number of {} for which the export has finished, either successful or failed.",
                    noun(signal)
                ))
                .with_callback(move |o| {
                    for e in h.exporters().iter().filter(|e| e.signal == signal) {
                        let base = e.attributes();
                        o.observe(e.exported.load(Ordering::Relaxed), &base);
                        if let Ok(failed) = e.failed.lock() {
                            for (error_type, n) in failed.iter() {
                                let mut a = base.clone();
                                a.push(KeyValue::new(attr::ERROR_TYPE, error_type.clone()));
                                o.observe(*n, &a);
                            }
                        }
                    }
                })
                .build();
            let h = self.clone();
            meter
                .i64_observable_up_down_counter(inflight)
                .with_unit(unit)
                .with_description(format!("The number of {} which were passed to the exporter, but that have not been exported yet (neither successful, nor failed).", noun(signal)))
                .with_callback(move |o| {
                    for e in h.exporters().iter().filter(|e| e.signal == signal) {
                        o.observe(e.inflight.load(Ordering::Relaxed) as i64, &e.attributes());
                    }
                })
                .build();
        }
    }
}

impl ExporterStats {
    fn attributes(&self) -> Vec<KeyValue> {
        let mut a = vec![
            KeyValue::new(attr::OTEL_COMPONENT_TYPE, self.component_type),
            KeyValue::new(attr::OTEL_COMPONENT_NAME, self.component_name.clone()),
        ];
        a.extend(self.server.iter().cloned());
        a
    }
}

/// `server.address` and `server.port` of an exporter's endpoint URL.
fn server_attributes(endpoint: &str) -> Vec<KeyValue> {
    let Ok(uri) = endpoint.parse::<http::Uri>() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Some(host) = uri.host() {
        out.push(KeyValue::new(
            attr::SERVER_ADDRESS,
            host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        ));
    }
    let port = uri.port_u16().or(match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    if let Some(port) = port {
        out.push(KeyValue::new(attr::SERVER_PORT, i64::from(port)));
    }
    out
}

/// A sampler that counts its decisions for `otel.sdk.span.started` / `live` (every span passes
/// through the sampler, non-recording ones included).
#[derive(Debug, Clone)]
pub(crate) struct CountingSampler<S> {
    pub(crate) inner: S,
    pub(crate) counters: Arc<SpanCounters>,
}

impl<S: ShouldSample + Clone + 'static> ShouldSample for CountingSampler<S> {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> SamplingResult {
        let result = self
            .inner
            .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        let s = match result.decision {
            SamplingDecision::Drop => 0,
            SamplingDecision::RecordOnly => 1,
            SamplingDecision::RecordAndSample => 2,
        };
        let p = parent_context.map_or(0, |cx| {
            let span = cx.span();
            let sc = span.span_context();
            usize::from(sc.is_valid()) * (1 + usize::from(sc.is_remote()))
        });
        self.counters.started[s][p].fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// Running totals of what the SDK's pipelines delivered and lost since the providers were built
/// (summed over the exporters of each signal). See [`super::TelemetryGuard::export_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Sampled spans that ended and were handed to the span pipelines (once per pipeline).
    pub spans_ended: u64,
    /// Spans the span exporters delivered.
    pub spans_exported: u64,
    /// Spans in exports that failed (collector down, rejected, timed out): lost.
    pub spans_failed: u64,
    /// Spans dropped because the export queue was full (the collector too slow): lost.
    pub spans_dropped_queue_full: u64,
    /// Spans dropped because the pipeline was shut down, or its shutdown timed out: lost.
    pub spans_dropped_shutdown: u64,
    /// Spans waiting in the export queues now.
    pub spans_queued: u64,
    /// Metric data points the metric exporters delivered.
    pub metric_points_exported: u64,
    /// Metric data points in exports that failed: lost.
    pub metric_points_failed: u64,
    /// Log records handed to the log pipelines.
    pub log_records_emitted: u64,
    /// Log records the log exporters delivered.
    pub log_records_exported: u64,
    /// Log records in exports that failed: lost.
    pub log_records_failed: u64,
    /// Log records dropped because the export queue was full: lost.
    pub log_records_dropped_queue_full: u64,
    /// Log records dropped at or after shutdown: lost.
    pub log_records_dropped_shutdown: u64,
    /// Log records waiting in the export queues now.
    pub log_records_queued: u64,
}

impl ExportStats {
    /// Spans that ended but were not delivered and did not fail: still queued or being exported,
    /// or dropped (queue full, shutdown).
    pub fn spans_pending_or_dropped(&self) -> u64 {
        self.spans_ended.saturating_sub(self.spans_exported + self.spans_failed)
    }

    /// Items in failed exports, all signals.
    pub fn failed(&self) -> u64 {
        self.spans_failed + self.metric_points_failed + self.log_records_failed
    }

    /// Items dropped before export (full queue, shutdown), all signals.
    pub fn dropped(&self) -> u64 {
        self.spans_dropped_queue_full
            + self.spans_dropped_shutdown
            + self.log_records_dropped_queue_full
            + self.log_records_dropped_shutdown
    }

    /// Everything known to be lost: failed plus dropped.
    pub fn lost(&self) -> u64 {
        self.failed() + self.dropped()
    }
}

impl fmt::Display for ExportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spans: {} ended, {} exported, {} failed, {} dropped (queue full), {} dropped (shutdown), {} queued; \
             metric points: {} exported, {} failed; \
             log records: {} emitted, {} exported, {} failed, {} dropped (queue full), {} dropped (shutdown), {} queued",
            self.spans_ended,
            self.spans_exported,
            self.spans_failed,
            self.spans_dropped_queue_full,
            self.spans_dropped_shutdown,
            self.spans_queued,
            self.metric_points_exported,
            self.metric_points_failed,
            self.log_records_emitted,
            self.log_records_exported,
            self.log_records_failed,
            self.log_records_dropped_queue_full,
            self.log_records_dropped_shutdown,
            self.log_records_queued,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(t: &str) -> Result<(), ExportFailure> {
        Err(ExportFailure {
            error_type: t.into(),
            detail: format!("{t} happened"),
        })
    }

    #[test]
    fn failures_are_counted_per_exporter_and_error_type_and_named_per_signal() {
        let health = ExportHealth::default();
        let spans = health.exporter(
            Signal::Traces,
            "otlp_http_span_exporter",
            Some("https://c.example/v1/traces"),
        );
        let metrics = health.exporter(Signal::Metrics, "otlp_http_metric_exporter", None);
        let t = spans.begin(3);
        spans.finish(&health, 3, t, fail("tls"));
        let t = spans.begin(4);
        spans.finish(&health, 4, t, Ok(()));
        let t = spans.begin(2);
        spans.finish(&health, 2, t, fail("503"));
        let t = metrics.begin(5);
        metrics.finish(&health, 5, t, fail("connection"));
        let s = health.snapshot();
        assert_eq!((s.spans_exported, s.spans_failed, s.metric_points_failed), (4, 5, 5));
        assert_eq!(s.failed(), 10);
        assert_eq!(
            *spans.failed.lock().unwrap(),
            vec![("tls".to_string(), 3), ("503".to_string(), 2)]
        );
        assert_eq!(spans.inflight.load(Ordering::Relaxed), 0);
        // Each signal keeps its own last error; the most recent overall is the metrics one.
        assert_eq!(
            health.last_error_of(Signal::Traces).as_deref(),
            Some("otlp_http_span_exporter/0: 503 happened")
        );
        assert_eq!(
            health.last_error().as_deref(),
            Some("otlp_http_metric_exporter/0: connection happened")
        );
        assert_eq!(
            spans.server,
            vec![
                KeyValue::new("server.address", "c.example"),
                KeyValue::new("server.port", 443)
            ]
        );
        assert_eq!(
            health
                .exporter(Signal::Traces, "otlp_http_span_exporter", None)
                .component_name,
            "otlp_http_span_exporter/1"
        );
    }

    #[test]
    fn display_shows_drops() {
        let s = ExportStats {
            spans_ended: 10,
            spans_dropped_queue_full: 3,
            ..Default::default()
        };
        assert!(s.to_string().contains("3 dropped (queue full)"), "{s}");
        assert_eq!(s.lost(), 3);
    }
}
