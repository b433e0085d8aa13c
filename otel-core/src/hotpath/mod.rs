//! The speed machinery of the adapters, in one corner: nothing here is needed to *use* the
//! crates, and an adapter reaches it through a handful of calls.
//!
//! | Piece | What it saves on the request path | Measured in `BENCHMARKS.md` |
//! | --- | --- | --- |
//! | [`bound`] ([`FixedBound`], [`BoundInstruments`], [`record_with_last`]) | the SDK's per-recording attribute hashing and lookup | HTTP, SQL, Redis, gRPC instruction counts |
//! | [`intern`] (`static_str`, `Interner`, `leak_str`) | an allocation per span for repeated strings (routes, span names, hosts), and the reference counting of shared ones | HTTP allocations per request |
//! | [`hasher`] ([`FxBuildHasher`]) | SipHash on the short keys of the caches above | SQL statement cache |
//!
//! Every cache here is bounded (entries, and for leaked strings a process-wide byte budget), so
//! values a peer controls cannot grow memory without limit.

pub mod bound;
pub mod hasher;
pub mod intern;

pub use bound::{
    bound_handle_with_last, record_with_last, Bindable, BoundInstruments, FixedBound, LastBound, LastBoundSlot,
    DEFAULT_BOUND_CAPACITY,
};
pub use hasher::{FxBuildHasher, FxHasher};
