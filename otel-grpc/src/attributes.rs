//! Request and response → semconv attributes: method paths, status codes, deadlines, targets and
//! metadata capture. Shared by the server and client layers.

use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::HeaderMap;
use opentelemetry::{Array, Key, KeyValue, StringValue, Value};

/// `rpc.system.name` value for gRPC.
pub(crate) const RPC_SYSTEM_GRPC: &str = "grpc";
/// The value of `rpc.method` (and the old `rpc.service` / `rpc.method`) for unrecognised methods.
pub(crate) const OTHER: &str = "_OTHER";

// Old (v1.37) names, emitted only in dual-emit mode. Written as literals because the semconv
// crate's constants for them are `#[deprecated]`.
pub(crate) const OLD_RPC_SYSTEM: &str = "rpc.system";
pub(crate) const OLD_RPC_SERVICE: &str = "rpc.service";
pub(crate) const OLD_RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
pub(crate) const OLD_RPC_SERVER_DURATION: &str = "rpc.server.duration";
pub(crate) const OLD_RPC_CLIENT_DURATION: &str = "rpc.client.duration";

/// A gRPC method from the request path `/package.Service/Method`.
#[derive(Clone, Debug)]
pub(crate) struct MethodPath {
    /// `package.Service/Method` (the path without its leading `/`) when the path has that shape;
    /// otherwise the raw path.
    pub(crate) full: Arc<str>,
    /// Byte index of the `/` between service and method in `full`, when well formed.
    pub(crate) split: Option<usize>,
}

impl MethodPath {
    pub(crate) fn parse(path: &str) -> Self {
        let trimmed = path.strip_prefix('/');
        match trimmed {
            Some(rest) => {
                let split = rest.find('/');
                let well_formed =
                    matches!(split, Some(i) if i > 0 && i + 1 < rest.len() && !rest[i + 1..].contains('/'));
                Self {
                    full: Arc::from(rest),
                    split: if well_formed { split } else { None },
                }
            }
            None => Self {
                full: Arc::from(path),
                split: None,
            },
        }
    }

    /// Whether the path has the `/service/method` shape.
    pub(crate) fn is_well_formed(&self) -> bool {
        self.split.is_some()
    }

    /// The service part (`package.Service`), when well formed.
    pub(crate) fn service(&self) -> Option<&str> {
        self.split.map(|i| &self.full[..i])
    }

    /// The method part (`Method`), when well formed.
    pub(crate) fn method(&self) -> Option<&str> {
        self.split.map(|i| &self.full[i + 1..])
    }
}

/// Reads `grpc-status` from a header map (response headers of a trailers-only response, or the
/// trailers). A value that is not a number is treated as UNKNOWN (2), as gRPC clients do.
pub(crate) fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("grpc-status")?;
    Some(
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .unwrap_or(2),
    )
}

/// The gRPC code implied by an HTTP status when no `grpc-status` is present
/// (grpc/doc/http-grpc-status-mapping.md, as tonic applies it). `200` without a status is UNKNOWN.
pub(crate) fn code_from_http_status(status: http::StatusCode) -> i32 {
    match status.as_u16() {
        400 => 13,                   // INTERNAL
        401 => 16,                   // UNAUTHENTICATED
        403 => 7,                    // PERMISSION_DENIED
        404 => 12,                   // UNIMPLEMENTED
        429 | 502 | 503 | 504 => 14, // UNAVAILABLE
        _ => 2,                      // UNKNOWN
    }
}

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`, `u`,
/// `n`). Anything else is ignored, as gRPC servers do.
pub(crate) fn parse_grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let raw = headers.get("grpc-timeout")?.as_bytes();
    let (unit, digits) = raw.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

pub(crate) use otelrs_core::conv::ServerAddress;

/// `server.address` / `server.port` from a gRPC channel target, per semconv §4.1:
///
/// | Target | `server.address` | `server.port` |
/// | --- | --- | --- |
/// | `grpc.io:50051`, `http://grpc.io:50051` | `grpc.io` | 50051 |
/// | `http://grpc.io` / `https://grpc.io` | `grpc.io` | 80 / 443 (the port tonic connects to) |
/// | `dns://1.2.3.4/grpc.io:50051`, `dns:grpc.io:50051` | `grpc.io` | 50051 |
/// | `unix:///run/x.sock`, `unix:/run/x.sock` | `/run/x.sock` | unset |
/// | anything else (`zk://...`, `ipv4:a:1,b:2`) | the whole target | unset |
pub(crate) fn parse_target(target: &str) -> ServerAddress {
    let whole = || ServerAddress::new(target, None);
    if let Some(path) = target.strip_prefix("unix://").or_else(|| target.strip_prefix("unix:")) {
        return ServerAddress::new(path, None);
    }
    if let Some(rest) = target.strip_prefix("dns://") {
        // dns://[dns-authority]/host[:port]
        return rest
            .split_once('/')
            .and_then(|(_, host)| ServerAddress::parse(host))
            .unwrap_or_else(whole);
    }
    if let Some(host) = target.strip_prefix("dns:") {
        return ServerAddress::parse(host).unwrap_or_else(whole);
    }
    for (scheme, default_port) in [("http://", 80u16), ("https://", 443u16)] {
        if let Some(rest) = target.strip_prefix(scheme) {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            return match ServerAddress::parse(authority) {
                Some(mut addr) => {
                    addr.port = addr.port.or(Some(default_port));
                    addr
                }
                None => whole(),
            };
        }
    }
    if target.contains("://") || target.contains(',') {
        return whole();
    }
    ServerAddress::parse(target).unwrap_or_else(whole)
}

