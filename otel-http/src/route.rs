//! Where `http.route` comes from.
//!
//! The server layer looks for a route template, in this order, and never falls back to the raw
//! path (an unmatched request gets no `http.route` and a span named `{method}`):
//!
//! 1. **Late update**: a [`RouteHandle`] the layer puts into every request's extensions. A
//!    handler or an inner layer calls [`RouteHandle::set`] to refine the route; the span is
//!    renamed and the metric uses the final value when the request ends.
//! 2. An [`HttpRoute`] in the **response** extensions (a handler or inner layer that knows the
//!    route only after routing).
//! 3. An [`HttpRoute`] in the **request** extensions, inserted by an outer layer or framework.
//! 4. axum's `MatchedPath` (feature `axum`), present when the layer is added with
//!    `Router::layer` or `Router::route_layer`; the fallback (404) has none.
//!
//! Sources 3 and 4 are known when the request starts, so they are part of the span name the
//! sampler sees.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use opentelemetry::StringValue;

/// A low-cardinality route template such as `/users/{id}`, as a request or response extension.
///
/// ```
/// use otelrs_http::HttpRoute;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(HttpRoute::new("/users/{id}"));
/// assert_eq!(req.extensions().get::<HttpRoute>().unwrap().as_str(), "/users/{id}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute(StringValue);

impl HttpRoute {
    /// A route template. It must be a template (`/users/{id}`), never a raw path.
    pub fn new(route: impl Into<Cow<'static, str>>) -> Self {
        Self(StringValue::from(route.into()))
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub(crate) fn value(&self) -> StringValue {
        self.0.clone()
    }
}

/// A handle to refine the route of the request being served, found in the request extensions of
/// every request when the server layer is built with
/// [`with_route_handle(true)`](crate::HttpServerLayer::with_route_handle).
///
/// ```
/// use otelrs_http::RouteHandle;
///
/// async fn handler(req: http::Request<()>) {
///     if let Some(route) = req.extensions().get::<RouteHandle>() {
///         route.set("/files/{*path}");
///     }
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct RouteHandle(Arc<Mutex<Option<StringValue>>>);

impl RouteHandle {
    /// A handle with no route set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets (or replaces) the route template of this request.
    pub fn set(&self, route: impl Into<Cow<'static, str>>) {
        let value = StringValue::from(route.into());
        match self.0.lock() {
            Ok(mut g) => *g = Some(value),
            Err(poisoned) => *poisoned.into_inner() = Some(value),
        }
    }

    /// The route set through this handle, if any.
    pub fn get(&self) -> Option<String> {
        self.value().map(|v| v.as_str().to_owned())
    }

    pub(crate) fn value(&self) -> Option<StringValue> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A route found at the start of a request.
pub(crate) enum StartRoute<'a> {
    /// An explicit [`HttpRoute`].
    Explicit(StringValue),
    /// A framework's matched route template (axum's `MatchedPath`), still borrowed.
    #[allow(dead_code)] // only constructed with the `axum` feature
    Matched(&'a str),
}

/// The route known when the request starts: an explicit [`HttpRoute`], else axum's
/// `MatchedPath`.
pub(crate) fn route_at_start(extensions: &http::Extensions) -> Option<StartRoute<'_>> {
    if let Some(r) = extensions.get::<HttpRoute>() {
        return Some(StartRoute::Explicit(r.value()));
    }
    #[cfg(feature = "axum")]
    if let Some(m) = extensions.get::<axum::extract::MatchedPath>() {
        return Some(StartRoute::Matched(m.as_str()));
    }
    None
}
