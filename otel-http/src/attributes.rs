//! Request → semantic-convention attributes (semconv 1.42 §2.3), shared by every server and client
//! adapter of this crate: method normalisation, URL redaction, `server.*` / `client.*` addresses
//! from forwarding headers, protocol version and opt-in header capture.
//!
//! Everything here is pure: it reads an HTTP request description and never fails. Values a peer
//! controls are parsed defensively; what cannot be parsed is omitted, never replaced by a
//! placeholder.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Method, Uri, Version};
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute::{HTTP_REQUEST_HEADER, HTTP_RESPONSE_HEADER};
use otelrs_core::conv::sensitive::redacts;

/// The environment variable that replaces the list of known HTTP methods (comma-separated,
/// case-sensitive).
pub const KNOWN_METHODS_ENV: &str = "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS";

/// `http.request.method` for a method that is not in the known list.
pub const METHOD_OTHER: &str = "_OTHER";

/// The `{method}` part of a span name for a method mapped to [`METHOD_OTHER`].
pub const SPAN_NAME_OTHER: &str = "HTTP";

/// The query keys the semantic conventions name as sensitive (the union of their lists from v1.40
/// to unreleased `main`). [`redact_query`] goes further and hides every value by default, since
/// query strings also carry passwords, tokens and e-mail addresses under other names.
pub const SENSITIVE_QUERY_KEYS: [&str; 7] = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
];

/// The replacement for credentials, query values and the values of sensitive captured headers
/// (the family's one spelling, [`otelrs_core::conv::sensitive::REDACTED`]).
pub const REDACTED: &str = otelrs_core::conv::sensitive::REDACTED;

/// The default known methods (RFC 9110, PATCH from RFC 5789 and QUERY).
pub const DEFAULT_KNOWN_METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY",
];

fn default_method_name(method: &str) -> Option<&'static str> {
    DEFAULT_KNOWN_METHODS.iter().copied().find(|m| *m == method)
}

/// The set of HTTP methods recorded as themselves; any other method becomes `_OTHER` with
/// `http.request.method_original`.
///
/// [`KnownMethods::from_env`] (what the layers use by default) reads
/// `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS`; when it is unset or empty the default list applies.
/// The variable and [`KnownMethods::new`] each **replace** the default list.
#[derive(Clone, Debug, Default)]
pub struct KnownMethods {
    custom: Option<Arc<[Arc<str>]>>,
}

/// A method after normalisation.
#[derive(Clone, Debug, PartialEq)]
pub struct NormalizedMethod {
    /// The value of `http.request.method`: the method, or `_OTHER`.
    pub value: StringValue,
    /// Whether the method was mapped to `_OTHER`.
    pub is_other: bool,
}

impl NormalizedMethod {
    /// The `{method}` part of a span name: the method, or `HTTP` for `_OTHER`.
    pub fn span_name(&self) -> &str {
        if self.is_other {
            SPAN_NAME_OTHER
        } else {
            self.value.as_str()
        }
    }
}

impl KnownMethods {
    /// The default list ([`DEFAULT_KNOWN_METHODS`]).
    pub fn defaults() -> Self {
        Self { custom: None }
    }

    /// Exactly these methods (case-sensitive), replacing the defaults.
    pub fn new<I, M>(methods: I) -> Self
    where
        I: IntoIterator<Item = M>,
        M: AsRef<str>,
    {
        let list: Vec<Arc<str>> = methods
            .into_iter()
            .map(|m| Arc::from(m.as_ref().trim()))
            .filter(|m: &Arc<str>| !m.is_empty())
            .collect();
        Self {
            custom: Some(list.into()),
        }
    }

    /// The list from `OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS` if it names at least one method,
    /// else the defaults.
    pub fn from_env() -> Self {
        match std::env::var(KNOWN_METHODS_ENV) {
            Ok(v) if v.split(',').any(|m| !m.trim().is_empty()) => Self::new(v.split(',')),
            _ => Self::defaults(),
        }
    }

