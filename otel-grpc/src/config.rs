//! Options shared by the server and client layers, and the state built from them once per layer.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::metrics::Histogram;
use opentelemetry_semantic_conventions::attribute::{RPC_REQUEST_METADATA, RPC_RESPONSE_METADATA};
use opentelemetry_semantic_conventions::metric::{RPC_CLIENT_CALL_DURATION, RPC_SERVER_CALL_DURATION};
use otelrs_core::hotpath::BoundInstruments;
use otelrs_core::instruments::{duration_histogram, RPC_DURATION_BUCKETS};
use otelrs_core::{AttributesFn, Instrumentation};

use crate::attributes::{
    captured_keys, opt_in_requests_rpc_dup, parse_target, CapturedKey, ServerAddress, OLD_RPC_CLIENT_DURATION,
    OLD_RPC_SERVER_DURATION,
};
use crate::filter::Filter;

/// Which semantic-convention names are emitted.
///
/// [`SemconvMode::Current`] emits the v1.42 names only. [`SemconvMode::Duplicate`] additionally
/// emits the names of v1.37 and earlier, for backends that still expect them:
///
/// | Current (always) | Also in `Duplicate` mode |
/// | --- | --- |
/// | `rpc.system.name` = `grpc` | `rpc.system` = `grpc` |
/// | `rpc.method` = `pkg.Service/Method` | `rpc.service` = `pkg.Service` on the span; on the old metric `rpc.service` and `rpc.method` = `Method` |
/// | `rpc.response.status_code` = `"NOT_FOUND"` | `rpc.grpc.status_code` = `5` (int) |
/// | `rpc.server.call.duration` / `rpc.client.call.duration` (s) | `rpc.server.duration` / `rpc.client.duration` (ms) |
///
/// The span keeps the current `rpc.method` value, because one key cannot hold both forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemconvMode {
    /// v1.42 names only.
    Current,
    /// v1.42 names and the old ones (`OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup`).
    Duplicate,
}

impl SemconvMode {
    /// `Duplicate` when the `OTEL_SEMCONV_STABILITY_OPT_IN` environment variable (a
    /// comma-separated list) contains `rpc/dup`, otherwise `Current`.
    pub fn from_env() -> Self {
        match std::env::var("OTEL_SEMCONV_STABILITY_OPT_IN") {
            Ok(v) if opt_in_requests_rpc_dup(&v) => SemconvMode::Duplicate,
            _ => SemconvMode::Current,
        }
    }
}

/// Options common to both layers (builder state).
#[derive(Clone, Default)]
pub(crate) struct Options {
    pub(crate) instrumentation: Instrumentation,
    pub(crate) filter: Option<Filter>,
    pub(crate) request_metadata: Vec<String>,
    pub(crate) response_metadata: Vec<String>,
    /// Sensitive metadata keys recorded as sent (see `with_sensitive_metadata_exported`).
    pub(crate) sensitive_exported: Vec<String>,
    pub(crate) mode: Option<SemconvMode>,
    // Server only.
    pub(crate) known_services: Option<HashSet<String>>,
    pub(crate) server_timeout: Option<Duration>,
    pub(crate) hooks: Hooks,
    // Client only.
    pub(crate) target: Option<String>,
}

/// The application's attribute hooks (server only).
#[derive(Clone, Debug, Default)]
pub(crate) struct Hooks {
    pub(crate) span: Option<AttributesFn<http::request::Parts>>,
    pub(crate) response_span: Option<AttributesFn<http::response::Parts>>,
    pub(crate) metric: Option<AttributesFn<http::request::Parts>>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("instrumentation", &self.instrumentation)
            .field("filter", &self.filter.as_ref().map(|_| "fn"))
            .field("request_metadata", &self.request_metadata)
            .field("response_metadata", &self.response_metadata)
            .field("sensitive_exported", &self.sensitive_exported)
            .field("mode", &self.mode)
            .field("known_services", &self.known_services)
            .field("server_timeout", &self.server_timeout)
            .field("target", &self.target)
            .finish()
    }
}

