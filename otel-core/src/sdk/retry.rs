//! Retrying failed exports: which failures are worth another attempt, and how long to wait.
//!
//! One rule for both transports (the OTLP specification's): transient failures (the collector is
//! unreachable or overloaded, `429`/`502`/`503`/`504`/`408`, gRPC `UNAVAILABLE` and the other
//! retryable codes, timeouts) are retried with capped exponential backoff and jitter, honouring
//! `Retry-After`, until the export's deadline; permanent ones (a rejected certificate, any other
//! `4xx`, `UNIMPLEMENTED`, `UNAUTHENTICATED`, ...) are not retried. While the SDK shuts down
//! nothing is retried, so a dead collector cannot hold shutdown.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How failed exports are retried (the deadline is the export timeout).
///
/// ```
/// use std::time::Duration;
/// use otelrs_core::sdk::RetryPolicy;
///
/// let policy = RetryPolicy::default().with_initial_backoff(Duration::from_millis(50));
/// let never = RetryPolicy::disabled();
/// # let _ = (policy, never);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    enabled: bool,
    initial_backoff: Duration,
    max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Backoff from 100 ms, doubling up to 5 s, each wait jittered down by up to half.
    fn default() -> Self {
        Self {
            enabled: true,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// One attempt per export, never retried.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The first wait (default 100 ms).
    pub fn with_initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// The longest wait between attempts (default 5 s); a longer `Retry-After` still wins.
    pub fn with_max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Whether failed exports are retried at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }
}

/// What a failed attempt says about the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// May succeed later.
    Transient,
    /// May succeed after the server's `Retry-After` / `RetryInfo` delay.
    Throttled(Duration),
    /// Will fail the same way again.
    Permanent,
}

/// Runs `attempt` until it succeeds, fails permanently, the deadline would pass during the next
/// wait, or `stop` is set (shutdown). Returns the last result.
pub(crate) fn run<T, E>(
    policy: RetryPolicy,
    deadline: Instant,
    stop: &AtomicBool,
    mut attempt: impl FnMut() -> Result<T, (E, Verdict)>,
) -> Result<T, E> {
    let mut backoff = policy.initial_backoff;
    loop {
        let (error, verdict) = match attempt() {
            Ok(v) => return Ok(v),
            Err(failure) => failure,
        };
        if !policy.enabled || stop.load(Ordering::Relaxed) {
            return Err(error);
        }
        let wait = match verdict {
            Verdict::Permanent => return Err(error),
            Verdict::Transient => jittered(backoff),
            Verdict::Throttled(after) => after.max(jittered(backoff)),
        };
        if Instant::now() + wait >= deadline {
            return Err(error);
        }
        if !sleep_unless_stopped(wait, stop) {
            return Err(error);
        }
        backoff = (backoff * 2).min(policy.max_backoff);
    }
}

/// Between half and all of `d`, so that many exporters failing together do not retry together.
fn jittered(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let half = d / 2;
    half + Duration::from_nanos(random % (half.as_nanos() as u64).max(1))
}

/// Sleeps in short steps so that shutdown ends a wait promptly; false when stopped.
fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + total;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(25)));
    }
}

/// The verdict for an HTTP response status (the OTLP/HTTP specification's retryable set).
pub(crate) fn http_status_verdict(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        429 | 503 => match retry_after.and_then(parse_retry_after) {
            Some(d) => Verdict::Throttled(d),
            None => Verdict::Transient,
        },
        408 | 502 | 504 => Verdict::Transient,
        _ => Verdict::Permanent,
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare from collectors and treated as absent),
/// capped at 10 minutes.
fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(600)))
}

/// The verdict for a failed OTLP/gRPC export, from the exporter's error text
/// (`... export failed with gRPC code: <Code>[: <source chain>]`).
pub(crate) fn grpc_verdict(message: &str) -> Verdict {
    if is_tls_failure(message) {
        return Verdict::Permanent;
    }
    match grpc_code(message) {
        Some("Unavailable" | "DeadlineExceeded" | "Aborted" | "OutOfRange" | "DataLoss" | "Cancelled") => {
            Verdict::Transient
        }
        // Collectors shed load with RESOURCE_EXHAUSTED; the RetryInfo delay is not visible here,
        // so it is retried with the backoff.
        Some("ResourceExhausted") => Verdict::Transient,
        Some(_) => Verdict::Permanent,
        // Not a gRPC status (e.g. a timeout): worth another attempt.
        None => Verdict::Transient,
    }
}