    /// Normalises `method`.
    pub fn normalize(&self, method: &Method) -> NormalizedMethod {
        let raw = method.as_str();
        let known = match &self.custom {
            // Static strings for the defaults: no allocation, no reference count.
            None => default_method_name(raw).map(StringValue::from),
            Some(list) => list
                .iter()
                .find(|m| &***m == raw)
                .map(|m| match default_method_name(raw) {
                    Some(s) => StringValue::from(s),
                    None => StringValue::from(Arc::clone(m)),
                }),
        };
        match known {
            Some(value) => NormalizedMethod { value, is_other: false },
            None => NormalizedMethod {
                value: StringValue::from(METHOD_OTHER),
                is_other: true,
            },
        }
    }
}

/// `network.protocol.version` for an HTTP version: `1.0`, `1.1`, `2`, `3`; `None` otherwise.
pub fn protocol_version(version: Version) -> Option<&'static str> {
    match version {
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    }
}

/// Replaces every query value with [`REDACTED`], keeping the keys and their order
/// (`q=shoes&page=2` → `q=REDACTED&page=REDACTED`). Values hold whatever the client sent
/// (passwords, tokens, e-mail addresses under any key name), so none is recorded by default: a
/// superset of the semantic conventions' [`SENSITIVE_QUERY_KEYS`] rule.
///
/// A parameter without a value is hidden whole, as it may itself be a token: one without `=`
/// (`?eyJhbGciOi`), and one whose value is empty or only `=` (a base64 token with its padding,
/// `?dGhpcy1pcy1hLXRva2Vu=` or `?YWJj==`, reads as a key with an empty value). A legitimately
/// empty parameter (`?a=`) therefore becomes `REDACTED` as well: its key is what you give up.
/// Empty pairs (`a=1&&b=2`) stay empty. The result redacts to itself. Borrows when there is
/// nothing to hide. Every adapter's `url.query` and `url.full` go through this function.
pub fn redact_query(query: &str) -> Cow<'_, str> {
    if !query.split('&').any(|pair| query_pair(pair) != QueryPair::Keep) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len() + 8);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match query_pair(pair) {
            QueryPair::Keep => out.push_str(pair),
            QueryPair::Value(key) => {
                out.push_str(key);
                out.push('=');
                out.push_str(REDACTED);
            }
            QueryPair::Whole => out.push_str(REDACTED),
        }
    }
    Cow::Owned(out)
}

/// What [`redact_query`] does with one `&`-separated pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryPair<'a> {
    /// Nothing to hide: empty, or already redacted.
    Keep,
    /// `key=value`: the value is replaced.
    Value(&'a str),
    /// No value (no `=`, an empty value, or only `=`): the pair may be a token and is replaced.
    Whole,
}

fn query_pair(pair: &str) -> QueryPair<'_> {
    if pair.is_empty() || pair == REDACTED {
        return QueryPair::Keep;
    }
    match pair.split_once('=') {
        Some((_, REDACTED)) => QueryPair::Keep,
        Some((key, value)) if value.bytes().any(|b| b != b'=') => QueryPair::Value(key),
        _ => QueryPair::Whole,
    }
}

pub use otelrs_core::conv::address::default_port;
use otelrs_core::conv::split_authority;

// Pre-built names: looking a header up by `&str` parses and validates the name on every request.
static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The request headers the server attributes are read from, found in one pass over the header
/// map (the first value of each). One scan is cheaper than a hashed lookup per name, and most of
/// these headers are absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerHeaders<'a> {
    forwarded: Option<&'a str>,
    x_forwarded_for: Option<&'a str>,
    x_forwarded_host: Option<&'a str>,
    x_forwarded_proto: Option<&'a str>,
    host: Option<&'a str>,
    user_agent: Option<&'a http::HeaderValue>,
}

