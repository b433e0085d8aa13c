//! One trace across tasks, threads and in-process channels.
//!
//! The current OpenTelemetry [`Context`](opentelemetry::Context) is thread-local: a future
//! spawned on another task, a closure run on a blocking thread or a value sent over a channel
//! leaves it behind, and the spans started there begin new, unconnected traces. This module
//! carries it across each hand-off:
//!
//! | Hand-off | Use | The work's spans are |
//! | --- | --- | --- |
//! | any future (a stream, a sink) | [`FutureExt::with_current_context`] / [`FutureExt::with_context`] | children of that context, on whichever thread polls |
//! | `tokio::spawn` | `spawn` (feature `tokio`) | children of the caller's current span |
//! | `tokio::task::spawn_blocking` | `spawn_blocking` (feature `tokio`) | children of the caller's current span |
//! | a `JoinSet` | `JoinSetExt` (feature `tokio`) | children of the caller's current span |
//! | a future that may be dropped early (timeout, `select!`, abort) | [`InSpanExt::in_span`] | in its span, which ends however the future stops (`error.type` = `cancelled` when dropped) |
//! | a message over `mpsc`, `broadcast`, `watch`, crossbeam, flume, `std::sync::mpsc` | [`Traced`] | children of the sender's span (one message), or linked to the senders (a batch) |
//!
//! ```
//! use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
//! use opentelemetry::Context;
//! use otelrs_core::task::{FutureExt as _, Traced};
//! # #[tokio::main(flavor = "multi_thread")] async fn main() {
//! # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let tracer = provider.tracer("doc");
//! let (tx, mut rx) = tokio::sync::mpsc::channel::<Traced<u64>>(16);
//! let worker = tokio::spawn(async move {
//!     while let Some(job) = rx.recv().await {
//!         // Runs with the sender's context current: spans started here are its children.
//!         job.in_context(|id| async move { /* a client call, a query, ... */ let _ = id; }).await;
//!     }
//! });
//! let request = Context::current_with_span(tracer.start("request"));
//! async {
//!     tx.send(Traced::new(42)).await.expect("worker alive"); // captures "request"
//! }
//! .with_context(request.clone())
//! .await;
//! request.span().end();
//! drop(tx);
//! worker.await.unwrap();
//! # }
//! ```
//!
//! # Polled on another thread
//!
//! [`FutureExt`] is `opentelemetry`'s own, re-exported: its [`WithContext`] attaches the context
//! at **every** poll and detaches it before returning, so the context follows the future when a
//! multi-thread runtime moves it to another worker (work stealing), and never leaks into other
//! tasks polled on the same thread. Do not hold a [`ContextGuard`](opentelemetry::ContextGuard)
//! (`cx.attach()`) across an `.await`: the guard stays on the thread while the task moves on.
//!
//! # Parent or link: the messaging conventions' choice
//!
//! OpenTelemetry's messaging conventions let the span that processes **one** message either be
//! a child of the message's creation context or link to it; a span processing a **batch** (or
//! fanning in results from several producers) cannot have several parents and links to each
//! creation context. For in-process hand-offs the work is usually part of the same operation,
//! so [`Traced`] makes the sender's span the parent by default ([`Traced::in_context`],
//! [`Traced::attach`], [`Traced::context`]) and gives a [`Link`](opentelemetry::trace::Link) for
//! batches and fan-in ([`Traced::link`], [`links`]). Use a link for a single message too when the
//! receiver's work outlives, or is not part of, the sender's operation (a background job queued
//! by a request whose trace should end with the response).
//!
//! # With `tracing`
//!
//! With the `tracing` bridge (`sdk::TracingBridge`, context activation on), an entered `tracing`
//! span is the current OpenTelemetry context, so every helper here carries it like any other
//! span: spans of `#[instrument]` functions called on the other side are its children. The
//! `tracing` span itself is not entered there (that would keep it open, and stretch its end,
//! until the spawned work finishes); use `tracing::Instrument::in_current_span` in addition when
//! console lines should also show it.

mod in_span;
#[cfg(feature = "tokio")]
mod join_set;
#[cfg(feature = "tokio")]
mod spawn;
mod traced;

pub use in_span::{InSpan, InSpanExt};
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use join_set::JoinSetExt;
#[cfg(feature = "tokio")]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub use spawn::{spawn, spawn_blocking};
pub use traced::{links, Traced};

/// Keeps a [`Context`](opentelemetry::Context) current while a future, stream or sink is polled
/// (`opentelemetry`'s own trait, re-exported; see the [module docs](self) for threads).
pub use opentelemetry::context::FutureExt;
/// A future, stream or sink polled with a context attached; see [`FutureExt`].
pub use opentelemetry::context::WithContext;
