//! The SDK processors and exporter wrappers that connect the providers to the batch pipelines:
//! spans and log records are queued by [`super::batch`] and exported concurrently; every
//! exporter is wrapped so that what it delivers and loses is counted ([`super::health`]) and
//! OTLP/gRPC failures are retried by the rules of [`super::retry`] (OTLP/HTTP retries inside its
//! client, which still sees the status and the transport error).

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::time::Duration;

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;

use super::batch::{BatchExporter, BatchPipeline};
use super::env::{BatchConfig, Signal};
use super::health::{ExportFailure, ExportHealth, ExporterStats, SpanCounters};
use super::http_client::FailureSlot;
use super::retry::{self, RetryPolicy};

/// Runs a future to completion on the current thread (the export threads are ours; exporters'
/// futures either finish synchronously or are driven by their own runtime).
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// How an exporter's failures are told apart and retried.
#[derive(Clone)]
pub(crate) enum Transport {
    /// OTLP/gRPC: retried here, classified from the error text.
    Grpc { retry: RetryPolicy, timeout: Duration },
    /// OTLP/HTTP: retried in the client, which leaves the failure's class in the slot.
    Http(Arc<FailureSlot>),
    /// Console, or an exporter given by the user: one attempt, failures as reported.
    Other,
}

/// The counting, retrying side of one exporter.
#[derive(Clone)]
pub(crate) struct ExportContext {
    pub(crate) stats: Arc<ExporterStats>,
    pub(crate) health: ExportHealth,
    pub(crate) transport: Transport,
    pub(crate) stop: Arc<AtomicBool>,
}

impl ExportContext {
    /// Classifies a failed export.
    fn failure(&self, e: &OTelSdkError) -> ExportFailure {
        let detail = e.to_string();
        if let OTelSdkError::Timeout(_) = e {
            return ExportFailure {
                error_type: "timeout".into(),
                detail,
            };
        }
        match &self.transport {
            Transport::Http(slot) => match slot.take() {
                Some(f) => ExportFailure {
                    error_type: f.error_type,
                    detail: f.detail,
                },
                None => ExportFailure {
                    error_type: "export_failed".into(),
                    detail,
                },
            },
            Transport::Grpc { .. } => ExportFailure {
                error_type: if retry::is_tls_failure(&detail) {
                    "tls".into()
                } else {
                    retry::grpc_code(&detail)
                        .and_then(grpc_status_name)
                        .unwrap_or("export_failed")
                        .into()
                },
                detail,
            },
            Transport::Other => ExportFailure {
                error_type: "export_failed".into(),
                detail,
            },
        }
    }

    /// Runs `attempt` (retried for gRPC) and records the outcome for `items` items.
    fn run(&self, items: u64, deadline_after: Duration, mut attempt: impl FnMut() -> OTelSdkResult) -> OTelSdkResult {
        let start = self.stats.begin(items);
        let result = match &self.transport {
            Transport::Grpc { retry, timeout } => {
                let deadline = start + deadline_after.min(*timeout);
                retry::run(*retry, deadline, &self.stop, || {
                    attempt().map_err(|e| {
                        let verdict = retry::grpc_verdict(&e.to_string());
                        (e, verdict)
                    })
                })
            }
            _ => attempt(),
        };
        let outcome = result.as_ref().map(|_| ()).map_err(|e| self.failure(e));
        self.stats.finish(&self.health, items, start, outcome);
        result
    }

    fn retries(&self) -> bool {
        matches!(&self.transport, Transport::Grpc { retry, .. } if retry.is_enabled())
    }
}

/// tonic's `Code` name (`DeadlineExceeded`) as the canonical status name the other adapters use
/// (`DEADLINE_EXCEEDED`, from [`crate::status::GRPC_CODE_NAMES`]).
fn grpc_status_name(code: &str) -> Option<&'static str> {
    crate::status::GRPC_CODE_NAMES.iter().copied().find(|name| {
        name.len() == code.len() + name.matches('_').count()
            && name
                .bytes()
                .filter(|b| *b != b'_')
                .eq(code.bytes().map(|b| b.to_ascii_uppercase()))
    })
}

