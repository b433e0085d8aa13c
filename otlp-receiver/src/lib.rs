//! An in-process OTLP receiver: a collector stand-in for integration tests and export benchmarks.
//!
//! [`Receiver::start`] binds `127.0.0.1:0` and serves OTLP on its own thread with its own tokio runtime,
//! so it works from plain `#[test]` functions and from `#[tokio::test]` alike:
//!
//! - [`Transport::Http`]: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` over HTTP/1.1 or HTTP/2, with
//!   `application/x-protobuf` or `application/json` bodies, optionally `Content-Encoding: gzip`.
//! - [`Transport::Grpc`]: the OTLP `TraceService`, `MetricsService` and `LogsService`, gzip accepted.
//!
//! Either can run over TLS, optionally requiring client certificates (mTLS); [`Pki::generate`] makes
//! the certificates at run time. The receiver counts what it got ([`Receiver::counts`]), keeps the
//! decoded requests for inspection ([`Receiver::traces`] and friends), and can be told to answer late
//! ([`ReceiverOptions::with_delay`]) or to fail the first requests ([`ReceiverOptions::with_fail_first`]).
//!
//! ```no_run
//! use std::time::Duration;
//! use otlp_receiver::{Receiver, ReceiverOptions, Transport};
//!
//! let receiver = Receiver::start(ReceiverOptions::new(Transport::Http));
//! let endpoint = receiver.endpoint(); // "http://127.0.0.1:PORT": point the exporter here
//! // ... export three spans ...
//! let (counts, ok) = receiver.wait_for(Duration::from_secs(5), |c| c.spans >= 3);
//! assert!(ok, "got {counts:?}");
//! ```
#![warn(missing_docs)]

mod pki;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

pub use pki::{Pki, PkiFiles};

/// The OTLP transport a [`Receiver`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// OTLP/gRPC (tonic), HTTP/2 only.
    Grpc,
    /// OTLP/HTTP (`/v1/traces`, `/v1/metrics`, `/v1/logs`), HTTP/1.1 and HTTP/2.
    Http,
}

/// Server-side TLS: certificate + key, and optionally a CA whose client certificates are REQUIRED (mTLS).
#[derive(Clone, Debug)]
pub struct ServerTls {
    /// Server certificate chain (PEM), leaf first.
    pub cert_pem: String,
    /// Server private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// When set, clients must present a certificate signed by this CA (PEM); otherwise no client auth.
    pub client_ca_pem: Option<String>,
}

impl ServerTls {
    /// TLS with the given certificate and key, no client authentication.
    pub fn new(cert_pem: impl Into<String>, key_pem: impl Into<String>) -> Self {
        ServerTls {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            client_ca_pem: None,
        }
    }

    /// Requires client certificates signed by `client_ca_pem` (mTLS).
    pub fn with_client_ca(mut self, client_ca_pem: impl Into<String>) -> Self {
        self.client_ca_pem = Some(client_ca_pem.into());
        self
    }
}

impl Pki {
    /// [`ServerTls`] with this PKI's server certificate, no client authentication.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls::new(self.server_cert_pem.clone(), self.server_key_pem.clone())
    }

    /// [`ServerTls`] with this PKI's server certificate, requiring client certificates signed by its CA.
    pub fn server_mtls(&self) -> ServerTls {
        self.server_tls().with_client_ca(self.ca_pem.clone())
    }
}

/// A failure answer: for HTTP a status code with an optional `Retry-After` header value (seconds), for
/// gRPC a status code (`tonic::Code as i32`).
///
/// A failure of the other transport's kind is translated: a gRPC code becomes the HTTP status of the
/// OTLP/HTTP mapping (`UNAVAILABLE` → 503, `RESOURCE_EXHAUSTED` → 429, `INVALID_ARGUMENT` → 400, ...),
/// an HTTP status becomes the gRPC code of the gRPC HTTP mapping (429/502/503/504 → `UNAVAILABLE`,
/// 400 → `INTERNAL`, 401 → `UNAUTHENTICATED`, 403 → `PERMISSION_DENIED`, 404 → `UNIMPLEMENTED`, else
/// `UNKNOWN`).
#[derive(Clone, Debug)]
pub enum Failure {
    /// An HTTP status code, with an optional `Retry-After` value in seconds.
    Http {
        /// HTTP status code, e.g. 503.
        status: u16,
        /// Value of the `Retry-After` header in seconds, if any.
        retry_after: Option<u32>,
    },
    /// A gRPC status code.
    Grpc {
        /// `tonic::Code as i32`, e.g. 14 for `UNAVAILABLE`.
        code: i32,
    },
}

/// Options for [`Receiver::start`].
#[derive(Clone, Debug)]
pub struct ReceiverOptions {
    /// Which OTLP transport to serve.
    pub transport: Transport,
    /// Serve over TLS (and optionally require client certificates).
    pub tls: Option<ServerTls>,
    /// Every export request is answered only after this delay (simulates a collector that is
    /// milliseconds away). Requests are handled concurrently (a delayed request does not block others).
    pub delay: Duration,
    /// Keep every decoded request for inspection (tests); false = only count (benchmarks).
    pub keep_requests: bool,
    /// The first `n` export requests (any signal) are answered with this failure instead of success;
    /// see [`Failure`].
    pub fail_first: Option<(u32, Failure)>,
}