/// One configured metadata key, the attribute key it is recorded under, and whether its values
/// are redacted.
#[derive(Clone, Debug)]
pub(crate) struct CapturedKey {
    pub(crate) name: HeaderName,
    pub(crate) attribute: Key,
    /// A sensitive key ([`otelrs_core::conv::sensitive`]) not declared safe to export: each value
    /// is recorded as `REDACTED`.
    pub(crate) redact: bool,
}

/// Builds the capture list for `prefix` (`rpc.request.metadata` / `rpc.response.metadata`).
/// Names are lower-cased; names that are not valid metadata keys are ignored. Sensitive keys not
/// listed in `exported` are redacted.
pub(crate) fn captured_keys<I, S>(prefix: &str, names: I, exported: &[String]) -> Vec<CapturedKey>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<CapturedKey> = Vec::new();
    for name in names {
        let lower = name.as_ref().trim().to_ascii_lowercase();
        let Ok(header) = HeaderName::from_bytes(lower.as_bytes()) else {
            continue;
        };
        if out.iter().any(|k| k.name == header) {
            continue;
        }
        out.push(CapturedKey {
            attribute: Key::from(format!("{prefix}.{lower}")),
            redact: otelrs_core::conv::sensitive::redacts(&lower, exported),
            name: header,
        });
    }
    out
}

/// The values of `key` in `headers` as a string-array attribute, or `None` if absent. Values that
/// are not visible ASCII are skipped; a redacted key records `REDACTED` per value.
pub(crate) fn metadata_attribute(headers: &HeaderMap, key: &CapturedKey) -> Option<KeyValue> {
    let values: Vec<StringValue> = headers
        .get_all(&key.name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if key.redact {
                StringValue::from(otelrs_core::conv::sensitive::REDACTED)
            } else {
                StringValue::from(v.to_owned())
            }
        })
        .collect();
    if values.is_empty() {
        None
    } else {
        Some(KeyValue::new(
            key.attribute.clone(),
            Value::Array(Array::String(values)),
        ))
    }
}

