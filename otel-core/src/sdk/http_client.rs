//! The HTTP client of the OTLP/HTTP exporters: HTTP/1.1 over `std` sockets and rustls, on the
//! pipeline's export threads, retrying by the rules of [`super::retry`].
//!
//! Why its own client: the exporters need only `POST` with a body and a short answer, and a
//! general-purpose client would either pull in a second crypto provider or require a
//! process-wide default one (reqwest without a provider of its own makes every reqwest client in
//! the process panic until one is installed). This one uses the rustls configuration built for
//! the signal and nothing global. The retry lives here because only here are the status code, the
//! `Retry-After` header and the transport error (a rejected certificate, a refused connection)
//! still visible; the exporter reduces them to one line of text.
//!
//! Connections are kept alive and reused (one per export in flight); a reused connection the
//! collector closed while idle is replaced once without counting as a retry. No proxy support.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use rustls_pki_types::ServerName;

use super::retry::{self, RetryPolicy, Verdict};

/// The largest collector response read (OTLP responses are a few bytes).
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Idle connections kept per client.
const MAX_IDLE: usize = 16;

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

/// A plain or TLS connection.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Where requests go, parsed from the endpoint URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
    /// `Host` header value.
    authority: String,
    path: String,
}

impl Target {
    fn parse(uri: &http::Uri) -> Result<Self, String> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            other => return Err(format!("unsupported URL scheme {other:?} in {uri}")),
        };
        let host = uri.host().ok_or_else(|| format!("no host in {uri}"))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
        // Userinfo never goes on the wire in a Host header.
        let authority = authority.rsplit('@').next().unwrap_or(authority).to_owned();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").to_owned();
        Ok(Self {
            tls,
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port,
            authority,
            path,
        })
    }
}

/// A failed attempt: the error, whether another attempt may help, and its class.
struct AttemptError {
    message: String,
    verdict: Verdict,
    error_type: String,
}

impl AttemptError {
    fn io(what: &str, e: &io::Error) -> Self {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Self {
                message: format!("TLS: {tls}"),
                verdict: Verdict::Permanent,
                error_type: "tls".into(),
            };
        }
        let timeout = matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock);
        Self {
            message: format!("{what}: {e}"),
            verdict: Verdict::Transient,
            error_type: if timeout { "timeout" } else { "connection" }.into(),
        }
    }
}

/// `opentelemetry_http::HttpClient` with TLS settings and retries.
pub(crate) struct OtlpHttpClient {
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
    retry: RetryPolicy,
    stop: Arc<AtomicBool>,
    failures: Arc<FailureSlot>,
    idle: Mutex<Vec<(Target, Stream)>>,
}

