//! Semantic-convention histogram bucket advice and builders that create each instrument once,
//! with the right name, unit and description. (Recording through bound instruments, the speed
//! trick behind the adapters' metrics, lives in [`crate::hotpath`].)
//!
//! ```
//! use otelrs_core::instruments;
//! use opentelemetry::metrics::MeterProvider;
//! use opentelemetry_semantic_conventions::metric;
//!
//! let meter = opentelemetry_sdk::metrics::SdkMeterProvider::default().meter("doc");
//! let duration = instruments::duration_histogram(
//!     &meter,
//!     metric::HTTP_SERVER_REQUEST_DURATION,
//!     "Duration of HTTP server requests.",
//!     &instruments::DURATION_BUCKETS,
//! );
//! let active = instruments::up_down_counter(
//!     &meter,
//!     metric::HTTP_SERVER_ACTIVE_REQUESTS,
//!     "{request}",
//!     "Number of active HTTP server requests.",
//! );
//! duration.record(0.012, &[]);
//! active.add(1, &[]);
//! ```

use std::time::Duration;

use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};

/// Bucket advice (seconds) for HTTP, RPC and messaging durations
/// (`http.*.request.duration`, `rpc.*.call.duration`, `messaging.*.duration`).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Alias of [`DURATION_BUCKETS`] for HTTP metrics.
pub const HTTP_DURATION_BUCKETS: [f64; 14] = DURATION_BUCKETS;
/// Alias of [`DURATION_BUCKETS`] for RPC metrics.
pub const RPC_DURATION_BUCKETS: [f64; 14] = DURATION_BUCKETS;
/// Alias of [`DURATION_BUCKETS`] for messaging metrics.
pub const MESSAGING_DURATION_BUCKETS: [f64; 14] = DURATION_BUCKETS;

/// Bucket advice (seconds) for `db.client.operation.duration`.
pub const DB_DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

/// Bucket advice (rows) for `db.client.response.returned_rows`.
pub const DB_RETURNED_ROWS_BUCKETS: [f64; 13] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
];

/// Bucket advice (seconds) for `http.client.connection.duration`.
pub const CONNECTION_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Buckets (bytes) for body and message sizes (`http.*.body.size`, `rpc.*.size`).
///
/// Semantic conventions give no advice for sizes; these are powers of four from 64 B to 64 MiB,
/// with an explicit `0` bucket for empty bodies.
pub const BODY_SIZE_BUCKETS: [f64; 12] = [
    0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

/// Bucket advice (seconds) for connection-pool wait, create and use times. Semantic conventions
/// give none for these; the database duration buckets fit their range.
pub const POOL_TIME_BUCKETS: [f64; 9] = DB_DURATION_BUCKETS;

/// Creates an `f64` histogram in seconds (`unit = "s"`) with explicit bucket boundaries.
pub fn duration_histogram(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
    buckets: &[f64],
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(buckets.to_vec())
        .build()
}

/// Creates a `u64` histogram in bytes (`unit = "By"`) with [`BODY_SIZE_BUCKETS`].
pub fn size_histogram(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<u64> {
    meter
        .u64_histogram(name)
        .with_unit("By")
        .with_description(description)
        .with_boundaries(BODY_SIZE_BUCKETS.to_vec())
        .build()
}

/// Creates an `i64` up/down counter (e.g. `http.server.active_requests`, unit `{request}`).
pub fn up_down_counter(
    meter: &Meter,
    name: &'static str,
    unit: &'static str,
    description: &'static str,
) -> UpDownCounter<i64> {
    meter
        .i64_up_down_counter(name)
        .with_unit(unit)
        .with_description(description)
        .build()
}

/// Creates a `u64` counter (e.g. `messaging.client.sent.messages`, unit `{message}`).
pub fn counter(meter: &Meter, name: &'static str, unit: &'static str, description: &'static str) -> Counter<u64> {
    meter
        .u64_counter(name)
        .with_unit(unit)
        .with_description(description)
        .build()
}

/// A duration as fractional seconds, the unit of every duration metric.
#[inline]
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strictly_increasing(b: &[f64]) -> bool {
        b.windows(2).all(|w| w[0] < w[1]) && b.iter().all(|x| x.is_finite())
    }

    #[test]
    fn buckets_are_valid_boundaries() {
        for b in [
            &DURATION_BUCKETS[..],
            &DB_DURATION_BUCKETS,
            &DB_RETURNED_ROWS_BUCKETS,
            &CONNECTION_DURATION_BUCKETS,
            &BODY_SIZE_BUCKETS,
        ] {
            assert!(strictly_increasing(b), "{b:?}");
        }
        assert_eq!(DURATION_BUCKETS.len(), 14);
        assert_eq!(
            DB_DURATION_BUCKETS,
            [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
        );
    }
}
