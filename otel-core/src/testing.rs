//! Test support: in-memory span and metric exporters wired into providers, and exact assertion
//! helpers. Every adapter's tests use these.
//!
//! ```
//! use otelrs_core::testing::{SpanDataExt, TestTelemetry};
//! use opentelemetry::trace::{SpanKind, Status, Tracer as _, Span as _};
//! use opentelemetry::KeyValue;
//!
//! let telemetry = TestTelemetry::new();
//! let inst = telemetry.instrumentation();
//! let tracer = inst.tracer(otelrs_core::Instrumentation::scope("doc", "0"));
//! let mut span = tracer
//!     .span_builder("GET /users/{id}")
//!     .with_kind(SpanKind::Server)
//!     .with_attributes([KeyValue::new("http.response.status_code", 200i64)])
//!     .start(&tracer);
//! span.end();
//!
//! let span = telemetry.span("GET /users/{id}");
//! span.assert_kind(SpanKind::Server)
//!     .assert_status(&Status::Unset)
//!     .assert_attr("http.response.status_code", 200i64)
//!     .assert_root();
//!
//! let meter = inst.meter(otelrs_core::Instrumentation::scope("doc", "0"));
//! meter.u64_counter("things").build().add(3, &[KeyValue::new("k", "v")]);
//! let metrics = telemetry.metrics();
//! assert_eq!(metrics.sum_u64("things", &[KeyValue::new("k", "v")]), Some(3));
//! ```

use std::fmt::Write as _;
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, ShouldSample, SpanData};

use crate::propagation::W3cPropagator;
use crate::Instrumentation;

/// Tracer and meter providers exporting into memory.
///
/// Spans are exported synchronously when they end. Metrics are cumulative and collected on
/// demand by [`TestTelemetry::metrics`]. Each test should make its own `TestTelemetry` and pass
/// [`TestTelemetry::instrumentation`] to the code under test, so tests in one binary do not share
/// globals.
#[derive(Clone, Debug)]
pub struct TestTelemetry {
    /// The span exporter.
    pub span_exporter: InMemorySpanExporter,
    /// The metric exporter.
    pub metric_exporter: InMemoryMetricExporter,
    /// The tracer provider (always-on sampling unless built with [`TestTelemetry::with_sampler`]).
    pub tracer_provider: SdkTracerProvider,
    /// The meter provider.
    pub meter_provider: SdkMeterProvider,
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// Providers that sample every span.
    pub fn new() -> Self {
        Self::with_sampler(Sampler::AlwaysOn)
    }

    /// Providers whose tracer uses `sampler`.
    pub fn with_sampler(sampler: impl ShouldSample + 'static) -> Self {
        let span_exporter = InMemorySpanExporter::default();
        let metric_exporter = InMemoryMetricExporter::default();
        let tracer_provider = SdkTracerProvider::builder()
            .with_sampler(sampler)
            .with_simple_exporter(span_exporter.clone())
            .build();
        let reader = PeriodicReader::builder(metric_exporter.clone())
            // Collection happens on demand through `force_flush`; keep the timer out of the way.
            .with_interval(Duration::from_secs(3600))
            .build();
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        Self {
            span_exporter,
            metric_exporter,
            tracer_provider,
            meter_provider,
        }
    }

    /// An [`Instrumentation`] using these providers and the W3C propagator.
    pub fn instrumentation(&self) -> Instrumentation {
        Instrumentation::new()
            .with_tracer_provider(self.tracer_provider.clone())
            .with_meter_provider(self.meter_provider.clone())
            .with_propagator(W3cPropagator::default())
    }

