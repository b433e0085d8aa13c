//! [`Traced`]: a message that carries its sender's context over an in-process channel.

use std::collections::HashSet;
use std::future::Future;

use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::trace::{Link, SpanContext, TraceContextExt as _};
use opentelemetry::{Context, ContextGuard};

/// A message and the OpenTelemetry [`Context`] of its sender, captured when the message is
/// made. Send it over any channel (`tokio::sync::mpsc`, `broadcast` and `watch` (it is `Clone`
/// when `T` is), `std::sync::mpsc`, crossbeam, flume, ...); the receiver makes its work a child
/// of the sender's span ([`Traced::in_context`], [`Traced::attach`]) or links to it
/// ([`Traced::link`], [`links`] for a batch). See the [module docs](super) for which to choose.
///
/// A sender on a thread of its own, receivers on a pool of threads (crossbeam, flume and
/// `std::sync::mpsc` alike):
///
/// ```
/// use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use opentelemetry::Context;
/// use otelrs_core::task::Traced;
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let tracer = provider.tracer("doc");
/// let (tx, rx) = std::sync::mpsc::channel::<Traced<String>>();
/// let worker = std::thread::spawn({
///     let tracer = provider.tracer("doc");
///     move || {
///         for message in rx {
///             let _guard = message.attach(); // the sender's span is current until dropped
///             let mut span = tracer.start("resize image"); // its child
///             span.end();
///         }
///     }
/// });
/// let request = tracer.start("upload");
/// let _current = Context::current_with_span(request).attach();
/// tx.send(Traced::new("cat.png".to_owned())).expect("worker alive");
/// drop(tx);
/// worker.join().expect("worker ran");
/// ```
///
/// Capturing clones the current context (a few reference counts); it keeps the sender's span
/// object alive until the message is dropped, which changes nothing for a span that is ended
/// explicitly (as every adapter's is).
#[derive(Clone, Debug)]
pub struct Traced<T> {
    payload: T,
    context: Context,
}

impl<T> Traced<T> {
    /// Wraps `payload` with the current context ([`Context::current`]).
    pub fn new(payload: T) -> Self {
        Self::from_parts(payload, Context::current())
    }

    /// Wraps `payload` with an explicit context.
    pub fn from_parts(payload: T, context: Context) -> Self {
        Self { payload, context }
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.payload
    }

    /// The message, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.payload
    }

    /// The message, dropping the context.
    pub fn into_inner(self) -> T {
        self.payload
    }

    /// The message and the sender's context, e.g. as the parent of a span:
    /// `tracer.start_with_context("process", &context)`.
    pub fn into_parts(self) -> (T, Context) {
        (self.payload, self.context)
    }

    /// The sender's context.
    pub fn context(&self) -> &Context {
        &self.context
    }

    /// The span context of the sender's span (invalid when the sender had no span).
    pub fn span_context(&self) -> SpanContext {
        self.context.span().span_context().clone()
    }

    /// A link to the sender's span, for a span that processes several messages or should not be
    /// the sender's child; `None` when the sender had no valid span.
    pub fn link(&self) -> Option<Link> {
        let span_context = self.span_context();
        span_context.is_valid().then(|| Link::with_context(span_context))
    }

    /// Makes the sender's context current on this thread until the guard is dropped: for a
    /// receiver on a thread of its own. In async code use [`Traced::in_context`] instead: a
    /// guard must not be held across an `.await`.
    pub fn attach(&self) -> ContextGuard {
        self.context.clone().attach()
    }

    /// Runs `process` with the message while the sender's context is current, and keeps it
    /// current whenever the future `process` returns is polled, on whichever thread: every span
    /// the processing starts (adapters' spans, `#[instrument]` functions with the `tracing`
    /// bridge, whose spans are created when the function is called) is a child of the sender's
    /// span.
    ///
    /// ```
    /// use otelrs_core::task::Traced;
    /// # #[tokio::main] async fn main() {
    /// let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    /// tx.send(Traced::new(2_u32)).expect("receiver alive");
    /// let message = rx.recv().await.expect("a message");
    /// let doubled = message.in_context(|n| async move { n * 2 }).await;
    /// assert_eq!(doubled, 4);
    /// # }
    /// ```
    pub fn in_context<F, Fut>(self, process: F) -> WithContext<Fut>
    where
        F: FnOnce(T) -> Fut,
        Fut: Future,
    {
        let future = {
            let _guard = self.context.clone().attach();
            process(self.payload)
        };
        future.with_context(self.context)
    }

    /// The same context with another message (e.g. the output of a pipeline stage that should
    /// stay the sender's child).
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Traced<U> {
        Traced {
            payload: f(self.payload),
            context: self.context,
        }
    }
}

