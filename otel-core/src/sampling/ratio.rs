//! A trace-id ratio sampler whose ratio can be changed at run time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingResult, ShouldSample};

use super::{ratio_decision, result};

/// A ratio outside `0.0..=1.0` (or NaN).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error("sampling ratio must be between 0.0 and 1.0, got {0}")]
pub struct InvalidRatio(pub f64);

fn check(ratio: f64) -> Result<f64, InvalidRatio> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(InvalidRatio(ratio))
    }
}

/// Samples a fraction of traces by trace id (the same decision as the SDK's
/// `TraceIdRatioBased`), with the fraction adjustable through a [`RatioHandle`] while the
/// provider runs: no restart, no lock (the ratio is one atomic).
#[derive(Clone, Debug)]
pub struct RatioSampler {
    ratio: Arc<AtomicU64>,
}

/// Changes the ratio of the [`RatioSampler`] it came from (and of all its clones).
#[derive(Clone, Debug)]
pub struct RatioHandle {
    ratio: Arc<AtomicU64>,
}

impl RatioSampler {
    /// A sampler at `ratio` and the handle that adjusts it.
    pub fn new(ratio: f64) -> Result<(Self, RatioHandle), InvalidRatio> {
        let ratio = Arc::new(AtomicU64::new(check(ratio)?.to_bits()));
        Ok((Self { ratio: ratio.clone() }, RatioHandle { ratio }))
    }

    /// The current ratio.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }
}

impl RatioHandle {
    /// Sets a new ratio; spans started afterwards use it.
    pub fn set_ratio(&self, ratio: f64) -> Result<(), InvalidRatio> {
        self.ratio.store(check(ratio)?.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    /// The current ratio.
    pub fn ratio(&self) -> f64 {
        f64::from_bits(self.ratio.load(Ordering::Relaxed))
    }
}

impl ShouldSample for RatioSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        result(ratio_decision(self.ratio(), trace_id), parent_context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::{Sampler, SamplingDecision};

    fn sampled_count(s: &dyn ShouldSample, n: u64) -> usize {
        (0..n)
            .filter(|i| {
                // Spread ids over the whole space, like random ids.
                let id = TraceId::from(u128::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                s.should_sample(None, id, "x", &SpanKind::Internal, &[], &[]).decision
                    == SamplingDecision::RecordAndSample
            })
            .count()
    }

    #[test]
    fn ratio_change_takes_effect_immediately() {
        let (s, h) = RatioSampler::new(0.0).unwrap();
        assert_eq!(sampled_count(&s, 10_000), 0);
        h.set_ratio(1.0).unwrap();
        assert_eq!(sampled_count(&s, 10_000), 10_000);
        h.set_ratio(0.25).unwrap();
        let n = sampled_count(&s, 10_000);
        assert!((2_200..=2_800).contains(&n), "{n}");
        assert_eq!(s.ratio(), 0.25);
        let clone = s.clone();
        h.set_ratio(0.0).unwrap();
        assert_eq!(sampled_count(&clone, 1_000), 0, "clones share the ratio");
    }

    #[test]
    fn agrees_with_the_sdk_ratio_sampler() {
        let (s, _h) = RatioSampler::new(0.3).unwrap();
        let sdk = Sampler::TraceIdRatioBased(0.3);
        for i in 0..5_000u64 {
            let id = TraceId::from(u128::from(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let a = s.should_sample(None, id, "x", &SpanKind::Internal, &[], &[]).decision;
            let b = sdk.should_sample(None, id, "x", &SpanKind::Internal, &[], &[]).decision;
            assert_eq!(a, b);
        }
    }

    #[test]
    fn invalid_ratios_are_rejected_and_leave_the_ratio_unchanged() {
        assert_eq!(RatioSampler::new(1.5).unwrap_err(), InvalidRatio(1.5));
        let (_s, h) = RatioSampler::new(0.5).unwrap();
        assert!(h.set_ratio(-0.1).is_err());
        assert!(h.set_ratio(f64::NAN).is_err());
        assert_eq!(h.ratio(), 0.5);
        assert_eq!(
            InvalidRatio(2.0).to_string(),
            "sampling ratio must be between 0.0 and 1.0, got 2"
        );
    }
}