/// Side of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// The attributes of one duration point, as a cheap key: the method (`None` for `_OTHER`), the
/// status code, `error.type` and, on the client, the server address. All low-cardinality (unknown
/// methods collapse to `_OTHER`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct DurationKey {
    pub(crate) method: Option<Arc<str>>,
    pub(crate) code: Option<i32>,
    pub(crate) error_type: Option<std::borrow::Cow<'static, str>>,
    pub(crate) server: Option<(opentelemetry::StringValue, Option<u16>)>,
}

/// Everything a call needs, built once per layer: tracer, instruments, parsed options.
pub(crate) struct Shared {
    pub(crate) role: Role,
    pub(crate) instrumentation: Instrumentation,
    pub(crate) tracer: otelrs_core::Tracer,
    /// `rpc.{server,client}.call.duration`, recorded through handles bound per
    /// [`DurationKey`]: no per-call attribute hashing and sorting by the SDK.
    pub(crate) duration: BoundInstruments<Histogram<f64>, DurationKey, f64>,
    pub(crate) old_duration: Option<Histogram<f64>>,
    pub(crate) filter: Option<Filter>,
    pub(crate) request_metadata: Vec<CapturedKey>,
    pub(crate) response_metadata: Vec<CapturedKey>,
    pub(crate) known_services: Option<HashSet<String>>,
    pub(crate) server_timeout: Option<Duration>,
    pub(crate) hooks: Hooks,
    pub(crate) target: Option<ServerAddress>,
    /// Span names (`package.Service/Method`) interned as `&'static str`, bounded.
    pub(crate) names: otelrs_core::hotpath::intern::Interner<&'static str>,
}

/// How many distinct method names are interned per layer.
const NAME_CAPACITY: usize = 1024;

impl Shared {
    pub(crate) fn new(role: Role, options: &Options) -> Self {
        let (tracer, meter) = options
            .instrumentation
            .tracer_and_meter(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
        let mode = options.mode.unwrap_or_else(SemconvMode::from_env);
        let (name, description, old_name, old_description) = match role {
            Role::Server => (
                RPC_SERVER_CALL_DURATION,
                "Measures the duration of inbound remote procedure calls.",
                OLD_RPC_SERVER_DURATION,
                "Measures the duration of inbound RPC.",
            ),
            Role::Client => (
                RPC_CLIENT_CALL_DURATION,
                "Measures the duration of outbound remote procedure calls.",
                OLD_RPC_CLIENT_DURATION,
                "Measures the duration of outbound RPC.",
            ),
        };
        let duration = BoundInstruments::new(
            duration_histogram(&meter, name, description, &RPC_DURATION_BUCKETS),
            options.instrumentation.bound_instrument_capacity(),
        );
        let old_duration = (mode == SemconvMode::Duplicate).then(|| {
            // The old metrics were in milliseconds; the SDK's default boundaries are meant for ms.
            meter
                .f64_histogram(old_name)
                .with_unit("ms")
                .with_description(old_description)
                .build()
        });
        Self {
            role,
            instrumentation: options.instrumentation.clone(),
            tracer,
            duration,
            old_duration,
            filter: options.filter.clone(),
            request_metadata: captured_keys(
                RPC_REQUEST_METADATA,
                &options.request_metadata,
                &options.sensitive_exported,
            ),
            response_metadata: captured_keys(
                RPC_RESPONSE_METADATA,
                &options.response_metadata,
                &options.sensitive_exported,
            ),
            known_services: options.known_services.clone(),
            server_timeout: options.server_timeout,
            hooks: options.hooks.clone(),
            target: options.target.as_deref().map(parse_target),
            names: otelrs_core::hotpath::intern::Interner::new(NAME_CAPACITY),
        }
    }

    /// The span name for a recognised method, without allocating once the method was seen.
    pub(crate) fn span_name(&self, full_method: &str) -> std::borrow::Cow<'static, str> {
        otelrs_core::hotpath::intern::static_name(&self.names, &[full_method])
    }

    pub(crate) fn dup(&self) -> bool {
        self.old_duration.is_some()
    }

    pub(crate) fn instrumented(&self, path: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(path))
    }
}