/// One link per distinct sending span of `messages`, in order of first appearance, for the span
/// that processes them together (a batch, a fan-in). Messages without a valid span give no link.
///
/// ```
/// use opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _, TracerProvider as _};
/// use opentelemetry::Context;
/// use otelrs_core::task::{links, Traced};
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let tracer = provider.tracer("doc");
/// let batch: Vec<Traced<u32>> = (0..3)
///     .map(|n| {
///         let _sender = Context::current_with_span(tracer.start("produce")).attach();
///         Traced::new(n)
///     })
///     .collect();
/// let mut span = tracer.span_builder("process batch").with_links(links(&batch)).start(&tracer);
/// span.end();
/// # assert_eq!(links(&batch).len(), 3);
/// ```
pub fn links<'a, T: 'a>(messages: impl IntoIterator<Item = &'a Traced<T>>) -> Vec<Link> {
    let mut seen = HashSet::new();
    messages
        .into_iter()
        .filter_map(Traced::link)
        .filter(|link| seen.insert((link.span_context.trace_id(), link.span_context.span_id())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn context(span: u64) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(7),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ))
    }

    #[test]
    fn captures_the_current_context_and_gives_it_back() {
        let message = {
            let _current = context(1).attach();
            Traced::new("job")
        };
        assert_eq!(message.span_context().span_id(), SpanId::from(1));
        assert_eq!(message.link().unwrap().span_context.span_id(), SpanId::from(1));
        assert!(!Context::current().span().span_context().is_valid());
        {
            let _guard = message.attach();
            assert_eq!(Context::current().span().span_context().span_id(), SpanId::from(1));
        }
        assert!(!Context::current().span().span_context().is_valid());
        let cloned = message.clone().map(str::len);
        assert_eq!(*cloned.get_ref(), 3);
        let (payload, cx) = message.into_parts();
        assert_eq!((payload, cx.span().span_context().span_id()), ("job", SpanId::from(1)));
    }

    #[test]
    fn no_span_no_link() {
        let message = Traced::from_parts(1, Context::new());
        assert!(message.link().is_none());
        assert!(links([&message]).is_empty());
    }

    #[test]
    fn links_are_one_per_distinct_sender_in_order() {
        let batch = [
            Traced::from_parts(0, context(2)),
            Traced::from_parts(1, context(1)),
            Traced::from_parts(2, context(2)),
            Traced::from_parts(3, Context::new()),
        ];
        let ids: Vec<SpanId> = links(&batch).iter().map(|l| l.span_context.span_id()).collect();
        assert_eq!(ids, [SpanId::from(2), SpanId::from(1)]);
    }

    #[test]
    fn in_context_makes_the_call_and_every_poll_see_the_senders_context() {
        let message = Traced::from_parts(5, context(3));
        let future = message.in_context(|n| {
            let at_call = Context::current().span().span_context().span_id();
            async move { (n, at_call, Context::current().span().span_context().span_id()) }
        });
        let (n, at_call, at_poll) = futures_executor_block_on(future);
        assert_eq!((n, at_call, at_poll), (5, SpanId::from(3), SpanId::from(3)));
    }

    /// A minimal executor: the future above never waits.
    fn futures_executor_block_on<F: Future>(future: F) -> F::Output {
        use std::task::{Context as TaskContext, Poll, Waker};
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut TaskContext::from_waker(Waker::noop())) {
                return out;
            }
        }
    }
}
