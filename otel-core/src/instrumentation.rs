//! The one configuration input every adapter takes: optional providers and propagator, falling
//! back to the OpenTelemetry globals.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::global::{self, BoxedSpan, BoxedTracer, ObjectSafeTracerProvider};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanBuilder, SpanContext, Status, TracerProvider};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::propagation::{HeaderExtractor, HeaderInjector, W3cPropagator};

/// Providers and propagator used by an instrumentation adapter.
///
/// Every layer, middleware and wrapper in the family takes one `Instrumentation`. Whatever is not
/// set falls back to the OpenTelemetry globals (`opentelemetry::global`), read when the adapter
/// builds its tracer and instruments (once, at construction) and, for the propagator, on every
/// extract/inject.
///
/// Cloning is cheap (reference counts only).
///
/// ```
/// use otelrs_core::Instrumentation;
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
///
/// let instrumentation = Instrumentation::new()
///     .with_tracer_provider(SdkTracerProvider::builder().build())
///     .with_meter_provider(SdkMeterProvider::builder().build())
///     .with_propagator(otelrs_core::propagation::W3cPropagator::default());
/// let scope = Instrumentation::scope("my-adapter", "1.0.0");
/// let _tracer = instrumentation.tracer(scope.clone());
/// let _meter = instrumentation.meter(scope);
/// ```
///
/// # One `opentelemetry` version
///
/// The globals live in the `opentelemetry` crate. If your dependency tree contains a second,
/// semver-incompatible `opentelemetry` version (say 0.32 next to this family's 0.33), each version
/// has its own separate globals: a provider installed through one is invisible to code built on
/// the other, and spans silently go nowhere. Use the crates re-exported from [`crate`]
/// (`otelrs_core::opentelemetry`, `otelrs_core::opentelemetry_sdk`) to stay on the family's version.
#[derive(Clone, Default)]
pub struct Instrumentation {
    tracer_provider: Option<TracerProviderSlot>,
    meter_provider: Option<Arc<dyn MeterProvider + Send + Sync>>,
    propagator: Option<PropagatorSlot>,
    unbound_metrics: bool,
}

#[derive(Clone)]
enum TracerProviderSlot {
    // Kept concrete so spans avoid a box and dynamic dispatch on the hot path.
    Sdk(SdkTracerProvider),
    Dyn(Arc<dyn ObjectSafeTracerProvider + Send + Sync>),
}

#[derive(Clone)]
enum PropagatorSlot {
    // Our own propagator, recognised so HTTP headers can take the allocation-free path.
    W3c(Arc<W3cPropagator>),
    Dyn(Arc<dyn TextMapPropagator + Send + Sync>),
}

impl fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instrumentation")
            .field(
                "tracer_provider",
                &match &self.tracer_provider {
                    None => "global",
                    Some(TracerProviderSlot::Sdk(_)) => "sdk",
                    Some(TracerProviderSlot::Dyn(_)) => "custom",
                },
            )
            .field(
                "meter_provider",
                &if self.meter_provider.is_some() {
                    "custom"
                } else {
                    "global"
                },
            )
            .field(
                "propagator",
                &match &self.propagator {
                    None => "global",
                    Some(PropagatorSlot::W3c(_)) => "w3c",
                    Some(PropagatorSlot::Dyn(_)) => "custom",
                },
            )
            .field("bound_instruments", &!self.unbound_metrics)
            .finish()
    }
}

impl Instrumentation {
    /// Uses the global tracer provider, meter provider and propagator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the instrumentation scope of an adapter: its crate name and version and the schema
    /// URL of the semantic conventions this family follows.
    ///
    /// Adapters use [`Instrumentation::tracer_and_meter`], which builds this scope for both.
    pub fn scope(name: &'static str, version: &'static str) -> InstrumentationScope {
        InstrumentationScope::builder(name)
            .with_version(version)
            .with_schema_url(opentelemetry_semantic_conventions::SCHEMA_URL)
            .build()
    }