impl<'a> ServerHeaders<'a> {
    /// Reads the relevant headers of `headers`.
    pub fn scan(headers: &'a HeaderMap) -> Self {
        let mut h = ServerHeaders::default();
        let text = |v: &'a http::HeaderValue| v.to_str().ok();
        for (name, value) in headers {
            if *name == http::header::HOST {
                h.host = h.host.or_else(|| text(value));
            } else if *name == http::header::USER_AGENT {
                h.user_agent = h.user_agent.or(Some(value));
            } else if *name == http::header::FORWARDED {
                h.forwarded = h.forwarded.or_else(|| text(value));
            } else if name.as_str().len() > 10 && name.as_str().starts_with("x-forwarded-") {
                if *name == X_FORWARDED_FOR {
                    h.x_forwarded_for = h.x_forwarded_for.or_else(|| text(value));
                } else if *name == X_FORWARDED_HOST {
                    h.x_forwarded_host = h.x_forwarded_host.or_else(|| text(value));
                } else if *name == X_FORWARDED_PROTO {
                    h.x_forwarded_proto = h.x_forwarded_proto.or_else(|| text(value));
                }
            }
        }
        h
    }

    /// The `User-Agent` header.
    pub fn user_agent(&self) -> Option<&'a http::HeaderValue> {
        self.user_agent
    }

    /// The value of parameter `name` (`for`, `host`, `proto`) in the first `Forwarded` element.
    fn forwarded_param(&self, name: &str) -> Option<&'a str> {
        forwarded_param_in(self.forwarded?, name)
    }

    /// See [`server_scheme`].
    pub fn scheme(&self, uri: &Uri) -> &'static str {
        fn known(s: &str) -> Option<&'static str> {
            if s.eq_ignore_ascii_case("https") {
                Some("https")
            } else if s.eq_ignore_ascii_case("http") {
                Some("http")
            } else {
                None
            }
        }
        self.forwarded_param("proto")
            .and_then(known)
            .or_else(|| {
                self.x_forwarded_proto
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| known(v.trim()))
            })
            .or_else(|| uri.scheme_str().and_then(known))
            .unwrap_or("http")
    }

    /// See [`server_address`].
    pub fn server_address(&self, uri: &'a Uri, scheme: &str) -> Option<(&'a str, Option<u16>)> {
        let source = self
            .forwarded_param("host")
            .or_else(|| self.x_forwarded_host.and_then(|v| v.split(',').next()))
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .or(self.host)?;
        let (host, port) = split_authority(source)?;
        Some((host, port.or_else(|| default_port(scheme))))
    }

    /// See [`forwarded_client`].
    pub fn client(&self) -> Option<&'a str> {
        let from_forwarded = self.forwarded_param("for").map(strip_node_port);
        let candidate = from_forwarded.or_else(|| {
            self.x_forwarded_for
                .and_then(|v| v.split(',').next())
                .map(strip_node_port)
        })?;
        (!candidate.is_empty() && !candidate.eq_ignore_ascii_case("unknown")).then_some(candidate)
    }
}

fn header_str(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The first element of a `Forwarded` header value (RFC 7239), split at commas outside quotes.
fn first_forwarded_element(value: &str) -> &str {
    let mut in_quotes = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => return &value[..i],
            _ => {}
        }
    }
    value
}

fn forwarded_param_in<'a>(forwarded: &'a str, name: &str) -> Option<&'a str> {
    first_forwarded_element(forwarded).split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case(name) {
            return None;
        }
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        (!v.is_empty()).then_some(v)
    })
}

/// The value of parameter `name` (`for`, `host`, `proto`) in the first `Forwarded` element,
/// unquoted; `None` when absent or empty.
pub fn forwarded_param<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    ServerHeaders::scan(headers).forwarded_param(name)
}