/// A span exporter on the export side of a pipeline.
pub(crate) struct SpanExport<E> {
    pub(crate) exporter: E,
    pub(crate) context: ExportContext,
    pub(crate) export_timeout: Duration,
}

impl<E: SpanExporter + 'static> BatchExporter for SpanExport<E> {
    type Item = SpanData;

    fn export(&self, batch: Vec<SpanData>) {
        let items = batch.len() as u64;
        // A retried attempt needs its own copy: the exporter consumes the batch.
        let mut batch = Some(batch);
        let retries = self.context.retries();
        let _ = self.context.run(items, self.export_timeout, || {
            let b = if retries {
                batch.clone().unwrap_or_default()
            } else {
                batch.take().unwrap_or_default()
            };
            block_on(self.exporter.export(b))
        });
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }
}

/// A log exporter on the export side of a pipeline.
pub(crate) struct LogExport<E> {
    pub(crate) exporter: E,
    pub(crate) context: ExportContext,
    pub(crate) export_timeout: Duration,
}

/// A queued log record with its scope.
pub(crate) type LogItem = Box<(SdkLogRecord, InstrumentationScope)>;

impl<E: LogExporter + 'static> BatchExporter for LogExport<E> {
    type Item = LogItem;

    fn export(&self, batch: Vec<LogItem>) {
        let refs: Vec<(&SdkLogRecord, &InstrumentationScope)> = batch.iter().map(|b| (&b.0, &b.1)).collect();
        let _ = self.context.run(refs.len() as u64, self.export_timeout, || {
            block_on(self.exporter.export(LogBatch::new(&refs)))
        });
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.exporter.shutdown_with_timeout(timeout)
    }
}

/// Forwards the provider's resource to an exporter that a pipeline's threads share.
type SetResource = Box<dyn Fn(&Resource) + Send + Sync>;

/// One pipeline per exporter of a signal, fed the same items.
struct Pipelines<T> {
    signal: Signal,
    name: &'static str,
    component_type: &'static str,
    pipelines: Vec<BatchPipeline<T>>,
    resources: Vec<SetResource>,
    health: ExportHealth,
    shutdown_timeout: Duration,
}

impl<T: Clone + Send + 'static> Pipelines<T> {
    /// Starts a pipeline to `export`; `set_resource` hands the provider's resource to it.
    fn add<X: BatchExporter<Item = T>>(
        &mut self,
        config: BatchConfig,
        export: X,
        set_resource: fn(&mut X, &Resource),
    ) -> std::io::Result<()> {
        let export = Arc::new(RwLock::new(export));
        let pipeline = BatchPipeline::start(self.name, config, export.clone())?;
        self.health.queue(self.signal, self.component_type, pipeline.probe());
        self.resources.push(Box::new(move |r: &Resource| {
            if let Ok(mut e) = export.write() {
                set_resource(&mut e, r);
            }
        }));
        self.pipelines.push(pipeline);
        Ok(())
    }

    /// Queues `item` in every pipeline (copies for all but the last).
    fn push(&self, item: T) {
        if let Some((last, rest)) = self.pipelines.split_last() {
            for p in rest {
                p.push(item.clone());
            }
            last.push(item);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        all(self.pipelines.iter().map(|p| p.force_flush(self.shutdown_timeout)))
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        all(self.pipelines.iter().map(|p| p.shutdown(timeout)))
    }

    fn set_resource(&self, resource: &Resource) {
        for f in &self.resources {
            f(resource);
        }
    }
}

impl<T> std::fmt::Debug for Pipelines<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipelines")
            .field("signal", &self.signal)
            .field("pipelines", &self.pipelines)
            .finish()
    }
}

/// The tracer provider's processor for the SDK's own exporters: counts ended spans and queues
/// sampled ones into one pipeline per exporter.
#[derive(Debug)]
pub(crate) struct SpanPipelines {
    pipelines: Pipelines<SpanData>,
    counters: Arc<SpanCounters>,
}

