//! The propagator the SDK installs: the strict W3C propagators of [`crate::propagation`], chosen by
//! `OTEL_PROPAGATORS`.

use opentelemetry::propagation::TextMapPropagator;

use super::env::PropagatorKind;
use crate::propagation::{W3cBaggagePropagator, W3cPropagator, W3cTraceContextPropagator};

/// The configured propagators; `W3cPropagator` when both W3C formats are selected so that
/// [`Instrumentation`] can use its fast path.
#[derive(Clone, Debug)]
pub(crate) enum Propagation {
    W3c(W3cPropagator),
    TraceContext(W3cTraceContextPropagator),
    Baggage(W3cBaggagePropagator),
    None,
}

pub(crate) fn build_propagator(kinds: &[PropagatorKind]) -> Propagation {
    let tc = kinds.contains(&PropagatorKind::TraceContext);
    let bg = kinds.contains(&PropagatorKind::Baggage);
    match (tc, bg) {
        (true, true) => Propagation::W3c(W3cPropagator::default()),
        (true, false) => Propagation::TraceContext(W3cTraceContextPropagator::new()),
        (false, true) => Propagation::Baggage(W3cBaggagePropagator::new()),
        (false, false) => Propagation::None,
    }
}

/// The propagator installed globally.
#[derive(Debug)]
pub(crate) struct PropagatorSet(pub(crate) Propagation);

impl TextMapPropagator for PropagatorSet {
    fn inject_context(&self, cx: &opentelemetry::Context, injector: &mut dyn opentelemetry::propagation::Injector) {
        match &self.0 {
            Propagation::W3c(p) => p.inject_context(cx, injector),
            Propagation::TraceContext(p) => p.inject_context(cx, injector),
            Propagation::Baggage(p) => p.inject_context(cx, injector),
            Propagation::None => {}
        }
    }

    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        match &self.0 {
            Propagation::W3c(p) => p.extract_with_context(cx, extractor),
            Propagation::TraceContext(p) => p.extract_with_context(cx, extractor),
            Propagation::Baggage(p) => p.extract_with_context(cx, extractor),
            Propagation::None => cx.clone(),
        }
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        match &self.0 {
            Propagation::W3c(p) => p.fields(),
            Propagation::TraceContext(p) => p.fields(),
            Propagation::Baggage(p) => p.fields(),
            Propagation::None => opentelemetry::propagation::text_map_propagator::FieldIter::new(&[]),
        }
    }
}
