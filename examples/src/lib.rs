//! Shared code of the example programs: the `shop` demo's services, its in-process span capture
//! and its terminal rendering. `src/bin/shop.rs` runs it; `tests/shop.rs` asserts its trace shapes.

pub mod shop;