/// `url.scheme` of a server request: `Forwarded#proto`, then `X-Forwarded-Proto`, then the
/// request URI's scheme (HTTP/2 `:scheme`), else `http`. Only `http` and `https` are accepted from
/// headers (the value lands on metrics, so a peer must not be able to choose it freely).
pub fn server_scheme(uri: &Uri, headers: &HeaderMap) -> &'static str {
    ServerHeaders::scan(headers).scheme(uri)
}

/// `server.address` and `server.port` of a server request: from `Forwarded#host`, then
/// `X-Forwarded-Host`, then the URI authority (`:authority` in HTTP/2 and HTTP/3), then `Host`.
/// Host and port come from the same source; without an explicit port the scheme's default port
/// is used.
pub fn server_address<'a>(uri: &'a Uri, headers: &'a HeaderMap, scheme: &str) -> Option<(&'a str, Option<u16>)> {
    ServerHeaders::scan(headers).server_address(uri, scheme)
}

fn strip_node_port(node: &str) -> &str {
    let node = node.trim();
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match node.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h,
        _ => node,
    }
}

/// `client.address` of a server request: `Forwarded#for`, then the first `X-Forwarded-For`
/// entry, without port; `None` when neither is present (use the peer address then).
pub fn forwarded_client(headers: &HeaderMap) -> Option<&str> {
    ServerHeaders::scan(headers).client()
}

/// A header value as text (invalid UTF-8 replaced); `None` when empty.
pub fn header_text(value: &http::HeaderValue) -> Option<StringValue> {
    header_bytes_text(value.as_bytes())
}

/// [`header_text`] for the raw bytes of a header value (frameworks with their own header types).
pub fn header_bytes_text(bytes: &[u8]) -> Option<StringValue> {
    if bytes.is_empty() {
        return None;
    }
    Some(match std::str::from_utf8(bytes) {
        Ok(s) => StringValue::from(s.to_owned()),
        Err(_) => StringValue::from(String::from_utf8_lossy(bytes).into_owned()),
    })
}

/// `url.full` of a client request, with credentials replaced by `REDACTED:REDACTED` and sensitive
/// query values by `REDACTED`. A relative URI is completed from the `Host` header; without a host
/// `None` is returned.
pub fn redacted_url_full(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = match uri.authority() {
        Some(a) => a.as_str(),
        None => header_str(headers, http::header::HOST).filter(|h| !h.is_empty())?,
    };
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    let query = uri.query();
    let mut out = String::with_capacity(scheme.len() + authority.len() + path.len() + query.map_or(0, str::len) + 24);
    out.push_str(scheme);
    out.push_str("://");
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("REDACTED:REDACTED@");
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    out.push_str(path);
    if let Some(q) = query {
        out.push('?');
        out.push_str(&redact_query(q));
    }
    Some(out)
}

/// `server.address` / `server.port` of a client request: the host of an absolute URI, else the
/// `Host` header; the port is explicit or the scheme's default.
pub fn client_server_address<'a>(uri: &'a Uri, headers: &'a HeaderMap) -> Option<(&'a str, Option<u16>)> {
    let scheme = uri.scheme_str().unwrap_or("http");
    match uri.authority() {
        Some(a) => {
            let host = a.host();
            let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
            if host.is_empty() {
                return None;
            }
            Some((host, a.port_u16().or_else(|| default_port(scheme))))
        }
        None => {
            let h = header_str(headers, http::header::HOST)?;
            let (host, port) = split_authority(h)?;
            Some((host, port.or_else(|| default_port(scheme))))
        }
    }
}

/// Opt-in capture of named headers as `http.{request|response}.header.<name>` string arrays.
///
/// The values of sensitive headers ([`otelrs_core::conv::sensitive`]: `Authorization`,
/// `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-API-Key`, names containing `token`,
/// `secret`, `session`, `auth`, ...) are captured as [`REDACTED`], one per value, unless listed
/// with [`HeaderCapture::with_sensitive_exported`]: the attribute shows that the header was sent
/// and how often, never the credential.
#[derive(Clone, Debug, Default)]
pub struct HeaderCapture {
    names: Vec<CapturedHeader>,
    /// Sensitive names the application declared safe to export (lower-cased).
    exported: Vec<String>,
}

