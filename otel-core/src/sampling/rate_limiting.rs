//! A sampler that admits at most N new traces per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{Link, SpanKind, TraceId};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{SamplingDecision, SamplingResult, ShouldSample};

use super::result;

/// Samples at most `rate` traces per second, with bursts of up to `rate` (at least one).
///
/// A token bucket implemented as a generic cell-rate algorithm on one atomic: each decision is a
/// load and a compare-and-swap, with no lock on the hot path. Wrap it in `Sampler::ParentBased`
/// so only root spans are rate limited.
#[derive(Clone, Debug)]
pub struct RateLimitingSampler {
    inner: Arc<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Theoretical arrival time of the next admitted trace, in ns since `origin`.
    tat: AtomicU64,
    /// Nanoseconds per admitted trace (`1e9 / rate`); `u64::MAX` disables sampling.
    interval: u64,
    /// How far `tat` may run ahead of now: `burst * interval`.
    tolerance: u64,
    origin: Instant,
    rate: f64,
}

impl RateLimitingSampler {
    /// At most `rate` traces per second. A rate of zero, a negative rate or NaN samples nothing.
    pub fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        Self::with_burst(rate, burst)
    }

    /// At most `rate` traces per second on average, admitting bursts of up to `burst` traces.
    pub fn with_burst(rate: f64, burst: f64) -> Self {
        let (interval, tolerance) = if rate.is_finite() && rate > 0.0 {
            let interval = (1e9 / rate).max(1.0) as u64;
            let burst = if burst.is_finite() { burst.max(1.0) } else { 1.0 };
            (interval, (burst * interval as f64) as u64)
        } else {
            (u64::MAX, 0)
        };
        Self {
            inner: Arc::new(Bucket {
                tat: AtomicU64::new(0),
                interval,
                tolerance,
                origin: Instant::now(),
                rate,
            }),
        }
    }

    /// The configured rate (traces per second).
    pub fn rate(&self) -> f64 {
        self.inner.rate
    }

    fn admit_at(&self, now_ns: u64) -> bool {
        let b = &*self.inner;
        if b.interval == u64::MAX {
            return false;
        }
        let mut tat = b.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now_ns).saturating_add(b.interval);
            if next - now_ns > b.tolerance {
                return false;
            }
            match b
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => tat = actual,
            }
        }
    }

    fn admit(&self) -> bool {
        let now = u64::try_from(self.inner.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.admit_at(now)
    }
}

impl ShouldSample for RateLimitingSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        _trace_id: TraceId,
        _name: &str,
        _span_kind: &SpanKind,
        _attributes: &[KeyValue],
        _links: &[Link],
    ) -> SamplingResult {
        let decision = if self.admit() {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        };
        result(decision, parent_context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn burst_then_steady_rate_on_a_manual_clock() {
        let s = RateLimitingSampler::new(10.0);
        // A burst of 10 at t=0, then nothing.
        let admitted = (0..100).filter(|_| s.admit_at(0)).count();
        assert_eq!(admitted, 10);
        // Half a second later, 5 tokens have come back.
        let admitted = (0..100).filter(|_| s.admit_at(SEC / 2)).count();
        assert_eq!(admitted, 5);
        // Calls spread over the next 10 s: never more than 10 per second in steady state.
        let mut per_second = [0usize; 10];
        for step in 0..10_000u64 {
            let t = SEC / 2 + SEC / 2 + step * SEC / 1000;
            if s.admit_at(t) {
                per_second[(step / 1000) as usize] += 1;
            }
        }
        // The first second starts with the 5 tokens refilled since t=0.5 s.
        assert!((14..=15).contains(&per_second[0]), "{}", per_second[0]);
        for (i, n) in per_second.iter().enumerate().skip(1) {
            assert!(*n <= 10, "second {i}: {n} admitted");
            assert!(*n >= 9, "second {i}: {n} admitted");
        }
    }

    #[test]
    fn zero_and_invalid_rates_sample_nothing() {
        for r in [0.0, -1.0, f64::NAN] {
            let s = RateLimitingSampler::new(r);
            assert!(!s.admit_at(0));
            assert!(!s.admit_at(10 * SEC));
        }
    }

    #[test]
    fn fractional_rates_admit_one_then_wait() {
        let s = RateLimitingSampler::new(0.5);
        assert!(s.admit_at(0));
        assert!(!s.admit_at(SEC));
        assert!(s.admit_at(2 * SEC));
    }

    #[test]
    fn rate_limit_holds_over_a_second_of_real_calls_from_two_threads() {
        let s = RateLimitingSampler::new(100.0);
        let start = Instant::now();
        let count = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let s = s.clone();
                    scope.spawn(move || {
                        let mut n = 0usize;
                        while start.elapsed() < Duration::from_secs(1) {
                            let r = s.should_sample(None, TraceId::from(1u128), "x", &SpanKind::Server, &[], &[]);
                            if r.decision == SamplingDecision::RecordAndSample {
                                n += 1;
                            }
                        }
                        n
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });
        let elapsed = start.elapsed().as_secs_f64();
        // Burst of 100 plus 100 per second elapsed (the loop may overrun its second slightly).
        let bound = 100.0 + 100.0 * elapsed + 1.0;
        assert!(
            count as f64 <= bound,
            "{count} admitted in {elapsed:.3}s, bound {bound}"
        );
        assert!(
            count >= 150,
            "{count} admitted: the limiter must still admit at its rate"
        );
    }
}
