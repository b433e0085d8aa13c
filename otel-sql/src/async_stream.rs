//! A stream driven by an `async` block that yields values, in safe code: what lets a pool
//! stream own the connection it acquired while it streams rows from it (the same technique as
//! sqlx's own pool executor).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::future::BoxFuture;
use futures_core::Stream;

pub(crate) struct TryAsyncStream<'a, T> {
    slot: Arc<Mutex<Option<T>>>,
    future: Option<BoxFuture<'a, Result<(), sqlx::Error>>>,
}

/// Hands values from the generating future to the stream.
pub(crate) struct Yielder<T> {
    slot: Arc<Mutex<Option<T>>>,
}

impl<T> Yielder<T> {
    /// Stores `value` and suspends the generator once, so the stream returns it.
    pub(crate) async fn yield_value(&self, value: T) {
        *lock(&self.slot) = Some(value);
        let mut yielded = false;
        std::future::poll_fn(|_| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                // No wake-up needed: the stream returns the value now, and the consumer polls
                // again for the next one.
                Poll::Pending
            }
        })
        .await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<'a, T: Send + 'a> TryAsyncStream<'a, T> {
    pub(crate) fn new<F, Fut>(f: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send + 'a,
    {
        let slot = Arc::new(Mutex::new(None));
        let future = f(Yielder {
            slot: Arc::clone(&slot),
        });
        Self {
            slot,
            future: Some(Box::pin(future)),
        }
    }
}

impl<T> Stream for TryAsyncStream<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        match future.as_mut().poll(cx) {
            Poll::Ready(result) => {
                self.future = None;
                match result {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(e))),
                }
            }
            Poll::Pending => match lock(&self.slot).take() {
                Some(v) => Poll::Ready(Some(Ok(v))),
                None => Poll::Pending,
            },
        }
    }
}
