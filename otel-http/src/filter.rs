//! Request filters: decide which requests are instrumented at all. A filtered-out request gets no
//! span and no metrics (and no propagation work).
//!
//! A [`Filter`] returns `true` for requests to **instrument**, like the Go contrib's `otelhttp`
//! filters; combine the helpers to exclude endpoints:
//!
//! ```
//! use otelrs_http::Filter;
//!
//! // Everything except health checks and the metrics scrape endpoint, and no OPTIONS.
//! let filter = Filter::path("/healthz")
//!     .or(Filter::path_prefix("/metrics"))
//!     .or(Filter::method(http::Method::OPTIONS))
//!     .not();
//!
//! let (parts, ()) = http::Request::get("/healthz").body(()).unwrap().into_parts();
//! assert!(!filter.matches(&parts));
//! let (parts, ()) = http::Request::get("/users/1").body(()).unwrap().into_parts();
//! assert!(filter.matches(&parts));
//! ```

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::Method;

/// A predicate over the request head; `true` means "instrument this request".
#[derive(Clone)]
pub struct Filter(Arc<dyn Fn(&Parts) -> bool + Send + Sync>);

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter(..)")
    }
}

impl Filter {
    /// A filter from a closure.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&Parts) -> bool + Send + Sync + 'static,
    {
        Self(Arc::new(f))
    }

    /// Whether `request` is instrumented.
    pub fn matches(&self, request: &Parts) -> bool {
        (self.0)(request)
    }

    /// Matches requests whose path is exactly `path`.
    pub fn path(path: impl Into<String>) -> Self {
        let path = path.into();
        Self::new(move |r| r.uri.path() == path)
    }

    /// Matches requests whose path starts with `prefix`.
    pub fn path_prefix(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self::new(move |r| r.uri.path().starts_with(prefix.as_str()))
    }

    /// Matches requests with this method.
    pub fn method(method: Method) -> Self {
        Self::new(move |r| r.method == method)
    }

    /// Matches requests that have a header named `name` (any value).
    pub fn header(name: http::HeaderName) -> Self {
        Self::new(move |r| r.headers.contains_key(&name))
    }

    /// Matches what `self` does not match.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Self {
        Self::new(move |r| !self.matches(r))
    }

    /// Matches what both match.
    pub fn and(self, other: Filter) -> Self {
        Self::new(move |r| self.matches(r) && other.matches(r))
    }

    /// Matches what either matches.
    pub fn or(self, other: Filter) -> Self {
        Self::new(move |r| self.matches(r) || other.matches(r))
    }

    /// Matches what every filter matches (true for none).
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Self {
        let filters: Vec<Filter> = filters.into_iter().collect();
        Self::new(move |r| filters.iter().all(|f| f.matches(r)))
    }

    /// Matches what any filter matches (false for none).
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Self {
        let filters: Vec<Filter> = filters.into_iter().collect();
        Self::new(move |r| filters.iter().any(|f| f.matches(r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, uri: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-probe", "1")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn helpers_and_combinators() {
        let health = Filter::path("/health");
        assert!(health.matches(&parts(Method::GET, "/health?x=1")));
        assert!(!health.matches(&parts(Method::GET, "/healthz")));
        let api = Filter::path_prefix("/api/");
        assert!(api.matches(&parts(Method::GET, "/api/v1")));
        let post = Filter::method(Method::POST);
        let both = api.clone().and(post.clone());
        assert!(both.matches(&parts(Method::POST, "/api/x")));
        assert!(!both.matches(&parts(Method::GET, "/api/x")));
        assert!(api.clone().or(post.clone()).matches(&parts(Method::POST, "/other")));
        assert!(!health.clone().not().matches(&parts(Method::GET, "/health")));
        assert!(Filter::all([]).matches(&parts(Method::GET, "/")));
        assert!(!Filter::any([]).matches(&parts(Method::GET, "/")));
        assert!(Filter::any([health, api]).matches(&parts(Method::GET, "/api/")));
        assert!(Filter::header(http::HeaderName::from_static("x-probe")).matches(&parts(Method::GET, "/")));
    }
}