    /// Every finished span so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        // Spans are exported synchronously; a flush failure would only mean there is nothing
        // pending, so it is ignored.
        let _ = self.tracer_provider.force_flush();
        self.span_exporter.get_finished_spans().unwrap_or_default()
    }

    /// Finished spans named `name`.
    pub fn spans_named(&self, name: &str) -> Vec<SpanData> {
        self.spans().into_iter().filter(|s| s.name == name).collect()
    }

    /// The one finished span named `name`.
    ///
    /// # Panics
    ///
    /// When there is no such span or more than one, listing the spans that exist.
    #[track_caller]
    pub fn span(&self, name: &str) -> SpanData {
        let all = self.spans();
        let mut found: Vec<SpanData> = all.iter().filter(|s| s.name == name).cloned().collect();
        match found.len() {
            1 => found.remove(0),
            n => panic!(
                "expected exactly one span named {name:?}, found {n}; finished spans: {:?}",
                all.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
            ),
        }
    }

    /// Waits (up to `timeout`) until at least `count` spans have finished, for spans ended on
    /// other tasks or threads, and returns them.
    ///
    /// # Panics
    ///
    /// When fewer than `count` spans finished in time.
    #[track_caller]
    pub fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<SpanData> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "expected at least {count} finished spans within {timeout:?}, found {}: {:?}",
                    spans.len(),
                    spans.iter().map(|s| s.name.as_ref()).collect::<Vec<_>>()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Collects the metrics recorded so far.
    pub fn metrics(&self) -> MetricsSnapshot {
        let _ = self.meter_provider.force_flush();
        let exported = self.metric_exporter.get_finished_metrics().unwrap_or_default();
        // Cumulative temporality: the latest export holds every stream.
        MetricsSnapshot {
            resource_metrics: exported.into_iter().last(),
        }
    }

    /// Forgets finished spans and exported metrics (cumulative sums keep counting).
    pub fn reset(&self) {
        self.span_exporter.reset();
        self.metric_exporter.reset();
    }
}

fn sorted(mut attrs: Vec<KeyValue>) -> Vec<KeyValue> {
    attrs.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    attrs
}

fn describe_attrs(attrs: &[KeyValue]) -> String {
    let mut s = String::new();
    for kv in attrs {
        let _ = write!(s, "\n    {} = {:?}", kv.key, kv.value);
    }
    s
}

/// Exact assertions on a finished span. Each returns `&Self` so they chain.
pub trait SpanDataExt {
    /// The value of attribute `key`, if set.
    fn attr(&self, key: &str) -> Option<&Value>;
    /// Asserts the span kind.
    fn assert_kind(&self, kind: SpanKind) -> &Self;
    /// Asserts the status (`Status::Unset`, `Status::error("")`, ...).
    fn assert_status(&self, status: &Status) -> &Self;
    /// Asserts that `key` is set exactly once, to `value` **with its type** (`200i64` is not
    /// `"200"`).
    fn assert_attr(&self, key: &str, value: impl Into<Value>) -> &Self;
    /// Asserts that `key` is not set.
    fn assert_no_attr(&self, key: &str) -> &Self;
    /// Asserts that the attributes are exactly `expected` (any order, each key once).
    fn assert_attrs(&self, expected: &[KeyValue]) -> &Self;
    /// Asserts that the span is a root (no parent).
    fn assert_root(&self) -> &Self;
    /// Asserts that `parent` is this span's parent, in the same trace.
    fn assert_child_of(&self, parent: &SpanData) -> &Self;
    /// Asserts the parent span id and trace id (e.g. of a remote parent from a `traceparent`).
    fn assert_parent_ids(&self, trace_id: opentelemetry::trace::TraceId, parent: SpanId) -> &Self;
}

impl SpanDataExt for SpanData {
    fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    #[track_caller]
    fn assert_kind(&self, kind: SpanKind) -> &Self {
        assert_eq!(self.span_kind, kind, "kind of span {:?}", self.name);
        self
    }

    #[track_caller]
    fn assert_status(&self, status: &Status) -> &Self {
        assert_eq!(&self.status, status, "status of span {:?}", self.name);
        self
    }

