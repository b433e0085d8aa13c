//! [`JoinSetExt`]: a [`JoinSet`]'s spawn methods, with the caller's context carried along.

use std::future::Future;

use opentelemetry::context::FutureExt as _;
use opentelemetry::Context;
use tokio::task::{AbortHandle, JoinSet};

use super::spawn::with_context;

/// Spawns into a [`JoinSet`] with the caller's current context, like [`super::spawn`]: the
/// fan-out half of a fan-out/fan-in.
///
/// ```
/// use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use opentelemetry::Context;
/// use otelrs_core::task::JoinSetExt as _;
/// # #[tokio::main(flavor = "multi_thread")] async fn main() {
/// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let tracer = provider.tracer("doc");
/// let fan_out = Context::current_with_span(tracer.start("fan out"));
/// let mut set = tokio::task::JoinSet::new();
/// {
///     let _current = fan_out.clone().attach();
///     for shard in 0..4_u32 {
///         let tracer = provider.tracer("doc");
///         set.spawn_with_current_context(async move {
///             let mut span = tracer.start("query shard"); // a child of "fan out"
///             span.end();
///             shard
///         });
///     }
/// }
/// let total: u32 = set.join_all().await.into_iter().sum();
/// assert_eq!(total, 6);
/// fan_out.span().end();
/// # }
/// ```
pub trait JoinSetExt<T> {
    /// [`JoinSet::spawn`] with the current context kept current whenever the task is polled.
    fn spawn_with_current_context<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send;

    /// [`JoinSet::spawn_blocking`] with the current context attached while `f` runs.
    fn spawn_blocking_with_current_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send;
}

impl<T: 'static> JoinSetExt<T> for JoinSet<T> {
    #[track_caller]
    fn spawn_with_current_context<F>(&mut self, task: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send,
    {
        self.spawn(task.with_current_context())
    }

    #[track_caller]
    fn spawn_blocking_with_current_context<F>(&mut self, f: F) -> AbortHandle
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send,
    {
        self.spawn_blocking(with_context(Context::current(), f))
    }
}
