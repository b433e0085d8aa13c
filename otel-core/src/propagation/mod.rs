//! Context propagation: carriers, a strict W3C Trace Context propagator, W3C Baggage and the
//! family's default composite of the two.
//!
//! ```
//! use otelrs_core::propagation::{HeaderExtractor, HeaderInjector, W3cPropagator};
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let mut incoming = http::HeaderMap::new();
//! incoming.insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
//! incoming.insert("baggage", "tenant=acme".parse().unwrap());
//!
//! let propagator = W3cPropagator::default();
//! let cx = propagator.extract(&HeaderExtractor(&incoming));
//! assert!(cx.span().span_context().is_remote());
//!
//! let mut outgoing = http::HeaderMap::new();
//! propagator.inject_context(&cx, &mut HeaderInjector(&mut outgoing));
//! assert_eq!(outgoing["baggage"], "tenant=acme");
//! ```

mod baggage;
mod carrier;
mod trace_context;

pub use baggage::{W3cBaggagePropagator, BAGGAGE, MAX_BYTES as BAGGAGE_MAX_BYTES, MAX_MEMBERS as BAGGAGE_MAX_MEMBERS};
pub use carrier::{
    HeaderExtractor, HeaderInjector, MessageExtractor, MessageHeaders, MessageHeadersMut, MessageInjector,
    INVALID_HEADER_VALUE,
};
pub use trace_context::{
    format_traceparent, is_valid_tracestate_key, is_valid_tracestate_value, parse_traceparent, parse_traceparent_bytes,
    VerbatimTraceState, W3cTraceContextPropagator, TRACEPARENT, TRACESTATE,
};

use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use std::sync::OnceLock;

// A pre-built name: looking a header up by `&str` parses the name on every request.
pub(crate) static BAGGAGE_NAME: http::HeaderName = http::HeaderName::from_static(BAGGAGE);

/// The family's default propagator: strict W3C Trace Context plus W3C Baggage.
///
/// [`crate::Instrumentation`] recognises this type and reads `http::HeaderMap`s directly.
#[derive(Clone, Copy, Debug)]
pub struct W3cPropagator {
    trace_context: W3cTraceContextPropagator,
    baggage: Option<W3cBaggagePropagator>,
}

impl Default for W3cPropagator {
    fn default() -> Self {
        Self {
            trace_context: W3cTraceContextPropagator::new(),
            baggage: Some(W3cBaggagePropagator::new()),
        }
    }
}

fn all_fields() -> &'static [String] {
    static FIELDS: OnceLock<[String; 3]> = OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned(), BAGGAGE.to_owned()])
}

impl W3cPropagator {
    /// Trace context and baggage (the default).
    pub fn new() -> Self {
        Self::default()
    }

    /// Trace context only; baggage is neither read nor written.
    pub fn trace_context_only() -> Self {
        Self {
            trace_context: W3cTraceContextPropagator::new(),
            baggage: None,
        }
    }

    /// Whether baggage is propagated.
    pub fn propagates_baggage(&self) -> bool {
        self.baggage.is_some()
    }

    /// Extracts from an [`http::HeaderMap`] without an intermediate extractor; allocation-free for
    /// a `traceparent` alone.
    pub fn extract_headers_with_context(&self, parent: &Context, headers: &http::HeaderMap) -> Context {
        let found = trace_context::W3cHeaders::scan(headers);
        let cx = self.trace_context.extract_scanned_with_context(parent, headers, &found);
        match &self.baggage {
            Some(b) if found.baggage => {
                let baggage = b.parse(headers.get_all(&BAGGAGE_NAME).iter().filter_map(|v| v.to_str().ok()));
                if baggage.is_empty() {
                    cx
                } else {
                    cx.with_baggage(baggage)
                }
            }
            _ => cx,
        }
    }
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        self.trace_context.inject_context(cx, injector);
        if let Some(b) = &self.baggage {
            b.inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let cx = self.trace_context.extract_with_context(cx, extractor);
        match &self.baggage {
            Some(b) => b.extract_with_context(&cx, extractor),
            None => cx,
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        if self.baggage.is_some() {
            FieldIter::new(all_fields())
        } else {
            FieldIter::new(&all_fields()[..2])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;

    #[test]
    fn composite_extracts_both_and_fast_path_matches() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        h.append("baggage", "a=1".parse().unwrap());
        h.append("baggage", "b=2".parse().unwrap());
        let p = W3cPropagator::default();
        for cx in [
            p.extract_with_context(&Context::new(), &HeaderExtractor(&h)),
            p.extract_headers_with_context(&Context::new(), &h),
        ] {
            assert!(cx.span().span_context().is_valid());
            assert_eq!(cx.baggage().get("a").unwrap().as_str(), "1");
            assert_eq!(cx.baggage().get("b").unwrap().as_str(), "2");
        }
        let only = W3cPropagator::trace_context_only();
        let cx = only.extract_headers_with_context(&Context::new(), &h);
        assert!(cx.baggage().is_empty());
        assert_eq!(only.fields().collect::<Vec<_>>(), vec!["traceparent", "tracestate"]);
    }
}