impl std::fmt::Debug for OtlpHttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpHttpClient")
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpClient {
    pub(crate) fn new(
        tls: rustls::ClientConfig,
        timeout: Duration,
        retry: RetryPolicy,
        stop: Arc<AtomicBool>,
        failures: Arc<FailureSlot>,
    ) -> Self {
        Self {
            tls: Arc::new(tls),
            timeout,
            retry,
            stop,
            failures,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn connect(&self, target: &Target, deadline: Instant) -> Result<Stream, AttemptError> {
        let remaining = |what: &str| {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| AttemptError::io(what, &io::Error::from(io::ErrorKind::TimedOut)))
        };
        let addrs = (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map_err(|e| AttemptError::io(&format!("resolving {}", target.host), &e))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address found");
        let mut socket = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, remaining("connecting")?) {
                Ok(s) => {
                    socket = Some(s);
                    break;
                }
                Err(e) => last = e,
            }
        }
        let socket = socket.ok_or_else(|| AttemptError::io(&format!("connecting to {}", target.authority), &last))?;
        let _ = socket.set_nodelay(true);
        if !target.tls {
            return Ok(Stream::Plain(socket));
        }
        let name = ServerName::try_from(target.host.clone()).map_err(|e| AttemptError {
            message: format!("TLS: {:?} is not a valid server name: {e}", target.host),
            verdict: Verdict::Permanent,
            error_type: "tls".into(),
        })?;
        let conn = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| AttemptError {
            message: format!("TLS: {e}"),
            verdict: Verdict::Permanent,
            error_type: "tls".into(),
        })?;
        let mut stream = rustls::StreamOwned::new(conn, socket);
        let limit = remaining("TLS handshake")?;
        let _ = stream.sock.set_read_timeout(Some(limit));
        let _ = stream.sock.set_write_timeout(Some(limit));
        // Handshake now, so that a rejected certificate is reported as such.
        while stream.conn.is_handshaking() {
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| AttemptError::io("TLS handshake", &e))?;
        }
        Ok(Stream::Tls(Box::new(stream)))
    }

    fn take_idle(&self, target: &Target) -> Option<Stream> {
        let mut idle = self.idle.lock().ok()?;
        let i = idle.iter().position(|(t, _)| t == target)?;
        Some(idle.swap_remove(i).1)
    }

    fn put_idle(&self, target: Target, stream: Stream) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((target, stream));
            }
        }
    }

    /// One exchange on `stream`. `Ok(None)` means the connection was closed before any response
    /// byte (an idle connection the server dropped): worth one fresh connection.
    fn exchange(
        &self,
        stream: &mut Stream,
        target: &Target,
        request: &Request<Bytes>,
        deadline: Instant,
    ) -> Result<Option<(Response<Bytes>, bool)>, AttemptError> {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| AttemptError::io("sending", &io::Error::from(io::ErrorKind::TimedOut)))?;
        let _ = stream.socket().set_read_timeout(Some(remaining));
        let _ = stream.socket().set_write_timeout(Some(remaining));
        let body = request.body();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            request.method(),
            target.path,
            target.authority,
            body.len()
        )
        .into_bytes();
        for (name, value) in request.headers() {
            if name == http::header::HOST || name == http::header::CONTENT_LENGTH {
                continue;
            }
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let written = stream
            .write_all(&head)
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush());
        if let Err(e) = written {
            return match e.kind() {
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                    Ok(None)
                }
                _ => Err(AttemptError::io("sending", &e)),
            };
        }
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        match reader.read_line(&mut status_line) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(None),
            Err(e) => return Err(AttemptError::io("reading the response", &e)),
        }
        let response =
            read_response(&mut reader, &status_line).map_err(|e| AttemptError::io("reading the response", &e))?;
        Ok(Some(response))
    }

    fn send_once(&self, request: &Request<Bytes>, deadline: Instant) -> Result<Response<Bytes>, (HttpError, Verdict)> {
        let fail = |e: AttemptError, uri: &http::Uri| {
            let detail = format!("OTLP/HTTP export to {uri}: {}", e.message);
            self.failures.set(TransportFailure {
                error_type: e.error_type,
                detail: detail.clone(),
            });
            Err((detail.into(), e.verdict))
        };
        let uri = request.uri();
        let target = match Target::parse(uri) {
            Ok(t) => t,
            Err(message) => {
                return fail(
                    AttemptError {
                        message,
                        verdict: Verdict::Permanent,
                        error_type: "configuration".into(),
                    },
                    uri,
                )
            }
        };
        let mut reused = self.take_idle(&target);
        let (response, keep_alive, stream) = loop {
            let fresh = reused.is_none();
            let mut stream = match reused.take() {
                Some(s) => s,
                None => match self.connect(&target, deadline) {
                    Ok(s) => s,
                    Err(e) => return fail(e, uri),
                },
            };
            match self.exchange(&mut stream, &target, request, deadline) {
                Ok(Some((response, keep_alive))) => break (response, keep_alive, stream),
                // A stale pooled connection: once more on a new one.
                Ok(None) if !fresh => continue,
                Ok(None) => {
                    let closed =
                        io::Error::new(io::ErrorKind::ConnectionAborted, "the collector closed the connection");
                    return fail(AttemptError::io("reading the response", &closed), uri);
                }
                Err(e) => return fail(e, uri),
            }
        };
        if keep_alive {
            self.put_idle(target, stream);
        }
        let status = response.status();
        if !status.is_success() {
            let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok());
            let verdict = retry::http_status_verdict(status.as_u16(), retry_after);
            self.failures.set(TransportFailure {
                error_type: status.as_u16().to_string(),
                detail: format!(
                    "OTLP/HTTP export to {uri}: the collector answered {status}{}",
                    retry_after.map(|r| format!(" (Retry-After: {r})")).unwrap_or_default()
                ),
            });
            if verdict != Verdict::Permanent {
                return Err((format!("HTTP status {status}").into(), verdict));
            }
        }
        Ok(response)
    }
}

