//! The guard that owns the providers: accessors, statistics, flush and bounded shutdown.

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::health::{ExportHealth, ExportStats};
use super::propagator::{Propagation, PropagatorSet};
use super::{PrometheusHandle, SdkError, Signal};
use crate::Instrumentation;

pub(crate) struct Inner {
    pub(crate) health: ExportHealth,
    pub(crate) disabled: bool,
    pub(crate) tracer_provider: Option<SdkTracerProvider>,
    pub(crate) meter_provider: Option<SdkMeterProvider>,
    pub(crate) logger_provider: Option<SdkLoggerProvider>,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) propagator: Propagation,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) shut_down: Mutex<bool>,
}

/// Owns the providers built by [`SdkBuilder`](super::SdkBuilder). [`TelemetryGuard::shutdown`] (or dropping the
/// guard) flushes everything and shuts the providers down, waiting at most the shutdown timeout.
pub struct TelemetryGuard {
    inner: Arc<Inner>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("disabled", &self.inner.disabled)
            .field("traces", &self.inner.tracer_provider.is_some())
            .field("metrics", &self.inner.meter_provider.is_some())
            .field("logs", &self.inner.logger_provider.is_some())
            .field("prometheus", &self.inner.prometheus.is_some())
            .field("propagator", &self.inner.propagator)
            .finish()
    }
}

impl TelemetryGuard {
    pub(crate) fn new(inner: Inner) -> Self {
        Self { inner: Arc::new(inner) }
    }

    pub(crate) fn propagation(&self) -> &Propagation {
        &self.inner.propagator
    }

    /// Whether `OTEL_SDK_DISABLED` turned everything off.
    pub fn is_disabled(&self) -> bool {
        self.inner.disabled
    }

    /// The tracer provider, when traces are exported.
    pub fn tracer_provider(&self) -> Option<&SdkTracerProvider> {
        self.inner.tracer_provider.as_ref()
    }

    /// The meter provider, when metrics are exported.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.inner.meter_provider.as_ref()
    }

    /// The logger provider, when logs are exported.
    pub fn logger_provider(&self) -> Option<&SdkLoggerProvider> {
        self.inner.logger_provider.as_ref()
    }

    /// What the pipelines delivered and lost so far, per signal: exported, failed (collector
    /// down, rejected, timed out), dropped because a queue was full or at shutdown, and still
    /// queued. Its `Display` form shows every figure. The same numbers are exported as the
    /// semconv SDK self-observability metrics (see the [module docs](super)).
    pub fn export_stats(&self) -> ExportStats {
        self.inner.health.snapshot()
    }

    /// The most recent export error of any signal (`<exporter>/<n>: <error>`).
    pub fn last_export_error(&self) -> Option<String> {
        self.inner.health.last_error()
    }

    /// The most recent export error of one signal.
    pub fn last_export_error_of(&self, signal: Signal) -> Option<String> {
        self.inner.health.last_error_of(signal)
    }

    /// The Prometheus scrape handler, when `OTEL_METRICS_EXPORTER` includes `prometheus`.
    pub fn prometheus(&self) -> Option<PrometheusHandle> {
        self.inner.prometheus.clone()
    }

    /// An [`Instrumentation`] bound to these providers and propagator (signals that are off use
    /// no-op providers rather than the globals).
    pub fn instrumentation(&self) -> Instrumentation {
        let mut inst = Instrumentation::new();
        inst = match &self.inner.tracer_provider {
            Some(tp) => inst.with_tracer_provider(tp.clone()),
            None => inst.with_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new()),
        };
        inst = match &self.inner.meter_provider {
            Some(mp) => inst.with_meter_provider(mp.clone()),
            None => inst.with_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new()),
        };
        match &self.inner.propagator {
            Propagation::W3c(p) => inst.with_propagator(*p),
            other => inst.with_propagator(PropagatorSet(other.clone())),
        }
    }

    /// A `tracing-subscriber` layer that turns `tracing` events into OpenTelemetry log records
    /// (with the active trace and span ids). `None` when logs are not exported.
    pub fn tracing_layer(&self) -> Option<OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>> {
        self.inner.logger_provider.as_ref().map(OpenTelemetryTracingBridge::new)
    }

    /// Exports everything buffered so far (blocking, bounded by the exporters' timeouts).
    pub fn force_flush(&self) -> Result<(), SdkError> {
        let mut errors = Vec::new();
        if let Some(tp) = &self.inner.tracer_provider {
            if let Err(e) = tp.force_flush() {
                errors.push(format!("traces: {e}"));
            }
        }
        if let Some(mp) = &self.inner.meter_provider {
            if let Err(e) = mp.force_flush() {
                errors.push(format!("metrics: {e}"));
            }
        }
        if let Some(lp) = &self.inner.logger_provider {
            if let Err(e) = lp.force_flush() {
                errors.push(format!("logs: {e}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SdkError::Shutdown(errors.join("; ")))
        }
    }

    /// Flushes and shuts down every provider, waiting at most the shutdown timeout. Calling it
    /// again (or dropping the guard afterwards) does nothing.
    pub fn shutdown(&self) -> Result<(), SdkError> {
        {
            let mut done = self.inner.shut_down.lock().unwrap_or_else(|p| p.into_inner());
            if *done {
                return Ok(());
            }
            *done = true;
        }
        if self.inner.disabled {
            return Ok(());
        }
        // From here on exporters make one attempt per batch: a dead collector cannot hold us.
        self.inner
            .health
            .stopping()
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let inner = self.inner.clone();
        let timeout = self.inner.shutdown_timeout;
        let (tx, rx) = mpsc::channel();
        // Shutting down runs on its own thread so a hung exporter cannot hold the caller past
        // the timeout (some SDK shutdowns ignore their timeout argument).
        let spawned = std::thread::Builder::new().name("otel-shutdown".into()).spawn(move || {
            let mut errors = Vec::new();
            if let Some(tp) = &inner.tracer_provider {
                if let Err(e) = tp.shutdown_with_timeout(timeout) {
                    errors.push(format!("traces: {e}"));
                }
            }
            if let Some(mp) = &inner.meter_provider {
                if let Err(e) = mp.shutdown_with_timeout(timeout) {
                    errors.push(format!("metrics: {e}"));
                }
            }
            if let Some(lp) = &inner.logger_provider {
                if let Err(e) = lp.shutdown_with_timeout(timeout) {
                    errors.push(format!("logs: {e}"));
                }
            }
            let _ = tx.send(errors);
        });
        if let Err(e) = spawned {
            return Err(SdkError::Shutdown(format!("cannot start the shutdown thread: {e}")));
        }
        let result = rx.recv_timeout(timeout);
        self.inner.health.report_losses(true);
        match result {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(SdkError::Shutdown(errors.join("; "))),
            Err(_) => Err(SdkError::Shutdown(format!(
                "not finished within {timeout:?}; remaining telemetry is dropped"
            ))),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            // Nothing else can report it at this point.
            eprintln!("otelrs-core: {e}");
        }
    }
}