impl ReceiverOptions {
    /// No TLS, zero delay, requests kept, no failures.
    pub fn new(transport: Transport) -> Self {
        ReceiverOptions {
            transport,
            tls: None,
            delay: Duration::ZERO,
            keep_requests: true,
            fail_first: None,
        }
    }

    /// Serves over TLS.
    pub fn with_tls(mut self, tls: ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Answers every export request only after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Keeps (true) or only counts (false) the decoded requests.
    pub fn with_keep_requests(mut self, keep: bool) -> Self {
        self.keep_requests = keep;
        self
    }

    /// Answers the first `n` export requests with `failure`.
    pub fn with_fail_first(mut self, n: u32, failure: Failure) -> Self {
        self.fail_first = Some((n, failure));
        self
    }
}

/// What a [`Receiver`] has received so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Successful trace export requests.
    pub trace_requests: u64,
    /// Spans in the successful trace export requests.
    pub spans: u64,
    /// Successful metrics export requests.
    pub metric_requests: u64,
    /// Data points over all metrics in the successful metrics export requests.
    pub metric_points: u64,
    /// Successful logs export requests.
    pub log_requests: u64,
    /// Log records in the successful logs export requests.
    pub log_records: u64,
    /// Requests answered with a configured [`Failure`] (not counted in the above).
    pub failed_requests: u64,
    /// Request body bytes as received on the wire (before gunzip). For gRPC this includes the 5-byte
    /// gRPC message prefixes.
    pub bytes: u64,
    /// TLS handshakes that failed (e.g. client certificate missing or signed by the wrong CA, or the
    /// client rejected our certificate). Connections closed before sending anything are not counted.
    pub tls_handshake_failures: u64,
}

/// An OTLP receiver serving on `127.0.0.1` on its own thread; stopped when dropped.
pub struct Receiver {
    addr: SocketAddr,
    tls: bool,
    state: Arc<server::State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("counts", &self.counts())
            .finish()
    }
}

impl Receiver {
    /// Binds `127.0.0.1:0` and serves on its own thread with its own multi-thread tokio runtime
    /// (2 workers), so it can be used from plain `#[test]` and from `#[tokio::test]` alike.
    ///
    /// # Panics
    ///
    /// If it cannot bind, or the TLS material in the options is invalid.
    pub fn start(options: ReceiverOptions) -> Receiver {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Receiver::bind(addr, options)
            .unwrap_or_else(|e| panic!("otlp-receiver: cannot start an OTLP receiver on {addr}: {e}"))
    }

    /// Like [`Receiver::start`], on the given address (e.g. a fixed port for a receiver run as a separate
    /// process); errors instead of panicking.
    pub fn bind(addr: SocketAddr, options: ReceiverOptions) -> std::io::Result<Receiver> {
        let tls = match &options.tls {
            Some(tls) => Some(server::tls_acceptor(tls, options.transport)?),
            None => None,
        };
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(server::State::new(&options));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("otlp-receiver-worker")
            .enable_all()
            .build()?;
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let serve_state = state.clone();
        let transport = options.transport;
        let thread = std::thread::Builder::new()
            .name(format!("otlp-receiver-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(e) => {
                            eprintln!("otlp-receiver: cannot register the listener with tokio: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = server::serve(listener, serve_state, tls, transport) => {}
                        // Resolves on send and when the sender is dropped alike.
                        _ = shutdown_rx => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Receiver {
            addr,
            tls: options.tls.is_some(),
            state,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The port the receiver listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` when TLS is on (`localhost` so that the
    /// certificate name matches; the [`Pki`] server certificate has both SANs, so either works).
    ///
    /// For OTLP/HTTP append the signal path (`/v1/traces`, ...) where the exporter wants a full URL.
    pub fn endpoint(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.port())
        } else {
            format!("http://127.0.0.1:{}", self.port())
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        self.state.counts()
    }

    /// The successful trace export requests so far (empty unless `keep_requests`).
    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.traces()
    }

    /// The successful metrics export requests so far (empty unless `keep_requests`).
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.state.metrics()
    }

    /// The successful logs export requests so far (empty unless `keep_requests`).
    pub fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        self.state.logs()
    }

    /// Polls [`Receiver::counts`] every 10 ms until `pred` holds or `timeout` passes; returns the last
    /// counts and whether `pred` held.
    ///
    /// This blocks the calling thread: in a single-threaded `#[tokio::test]` whose exporter runs on the
    /// same runtime, use [`Receiver::wait_for_async`] instead.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&Counts) -> bool) -> (Counts, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts();
            if pred(&counts) {
                return (counts, true);
            }
            if Instant::now() >= deadline {
                return (counts, false);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`Receiver::wait_for`] for async code: polls with `tokio::time::sleep`, so it must be called
    /// within a tokio runtime with time enabled.
    pub async fn wait_for_async(&self, timeout: Duration, pred: impl Fn(&Counts) -> bool) -> (Counts, bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let counts = self.counts();
            if pred(&counts) {
                return (counts, true);
            }
            if Instant::now() >= deadline {
                return (counts, false);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    /// Stops the server: its runtime is shut down (open connections are closed) and its thread joined.
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