/// Whether `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list) asks for `rpc/dup`.
pub(crate) fn opt_in_requests_rpc_dup(value: &str) -> bool {
    value.split(',').any(|v| v.trim() == "rpc/dup")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths() {
        let m = MethodPath::parse("/test.v1.Echo/Unary");
        assert_eq!(&*m.full, "test.v1.Echo/Unary");
        assert!(m.is_well_formed());
        assert_eq!(m.service(), Some("test.v1.Echo"));
        assert_eq!(m.method(), Some("Unary"));
        for bad in ["/", "/svc", "/svc/", "//m", "/a/b/c", "no-slash"] {
            let m = MethodPath::parse(bad);
            assert!(!m.is_well_formed(), "{bad}");
            assert_eq!(m.service(), None);
        }
        assert_eq!(&*MethodPath::parse("/a/b/c").full, "a/b/c");
    }

    #[test]
    fn status_and_timeouts() {
        let mut h = HeaderMap::new();
        assert_eq!(grpc_status(&h), None);
        h.insert("grpc-status", "5".parse().unwrap());
        assert_eq!(grpc_status(&h), Some(5));
        h.insert("grpc-status", "x".parse().unwrap());
        assert_eq!(grpc_status(&h), Some(2));
        assert_eq!(code_from_http_status(http::StatusCode::NOT_FOUND), 12);
        assert_eq!(code_from_http_status(http::StatusCode::SERVICE_UNAVAILABLE), 14);
        assert_eq!(code_from_http_status(http::StatusCode::OK), 2);

        let t = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            parse_grpc_timeout(&h)
        };
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(t("123456789S"), None, "more than 8 digits");
        assert_eq!(t("m"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn targets_follow_the_semconv_table() {
        let a = |addr: &str, port: Option<u16>| ServerAddress::new(addr, port);
        assert_eq!(parse_target("grpc.io:50051"), a("grpc.io", Some(50051)));
        assert_eq!(parse_target("dns://1.2.3.4/grpc.io:50051"), a("grpc.io", Some(50051)));
        assert_eq!(parse_target("dns:grpc.io:443"), a("grpc.io", Some(443)));
        assert_eq!(parse_target("unix:///run/x.sock"), a("/run/x.sock", None));
        assert_eq!(parse_target("unix:/run/x.sock"), a("/run/x.sock", None));
        assert_eq!(parse_target("zk://zk.example/svc"), a("zk://zk.example/svc", None));
        assert_eq!(
            parse_target("ipv4:10.0.0.1:1,10.0.0.2:2"),
            a("ipv4:10.0.0.1:1,10.0.0.2:2", None)
        );
        assert_eq!(parse_target("http://127.0.0.1:8080"), a("127.0.0.1", Some(8080)));
        assert_eq!(parse_target("https://api.example/"), a("api.example", Some(443)));
        assert_eq!(parse_target("http://[::1]:9000"), a("::1", Some(9000)));
        assert_eq!(parse_target("localhost"), a("localhost", None));
    }

    #[test]
    fn authorities() {
        assert_eq!(
            ServerAddress::parse("example.com:443"),
            Some(ServerAddress::new("example.com", Some(443)))
        );
        assert_eq!(ServerAddress::parse("[::1]").map(|a| a.port), Some(None));
        assert_eq!(ServerAddress::parse(""), None);
        // Decided once in otelrs-core (it used to drop the whole address here): the host stays,
        // the unusable port goes, and a bare IPv6 address is kept whole.
        assert_eq!(
            ServerAddress::parse("host:notaport"),
            Some(ServerAddress::new("host", None))
        );
        assert_eq!(ServerAddress::parse("::1"), Some(ServerAddress::new("::1", None)));
        assert_eq!(parse_target("dns:::1"), ServerAddress::new("::1", None));
    }

    #[test]
    fn metadata_keys_and_values() {
        let keys = captured_keys(
            "rpc.request.metadata",
            ["X-Tenant", "x-tenant", "bad key", "x-ids"],
            &[],
        );
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].attribute.as_str(), "rpc.request.metadata.x-tenant");
        let mut h = HeaderMap::new();
        h.append("x-ids", "1".parse().unwrap());
        h.append("x-ids", "2".parse().unwrap());
        assert_eq!(metadata_attribute(&h, &keys[0]), None);
        assert_eq!(
            metadata_attribute(&h, &keys[1]),
            Some(KeyValue::new(
                "rpc.request.metadata.x-ids",
                Value::Array(Array::String(vec!["1".into(), "2".into()]))
            ))
        );
    }

    #[test]
    fn sensitive_metadata_is_redacted_unless_exported() {
        let keys = captured_keys(
            "rpc.request.metadata",
            ["Authorization", "x-api-key", "x-tenant", "cookie"],
            &["COOKIE".to_owned()],
        );
        let mut h = HeaderMap::new();
        h.append("authorization", "Bearer tok_live_1".parse().unwrap());
        h.append("authorization", "Basic YWxpY2U6cHc=".parse().unwrap());
        h.append("x-api-key", "k-1".parse().unwrap());
        h.append("x-tenant", "acme".parse().unwrap());
        h.append("cookie", "sid=1".parse().unwrap());
        let got: Vec<KeyValue> = keys.iter().filter_map(|k| metadata_attribute(&h, k)).collect();
        let strings = |v: &[&str]| Value::Array(Array::String(v.iter().map(|s| s.to_string().into()).collect()));
        assert_eq!(
            got,
            vec![
                KeyValue::new("rpc.request.metadata.authorization", strings(&["REDACTED", "REDACTED"])),
                KeyValue::new("rpc.request.metadata.x-api-key", strings(&["REDACTED"])),
                KeyValue::new("rpc.request.metadata.x-tenant", strings(&["acme"])),
                KeyValue::new("rpc.request.metadata.cookie", strings(&["sid=1"])),
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn sensitive_metadata_values_never_show(
            value in "Zq[A-Za-z0-9+/=._-]{1,30}",
            name in proptest::sample::select(vec![
                "authorization", "Authorization", "proxy-authorization", "cookie", "x-api-key", "api-key",
                "x-auth-token", "x-session-token", "x-client-secret", "x-refresh-token", "grpc-password",
            ]),
            exported in proptest::collection::vec("[a-z-]{1,12}", 0..3),
        ) {
            let keys = captured_keys("rpc.response.metadata", [name, "x-other"], &exported);
            let mut h = HeaderMap::new();
            let lower = name.to_ascii_lowercase();
            h.append(HeaderName::from_bytes(lower.as_bytes()).unwrap(), value.parse().unwrap());
            let got: Vec<KeyValue> = keys.iter().filter_map(|k| metadata_attribute(&h, k)).collect();
            proptest::prop_assert_eq!(got.len(), 1);
            let shown = format!("{got:?}");
            if exported.iter().any(|e| e.eq_ignore_ascii_case(name)) {
                proptest::prop_assert!(shown.contains(&value));
            } else {
                proptest::prop_assert!(!shown.contains("Zq"), "{shown}");
            }
        }
    }

    #[test]
    fn opt_in_parsing() {
        assert!(opt_in_requests_rpc_dup("rpc/dup"));
        assert!(opt_in_requests_rpc_dup("http, rpc/dup"));
        assert!(!opt_in_requests_rpc_dup("rpc"));
        assert!(!opt_in_requests_rpc_dup("http/dup"));
        assert!(!opt_in_requests_rpc_dup(""));
    }
}
