//! `server.address` and `server.port`: one type and one parser for every adapter.
//!
//! The parser reads an authority as it appears in a `Host` header, a URI, a gRPC target or a
//! broker URL, and decides the awkward cases once:
//!
//! | Input | `server.address` | `server.port` |
//! | --- | --- | --- |
//! | `example.com`, `example.com:8080` | `example.com` | none, `8080` |
//! | `user:secret@example.com:8080` | `example.com` (userinfo never exported) | `8080` |
//! | `[::1]:8080`, `[::1]` | `::1` | `8080`, none |
//! | `::1`, `fe80::1` (IPv6 without brackets) | the whole address | none |
//! | `example.com:http`, `example.com:99999`, `example.com:` | `example.com` | none (a port that is not a decimal `u16` is dropped, the host kept) |
//! | `" example.com:80 "` | `example.com` | `80` (surrounding whitespace ignored) |
//! | ``, `:8080`, `user@`, `[::1` | no address | |

use opentelemetry::{KeyValue, StringValue, Value};
use opentelemetry_semantic_conventions::attribute::{SERVER_ADDRESS, SERVER_PORT};

/// The address and port of the server a client talks to, or a server is reached at. Built once
/// per connection or channel and attached to every operation: the address is a shared string, so
/// a clone is a reference-count increment, never a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddress {
    /// `server.address`: a host name, an IP address (IPv6 without brackets) or a socket path.
    pub address: StringValue,
    /// `server.port`.
    pub port: Option<u16>,
}

impl ServerAddress {
    /// An address and an optional port as they are.
    pub fn new(address: &str, port: Option<u16>) -> Self {
        Self {
            address: crate::hotpath::intern::shared_str(address),
            port,
        }
    }

    /// An address already held as an attribute string (e.g. interned with
    /// [`static_str`](crate::hotpath::intern::static_str), which clones for free).
    pub fn from_value(address: StringValue, port: Option<u16>) -> Self {
        Self { address, port }
    }

    /// Parses an authority by the rules of the [module](self); `None` when it names no host.
    pub fn parse(authority: &str) -> Option<Self> {
        split_authority(authority).map(|(host, port)| Self::new(host, port))
    }

    /// Appends `server.address` and, when known, `server.port` (an integer, as semconv types it).
    pub fn push_attributes(&self, attributes: &mut Vec<KeyValue>) {
        attributes.push(KeyValue::new(SERVER_ADDRESS, Value::String(self.address.clone())));
        if let Some(port) = self.port {
            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
    }
}

/// Splits an authority into host and port by the rules of the [module](self), borrowing from
/// the input. The common form (a host name or IPv4 address with an optional port, no brackets,
/// no surrounding whitespace) is split in one pass over the bytes; the rest takes the general
/// path.
pub fn split_authority(source: &str) -> Option<(&str, Option<u16>)> {
    let bytes = source.as_bytes();
    let mut start = 0;
    let mut colon = None;
    let mut colons = 0usize;
    let mut simple = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            // Userinfo ends at the last `@`.
            b'@' => {
                start = i + 1;
                colon = None;
                colons = 0;
                simple = true;
            }
            b':' => {
                colon = Some(i);
                colons += 1;
            }
            b'[' => simple = false,
            _ => {}
        }
    }
    let s = &source[start..];
    let edges_trimmed = s.as_bytes().first().is_some_and(|b| !b.is_ascii_whitespace())
        && s.as_bytes().last().is_some_and(|b| !b.is_ascii_whitespace());
    if !(simple && edges_trimmed) {
        return split_host_port(s);
    }
    let (host, port) = match colon {
        Some(i) if colons == 1 => (&source[start..i], Some(&source[i + 1..])),
        // More than one colon and no brackets: a bare IPv6 address.
        _ => (s, None),
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.and_then(parse_port)))
}

/// The general path of [`split_authority`] (no userinfo left): brackets and whitespace.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let s = s.trim_ascii();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        (&rest[..end], rest[end + 1..].strip_prefix(':'))
    } else {
        match s.bytes().rposition(|b| b == b':') {
            // More than one colon and no brackets: a bare IPv6 address.
            Some(i) if s[..i].contains(':') => (s, None),
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.and_then(parse_port)))
}

/// A decimal port (`u16`), without `str::parse`'s sign handling (`+80` is not a port).
pub fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// The default port of a URL scheme (`http` 80, `https` 443, `ws` 80, `wss` 443).
pub fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_documented_cases() {
        type Split<'a> = Option<(&'a str, Option<u16>)>;
        let cases: &[(&str, Split<'_>)] = &[
            ("example.com", Some(("example.com", None))),
            ("example.com:8080", Some(("example.com", Some(8080)))),
            ("user:secret@example.com:8080", Some(("example.com", Some(8080)))),
            ("a@b@example.com", Some(("example.com", None))),
            ("[::1]:8080", Some(("::1", Some(8080)))),
            ("[::1]", Some(("::1", None))),
            ("user@[::1]:9", Some(("::1", Some(9)))),
            ("::1", Some(("::1", None))),
            ("fe80::1:443", Some(("fe80::1:443", None))),
            ("example.com:http", Some(("example.com", None))),
            ("example.com:99999", Some(("example.com", None))),
            ("example.com:65535", Some(("example.com", Some(65535)))),
            ("example.com:+80", Some(("example.com", None))),
            ("example.com:", Some(("example.com", None))),
            (" example.com:80 ", Some(("example.com", Some(80)))),
            ("", None),
            (":8080", None),
            ("user@", None),
            ("[::1", None),
            ("[]:80", None),
        ];
        for (input, expected) in cases {
            assert_eq!(split_authority(input), *expected, "{input:?}");
        }
    }

    #[test]
    fn attributes_have_the_semconv_types() {
        let mut attrs = Vec::new();
        ServerAddress::parse("db.internal:5432")
            .unwrap()
            .push_attributes(&mut attrs);
        assert_eq!(
            attrs,
            vec![
                KeyValue::new("server.address", "db.internal"),
                KeyValue::new("server.port", 5432i64)
            ]
        );
        let mut attrs = Vec::new();
        ServerAddress::new("/run/pg.sock", None).push_attributes(&mut attrs);
        assert_eq!(attrs, vec![KeyValue::new("server.address", "/run/pg.sock")]);
    }

    proptest! {
        /// The fast path and the general path agree on every string of the bytes that steer the
        /// split, and the result never carries userinfo, brackets or surrounding whitespace.
        #[test]
        fn fast_and_general_paths_agree(s in "[a1:@\\[\\] .]{0,8}") {
            let fast = split_authority(&s);
            let general = split_host_port(s.rsplit('@').next().unwrap_or(&s));
            prop_assert_eq!(fast, general);
            if let Some((host, _)) = fast {
                prop_assert!(!host.is_empty());
                prop_assert!(!host.contains('@'));
            }
        }

        /// A userinfo part never reaches `server.address`.
        #[test]
        fn userinfo_is_never_exported(user in "[a-z0-9:%]{1,12}", host in "[a-z][a-z0-9.]{0,12}", port in proptest::option::of(0u16..)) {
            let authority = match port {
                Some(p) => format!("{user}@{host}:{p}"),
                None => format!("{user}@{host}"),
            };
            prop_assert_eq!(split_authority(&authority), Some((host.as_str(), port)));
        }
    }
}
