//! Context propagation through tonic [`MetadataMap`]s, for users who want the context carried
//! without spans or metrics: carriers, a propagation-only interceptor and a server-side
//! extraction helper.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::Context;
use otelrs_core::Instrumentation;
use tonic::metadata::{KeyRef, MetadataKey, MetadataMap, MetadataValue};

/// Writes propagation fields into a tonic [`MetadataMap`], replacing any previous value.
///
/// A key or value that is not valid ASCII metadata is skipped: telemetry never fails a call.
#[derive(Debug)]
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = MetadataValue::try_from(value) else {
            return;
        };
        self.0.insert(key, value);
    }
}

/// Reads propagation fields from a tonic [`MetadataMap`]. Every value of a repeated key is visible
/// through [`Extractor::get_all`]; values that are not visible ASCII are skipped.
#[derive(Debug, Clone, Copy)]
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                KeyRef::Ascii(k) => Some(k.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self.0.get_all(key).iter().filter_map(|v| v.to_str().ok()).collect();
        if values.is_empty() {
            None
        } else {
            Some(values)
        }
    }
}

/// A propagation-only client interceptor: injects the **current** context
/// ([`Context::current`]) into the request metadata with the global propagator. Use it with a
/// generated client's `with_interceptor` or `tonic::service::interceptor::InterceptedService`.
///
/// The interceptor runs while the call's future is polled, so the context must be current
/// there: call from code running under `.with_context(cx)` (or inside an instrumented server
/// handler). Use [`PropagationInterceptor`] to choose the propagator.
///
/// ```no_run
/// # #[tokio::main] async fn main() {
/// use tonic::service::interceptor::InterceptedService;
///
/// let channel = tonic::transport::Endpoint::from_static("http://[::1]:50051").connect_lazy();
/// // A generated client takes it as `GreeterClient::with_interceptor(channel, otelrs_grpc::propagate_context)`.
/// let service = InterceptedService::new(channel, otelrs_grpc::propagate_context);
/// # let _ = service;
/// # }
/// ```
pub fn propagate_context(mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&Context::current(), &mut MetadataInjector(request.metadata_mut()))
    });
    Ok(request)
}

/// A propagation-only interceptor with a configured propagator (from an [`Instrumentation`]);
/// see [`propagate_context`].
#[derive(Clone, Debug, Default)]
pub struct PropagationInterceptor {
    instrumentation: Instrumentation,
}

impl PropagationInterceptor {
    /// Injects with the propagator of `instrumentation` (the global one if it has none).
    pub fn new(instrumentation: Instrumentation) -> Self {
        Self { instrumentation }
    }
}

impl tonic::service::Interceptor for PropagationInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        self.instrumentation
            .inject_context(&Context::current(), &mut MetadataInjector(request.metadata_mut()));
        Ok(request)
    }
}

/// The parent context carried by a request's metadata, extracted with the global propagator on
/// top of the current context. For server handlers not behind [`GrpcServerLayer`](crate::GrpcServerLayer):
///
/// ```
/// use opentelemetry::trace::TraceContextExt;
///
/// let mut request = tonic::Request::new(());
/// request.metadata_mut().insert("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".parse().unwrap());
/// let parent = otelrs_grpc::extract_context_with(&otelrs_core::Instrumentation::new()
///     .with_propagator(otelrs_core::propagation::W3cPropagator::default()), request.metadata());
/// assert!(parent.span().span_context().is_remote());
/// ```
pub fn extract_context(metadata: &MetadataMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataExtractor(metadata)))
}

/// [`extract_context`] with the propagator of `instrumentation`.
pub fn extract_context_with(instrumentation: &Instrumentation, metadata: &MetadataMap) -> Context {
    instrumentation.extract_http_with_context(&Context::current(), metadata.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;
    use otelrs_core::propagation::W3cPropagator;
    use tonic::service::Interceptor;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn carriers_round_trip_and_skip_invalid() {
        let mut md = MetadataMap::new();
        let mut inj = MetadataInjector(&mut md);
        inj.set("traceparent", TP.to_owned());
        inj.set("bad key", "v".to_owned());
        inj.set("x", "bad\nvalue".to_owned());
        assert_eq!(md.len(), 1);
        md.append("tracestate", "a=1".parse().unwrap());
        md.append("tracestate", "b=2".parse().unwrap());
        let ex = MetadataExtractor(&md);
        assert_eq!(ex.get("traceparent"), Some(TP));
        assert_eq!(ex.get_all("tracestate"), Some(vec!["a=1", "b=2"]));
        assert_eq!(ex.get_all("missing"), None);
    }

    #[test]
    fn interceptor_injects_current_context_and_helper_extracts_it() {
        let inst = Instrumentation::new().with_propagator(W3cPropagator::default());
        let mut carrier = http::HeaderMap::new();
        carrier.insert("traceparent", TP.parse().unwrap());
        let remote = inst.extract_http_with_context(&Context::new(), &carrier);
        let mut interceptor = PropagationInterceptor::new(inst.clone());
        let request = {
            let _guard = remote.attach();
            interceptor.call(tonic::Request::new(())).unwrap()
        };
        assert_eq!(request.metadata().get("traceparent").unwrap(), TP);
        let extracted = extract_context_with(&inst, request.metadata());
        let sc = extracted.span().span_context().clone();
        assert!(sc.is_remote());
        assert_eq!(format!("{:032x}", sc.trace_id()), "0af7651916cd43dd8448eb211c80319c");

        // Nothing current: nothing injected.
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("traceparent").is_none());
    }
}