    /// Uses this tracer provider instead of the global one.
    ///
    /// An `opentelemetry_sdk` [`SdkTracerProvider`] is used directly; any other provider is used
    /// through a boxed tracer.
    pub fn with_tracer_provider<P>(mut self, provider: P) -> Self
    where
        P: TracerProvider + Send + Sync + 'static,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        let slot = match (&provider as &dyn Any).downcast_ref::<SdkTracerProvider>() {
            Some(sdk) => TracerProviderSlot::Sdk(sdk.clone()),
            None => TracerProviderSlot::Dyn(Arc::new(provider)),
        };
        self.tracer_provider = Some(slot);
        self
    }

    /// Uses this meter provider instead of the global one.
    pub fn with_meter_provider<P>(mut self, provider: P) -> Self
    where
        P: MeterProvider + Send + Sync + 'static,
    {
        self.meter_provider = Some(Arc::new(provider));
        self
    }

    /// Uses this propagator instead of the global one.
    ///
    /// [`W3cPropagator`] (the family's default composite of trace context and baggage) is
    /// recognised and takes an allocation-free path for `http::HeaderMap` carriers.
    pub fn with_propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        let slot = match (&propagator as &dyn Any).downcast_ref::<W3cPropagator>() {
            Some(w3c) => PropagatorSlot::W3c(Arc::new(*w3c)),
            None => PropagatorSlot::Dyn(Arc::new(propagator)),
        };
        self.propagator = Some(slot);
        self
    }

    /// Whether adapters may record metrics through bound instruments (the default).
    ///
    /// Adapters keep a bounded cache of instruments bound to their most frequent attribute sets
    /// ([`crate::hotpath::BoundInstruments`]), which skips the SDK's per-call attribute
    /// hashing. `opentelemetry_sdk`'s meter provider supports binding. A custom `MeterProvider`
    /// whose instruments do not implement `bind` would drop bound measurements: turn binding off
    /// for it with `with_bound_instruments(false)`.
    pub fn with_bound_instruments(mut self, enabled: bool) -> Self {
        self.unbound_metrics = !enabled;
        self
    }

    /// How many attribute sets an adapter's instrument may keep bound: 0 when binding is off.
    pub fn bound_instrument_capacity(&self) -> usize {
        if self.unbound_metrics {
            0
        } else {
            crate::hotpath::DEFAULT_BOUND_CAPACITY
        }
    }

    /// Returns a tracer for `scope` from the configured (or global) provider.
    pub fn tracer(&self, scope: InstrumentationScope) -> Tracer {
        match &self.tracer_provider {
            Some(TracerProviderSlot::Sdk(p)) => Tracer::Sdk(p.tracer_with_scope(scope)),
            Some(TracerProviderSlot::Dyn(p)) => Tracer::Boxed(Arc::new(BoxedTracer::new(p.boxed_tracer(scope)))),
            None => Tracer::Boxed(Arc::new(global::tracer_with_scope(scope))),
        }
    }

    /// The tracer and meter of an adapter: one scope for both, named after the adapter crate.
    /// Adapters call it as
    /// `instrumentation.tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))`.
    pub fn tracer_and_meter(&self, crate_name: &'static str, crate_version: &'static str) -> (Tracer, Meter) {
        let scope = Self::scope(crate_name, crate_version);
        (self.tracer(scope.clone()), self.meter(scope))
    }

    /// Returns a meter for `scope` from the configured (or global) provider.
    pub fn meter(&self, scope: InstrumentationScope) -> Meter {
        match &self.meter_provider {
            Some(p) => p.meter_with_scope(scope),
            None => global::meter_with_scope(scope),
        }
    }

    /// Extracts a context from `extractor`, with `parent` as the base context.
    pub fn extract_with_context(&self, parent: &Context, extractor: &dyn Extractor) -> Context {
        match &self.propagator {
            Some(PropagatorSlot::W3c(p)) => p.extract_with_context(parent, extractor),
            Some(PropagatorSlot::Dyn(p)) => p.extract_with_context(parent, extractor),
            None => global::get_text_map_propagator(|p| p.extract_with_context(parent, extractor)),
        }
    }

    /// Extracts a context from `extractor`, with the current context as the base.
    pub fn extract(&self, extractor: &dyn Extractor) -> Context {
        self.extract_with_context(&Context::current(), extractor)
    }

    /// Extracts a context from HTTP (or gRPC) headers, with `parent` as the base context.
    ///
    /// With [`W3cPropagator`] configured this reads the headers without building an extractor
    /// object and without allocating for a valid `traceparent` alone.
    pub fn extract_http_with_context(&self, parent: &Context, headers: &http::HeaderMap) -> Context {
        match &self.propagator {
            Some(PropagatorSlot::W3c(p)) => p.extract_headers_with_context(parent, headers),
            _ => self.extract_with_context(parent, &HeaderExtractor(headers)),
        }
    }

    /// Injects `cx` into `injector`.
    pub fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        match &self.propagator {
            Some(PropagatorSlot::W3c(p)) => p.inject_context(cx, injector),
            Some(PropagatorSlot::Dyn(p)) => p.inject_context(cx, injector),
            None => global::get_text_map_propagator(|p| p.inject_context(cx, injector)),
        }
    }

    /// Injects `cx` into HTTP (or gRPC) headers.
    pub fn inject_http(&self, cx: &Context, headers: &mut http::HeaderMap) {
        self.inject_context(cx, &mut HeaderInjector(headers));
    }

    /// The header names the configured propagator reads and writes.
    pub fn propagation_fields(&self) -> Vec<String> {
        match &self.propagator {
            Some(PropagatorSlot::W3c(p)) => p.fields().map(str::to_owned).collect(),
            Some(PropagatorSlot::Dyn(p)) => p.fields().map(str::to_owned).collect(),
            None => global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect()),
        }
    }
}