    #[track_caller]
    fn assert_attr(&self, key: &str, value: impl Into<Value>) -> &Self {
        let value = value.into();
        let found: Vec<&Value> = self
            .attributes
            .iter()
            .filter(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
            .collect();
        assert!(
            found.len() == 1 && *found[0] == value,
            "span {:?}: expected {key} = {value:?} exactly once, found {found:?}; attributes:{}",
            self.name,
            describe_attrs(&self.attributes)
        );
        self
    }

    #[track_caller]
    fn assert_no_attr(&self, key: &str) -> &Self {
        assert!(
            self.attr(key).is_none(),
            "span {:?}: expected no {key}; attributes:{}",
            self.name,
            describe_attrs(&self.attributes)
        );
        self
    }

    #[track_caller]
    fn assert_attrs(&self, expected: &[KeyValue]) -> &Self {
        let actual = sorted(self.attributes.clone());
        let expected = sorted(expected.to_vec());
        assert!(
            actual == expected,
            "span {:?}: attributes differ\n  actual:{}\n  expected:{}",
            self.name,
            describe_attrs(&actual),
            describe_attrs(&expected)
        );
        self
    }

    #[track_caller]
    fn assert_root(&self) -> &Self {
        assert_eq!(
            self.parent_span_id,
            SpanId::INVALID,
            "span {:?} should be a root span",
            self.name
        );
        self
    }

    #[track_caller]
    fn assert_child_of(&self, parent: &SpanData) -> &Self {
        assert_eq!(
            self.span_context.trace_id(),
            parent.span_context.trace_id(),
            "span {:?} should be in the trace of {:?}",
            self.name,
            parent.name
        );
        assert_eq!(
            self.parent_span_id,
            parent.span_context.span_id(),
            "span {:?} should be a child of {:?}",
            self.name,
            parent.name
        );
        self
    }

    #[track_caller]
    fn assert_parent_ids(&self, trace_id: opentelemetry::trace::TraceId, parent: SpanId) -> &Self {
        assert_eq!(
            self.span_context.trace_id(),
            trace_id,
            "trace id of span {:?}",
            self.name
        );
        assert_eq!(self.parent_span_id, parent, "parent of span {:?}", self.name);
        self
    }
}

/// One histogram data point, attributes sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct HistogramPoint {
    /// The point's attributes, sorted by key.
    pub attributes: Vec<KeyValue>,
    /// Number of recorded values.
    pub count: u64,
    /// Sum of recorded values (as `f64`).
    pub sum: f64,
    /// Bucket boundaries.
    pub bounds: Vec<f64>,
    /// Counts per bucket (`bounds.len() + 1` entries).
    pub bucket_counts: Vec<u64>,
}

/// One sum (counter / up-down counter) or gauge data point, attributes sorted by key.
#[derive(Clone, Debug, PartialEq)]
pub struct Point<T> {
    /// The point's attributes, sorted by key.
    pub attributes: Vec<KeyValue>,
    /// The value.
    pub value: T,
}

/// The metrics collected at one moment.
#[derive(Debug)]
pub struct MetricsSnapshot {
    resource_metrics: Option<ResourceMetrics>,
}

impl MetricsSnapshot {
    /// Every metric, with the name of the scope that produced it.
    pub fn all(&self) -> Vec<(&str, &Metric)> {
        let Some(rm) = &self.resource_metrics else {
            return Vec::new();
        };
        rm.scope_metrics()
            .flat_map(|sm| sm.metrics().map(move |m| (sm.scope().name(), m)))
            .collect()
    }