impl SpanPipelines {
    pub(crate) fn new(health: &ExportHealth, shutdown_timeout: Duration) -> Self {
        Self {
            pipelines: Pipelines {
                signal: Signal::Traces,
                name: "span",
                component_type: "batching_span_processor",
                pipelines: Vec::new(),
                resources: Vec::new(),
                health: health.clone(),
                shutdown_timeout,
            },
            counters: health.span_counters(),
        }
    }

    /// Adds a pipeline to `exporter`.
    pub(crate) fn add<E: SpanExporter + 'static>(
        &mut self,
        config: BatchConfig,
        exporter: E,
        context: ExportContext,
    ) -> std::io::Result<()> {
        let export = SpanExport {
            exporter,
            context,
            export_timeout: config.export_timeout,
        };
        self.pipelines.add(config, export, |e, r| e.exporter.set_resource(r))
    }
}

impl SpanProcessor for SpanPipelines {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        // Sampled spans that reach a pipeline are counted there, under the queue's lock; only the
        // others need a counter of their own (for `otel.sdk.span.live`).
        // Written out rather than through `Pipelines::push`: a span is large, and this way it is
        // copied once, into the queue (measured with `pipeline_instructions`).
        let sampled = span.span_context.is_sampled();
        match self.pipelines.pipelines.split_last() {
            Some((last, rest)) if sampled => {
                for p in rest {
                    p.push(span.clone());
                }
                last.push(span);
            }
            _ => self.counters.ended(sampled),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.pipelines.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.pipelines.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.pipelines.set_resource(resource);
    }
}

/// The logger provider's processor for the SDK's own exporters.
#[derive(Debug)]
pub(crate) struct LogPipelines {
    pipelines: Pipelines<LogItem>,
}

impl LogPipelines {
    pub(crate) fn new(health: &ExportHealth, shutdown_timeout: Duration) -> Self {
        Self {
            pipelines: Pipelines {
                signal: Signal::Logs,
                name: "log",
                component_type: "batching_log_processor",
                pipelines: Vec::new(),
                resources: Vec::new(),
                health: health.clone(),
                shutdown_timeout,
            },
        }
    }

    /// Adds a pipeline to `exporter`.
    pub(crate) fn add<E: LogExporter + 'static>(
        &mut self,
        config: BatchConfig,
        exporter: E,
        context: ExportContext,
    ) -> std::io::Result<()> {
        let export = LogExport {
            exporter,
            context,
            export_timeout: config.export_timeout,
        };
        self.pipelines.add(config, export, |e, r| e.exporter.set_resource(r))
    }
}

impl LogProcessor for LogPipelines {
    fn emit(&self, record: &mut SdkLogRecord, scope: &InstrumentationScope) {
        self.pipelines.health.log_created();
        self.pipelines.push(Box::new((record.clone(), scope.clone())));
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.pipelines.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.pipelines.shutdown(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.pipelines.set_resource(resource);
    }
}

/// The first error of several results, or `Ok`.
fn all(results: impl Iterator<Item = OTelSdkResult>) -> OTelSdkResult {
    let mut first = Ok(());
    for r in results {
        if first.is_ok() {
            first = r;
        }
    }
    first
}

/// A push metric exporter that counts the data points it delivered and lost, and retries
/// OTLP/gRPC failures.
pub(crate) struct CountingMetricExporter<E> {
    pub(crate) inner: E,
    pub(crate) context: ExportContext,
}

impl<E> std::fmt::Debug for CountingMetricExporter<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CountingMetricExporter")
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
        // The periodic reader drives this future on its own thread; the inner export is driven
        // to completion here so that gRPC failures can be retried between attempts.
        self.context
            .run(items, Duration::MAX, || block_on(self.inner.export(metrics)))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_become_status_names() {
        assert_eq!(grpc_status_name("Unavailable"), Some("UNAVAILABLE"));
        assert_eq!(grpc_status_name("DeadlineExceeded"), Some("DEADLINE_EXCEEDED"));
        assert_eq!(grpc_status_name("Ok"), Some("OK"));
        assert_eq!(grpc_status_name("NoSuchCode"), None);
    }
}