/// A tracer from an [`Instrumentation`]: the SDK tracer used directly, or any other tracer boxed.
///
/// It also keeps the W3C Trace Context Level 2 `random` flag (`0x02`): the SDK gives a span it
/// drops `TraceFlags::default()`, losing the flag of the parent whose trace id it continues, so
/// such spans are returned as [`Span::NonRecording`] with the parent's `random` bit restored.
#[derive(Clone, Debug)]
pub enum Tracer {
    /// An `opentelemetry_sdk` tracer (no boxing per span).
    Sdk(SdkTracer),
    /// A tracer from the global or a custom provider.
    Boxed(Arc<BoxedTracer>),
}

/// A span started by a [`Tracer`].
// The SDK span is kept inline on purpose: boxing it would add the allocation this type avoids.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Span {
    /// A span of the `opentelemetry_sdk` tracer.
    Sdk(opentelemetry_sdk::trace::Span),
    /// A span of a global or custom tracer.
    Boxed(BoxedSpan),
    /// A span the sampler dropped, carrying only the context to propagate (see [`Tracer`]).
    NonRecording(SpanContext),
}

impl opentelemetry::trace::Tracer for Tracer {
    type Span = Span;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> Span {
        let span = match self {
            Tracer::Sdk(t) => Span::Sdk(t.build_with_context(builder, parent_cx)),
            Tracer::Boxed(t) => Span::Boxed(t.build_with_context(builder, parent_cx)),
        };
        keep_random_flag(span, parent_cx)
    }
}

impl Tracer {
    /// Builds a span under `parent` like [`build_with_context`](opentelemetry::trace::Tracer::build_with_context),
    /// except that with `require_parent` set and no valid span in `parent` it builds none: the
    /// result is a non-recording span with an invalid context, so nothing is exported and
    /// nothing propagated. The rule behind the client adapters' `with_require_parent_span`
    /// (no orphan spans from connection-pool health checks or background jobs); the adapter
    /// still records the operation's metrics.
    ///
    /// ```
    /// use opentelemetry::trace::{Span as _, SpanBuilder, TraceContextExt as _, Tracer as _};
    /// use opentelemetry::Context;
    /// use opentelemetry_sdk::trace::SdkTracerProvider;
    /// use otelrs_core::Instrumentation;
    ///
    /// let provider = SdkTracerProvider::builder().build();
    /// let tracer = Instrumentation::new().with_tracer_provider(provider).tracer(Instrumentation::scope("doc", "0"));
    /// let orphan = tracer.build_with_parent_rule(SpanBuilder::from_name("GET"), &Context::new(), true);
    /// assert!(!orphan.span_context().is_valid());
    /// let parent = Context::new().with_span(tracer.start("job"));
    /// let child = tracer.build_with_parent_rule(SpanBuilder::from_name("GET"), &parent, true);
    /// assert_eq!(child.span_context().trace_id(), parent.span().span_context().trace_id());
    /// ```
    pub fn build_with_parent_rule(&self, builder: SpanBuilder, parent: &Context, require_parent: bool) -> Span {
        use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
        if require_parent && !parent.span().span_context().is_valid() {
            return Span::NonRecording(SpanContext::empty_context());
        }
        self.build_with_context(builder, parent)
    }
}

/// The W3C Trace Context Level 2 `random-trace-id` flag.
const RANDOM_FLAG: u8 = 0x02;

fn keep_random_flag(span: Span, parent_cx: &Context) -> Span {
    use opentelemetry::trace::{Span as _, TraceContextExt, TraceFlags};
    if span.is_recording() || !parent_cx.has_active_span() {
        return span;
    }
    let parent = parent_cx.span();
    let parent_sc = parent.span_context();
    let sc = span.span_context();
    let lost = parent_sc.is_valid()
        && parent_sc.trace_id() == sc.trace_id()
        && parent_sc.trace_flags().to_u8() & RANDOM_FLAG != 0
        && sc.trace_flags().to_u8() & RANDOM_FLAG == 0;
    if !lost {
        return span;
    }
    Span::NonRecording(SpanContext::new(
        sc.trace_id(),
        sc.span_id(),
        TraceFlags::new(sc.trace_flags().to_u8() | RANDOM_FLAG),
        false,
        sc.trace_state().clone(),
    ))
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr, $nonrec:expr) => {
        match $self {
            Span::Sdk($s) => $e,
            Span::Boxed($s) => $e,
            Span::NonRecording(_) => $nonrec,
        }
    };
}

