//! [`Filter`]: which requests an adapter instruments, the one shape every adapter takes.

use std::fmt;
use std::sync::Arc;

/// A predicate over one kind of request that decides whether an adapter instruments it: `true`
/// instruments (span and metrics), `false` records nothing for that request.
///
/// Every adapter takes a `Filter` of its request kind through its `with_filter` setter:
/// `Filter<http::request::Parts>` for HTTP servers, `Filter<str>` over the gRPC path
/// (`/package.Service/Method`) for gRPC, `Filter<str>` over the command name for Redis. Adapters
/// add ready-made constructors for their kind (`otelrs_http::filter::path`,
/// `otelrs_grpc::filter::skip_health_and_reflection`, ...).
///
/// Cheap to clone (one `Arc`); combinators build new filters and never change the originals.
///
/// ```
/// use otelrs_core::Filter;
///
/// let not_ping = Filter::<str>::new(|command| command != "PING");
/// let not_info = Filter::<str>::new(|command| command != "INFO");
/// let filter = not_ping.and(not_info);
/// assert!(filter.matches("GET"));
/// assert!(!filter.matches("PING"));
/// assert!(Filter::<str>::all([]).matches("ANY"));
/// ```
pub struct Filter<T: ?Sized>(Arc<dyn Fn(&T) -> bool + Send + Sync>);

impl<T: ?Sized> Clone for Filter<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> fmt::Debug for Filter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter(..)")
    }
}

impl<T: ?Sized + 'static> Filter<T> {
    /// A filter from a predicate: `true` instruments the request.
    pub fn new<F>(predicate: F) -> Self
    where
        F: Fn(&T) -> bool + Send + Sync + 'static,
    {
        Self(Arc::new(predicate))
    }

    /// Whether `request` is instrumented.
    #[inline]
    pub fn matches(&self, request: &T) -> bool {
        (self.0)(request)
    }

    /// Instruments what this filter skips and skips what it instruments.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self::new(move |r| !self.matches(r))
    }

    /// Instruments what both filters instrument.
    pub fn and(self, other: Self) -> Self {
        Self::new(move |r| self.matches(r) && other.matches(r))
    }

    /// Instruments what either filter instruments.
    pub fn or(self, other: Self) -> Self {
        Self::new(move |r| self.matches(r) || other.matches(r))
    }

    /// Instruments what every filter instruments (everything, for none).
    pub fn all(filters: impl IntoIterator<Item = Self>) -> Self {
        let filters: Vec<Self> = filters.into_iter().collect();
        Self::new(move |r| filters.iter().all(|f| f.matches(r)))
    }

    /// Instruments what any filter instruments (nothing, for none).
    pub fn any(filters: impl IntoIterator<Item = Self>) -> Self {
        let filters: Vec<Self> = filters.into_iter().collect();
        Self::new(move |r| filters.iter().any(|f| f.matches(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinators() {
        let get = Filter::<str>::new(|c| c == "GET");
        let set = Filter::<str>::new(|c| c == "SET");
        assert!(get.matches("GET"));
        assert!(!get.clone().not().matches("GET"));
        assert!(get.clone().or(set.clone()).matches("SET"));
        assert!(!get.clone().and(set.clone()).matches("SET"));
        assert!(Filter::any([get.clone(), set.clone()]).matches("GET"));
        assert!(!Filter::<str>::any([]).matches("GET"));
        assert!(!Filter::all([get, set]).matches("GET"));
        assert!(Filter::<str>::all([]).matches("GET"));
    }

    #[test]
    fn sized_requests() {
        let even = Filter::<u32>::new(|n| n % 2 == 0);
        assert!(even.matches(&4));
        assert!(!even.matches(&3));
    }
}
