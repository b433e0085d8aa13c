//! [`spawn`] and [`spawn_blocking`]: Tokio's, with the caller's context carried along.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::Context;
use tokio::task::JoinHandle;

/// [`tokio::spawn`] with the caller's current context: spans the task starts are children of the
/// caller's current span, on whichever worker thread polls the task.
///
/// ```
/// use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use opentelemetry::Context;
/// # #[tokio::main(flavor = "multi_thread")] async fn main() {
/// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let tracer = provider.tracer("doc");
/// let request = Context::current_with_span(tracer.start("request"));
/// let handle = {
///     let _current = request.clone().attach(); // not held across an await
///     otelrs_core::task::spawn(async move {
///         // A child of "request", whichever thread runs it.
///         let mut span = provider.tracer("doc").start("background");
///         span.end();
///     })
/// };
/// handle.await.expect("task ran");
/// request.span().end();
/// # }
/// ```
///
/// # Panics
///
/// Like [`tokio::spawn`], outside a Tokio runtime.
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future.with_current_context())
}

/// [`tokio::task::spawn_blocking`] with the caller's current context attached while `f` runs on
/// the blocking thread: spans it starts are children of the caller's current span.
///
/// ```
/// use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use opentelemetry::Context;
/// # #[tokio::main] async fn main() {
/// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let tracer = provider.tracer("doc");
/// let request = Context::current_with_span(tracer.start("request"));
/// let digest = {
///     let _current = request.clone().attach();
///     otelrs_core::task::spawn_blocking(move || {
///         let mut span = tracer.start("hash password"); // a child of "request"
///         span.end();
///         42
///     })
/// };
/// assert_eq!(digest.await.expect("ran"), 42);
/// request.span().end();
/// # }
/// ```
///
/// # Panics
///
/// Like [`tokio::task::spawn_blocking`], outside a Tokio runtime.
#[track_caller]
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(with_context(Context::current(), f))
}

/// `f`, run with `cx` attached.
pub(super) fn with_context<F, R>(cx: Context, f: F) -> impl FnOnce() -> R + Send + 'static
where
    F: FnOnce() -> R + Send + 'static,
{
    move || {
        let _guard = cx.attach();
        f()
    }
}
