//! Shared support for the benchmarks: a global allocator that counts heap allocations per thread,
//! so allocation figures are exact and unaffected by other threads (criterion, SDK exporters).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts `alloc` and `realloc` calls of the current thread, then delegates to the system
/// allocator.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to `System`; the counter is a const-initialised
// thread-local `Cell` that neither allocates nor has a destructor.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations made by the current thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Average heap allocations per call of `f` over `iterations` calls (after one warm-up call, so
/// lazily initialised statics are not counted).
pub fn allocations_per_call<R>(iterations: u64, mut f: impl FnMut() -> R) -> f64 {
    drop(f());
    let before = allocations();
    for _ in 0..iterations {
        drop(std::hint::black_box(f()));
    }
    (allocations() - before) as f64 / iterations as f64
}

/// Defines `DiscardSpans` and `DiscardMetrics`, exporters that count and drop what they receive,
/// and `discarding_tracer_provider` / `discarding_meter_provider`, the providers every variant
/// shares, for one version of `opentelemetry_sdk` (the benches run crates built on 0.33 and on
/// 0.32).
/// Spans are counted into [`http_apps::SPANS_EXPORTED`]; the batch processor still builds and
/// hands over each span, so export cost is counted, equally for every variant.
macro_rules! discard_exporters {
    ($sdk:ident) => {
        /// Drops every span after counting it.
        #[derive(Debug, Default)]
        pub struct DiscardSpans;

        impl $sdk::trace::SpanExporter for DiscardSpans {
            async fn export(&self, batch: Vec<$sdk::trace::SpanData>) -> $sdk::error::OTelSdkResult {
                $crate::http_apps::SPANS_EXPORTED.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                drop(std::hint::black_box(batch));
                Ok(())
            }
        }

        /// Drops every metric export.
        #[derive(Debug, Default)]
        pub struct DiscardMetrics;

        impl $sdk::metrics::exporter::PushMetricExporter for DiscardMetrics {
            async fn export(&self, metrics: &$sdk::metrics::data::ResourceMetrics) -> $sdk::error::OTelSdkResult {
                std::hint::black_box(metrics);
                Ok(())
            }

            fn force_flush(&self) -> $sdk::error::OTelSdkResult {
                Ok(())
            }

            fn shutdown_with_timeout(&self, _timeout: std::time::Duration) -> $sdk::error::OTelSdkResult {
                Ok(())
            }

            fn temporality(&self) -> $sdk::metrics::Temporality {
                $sdk::metrics::Temporality::Cumulative
            }
        }

        /// Spans sampled (`sampled = true`) or dropped by the sampler, exported in batches to
        /// [`DiscardSpans`]. The queue is large enough that no span is dropped however far the
        /// export thread lags (it lags a lot under callgrind): instruction counts then include
        /// every span's export and do not depend on thread scheduling.
        pub fn discarding_tracer_provider(sampled: bool) -> $sdk::trace::SdkTracerProvider {
            let processor = $sdk::trace::BatchSpanProcessor::builder(DiscardSpans)
                .with_batch_config(
                    $sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size(1 << 20)
                        .build(),
                )
                .build();
            let sampler = if sampled {
                $sdk::trace::Sampler::AlwaysOn
            } else {
                $sdk::trace::Sampler::AlwaysOff
            };
            $sdk::trace::SdkTracerProvider::builder()
                .with_sampler(sampler)
                .with_span_processor(processor)
                .build()
        }

        /// A periodic reader exporting to [`DiscardMetrics`] once an hour: recording costs what
        /// it costs in production, collection never runs during a measurement.
        pub fn discarding_meter_provider() -> $sdk::metrics::SdkMeterProvider {
            $sdk::metrics::SdkMeterProvider::builder()
                .with_reader(
                    $sdk::metrics::PeriodicReader::builder(DiscardMetrics)
                        .with_interval(std::time::Duration::from_secs(3600))
                        .build(),
                )
                .build()
        }
    };
}

/// Starts and ends a span shaped like an HTTP server span with 8 attributes (the span of the
/// export benchmarks).
pub fn end_http_server_span(tracer: &opentelemetry_sdk::trace::SdkTracer) {
    use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
    use opentelemetry::KeyValue;
    tracer
        .span_builder("GET /users/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes(vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/users/42"),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("http.response.status_code", 200_i64),
            KeyValue::new("server.address", "api.example"),
            KeyValue::new("server.port", 8080_i64),
            KeyValue::new("network.protocol.version", "1.1"),
        ])
        .start(tracer)
        .end();
}

pub mod actix_apps;
pub mod grpc_apps;
pub mod http_apps;
pub mod sdk032;

/// The statement every SQL benchmark runs: a point select by primary key.
pub const SQLITE_POINT_SELECT: &str = "SELECT id, name FROM users WHERE id = ?";

/// A one-connection in-memory SQLite pool (every connection to `sqlite::memory:` is its own
/// database) with a `users` table holding the row [`SQLITE_POINT_SELECT`] finds.
pub async fn sqlite_users_pool() -> sqlx::SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .expect("sqlite");
    sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        .execute(&pool)
        .await
        .expect("create");
    sqlx::query("INSERT INTO users (id, name) VALUES (1, 'alice')")
        .execute(&pool)
        .await
        .expect("insert");
    pool
}

/// Request headers used by the propagation benchmarks.
pub mod headers {
    use http::{HeaderMap, HeaderValue};

    /// A valid version-00 `traceparent`.
    pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// A two-member `tracestate`.
    pub const TRACESTATE: &str = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";

    /// Typical request headers with a `traceparent` (and, if asked, a `tracestate`).
    pub fn request(with_tracestate: bool) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("api.example.com"));
        h.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        if with_tracestate {
            h.insert("tracestate", HeaderValue::from_static(TRACESTATE));
        }
        h
    }
}
