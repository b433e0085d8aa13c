//! [`InSpanExt::in_span`]: a future that ends its span however it stops: completed, dropped
//! before completing (a timeout, a `select!`, an abort) or panicked.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::TraceContextExt as _;
use opentelemetry::Context;

use crate::conv::error::{ERROR_TYPE_CANCELLED, ERROR_TYPE_PANIC};
use crate::status::record_failure_ref;

pin_project_lite::pin_project! {
    /// A future run inside a span; see [`InSpanExt::in_span`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct InSpan<F> {
        #[pin]
        future: F,
        end: EndSpan,
    }
}

/// Ends the span of its context once: at completion, or when dropped before it.
#[derive(Debug)]
struct EndSpan {
    cx: Context,
    ended: bool,
}

impl Drop for EndSpan {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let span = self.cx.span();
        let error_type = if std::thread::panicking() {
            ERROR_TYPE_PANIC
        } else {
            ERROR_TYPE_CANCELLED
        };
        record_failure_ref(&span, error_type, None);
        span.end();
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task_cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let poll = {
            let _guard = this.end.cx.clone().attach();
            this.future.poll(task_cx)
        };
        if poll.is_ready() && !this.end.ended {
            this.end.ended = true;
            this.end.cx.span().end();
        }
        poll
    }
}

/// Runs a future inside a span that always ends.
pub trait InSpanExt: Future + Sized {
    /// Runs this future with `cx` current (like [`super::FutureExt::with_context`], on whichever
    /// thread polls it) and ends `cx`'s span when the future completes. When the future stops
    /// early the span still ends, following the rule of every adapter
    /// ([`crate::conv::error`]): dropped before completing (an outer `tokio::time::timeout`
    /// fired, `select!` took another branch, the task was aborted) → status `Error`,
    /// `error.type` = `cancelled`; panicked → `error.type` = `panic`. Record the outcome of a
    /// completed future (an `Err`) inside it, on `Context::current().span()`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
    /// use opentelemetry::Context;
    /// use otelrs_core::task::InSpanExt as _;
    /// # #[tokio::main] async fn main() {
    /// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    /// let tracer = provider.tracer("doc");
    /// let work = Context::current_with_span(tracer.start("slow lookup"));
    /// let lookup = async { tokio::time::sleep(Duration::from_secs(60)).await; 42 }.in_span(work);
    /// // The timeout drops the lookup: its span ends now, with error.type = cancelled.
    /// assert!(tokio::time::timeout(Duration::from_millis(10), lookup).await.is_err());
    /// # }
    /// ```
    fn in_span(self, cx: Context) -> InSpan<Self> {
        InSpan {
            future: self,
            end: EndSpan { cx, ended: false },
        }
    }
}

impl<F: Future> InSpanExt for F {}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::testing::{SpanDataExt as _, TestTelemetry};
    use opentelemetry::trace::{Status, Tracer as _, TracerProvider as _};
    use std::task::Waker;

    fn poll_once<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut TaskContext::from_waker(Waker::noop()))
    }

    #[test]
    fn ends_at_completion_with_the_context_current_while_polled() {
        let t = TestTelemetry::new();
        let tracer = t.tracer_provider.tracer("t");
        let cx = Context::current_with_span(tracer.start("work"));
        let future = std::pin::pin!(async { Context::current().span().span_context().span_id() }.in_span(cx.clone()));
        let Poll::Ready(seen) = poll_once(future) else {
            panic!("ready at once")
        };
        assert_eq!(seen, cx.span().span_context().span_id());
        drop(cx);
        t.span("work")
            .assert_status(&Status::Unset)
            .assert_no_attr("error.type");
    }

    #[test]
    fn dropped_before_completing_ends_cancelled() {
        let t = TestTelemetry::new();
        let tracer = t.tracer_provider.tracer("t");
        let cx = Context::current_with_span(tracer.start("abandoned"));
        {
            let mut future = Box::pin(std::future::pending::<()>().in_span(cx.clone()));
            assert!(poll_once(future.as_mut()).is_pending());
        }
        t.span("abandoned")
            .assert_status(&Status::error(""))
            .assert_attr("error.type", "cancelled");
    }

    #[test]
    fn a_panic_ends_it_with_error_type_panic() {
        let t = TestTelemetry::new();
        let tracer = t.tracer_provider.tracer("t");
        let cx = Context::current_with_span(tracer.start("panicked"));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut future = Box::pin(async { panic!("boom") }.in_span(cx));
            let _ = poll_once(future.as_mut());
        }));
        assert!(result.is_err());
        t.span("panicked").assert_attr("error.type", "panic");
    }
}
