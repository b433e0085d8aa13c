//! The HTTP client of the OTLP/HTTP exporters: reqwest (blocking, on the pipeline's export
//! threads) over rustls with the signal's TLS settings, retrying by the rules of [`super::retry`].
//!
//! The retry lives here rather than in the exporter because only here are the status code, the
//! `Retry-After` header and the transport error (a rejected certificate or a refused connection)
//! still visible; the exporter reduces them to one line of text.

use std::io::Read;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};

use super::retry::{self, RetryPolicy, Verdict};

/// The largest collector response read (the OTLP responses are a few bytes).
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// Why the last export of a signal failed, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransportFailure {
    /// Low-cardinality class for `error.type`: `tls`, `timeout`, `connection` or the status code.
    pub(crate) error_type: String,
    /// The full message, for `last_export_error()`.
    pub(crate) detail: String,
}

/// Where the HTTP client leaves the last failure of a signal for the export wrapper to report.
#[derive(Debug, Default)]
pub(crate) struct FailureSlot(Mutex<Option<TransportFailure>>);

impl FailureSlot {
    pub(crate) fn set(&self, failure: TransportFailure) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(failure);
        }
    }

    pub(crate) fn take(&self) -> Option<TransportFailure> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// `opentelemetry_http::HttpClient` with TLS settings and retries.
#[derive(Debug)]
pub(crate) struct OtlpHttpClient {
    client: reqwest::blocking::Client,
    retry: RetryPolicy,
    timeout: Duration,
    stop: Arc<AtomicBool>,
    failures: Arc<FailureSlot>,
}

impl OtlpHttpClient {
    /// Builds the client. reqwest's blocking client owns a runtime, which must not be created
    /// inside another runtime's context, so it is built on a short-lived thread.
    pub(crate) fn new(
        tls: rustls::ClientConfig,
        timeout: Duration,
        retry: RetryPolicy,
        stop: Arc<AtomicBool>,
        failures: Arc<FailureSlot>,
    ) -> Result<Self, String> {
        let client = std::thread::Builder::new()
            .name("otel-http-client-init".into())
            .spawn(move || {
                // Always our rustls configuration: reqwest is built without a crypto provider of
                // its own, so plain http:// works without touching TLS and https:// uses ours.
                reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .tls_backend_preconfigured(tls)
                    .build()
                    .map_err(|e| error_chain(&e))
            })
            .map_err(|e| format!("cannot start a thread to build the HTTP client: {e}"))?
            .join()
            .map_err(|_| "building the HTTP client panicked".to_owned())??;
        Ok(Self {
            client,
            retry,
            timeout,
            stop,
            failures,
        })
    }

    fn send_once(&self, request: &Request<Bytes>) -> Result<Response<Bytes>, (HttpError, Verdict)> {
        let mut builder = self.client.request(request.method().clone(), request.uri().to_string());
        for (name, value) in request.headers() {
            builder = builder.header(name, value);
        }
        let sent = builder.body(request.body().to_vec()).send();
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                let detail = format!("OTLP/HTTP export to {}: {}", request.uri(), error_chain(&e));
                let (error_type, verdict) = if retry::is_tls_failure(&detail) {
                    ("tls", Verdict::Permanent)
                } else if e.is_timeout() {
                    ("timeout", Verdict::Transient)
                } else {
                    ("connection", Verdict::Transient)
                };
                self.failures.set(TransportFailure {
                    error_type: error_type.into(),
                    detail: detail.clone(),
                });
                return Err((detail.into(), verdict));
            }
        };
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        if let Err(e) = response.by_ref().take(MAX_RESPONSE_BYTES).read_to_end(&mut body) {
            return Err((
                format!("reading the collector's response: {e}").into(),
                Verdict::Transient,
            ));
        }
        if !status.is_success() {
            let retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok());
            let verdict = retry::http_status_verdict(status.as_u16(), retry_after);
            self.failures.set(TransportFailure {
                error_type: status.as_u16().to_string(),
                detail: format!(
                    "OTLP/HTTP export to {}: the collector answered {status}{}",
                    request.uri(),
                    retry_after.map(|r| format!(" (Retry-After: {r})")).unwrap_or_default()
                ),
            });
            if verdict != Verdict::Permanent {
                return Err((format!("HTTP status {status}").into(), verdict));
            }
        }
        let mut out = Response::builder().status(status);
        if let Some(h) = out.headers_mut() {
            *h = headers;
        }
        out.body(Bytes::from(body)).map_err(|e| (e.into(), Verdict::Permanent))
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let deadline = Instant::now() + self.timeout;
        // A retryable status that ran out of time comes back as an error, so the exporter
        // counts the export as failed.
        retry::run(self.retry, deadline, &self.stop, || self.send_once(&request))
    }
}

/// An error and its sources on one line (reqwest's own message hides the TLS reason).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}
