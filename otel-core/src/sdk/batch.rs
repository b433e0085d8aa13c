//! The batching export pipeline of spans and log records: a bounded queue filled by the
//! application, one batcher thread cutting batches, and up to `max_concurrent_exports` export
//! threads so that delivery grows with the collector's latency instead of waiting for one
//! round trip per batch.
//!
//! ```text
//! application threads ──push──▶ [ bounded queue ] ──batcher──▶ export thread 1 ──▶ collector
//!      (drops counted when full)                        └─────▶ export thread N ──▶
//! ```
//!
//! Every item is accounted for: accepted into the queue, dropped because the queue was full, or
//! dropped because the pipeline was shutting down or shut down; the exporter side counts what was
//! delivered and what failed.

use std::collections::VecDeque;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use super::env::BatchConfig;

/// The export side of a pipeline: sends one batch, blocking, and counts the outcome itself.
/// Called from several export threads at once.
pub(crate) trait BatchExporter: Send + Sync + 'static {
    /// What is queued.
    type Item: Send + 'static;
    /// Exports one batch (retries included) and records the outcome.
    fn export(&self, batch: Vec<Self::Item>);
    /// Shuts the exporter down.
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
}

/// What a pipeline holds and has dropped, for the statistics and self-observability metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QueueCounts {
    /// Items accepted into the queue since the start.
    pub(crate) accepted: u64,
    /// Items refused because the queue was full.
    pub(crate) dropped_queue_full: u64,
    /// Items refused or discarded because the pipeline was shut down (or its shutdown timed out).
    pub(crate) dropped_shutdown: u64,
    /// Items in the queue now.
    pub(crate) queued: u64,
    /// The queue's capacity.
    pub(crate) capacity: u64,
}

/// Reads a pipeline's counts without knowing its item type.
pub(crate) trait QueueProbe: Send + Sync {
    fn counts(&self) -> QueueCounts;
}

