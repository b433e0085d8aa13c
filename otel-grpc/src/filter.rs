//! Which calls are instrumented: otelrs-core's [`Filter`](otelrs_core::Filter) over the request
//! path (`/package.Service/Method`), the one filter shape of the family, and the ready-made
//! filters of gRPC.
//!
//! ```
//! use otelrs_grpc::filter::{self, Filter};
//!
//! let filter = filter::skip_health_and_reflection().and(Filter::new(|path: &str| !path.starts_with("/internal.")));
//! assert!(!filter.matches("/grpc.health.v1.Health/Check"));
//! assert!(!filter.matches("/internal.Admin/Reset"));
//! assert!(filter.matches("/shop.v1.Orders/Get"));
//! ```

/// A predicate on the request path (`/package.Service/Method`): `true` instruments the call,
/// `false` passes it through with no span and no metric (and, on the client, no context
/// injection).
pub type Filter = otelrs_core::Filter<str>;

/// Skips the gRPC health service (`grpc.health.v1.Health`) and server reflection
/// (`grpc.reflection.*`), instruments everything else.
///
/// ```
/// let filter = otelrs_grpc::filter::skip_health_and_reflection();
/// assert!(!filter.matches("/grpc.health.v1.Health/Check"));
/// assert!(!filter.matches("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
/// assert!(filter.matches("/shop.v1.Orders/Get"));
/// ```
pub fn skip_health_and_reflection() -> Filter {
    Filter::new(|path: &str| !(path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")))
}
