//! Request filters: decide which requests are instrumented at all. A filtered-out request gets no
//! span and no metrics (and no propagation work).
//!
//! A [`Filter`] returns `true` for requests to **instrument**, like the Go contrib's `otelhttp`
//! filters. It is otelrs-core's [`Filter`](otelrs_core::Filter) over the request head
//! (`http::request::Parts`), the one filter shape of the family; this module adds the HTTP
//! constructors. Combine them to exclude endpoints:
//!
//! ```
//! use otelrs_http::filter;
//!
//! // Everything except health checks and the metrics scrape endpoint, and no OPTIONS.
//! let filter = filter::path("/healthz")
//!     .or(filter::path_prefix("/metrics"))
//!     .or(filter::method(http::Method::OPTIONS))
//!     .not();
//!
//! let (parts, ()) = http::Request::get("/healthz").body(()).unwrap().into_parts();
//! assert!(!filter.matches(&parts));
//! let (parts, ()) = http::Request::get("/users/1").body(()).unwrap().into_parts();
//! assert!(filter.matches(&parts));
//! let layer = otelrs_http::HttpServerLayer::new().with_filter(filter);
//! ```

use http::request::Parts;
use http::Method;

/// Which HTTP requests are instrumented: a predicate over the request head; see the
/// [module docs](self).
pub type Filter = otelrs_core::Filter<Parts>;

/// Matches requests whose path is exactly `path` (the query is ignored).
pub fn path(path: impl Into<String>) -> Filter {
    let path = path.into();
    Filter::new(move |r| r.uri.path() == path)
}

/// Matches requests whose path starts with `prefix`.
pub fn path_prefix(prefix: impl Into<String>) -> Filter {
    let prefix = prefix.into();
    Filter::new(move |r| r.uri.path().starts_with(prefix.as_str()))
}

/// Matches requests with this method.
pub fn method(method: Method) -> Filter {
    Filter::new(move |r| r.method == method)
}

/// Matches requests that carry a header named `name`.
pub fn header(name: http::HeaderName) -> Filter {
    Filter::new(move |r| r.headers.contains_key(&name))
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
    fn constructors() {
        let health = path("/health");
        assert!(health.matches(&parts(Method::GET, "/health?x=1")));
        assert!(!health.matches(&parts(Method::GET, "/healthz")));
        let api = path_prefix("/api/");
        assert!(api.matches(&parts(Method::GET, "/api/v1")));
        assert!(!api.matches(&parts(Method::GET, "/apiv1")));
        let post = method(Method::POST);
        let both = api.clone().and(post.clone());
        assert!(both.matches(&parts(Method::POST, "/api/x")));
        assert!(!both.matches(&parts(Method::GET, "/api/x")));
        assert!(!health.not().matches(&parts(Method::GET, "/health")));
        assert!(header(http::HeaderName::from_static("x-probe")).matches(&parts(Method::GET, "/")));
        assert!(!header(http::HeaderName::from_static("x-other")).matches(&parts(Method::GET, "/")));
    }
}