struct State<T> {
    queue: VecDeque<T>,
    accepted: u64,
    dropped_queue_full: u64,
    dropped_shutdown: u64,
    /// Batches handed to export threads and not finished.
    in_flight: usize,
    /// Flushes asked for / completed (a flush completes when everything queued before it ended).
    flush_asked: u64,
    flush_done: u64,
    shutting_down: bool,
    /// Shutdown ran out of time: discard what is left.
    abandon: bool,
    batcher_waiting: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the batcher: a full batch, a flush, a shutdown.
    wake_batcher: Condvar,
    /// Wakes flush and shutdown waiters: a flush completed, the batcher ended.
    progress: Condvar,
    config: BatchConfig,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panicking exporter must not make every later push panic too.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T: Send> QueueProbe for Shared<T> {
    fn counts(&self) -> QueueCounts {
        let st = self.lock();
        QueueCounts {
            accepted: st.accepted,
            dropped_queue_full: st.dropped_queue_full,
            dropped_shutdown: st.dropped_shutdown,
            queued: st.queue.len() as u64,
            capacity: self.config.max_queue_size as u64,
        }
    }
}

/// A running pipeline. Dropping it does not stop it; call [`BatchPipeline::shutdown`].
pub(crate) struct BatchPipeline<T> {
    shared: Arc<Shared<T>>,
    batcher: Mutex<Option<JoinHandle<()>>>,
}

impl<T> std::fmt::Debug for BatchPipeline<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchPipeline")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<T: Send + 'static> BatchPipeline<T> {
    /// Starts the batcher thread; export threads start on demand, up to the configured number.
    pub(crate) fn start<X: BatchExporter<Item = T>>(
        name: &str,
        config: BatchConfig,
        exporter: Arc<RwLock<X>>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(config.max_queue_size.min(4096)),
                accepted: 0,
                dropped_queue_full: 0,
                dropped_shutdown: 0,
                in_flight: 0,
                flush_asked: 0,
                flush_done: 0,
                shutting_down: false,
                abandon: false,
                batcher_waiting: false,
            }),
            wake_batcher: Condvar::new(),
            progress: Condvar::new(),
            config,
        });
        let batcher = {
            let shared = shared.clone();
            let thread_name = format!("otel-{name}-batch");
            let worker_name = format!("otel-{name}-export");
            std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || Batcher::new(shared, exporter, worker_name).run())?
        };
        Ok(Self {
            shared,
            batcher: Mutex::new(Some(batcher)),
        })
    }

    /// The counts, for statistics.
    pub(crate) fn probe(&self) -> Arc<dyn QueueProbe> {
        self.shared.clone()
    }

    /// Queues an item, or counts it as dropped. Never blocks on export. Inlined into the
    /// processor's `on_end` so that the span is copied once, into the queue (measured with
    /// `pipeline_instructions`).
    #[inline]
    pub(crate) fn push(&self, item: T) {
        let mut st = self.shared.lock();
        if st.shutting_down {
            st.dropped_shutdown += 1;
            return;
        }
        if st.queue.len() >= self.shared.config.max_queue_size {
            st.dropped_queue_full += 1;
            return;
        }
        st.queue.push_back(item);
        st.accepted += 1;
        // Only a completed batch needs the batcher early; otherwise its timer will do.
        if st.batcher_waiting && st.queue.len() == self.shared.config.max_export_batch_size {
            drop(st);
            self.shared.wake_batcher.notify_one();
        }
    }

    /// Exports everything queued so far and waits for it, at most `timeout`.
    pub(crate) fn force_flush(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        if st.shutting_down {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        st.flush_asked += 1;
        let ticket = st.flush_asked;
        self.shared.wake_batcher.notify_one();
        while st.flush_done < ticket && !st.shutting_down {
            let now = Instant::now();
            if now >= deadline {
                return Err(OTelSdkError::Timeout(timeout));
            }
            st = self
                .shared
                .progress
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }

    /// Exports what is queued, then stops; what is still queued when `timeout` passes is dropped
    /// and counted. Later pushes are counted as dropped.
    pub(crate) fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        {
            let mut st = self.shared.lock();
            if st.shutting_down {
                return Err(OTelSdkError::AlreadyShutdown);
            }
            st.shutting_down = true;
        }
        self.shared.wake_batcher.notify_one();
        let handle = self.batcher.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(handle) = handle else { return Ok(()) };
        let mut st = self.shared.lock();
        while !handle.is_finished() {
            let now = Instant::now();
            if now >= deadline {
                // Give up: the batcher discards the rest (counted) and exits on its own.
                st.abandon = true;
                drop(st);
                self.shared.wake_batcher.notify_one();
                return Err(OTelSdkError::Timeout(timeout));
            }
            st = self
                .shared
                .progress
                .wait_timeout(st, (deadline - now).min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(st);
        handle
            .join()
            .map_err(|_| OTelSdkError::InternalFailure("the batch thread panicked".into()))
    }
}

/// The batcher thread: cuts batches and hands them to export threads.
struct Batcher<T, X> {
    shared: Arc<Shared<T>>,
    exporter: Arc<RwLock<X>>,
    worker_name: String,
    /// Rendezvous with idle export threads; `None` until the first batch.
    work: Option<SyncSender<Vec<T>>>,
    work_rx: Option<Arc<Mutex<mpsc::Receiver<Vec<T>>>>>,
    workers: Vec<JoinHandle<()>>,
}

impl<T: Send + 'static, X: BatchExporter<Item = T>> Batcher<T, X> {
    fn new(shared: Arc<Shared<T>>, exporter: Arc<RwLock<X>>, worker_name: String) -> Self {
        Self {
            shared,
            exporter,
            worker_name,
            work: None,
            work_rx: None,
            workers: Vec::new(),
        }
    }

    fn run(mut self) {
        let config = self.shared.config;
        let mut next_export = Instant::now() + config.scheduled_delay;
        loop {
            let mut st = self.shared.lock();
            // Wait for a full batch, the timer, a flush or shutdown.
            loop {
                let flushing = st.flush_asked > st.flush_done || st.shutting_down;
                let now = Instant::now();
                if flushing || st.queue.len() >= config.max_export_batch_size || now >= next_export {
                    break;
                }
                st.batcher_waiting = true;
                st = self
                    .shared
                    .wake_batcher
                    .wait_timeout(st, next_export - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                st.batcher_waiting = false;
            }
            if st.abandon {
                let left = st.queue.len() as u64;
                st.queue.clear();
                st.dropped_shutdown += left;
                break;
            }
            let flush_ticket = st.flush_asked;
            let draining = st.flush_asked > st.flush_done || st.shutting_down;
            let n = st.queue.len().min(config.max_export_batch_size);
            let batch: Vec<T> = st.queue.drain(..n).collect();
            let more = !st.queue.is_empty();
            if !batch.is_empty() {
                st.in_flight += 1;
            }
            drop(st);
            if !batch.is_empty() {
                self.dispatch(batch);
            }
            next_export = Instant::now() + config.scheduled_delay;
            if draining && !more {
                // Everything queued before the flush is out; wait until it is exported.
                let mut st = self.shared.lock();
                while st.in_flight > 0 && !st.abandon {
                    st = self
                        .shared
                        .progress
                        .wait_timeout(st, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                st.flush_done = st.flush_done.max(flush_ticket);
                let stop = st.shutting_down;
                drop(st);
                self.shared.progress.notify_all();
                if stop {
                    break;
                }
            }
        }
        // Stop the export threads (they finish the batch they hold), then the exporter.
        self.work = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Ok(exporter) = self.exporter.read() {
            let _ = exporter.shutdown(Duration::from_secs(1));
        }
        self.shared.progress.notify_all();
    }

    /// Hands a batch to an idle export thread, starting one if all are busy and the limit allows,
    /// otherwise waiting for one (the queue absorbs the application's spans meanwhile).
    fn dispatch(&mut self, batch: Vec<T>) {
        if self.work.is_none() {
            let (tx, rx) = mpsc::sync_channel::<Vec<T>>(0);
            self.work = Some(tx);
            self.work_rx = Some(Arc::new(Mutex::new(rx)));
        }
        let batch = match self.work.as_ref().map(|w| w.try_send(batch)) {
            Some(Ok(())) => return,
            Some(Err(TrySendError::Full(b) | TrySendError::Disconnected(b))) => b,
            None => return,
        };
        if self.workers.len() < self.shared.config.max_concurrent_exports {
            if let Some(rx) = self.work_rx.clone() {
                let shared = self.shared.clone();
                let exporter = self.exporter.clone();
                let spawned = std::thread::Builder::new()
                    .name(self.worker_name.clone())
                    .spawn(move || export_loop(shared, exporter, rx));
                match spawned {
                    Ok(handle) => self.workers.push(handle),
                    Err(_) if self.workers.is_empty() => {
                        // No thread at all: export here rather than lose the batch.
                        self.export_here(batch);
                        return;
                    }
                    Err(_) => {}
                }
            }
        }
        if let Some(Err(mpsc::SendError(batch))) = self.work.as_ref().map(|w| w.send(batch)) {
            self.export_here(batch);
        }
    }

    fn export_here(&self, batch: Vec<T>) {
        if let Ok(exporter) = self.exporter.read() {
            exporter.export(batch);
        }
        finish_one(&self.shared);
    }
}

fn export_loop<T, X: BatchExporter<Item = T>>(
    shared: Arc<Shared<T>>,
    exporter: Arc<RwLock<X>>,
    work: Arc<Mutex<mpsc::Receiver<Vec<T>>>>,
) {
    loop {
        let next = work.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(batch) = next else { return };
        if let Ok(exporter) = exporter.read() {
            exporter.export(batch);
        }
        finish_one(&shared);
    }
}

fn finish_one<T>(shared: &Shared<T>) {
    let mut st = shared.lock();
    st.in_flight = st.in_flight.saturating_sub(1);
    let idle = st.in_flight == 0;
    drop(st);
    if idle {
        shared.progress.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    /// Counts what it exports; each export takes `delay` and records the peak concurrency.
    struct SlowExporter {
        delay: Duration,
        exported: AtomicU64,
        running: AtomicUsize,
        peak: AtomicUsize,
    }

    impl BatchExporter for SlowExporter {
        type Item = u64;
        fn export(&self, batch: Vec<u64>) {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            self.exported.fetch_add(batch.len() as u64, Ordering::SeqCst);
            self.running.fetch_sub(1, Ordering::SeqCst);
        }
        fn shutdown(&self, _timeout: Duration) -> OTelSdkResult {
            Ok(())
        }
    }

    fn pipeline(config: BatchConfig, delay: Duration) -> (BatchPipeline<u64>, Arc<RwLock<SlowExporter>>) {
        let exporter = Arc::new(RwLock::new(SlowExporter {
            delay,
            exported: AtomicU64::new(0),
            running: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }));
        (
            BatchPipeline::start("test", config, exporter.clone()).unwrap(),
            exporter,
        )
    }

    fn exported(e: &Arc<RwLock<SlowExporter>>) -> u64 {
        e.read().unwrap().exported.load(Ordering::SeqCst)
    }

    #[test]
    fn every_item_is_exported_or_counted_as_dropped() {
        let config = BatchConfig::spans()
            .with_max_queue_size(100)
            .with_max_export_batch_size(10)
            .with_max_concurrent_exports(2);
        let (p, e) = pipeline(config, Duration::from_millis(20));
        for i in 0..1000 {
            p.push(i);
        }
        p.force_flush(Duration::from_secs(10)).unwrap();
        let c = p.probe().counts();
        assert_eq!(c.accepted + c.dropped_queue_full, 1000);
        assert!(
            c.dropped_queue_full > 0,
            "a 100-item queue cannot hold 1000 pushed at once"
        );
        assert_eq!(exported(&e), c.accepted);
        assert_eq!((c.queued, c.capacity), (0, 100));
        p.shutdown(Duration::from_secs(5)).unwrap();
        p.push(1);
        assert_eq!(p.probe().counts().dropped_shutdown, 1);
        assert!(matches!(
            p.shutdown(Duration::from_secs(1)),
            Err(OTelSdkError::AlreadyShutdown)
        ));
    }

    #[test]
    fn exports_run_concurrently_up_to_the_limit() {
        let config = BatchConfig::spans()
            .with_max_queue_size(1000)
            .with_max_export_batch_size(10)
            .with_max_concurrent_exports(4);
        // Long exports, so that all four are surely running at once even on a loaded machine.
        let (p, e) = pipeline(config, Duration::from_millis(300));
        for i in 0..200 {
            p.push(i);
        }
        p.force_flush(Duration::from_secs(20)).unwrap();
        assert_eq!(exported(&e), 200);
        assert_eq!(e.read().unwrap().peak.load(Ordering::SeqCst), 4);
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_partial_batch_leaves_after_the_scheduled_delay() {
        let config = BatchConfig::spans().with_scheduled_delay(Duration::from_millis(50));
        let (p, e) = pipeline(config, Duration::ZERO);
        p.push(1);
        let start = Instant::now();
        while exported(&e) == 0 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(exported(&e), 1);
        p.shutdown(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn shutdown_past_its_timeout_counts_what_is_left() {
        let config = BatchConfig::spans()
            .with_max_queue_size(100)
            .with_max_export_batch_size(10)
            .with_max_concurrent_exports(1);
        let (p, e) = pipeline(config, Duration::from_millis(200));
        for i in 0..100 {
            p.push(i);
        }
        assert!(matches!(
            p.shutdown(Duration::from_millis(300)),
            Err(OTelSdkError::Timeout(_))
        ));
        // Wait for the in-flight export to end and the batcher to discard the rest.
        let start = Instant::now();
        loop {
            let c = p.probe().counts();
            if c.queued == 0 && exported(&e) + c.dropped_shutdown == 100 {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "{c:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(p.probe().counts().dropped_shutdown > 0);
    }
}