/// Reads headers and body after the status line; returns the response and whether the
/// connection may be reused.
fn read_response(reader: &mut impl BufRead, status_line: &str) -> io::Result<(Response<Bytes>, bool)> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut parts = status_line.split_ascii_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(invalid("not an HTTP/1.x response"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("no status code"))?;
    let mut builder = Response::builder().status(status);
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = version == "HTTP/1.1";
    let mut header_bytes = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Err(invalid("the response ended inside its headers"));
        }
        header_bytes += line.len();
        if header_bytes > 64 * 1024 {
            return Err(invalid("response headers too large"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid("malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse::<usize>().map_err(|_| invalid("bad Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.contains("close") {
                keep_alive = false;
            } else if v.contains("keep-alive") {
                keep_alive = true;
            }
        }
        builder = builder.header(name.trim(), value);
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size_text = size_line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_RESPONSE_BYTES {
                return Err(invalid("response body too large"));
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf)?;
        }
    } else if let Some(n) = content_length {
        if n > MAX_RESPONSE_BYTES {
            return Err(invalid("response body too large"));
        }
        body.resize(n, 0);
        reader.read_exact(&mut body)?;
    } else if status >= 200 && status != 204 && status != 304 {
        // Delimited by the end of the connection.
        reader.take(MAX_RESPONSE_BYTES as u64).read_to_end(&mut body)?;
        keep_alive = false;
    }
    let response = builder
        .body(Bytes::from(body))
        .map_err(|e| invalid(&format!("malformed response: {e}")))?;
    Ok((response, keep_alive))
}

#[async_trait::async_trait]
impl HttpClient for OtlpHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let deadline = Instant::now() + self.timeout;
        // A retryable status that ran out of time comes back as an error, so the exporter
        // counts the export as failed.
        retry::run(self.retry, deadline, &self.stop, || self.send_once(&request, deadline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> io::Result<(Response<Bytes>, bool)> {
        let mut reader = BufReader::new(text.as_bytes());
        let mut status = String::new();
        reader.read_line(&mut status)?;
        read_response(&mut reader, &status)
    }

    #[test]
    fn responses_are_framed_by_length_chunks_or_close() {
        let (r, keep) = parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\nokEXTRA").unwrap();
        assert_eq!((r.status().as_u16(), r.body().as_ref(), keep), (200, &b"ok"[..], true));
        assert_eq!(r.headers()["retry-after"], "3");
        let (r, keep) =
            parse("HTTP/1.1 503 No\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(
            (r.status().as_u16(), r.body().as_ref(), keep),
            (503, &b"abcde"[..], true)
        );
        let (r, keep) = parse("HTTP/1.0 200 OK\r\n\r\nto the end").unwrap();
        assert_eq!((r.body().as_ref(), keep), (&b"to the end"[..], false));
        let (_, keep) = parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(!keep);
    }

    #[test]
    fn malformed_responses_are_errors_not_panics() {
        for bad in [
            "SMTP 220 hello\r\n\r\n",
            "HTTP/1.1 abc\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: y",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn targets_come_from_the_endpoint_url() {
        let t = Target::parse(&"https://user:pw@collector.example:4318/v1/traces?x=1".parse().unwrap()).unwrap();
        assert_eq!(
            t,
            Target {
                tls: true,
                host: "collector.example".into(),
                port: 4318,
                authority: "collector.example:4318".into(),
                path: "/v1/traces?x=1".into(),
            }
        );
        let t = Target::parse(&"http://[::1]/v1/logs".parse().unwrap()).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.authority.as_str()), ("::1", 80, "[::1]"));
        assert!(Target::parse(&"ftp://x/".parse().unwrap()).is_err());
    }
}