impl opentelemetry::trace::Span for Span {
    fn add_event_with_timestamp<T>(&mut self, name: T, timestamp: SystemTime, attributes: Vec<KeyValue>)
    where
        T: Into<Cow<'static, str>>,
    {
        delegate!(self, s => s.add_event_with_timestamp(name, timestamp, attributes), ())
    }

    fn span_context(&self) -> &SpanContext {
        match self {
            Span::Sdk(s) => s.span_context(),
            Span::Boxed(s) => s.span_context(),
            Span::NonRecording(sc) => sc,
        }
    }

    fn is_recording(&self) -> bool {
        delegate!(self, s => s.is_recording(), false)
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        delegate!(self, s => s.set_attribute(attribute), ())
    }

    fn set_status(&mut self, status: Status) {
        delegate!(self, s => s.set_status(status), ())
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        delegate!(self, s => s.update_name(new_name), ())
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        delegate!(self, s => s.add_link(span_context, attributes), ())
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        delegate!(self, s => s.end_with_timestamp(timestamp), ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    #[test]
    fn sdk_provider_is_used_directly_and_scope_is_set() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let inst = Instrumentation::new().with_tracer_provider(provider.clone());
        let tracer = inst.tracer(Instrumentation::scope("otel-test", "9.9.9"));
        assert!(matches!(tracer, Tracer::Sdk(_)));
        let mut span = tracer.start("op");
        assert!(span.is_recording());
        span.end();
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        let scope = &spans[0].instrumentation_scope;
        assert_eq!(scope.name(), "otel-test");
        assert_eq!(scope.version(), Some("9.9.9"));
        assert_eq!(scope.schema_url(), Some(opentelemetry_semantic_conventions::SCHEMA_URL));
    }

    #[test]
    fn bound_instruments_are_on_by_default_and_can_be_turned_off() {
        let inst = Instrumentation::new();
        assert_eq!(inst.bound_instrument_capacity(), crate::hotpath::DEFAULT_BOUND_CAPACITY);
        assert_eq!(inst.with_bound_instruments(false).bound_instrument_capacity(), 0);
    }

    #[test]
    fn custom_provider_is_boxed() {
        let inst = Instrumentation::new().with_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
        let tracer = inst.tracer(Instrumentation::scope("x", "1"));
        assert!(matches!(tracer, Tracer::Boxed(_)));
        let span = tracer.start("op");
        assert!(!span.is_recording());
    }

    #[test]
    fn dropped_spans_keep_the_parents_random_flag() {
        let provider = SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
            )))
            .build();
        let inst = Instrumentation::new()
            .with_tracer_provider(provider)
            .with_propagator(W3cPropagator::default());
        let tracer = inst.tracer(Instrumentation::scope("t", "0"));
        for (incoming, expected_flags, recording) in [
            ("00-12345678901234567890123456789012-1234567890123456-02", "02", false),
            ("00-12345678901234567890123456789012-1234567890123456-03", "03", true),
            ("00-12345678901234567890123456789012-1234567890123456-00", "00", false),
            ("00-12345678901234567890123456789012-1234567890123456-01", "01", true),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static(incoming));
            let parent = inst.extract_http_with_context(&Context::new(), &headers);
            let span = tracer.start_with_context("child", &parent);
            assert_eq!(span.is_recording(), recording, "{incoming}");
            let sc = span.span_context().clone();
            assert_ne!(sc.span_id().to_string(), "1234567890123456", "a new span id");
            let cx = parent.with_span(span);
            let mut out = http::HeaderMap::new();
            inst.inject_http(&cx, &mut out);
            let tp = out["traceparent"].to_str().unwrap().to_owned();
            assert!(tp.starts_with("00-12345678901234567890123456789012-"), "{tp}");
            assert!(tp.ends_with(&format!("-{expected_flags}")), "{incoming} -> {tp}");
        }
        // A root span (no parent) is unaffected.
        let root = tracer.start_with_context("root", &Context::new());
        assert!(matches!(root, Span::Sdk(_)));
    }

    #[test]
    fn w3c_propagator_round_trips_through_http_headers() {
        let inst = Instrumentation::new().with_propagator(W3cPropagator::default());
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            http::HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        );
        let cx = inst.extract_http_with_context(&Context::new(), &headers);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_remote() && sc.is_sampled());
        let mut out = http::HeaderMap::new();
        inst.inject_http(&cx, &mut out);
        assert_eq!(
            out.get("traceparent").unwrap(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        assert_eq!(inst.propagation_fields(), vec!["traceparent", "tracestate", "baggage"]);
    }
}
