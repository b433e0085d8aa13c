//! Samplers. Each implements `opentelemetry_sdk::trace::ShouldSample`, so they compose with
//! `Sampler::ParentBased` (the usual setup: respect the caller's decision, apply this sampler to
//! new traces).
//!
//! ```
//! use otelrs_core::sampling::{RateLimitingSampler, RatioSampler, RuleSampler, Rule};
//! use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
//!
//! // At most 100 new traces per second.
//! let limited = Sampler::ParentBased(Box::new(RateLimitingSampler::new(100.0)));
//!
//! // 10 %, adjustable at run time.
//! let (ratio, handle) = RatioSampler::new(0.1).expect("valid ratio");
//! handle.set_ratio(0.5).expect("valid ratio");
//!
//! // Drop health checks, keep every checkout, 5 % of the rest.
//! let rules = RuleSampler::builder()
//!     .rule(Rule::attribute_equals("url.path", "/health").ratio(0.0))
//!     .rule(Rule::attribute_equals("http.route", "/checkout").ratio(1.0))
//!     .default_ratio(0.05)
//!     .build()
//!     .expect("valid ratios");
//!
//! let _provider = SdkTracerProvider::builder()
//!     .with_sampler(Sampler::ParentBased(Box::new(rules)))
//!     .build();
//! # let _ = (limited, ratio);
//! ```

mod rate_limiting;
mod ratio;
mod rules;

pub use rate_limiting::RateLimitingSampler;
pub use ratio::{InvalidRatio, RatioHandle, RatioSampler};
pub use rules::{Matcher, Rule, RuleSampler, RuleSamplerBuilder};

use opentelemetry::trace::{TraceContextExt, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult};

/// The trace-id-based decision of `TraceIdRatioBased`, shared so every ratio here agrees with the
/// SDK's (consistent decisions across services for the same trace id).
pub(crate) fn ratio_decision(ratio: f64, trace_id: TraceId) -> SamplingDecision {
    if ratio >= 1.0 {
        return SamplingDecision::RecordAndSample;
    }
    if ratio <= 0.0 {
        return SamplingDecision::Drop;
    }
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    if (u64::from_be_bytes(low) >> 1) < bound {
        SamplingDecision::RecordAndSample
    } else {
        SamplingDecision::Drop
    }
}

/// A result that keeps the parent's trace state, as the SDK's samplers do.
pub(crate) fn result(decision: SamplingDecision, parent: Option<&Context>) -> SamplingResult {
    let trace_state = parent
        .filter(|cx| cx.has_active_span())
        .map(|cx| cx.span().span_context().trace_state().clone())
        .unwrap_or(TraceState::NONE);
    SamplingResult {
        decision,
        attributes: Vec::new(),
        trace_state,
    }
}
