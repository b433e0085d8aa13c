//! The attribute-conformance tables every adapter runs: [`server`] for the server adapters (axum
//! and hyper with `HttpServerLayer`, actix-web with `HttpServerMiddleware`), [`client`] for the
//! client adapters (the tower `HttpClientLayer`, reqwest's `HttpClientMiddleware`).
//!
//! A row is one request (inputs) and exactly what it must produce: span name, kind, status,
//! parent, the full attribute list with types, and the metric points. The adapter's test file only
//! says how to start its app or build its client; the runner sends every row over a real loopback
//! connection and checks it, naming the row in every failure.
//!
//! Included by each test crate as `mod conformance;` (next to `mod common;`).
#![allow(dead_code)]

pub mod client;
pub mod server;

use std::panic::{catch_unwind, AssertUnwindSafe};

/// The `traceparent` rows send: a sampled remote parent.
pub const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
/// The parent span id of [`TRACEPARENT`].
pub const PARENT_ID: &str = "b7ad6b7169203331";
/// `00-{TRACE_ID}-{PARENT_ID}-01`.
pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// The expected span status.
#[derive(Clone, Copy, Debug)]
pub enum St {
    /// `Status::Unset`.
    Unset,
    /// `Status::Error` with exactly this description (HTTP status errors: `""`, the status code
    /// is in `error.type`).
    Error(&'static str),
    /// `Status::Error` whose description is the transport error's message: not empty, and
    /// without the request URL (which may carry credentials).
    ErrorWithMessage,
}

impl St {
    /// Asserts that `status` is this one; `url` (the request URL) must not appear in a message.
    pub fn check(&self, status: &opentelemetry::trace::Status, url: Option<&str>) {
        use opentelemetry::trace::Status;
        match (self, status) {
            (St::Unset, Status::Unset) => {}
            (St::Error(want), Status::Error { description }) => {
                assert_eq!(description, want, "status description");
            }
            (St::ErrorWithMessage, Status::Error { description }) => {
                assert!(!description.is_empty(), "a transport error carries its message");
                assert!(
                    !description.contains("http://") && url.is_none_or(|u| !description.contains(u)),
                    "the status description must not contain the URL: {description:?}"
                );
            }
            (want, got) => panic!("expected status {want:?}, got {got:?}"),
        }
    }
}

/// Runs `check` for one row, turning a failed assertion into a line naming the framework and the
/// row, so that one run reports every failing row.
pub fn check_row(failures: &mut Vec<String>, framework: &str, row: &str, check: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(check)) {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "(non-string panic)".to_owned());
        failures.push(format!("[{framework}] row {row:?}:\n{msg}"));
    }
}

/// Panics listing every failed row.
pub fn report(framework: &str, rows: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{framework}: {} of {rows} conformance rows failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