/// One configured header: its name, its attribute key, and whether its values are redacted.
#[derive(Clone, Debug)]
struct CapturedHeader {
    name: HeaderName,
    key: Key,
    redact: bool,
}

/// Which message a [`HeaderCapture`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderSide {
    /// `http.request.header.<name>`
    Request,
    /// `http.response.header.<name>`
    Response,
}

impl HeaderCapture {
    /// Captures `names` (invalid header names are ignored; names are lower-cased). Sensitive
    /// names are captured as [`REDACTED`] values.
    pub fn new<I, N>(side: HeaderSide, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let mut capture = Self::default();
        capture.set_names(side, names);
        capture
    }

    /// Exports the values of these sensitive headers as sent (names are compared
    /// case-insensitively; names that are not sensitive are always exported). What you give up:
    /// the credentials in those headers reach the telemetry backend.
    pub fn with_sensitive_exported<I, N>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let names: Vec<String> = names.into_iter().map(|n| n.as_ref().to_owned()).collect();
        self.set_sensitive_exported(&names);
        self
    }

    /// Replaces the captured names, keeping the sensitive names declared safe to export.
    pub(crate) fn set_names<I, N>(&mut self, side: HeaderSide, names: I)
    where
        I: IntoIterator<Item = N>,
        N: AsRef<str>,
    {
        let prefix = match side {
            HeaderSide::Request => HTTP_REQUEST_HEADER,
            HeaderSide::Response => HTTP_RESPONSE_HEADER,
        };
        let mut out: Vec<CapturedHeader> = Vec::new();
        for n in names {
            let Ok(name) = HeaderName::from_bytes(n.as_ref().trim().as_bytes()) else {
                continue;
            };
            if out.iter().any(|existing| existing.name == name) {
                continue;
            }
            let key = Key::from(format!("{prefix}.{}", name.as_str()));
            let redact = redacts(name.as_str(), &self.exported);
            out.push(CapturedHeader { name, key, redact });
        }
        self.names = out;
    }

    /// Replaces the sensitive names declared safe to export.
    pub(crate) fn set_sensitive_exported<S: AsRef<str>>(&mut self, names: &[S]) {
        self.exported = names.iter().map(|n| n.as_ref().trim().to_ascii_lowercase()).collect();
        for h in &mut self.names {
            h.redact = redacts(h.name.as_str(), &self.exported);
        }
    }

    /// Whether no header is configured.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The configured header names.
    #[cfg_attr(not(feature = "actix-web"), allow(dead_code))]
    pub(crate) fn names(&self) -> impl Iterator<Item = &HeaderName> {
        self.names.iter().map(|h| &h.name)
    }

    /// Appends one attribute per configured header present in `headers`, with all its values.
    pub fn collect(&self, headers: &HeaderMap, out: &mut Vec<KeyValue>) {
        self.collect_with(
            |name| headers.get_all(name).iter().map(http::HeaderValue::as_bytes),
            out,
        );
    }

    /// [`HeaderCapture::collect`] for a framework with its own header map: `get_all` returns the
    /// raw values of the header named by its argument.
    pub fn collect_with<'h, F, I>(&self, mut get_all: F, out: &mut Vec<KeyValue>)
    where
        F: FnMut(&HeaderName) -> I,
        I: Iterator<Item = &'h [u8]>,
    {
        for h in &self.names {
            let values: Vec<StringValue> = if h.redact {
                get_all(&h.name)
                    .filter(|v| !v.is_empty())
                    .map(|_| StringValue::from(REDACTED))
                    .collect()
            } else {
                get_all(&h.name).filter_map(header_bytes_text).collect()
            };
            if !values.is_empty() {
                out.push(KeyValue::new(h.key.clone(), Value::Array(Array::String(values))));
            }
        }
    }
}