/// The `Code` name in a tonic export error.
pub(crate) fn grpc_code(message: &str) -> Option<&str> {
    let rest = &message[message.find("gRPC code: ")? + "gRPC code: ".len()..];
    let end = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
    Some(&rest[..end]).filter(|c| !c.is_empty())
}

/// Whether an error text is a TLS failure: a rejected or unusable certificate, a failed
/// handshake. Retrying cannot fix those.
pub(crate) fn is_tls_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "unknownissuer", "ssl"]
        .iter()
        .any(|needle| m.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn http_statuses_follow_the_otlp_rules() {
        assert_eq!(
            http_status_verdict(503, Some("2")),
            Verdict::Throttled(Duration::from_secs(2))
        );
        assert_eq!(
            http_status_verdict(429, Some("9999")),
            Verdict::Throttled(Duration::from_secs(600))
        );
        assert_eq!(http_status_verdict(429, Some("soon")), Verdict::Transient);
        for s in [408, 502, 503, 504] {
            assert_eq!(http_status_verdict(s, None), Verdict::Transient, "{s}");
        }
        for s in [400, 401, 403, 404, 413, 415, 500] {
            assert_eq!(http_status_verdict(s, None), Verdict::Permanent, "{s}");
        }
    }

    #[test]
    fn grpc_messages_are_classified_by_code_and_tls() {
        let m = |code: &str| format!("TonicTracesClient export failed with gRPC code: {code}: transport error");
        assert_eq!(grpc_verdict(&m("Unavailable")), Verdict::Transient);
        assert_eq!(grpc_verdict(&m("DeadlineExceeded")), Verdict::Transient);
        assert_eq!(grpc_verdict(&m("Unimplemented")), Verdict::Permanent);
        assert_eq!(grpc_verdict(&m("Unauthenticated")), Verdict::Permanent);
        assert_eq!(grpc_code(&m("PermissionDenied")), Some("PermissionDenied"));
        assert_eq!(
            grpc_verdict(
                "TonicTracesClient export failed with gRPC code: Unavailable: transport error: \
                 invalid peer certificate: UnknownIssuer"
            ),
            Verdict::Permanent
        );
        assert_eq!(grpc_verdict("timed out"), Verdict::Transient);
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let calls = Cell::new(0);
        let stop = AtomicBool::new(false);
        let policy = RetryPolicy::default().with_initial_backoff(Duration::from_millis(1));
        let r: Result<u32, &str> = run(policy, Instant::now() + Duration::from_secs(5), &stop, || {
            calls.set(calls.get() + 1);
            if calls.get() < 3 {
                Err(("down", Verdict::Transient))
            } else {
                Ok(7)
            }
        });
        assert_eq!(r, Ok(7));
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn permanent_failures_disabled_policy_and_stop_end_at_once() {
        let stop = AtomicBool::new(false);
        let deadline = Instant::now() + Duration::from_secs(5);
        let attempts = |policy: RetryPolicy, verdict: Verdict| {
            let calls = Cell::new(0);
            let r = run(policy, deadline, &stop, || {
                calls.set(calls.get() + 1);
                Err::<(), _>(("no", verdict))
            });
            (r, calls.get())
        };
        assert_eq!(attempts(RetryPolicy::default(), Verdict::Permanent), (Err("no"), 1));
        assert_eq!(attempts(RetryPolicy::disabled(), Verdict::Transient), (Err("no"), 1));
        stop.store(true, Ordering::Relaxed);
        assert_eq!(attempts(RetryPolicy::default(), Verdict::Transient), (Err("no"), 1));
    }

    #[test]
    fn the_deadline_bounds_the_retries() {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let policy = RetryPolicy::default().with_initial_backoff(Duration::from_millis(20));
        let r = run(policy, start + Duration::from_millis(300), &stop, || {
            Err::<(), _>(("down", Verdict::Transient))
        });
        assert_eq!(r, Err("down"));
        // It gives up before a wait that would cross the deadline (slack for a loaded machine).
        assert!(start.elapsed() < Duration::from_millis(600), "{:?}", start.elapsed());
        // A Retry-After longer than the deadline ends at once.
        let start = Instant::now();
        let r = run(policy, start + Duration::from_secs(1), &stop, || {
            Err::<(), _>(("throttled", Verdict::Throttled(Duration::from_secs(30))))
        });
        assert_eq!(r, Err("throttled"));
        assert!(start.elapsed() < Duration::from_millis(500));
    }
}
