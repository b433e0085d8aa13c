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

pub mod actix_apps;
pub mod grpc_apps;
pub mod http_apps;
pub mod sdk032;

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
