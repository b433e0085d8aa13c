//! Shared code of the example programs: the `shop` demo's services, its in-process span capture
//! and its terminal rendering. `src/bin/shop.rs` runs it; `tests/shop.rs` asserts its trace shapes.

pub mod concurrency;
pub mod shop;

/// The Rust code blocks of the workspace README, compiled (and those not marked `no_run` run) as
/// doctests of this crate, which depends on every crate they use.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