/// A peer socket address a server adapter can put in the request extensions when its framework
/// does not (plain hyper). Used for `network.peer.address` / `network.peer.port` and as the
/// fallback `client.address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The peer address from the request extensions: [`PeerAddr`], or axum's
/// `ConnectInfo<SocketAddr>` (feature `axum`).
pub(crate) fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(p) = extensions.get::<PeerAddr>() {
        return Some(p.0);
    }
    #[cfg(feature = "axum")]
    if let Some(axum::extract::ConnectInfo(addr)) = extensions.get::<axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(*addr);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_oneof, Just, Strategy as _};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn methods_normalise_case_sensitively() {
        let k = KnownMethods::defaults();
        assert_eq!(
            k.normalize(&Method::GET),
            NormalizedMethod {
                value: "GET".into(),
                is_other: false
            }
        );
        let query = Method::from_bytes(b"QUERY").unwrap();
        assert!(!k.normalize(&query).is_other);
        let lower = Method::from_bytes(b"get").unwrap();
        let n = k.normalize(&lower);
        assert_eq!(n.value.as_str(), "_OTHER");
        assert_eq!(n.span_name(), "HTTP");
        let custom = KnownMethods::new(["GET", " PURGE ", ""]);
        assert_eq!(
            custom.normalize(&Method::from_bytes(b"PURGE").unwrap()).value.as_str(),
            "PURGE"
        );
        assert!(
            custom.normalize(&Method::POST).is_other,
            "a custom list replaces the defaults"
        );
    }

    #[test]
    fn query_redaction_hides_every_value_and_keeps_keys_and_order() {
        assert_eq!(redact_query("a=1&b=2"), "a=REDACTED&b=REDACTED");
        assert_eq!(redact_query("color=blue&sig=abc"), "color=REDACTED&sig=REDACTED");
        assert_eq!(
            redact_query("X-Amz-Signature=1&x=2&AWSAccessKeyId=k&Signature=s&X-Goog-Signature=g"),
            "X-Amz-Signature=REDACTED&x=REDACTED&AWSAccessKeyId=REDACTED&Signature=REDACTED&X-Goog-Signature=REDACTED"
        );
        assert_eq!(
            redact_query("password=hunter2&email=a%40b.example&token=t"),
            "password=REDACTED&email=REDACTED&token=REDACTED"
        );
        // A parameter without a value may itself be a secret: without `=`, with an empty value
        // or with only `=` padding (a base64 token), it is hidden whole.
        assert_eq!(redact_query("eyJhbGciOi&flag="), "REDACTED&REDACTED");
        assert_eq!(
            redact_query("dGhpcy1pcy1hLXRva2Vu=&YWJj==&===&q=1"),
            "REDACTED&REDACTED&REDACTED&q=REDACTED"
        );
        assert_eq!(redact_query("a=&b="), "REDACTED&REDACTED");
        assert_eq!(redact_query("a=b=&c"), "a=REDACTED&REDACTED");
        assert!(matches!(redact_query("a=1&&b=2"), Cow::Owned(s) if s == "a=REDACTED&&b=REDACTED"));
        assert!(
            matches!(redact_query("a=REDACTED&REDACTED&&"), Cow::Borrowed(_)),
            "idempotent"
        );
        assert!(matches!(redact_query(""), Cow::Borrowed("")));
    }

    #[test]
    fn url_full_redacts_credentials_and_query() {
        let uri: Uri = "https://user:pw@example.com:8443/p/a?sig=x&k=v".parse().unwrap();
        assert_eq!(
            redacted_url_full(&uri, &HeaderMap::new()).unwrap(),
            "https://REDACTED:REDACTED@example.com:8443/p/a?sig=REDACTED&k=REDACTED"
        );
        let uri: Uri = "http://example.com".parse().unwrap();
        assert_eq!(
            redacted_url_full(&uri, &HeaderMap::new()).unwrap(),
            "http://example.com/"
        );
        let uri: Uri = "/rel?q=1".parse().unwrap();
        assert_eq!(
            redacted_url_full(&uri, &headers(&[("host", "h:81")])).unwrap(),
            "http://h:81/rel?q=REDACTED"
        );
        assert_eq!(redacted_url_full(&uri, &HeaderMap::new()), None);
    }

    #[test]
    fn server_address_precedence() {
        let uri: Uri = "/x".parse().unwrap();
        let h = headers(&[
            ("host", "internal:8080"),
            ("x-forwarded-host", "xfh.example"),
            (
                "forwarded",
                "for=1.2.3.4;host=\"fw.example:444\";proto=https, for=5.6.7.8",
            ),
        ]);
        let scheme = server_scheme(&uri, &h);
        assert_eq!(scheme, "https");
        assert_eq!(server_address(&uri, &h, scheme), Some(("fw.example", Some(444))));
        let h = headers(&[("host", "internal:8080"), ("x-forwarded-host", "xfh.example")]);
        assert_eq!(server_address(&uri, &h, "http"), Some(("xfh.example", Some(80))));
        let h = headers(&[("host", "internal:8080")]);
        assert_eq!(server_address(&uri, &h, "http"), Some(("internal", Some(8080))));
        let abs: Uri = "http://auth.example:1234/x".parse().unwrap();
        assert_eq!(server_address(&abs, &h, "http"), Some(("auth.example", Some(1234))));
        assert_eq!(server_address(&uri, &HeaderMap::new(), "http"), None);
    }

    #[test]
    fn client_address_from_forwarding_headers() {
        let h = headers(&[
            ("forwarded", "for=\"[2001:db8:cafe::17]:4711\""),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(forwarded_client(&h), Some("2001:db8:cafe::17"));
        let h = headers(&[("x-forwarded-for", " 203.0.113.195:41237 , 70.41.3.18")]);
        assert_eq!(forwarded_client(&h), Some("203.0.113.195"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(forwarded_client(&h), None);
        let h = headers(&[("x-forwarded-proto", "gopher")]);
        assert_eq!(server_scheme(&"/".parse().unwrap(), &h), "http");
    }

    #[test]
    fn sensitive_headers_are_captured_redacted_unless_exported() {
        let h = headers(&[
            ("authorization", "Bearer tok_live_1"),
            ("cookie", "sid=abc"),
            ("cookie", "theme=dark"),
            ("x-api-key", "k-123"),
            ("x-request-id", "r-1"),
        ]);
        let names = ["Authorization", "Cookie", "X-API-Key", "x-request-id"];
        let mut out = Vec::new();
        HeaderCapture::new(HeaderSide::Request, names).collect(&h, &mut out);
        let strings = |v: &[&str]| {
            Value::Array(Array::String(
                v.iter().map(|s| StringValue::from(s.to_string())).collect(),
            ))
        };
        assert_eq!(
            out,
            vec![
                KeyValue::new("http.request.header.authorization", strings(&["REDACTED"])),
                KeyValue::new("http.request.header.cookie", strings(&["REDACTED", "REDACTED"])),
                KeyValue::new("http.request.header.x-api-key", strings(&["REDACTED"])),
                KeyValue::new("http.request.header.x-request-id", strings(&["r-1"])),
            ]
        );
        // Declared safe, before or after the names are set.
        let mut out = Vec::new();
        HeaderCapture::new(HeaderSide::Request, names)
            .with_sensitive_exported(["X-Api-Key"])
            .collect(&h, &mut out);
        assert_eq!(
            out[2],
            KeyValue::new("http.request.header.x-api-key", strings(&["k-123"]))
        );
        assert_eq!(
            out[0],
            KeyValue::new("http.request.header.authorization", strings(&["REDACTED"]))
        );
        let mut capture = HeaderCapture::default().with_sensitive_exported(["cookie"]);
        capture.set_names(HeaderSide::Response, ["set-cookie", "cookie"]);
        let mut out = Vec::new();
        capture.collect(&headers(&[("set-cookie", "a=1"), ("cookie", "b=2")]), &mut out);
        assert_eq!(
            out,
            vec![
                KeyValue::new("http.response.header.set-cookie", strings(&["REDACTED"])),
                KeyValue::new("http.response.header.cookie", strings(&["b=2"])),
            ]
        );
    }

    #[test]
    fn header_capture_collects_all_values_as_string_arrays() {
        let cap = HeaderCapture::new(HeaderSide::Request, ["X-Custom", "x-custom", "bad name", "absent"]);
        let h = headers(&[("x-custom", "a"), ("x-custom", "b")]);
        let mut out = Vec::new();
        cap.collect(&h, &mut out);
        assert_eq!(
            out,
            vec![KeyValue::new(
                "http.request.header.x-custom",
                Value::Array(Array::String(vec!["a".into(), "b".into()]))
            )]
        );
    }

    /// A secret token: `Zq` (never in a key or a fixed word) and base64 characters.
    fn token() -> impl proptest::strategy::Strategy<Value = String> {
        "[A-Za-z0-9+/_-]{4,24}".prop_map(|t| format!("Zq{t}"))
    }

    /// A query parameter whose secret part (if any) carries `Zq`.
    fn pair() -> impl proptest::strategy::Strategy<Value = String> {
        prop_oneof![
            // key=value
            ("[a-y]{1,8}", token()).prop_map(|(k, v)| format!("{k}={v}")),
            // a bare token, with or without padding: `tok`, `tok=`, `tok==`
            (token(), 0usize..3).prop_map(|(t, pad)| format!("{t}{}", "=".repeat(pad))),
            // key with an empty value
            "[a-y]{1,8}".prop_map(|k| format!("{k}=")),
            // value containing `=`
            ("[a-y]{1,8}", token(), token()).prop_map(|(k, a, b)| format!("{k}={a}={b}=")),
            Just(String::new()),
        ]
    }

    proptest::proptest! {
        #[test]
        fn no_query_token_or_value_is_ever_kept(pairs in proptest::collection::vec(pair(), 0..6)) {
            let query = pairs.join("&");
            let redacted = redact_query(&query);
            proptest::prop_assert!(!redacted.contains("Zq"), "{query:?} -> {redacted:?}");
            proptest::prop_assert_eq!(redact_query(&redacted), redacted.clone(), "idempotent");
            proptest::prop_assert_eq!(redacted.split('&').count(), query.split('&').count());
            let uri: Uri = format!("https://u:p@example.com/p?{query}").parse().unwrap();
            let full = redacted_url_full(&uri, &HeaderMap::new()).unwrap();
            proptest::prop_assert!(!full.contains("Zq") && !full.contains("u:p"), "{full}");
        }

        #[test]
        fn sensitive_captured_headers_never_show(
            value in token(),
            name in proptest::sample::select(vec![
                "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
                "x-auth-token", "x-session-id", "x-client-secret", "x-csrf-token", "x-amz-security-token",
            ]),
            upper in proptest::bool::ANY,
            side in proptest::sample::select(vec![HeaderSide::Request, HeaderSide::Response]),
        ) {
            let configured = if upper { name.to_ascii_uppercase() } else { name.to_owned() };
            let mut h = HeaderMap::new();
            h.append(name, http::HeaderValue::from_str(&value).unwrap());
            h.append(name, http::HeaderValue::from_str(&format!("second {value}")).unwrap());
            let mut out = Vec::new();
            HeaderCapture::new(side, [configured.as_str(), "x-other"]).collect(&h, &mut out);
            proptest::prop_assert_eq!(out.len(), 1);
            let shown = format!("{:?}", out);
            proptest::prop_assert!(!shown.contains("Zq"), "{shown}");
            proptest::prop_assert!(shown.contains("REDACTED"));
        }
    }
}