    /// The metric named `name`, if recorded.
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        self.all().into_iter().find(|(_, m)| m.name() == name).map(|(_, m)| m)
    }

    /// Names of every metric recorded.
    pub fn names(&self) -> Vec<String> {
        self.all().into_iter().map(|(_, m)| m.name().to_owned()).collect()
    }

    /// Asserts that `name` exists with this unit and description.
    #[track_caller]
    pub fn assert_metric(&self, name: &str, unit: &str, description: &str) {
        let m = self
            .metric(name)
            .unwrap_or_else(|| panic!("no metric {name:?}; recorded: {:?}", self.names()));
        assert_eq!(m.unit(), unit, "unit of {name}");
        assert_eq!(m.description(), description, "description of {name}");
    }

    /// All points of an `f64` or `u64` histogram.
    pub fn histogram(&self, name: &str) -> Vec<HistogramPoint> {
        let Some(m) = self.metric(name) else {
            return Vec::new();
        };
        match m.data() {
            AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                .data_points()
                .map(|dp| HistogramPoint {
                    attributes: sorted(dp.attributes().cloned().collect()),
                    count: dp.count(),
                    sum: dp.sum(),
                    bounds: dp.bounds().collect(),
                    bucket_counts: dp.bucket_counts().collect(),
                })
                .collect(),
            AggregatedMetrics::U64(MetricData::Histogram(h)) => h
                .data_points()
                .map(|dp| HistogramPoint {
                    attributes: sorted(dp.attributes().cloned().collect()),
                    count: dp.count(),
                    sum: dp.sum() as f64,
                    bounds: dp.bounds().collect(),
                    bucket_counts: dp.bucket_counts().collect(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The histogram point whose attributes are exactly `attributes` (any order).
    pub fn histogram_point(&self, name: &str, attributes: &[KeyValue]) -> Option<HistogramPoint> {
        let want = sorted(attributes.to_vec());
        self.histogram(name).into_iter().find(|p| p.attributes == want)
    }

    /// The one histogram point of `name`, asserting its attributes are exactly `attributes`.
    ///
    /// # Panics
    ///
    /// When the metric has no point with these attributes, listing the points it has.
    #[track_caller]
    pub fn assert_histogram_point(&self, name: &str, attributes: &[KeyValue]) -> HistogramPoint {
        self.histogram_point(name, attributes).unwrap_or_else(|| {
            panic!(
                "no point of {name:?} with attributes{}\npoints: {:#?}",
                describe_attrs(&sorted(attributes.to_vec())),
                self.histogram(name)
                    .into_iter()
                    .map(|p| (p.attributes, p.count))
                    .collect::<Vec<_>>()
            )
        })
    }

    fn sum_points<T: Copy>(
        &self,
        name: &str,
        pick: impl Fn(&AggregatedMetrics) -> Option<Vec<Point<T>>>,
    ) -> Vec<Point<T>> {
        self.metric(name).and_then(|m| pick(m.data())).unwrap_or_default()
    }

    /// All points of an `i64` sum (counter or up/down counter).
    pub fn sums_i64(&self, name: &str) -> Vec<Point<i64>> {
        self.sum_points(name, |d| match d {
            AggregatedMetrics::I64(MetricData::Sum(s)) => Some(
                s.data_points()
                    .map(|dp| Point {
                        attributes: sorted(dp.attributes().cloned().collect()),
                        value: dp.value(),
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// All points of a `u64` sum.
    pub fn sums_u64(&self, name: &str) -> Vec<Point<u64>> {
        self.sum_points(name, |d| match d {
            AggregatedMetrics::U64(MetricData::Sum(s)) => Some(
                s.data_points()
                    .map(|dp| Point {
                        attributes: sorted(dp.attributes().cloned().collect()),
                        value: dp.value(),
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// All points of an `f64` sum.
    pub fn sums_f64(&self, name: &str) -> Vec<Point<f64>> {
        self.sum_points(name, |d| match d {
            AggregatedMetrics::F64(MetricData::Sum(s)) => Some(
                s.data_points()
                    .map(|dp| Point {
                        attributes: sorted(dp.attributes().cloned().collect()),
                        value: dp.value(),
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// The value of the `i64` sum point with exactly `attributes`.
    pub fn sum_i64(&self, name: &str, attributes: &[KeyValue]) -> Option<i64> {
        let want = sorted(attributes.to_vec());
        self.sums_i64(name)
            .into_iter()
            .find(|p| p.attributes == want)
            .map(|p| p.value)
    }

    /// The value of the `u64` sum point with exactly `attributes`.
    pub fn sum_u64(&self, name: &str, attributes: &[KeyValue]) -> Option<u64> {
        let want = sorted(attributes.to_vec());
        self.sums_u64(name)
            .into_iter()
            .find(|p| p.attributes == want)
            .map(|p| p.value)
    }

    /// The value of the `f64` sum point with exactly `attributes`.
    pub fn sum_f64(&self, name: &str, attributes: &[KeyValue]) -> Option<f64> {
        let want = sorted(attributes.to_vec());
        self.sums_f64(name)
            .into_iter()
            .find(|p| p.attributes == want)
            .map(|p| p.value)
    }

    /// Whether the sum `name` is monotonic (a counter) rather than an up/down counter.
    pub fn is_monotonic(&self, name: &str) -> Option<bool> {
        match self.metric(name)?.data() {
            AggregatedMetrics::I64(MetricData::Sum(s)) => Some(s.is_monotonic()),
            AggregatedMetrics::U64(MetricData::Sum(s)) => Some(s.is_monotonic()),
            AggregatedMetrics::F64(MetricData::Sum(s)) => Some(s.is_monotonic()),
            _ => None,
        }
    }

    /// All points of an `i64` gauge.
    pub fn gauges_i64(&self, name: &str) -> Vec<Point<i64>> {
        self.sum_points(name, |d| match d {
            AggregatedMetrics::I64(MetricData::Gauge(g)) => Some(
                g.data_points()
                    .map(|dp| Point {
                        attributes: sorted(dp.attributes().cloned().collect()),
                        value: dp.value(),
                    })
                    .collect(),
            ),
            _ => None,
        })
    }
}

/// Shorthand for a `KeyValue` in expected-attribute lists.
pub fn kv(key: &'static str, value: impl Into<Value>) -> KeyValue {
    KeyValue::new(Key::from_static_str(key), value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
    use opentelemetry::Context;

    #[test]
    fn spans_parents_and_typed_attributes() {
        let t = TestTelemetry::new();
        let inst = t.instrumentation();
        let tracer = inst.tracer(Instrumentation::scope("t", "0"));
        let parent = tracer.start("parent");
        let cx = Context::new().with_span(parent);
        let mut child = tracer
            .span_builder("child")
            .with_attributes([kv("n", 5i64), kv("s", "x")])
            .start_with_context(&tracer, &cx);
        child.end();
        cx.span().end();
        let parent = t.span("parent");
        let child = t.span("child");
        parent.assert_root();
        child
            .assert_child_of(&parent)
            .assert_attr("n", 5i64)
            .assert_attrs(&[kv("s", "x"), kv("n", 5i64)])
            .assert_no_attr("missing");
        let wrong_type = std::panic::catch_unwind(|| {
            child.assert_attr("n", "5");
        });
        assert!(wrong_type.is_err(), "a string must not match an integer");
        assert_eq!(t.spans_named("child").len(), 1);
        t.reset();
        assert!(t.spans().is_empty());
    }

    #[test]
    fn instrument_builders_record_with_names_units_and_buckets() {
        let t = TestTelemetry::new();
        let meter = t.instrumentation().meter(Instrumentation::scope("t", "0"));
        let h = instruments::duration_histogram(&meter, "op.duration", "Op duration.", &instruments::DURATION_BUCKETS);
        let active = instruments::up_down_counter(&meter, "op.active", "{request}", "Active ops.");
        let sizes = instruments::size_histogram(&meter, "op.size", "Op size.");
        let c = instruments::counter(&meter, "op.count", "{op}", "Ops.");
        h.record(0.02, &[kv("a", "1")]);
        h.record(3.0, &[kv("a", "1")]);
        active.add(1, &[kv("a", "1")]);
        active.add(-1, &[kv("a", "1")]);
        sizes.record(1000, &[]);
        c.add(2, &[]);
        let m = t.metrics();
        m.assert_metric("op.duration", "s", "Op duration.");
        m.assert_metric("op.active", "{request}", "Active ops.");
        m.assert_metric("op.size", "By", "Op size.");
        let p = m.assert_histogram_point("op.duration", &[kv("a", "1")]);
        assert_eq!(p.count, 2);
        assert_eq!(p.bounds, instruments::DURATION_BUCKETS.to_vec());
        // 0.02 falls in (0.01, 0.025], 3.0 in (2.5, 5].
        assert_eq!(p.bucket_counts[2], 1);
        assert_eq!(p.bucket_counts[11], 1);
        assert!((p.sum - 3.02).abs() < 1e-9);
        assert_eq!(m.sum_i64("op.active", &[kv("a", "1")]), Some(0));
        assert_eq!(m.is_monotonic("op.active"), Some(false));
        assert_eq!(m.sum_u64("op.count", &[]), Some(2));
        assert_eq!(m.is_monotonic("op.count"), Some(true));
        let size = m.assert_histogram_point("op.size", &[]);
        assert_eq!(size.bounds, instruments::BODY_SIZE_BUCKETS.to_vec());
        assert_eq!(size.sum, 1000.0);
    }
}
