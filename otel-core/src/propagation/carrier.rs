//! Carriers: adapters between header collections and the `Injector` / `Extractor` traits.

use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;

use http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};

/// What [`HeaderExtractor::get_all`] reports for a header line that is not visible ASCII: a
/// control character, which no propagation format accepts.
pub const INVALID_HEADER_VALUE: &str = "\u{1}";

/// Reads propagation fields from an [`http::HeaderMap`].
///
/// Unlike a plain `get`, [`Extractor::get_all`] returns every line of a repeated header, which the
/// W3C rules need (two `traceparent` lines are invalid; `tracestate` lines are concatenated).
/// `get` skips values that are not visible ASCII; `get_all` reports such a line as
/// [`INVALID_HEADER_VALUE`] so it still counts (a garbled second `traceparent` line still
/// invalidates the first) and never parses as a valid value.
#[derive(Debug, Clone, Copy)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .get_all(key)
            .iter()
            .map(|v| v.to_str().unwrap_or(INVALID_HEADER_VALUE))
            .collect();
        if values.is_empty() {
            None
        } else {
            Some(values)
        }
    }
}

/// Writes propagation fields into an [`http::HeaderMap`], replacing any previous value.
///
/// A key or value that is not a valid header is skipped: telemetry never fails a request.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let Ok(name) = HeaderName::from_bytes(key.as_bytes()) else {
            return;
        };
        let Ok(value) = HeaderValue::try_from(value) else {
            return;
        };
        self.0.insert(name, value);
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// A string-keyed header collection, as message brokers carry them (Kafka record headers, AMQP
/// header tables, NATS headers, or a plain map).
///
/// Implement it (on a newtype, if the collection is a foreign type) and use [`MessageExtractor`]
/// and [`MessageInjector`] to propagate context through it. Keys are matched ASCII
/// case-insensitively, because brokers differ on case and W3C field names are lowercase.
pub trait MessageHeaders {
    /// Calls `f` with every value stored under `key`, in order.
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str));

    /// All header names.
    fn header_names(&self) -> Vec<&str>;
}

/// A writable string-keyed header collection.
pub trait MessageHeadersMut {
    /// Stores `value` under `key`, replacing any previous value of that key.
    fn set_value(&mut self, key: &str, value: String);
}

/// [`Extractor`] over any [`MessageHeaders`].
#[derive(Debug)]
pub struct MessageExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: MessageHeaders + ?Sized> Extractor for MessageExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        let mut first = None;
        self.0.for_each_value(key, &mut |v| {
            if first.is_none() {
                first = Some(v);
            }
        });
        first
    }

    fn keys(&self) -> Vec<&str> {
        self.0.header_names()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let mut all = Vec::new();
        self.0.for_each_value(key, &mut |v| all.push(v));
        if all.is_empty() {
            None
        } else {
            Some(all)
        }
    }
}

/// [`Injector`] over any [`MessageHeadersMut`].
#[derive(Debug)]
pub struct MessageInjector<'a, H: ?Sized>(pub &'a mut H);

impl<H: MessageHeadersMut + ?Sized> Injector for MessageInjector<'_, H> {
    fn set(&mut self, key: &str, value: String) {
        self.0.set_value(key, value);
    }
}

impl<S: BuildHasher> MessageHeaders for HashMap<String, String, S> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        if let Some(v) = self.get(key) {
            f(v);
            return;
        }
        for (k, v) in self {
            if k.eq_ignore_ascii_case(key) {
                f(v);
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }
}

impl<S: BuildHasher> MessageHeadersMut for HashMap<String, String, S> {
    fn set_value(&mut self, key: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(key));
        self.insert(key.to_owned(), value);
    }
}

impl MessageHeaders for BTreeMap<String, String> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for (k, v) in self {
            if k.eq_ignore_ascii_case(key) {
                f(v);
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.keys().map(String::as_str).collect()
    }
}

impl MessageHeadersMut for BTreeMap<String, String> {
    fn set_value(&mut self, key: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(key));
        self.insert(key.to_owned(), value);
    }
}

/// Ordered header lists keep repeated keys: every value of a key is visible through `get_all`.
impl MessageHeaders for Vec<(String, String)> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for (k, v) in self {
            if k.eq_ignore_ascii_case(key) {
                f(v);
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl MessageHeadersMut for Vec<(String, String)> {
    fn set_value(&mut self, key: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value));
    }
}

/// Byte-valued header lists (e.g. Kafka record headers): values that are not UTF-8 are skipped.
impl MessageHeaders for Vec<(String, Vec<u8>)> {
    fn for_each_value<'a>(&'a self, key: &str, f: &mut dyn FnMut(&'a str)) {
        for (k, v) in self {
            if k.eq_ignore_ascii_case(key) {
                if let Ok(s) = std::str::from_utf8(v) {
                    f(s);
                }
            }
        }
    }

    fn header_names(&self) -> Vec<&str> {
        self.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl MessageHeadersMut for Vec<(String, Vec<u8>)> {
    fn set_value(&mut self, key: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.push((key.to_owned(), value.into_bytes()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_extractor_sees_every_line() {
        let mut h = http::HeaderMap::new();
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("tracestate", HeaderValue::from_static("b=2"));
        h.append("x", HeaderValue::from_bytes(b"\xff").unwrap());
        let e = HeaderExtractor(&h);
        assert_eq!(e.get("tracestate"), Some("a=1"));
        assert_eq!(e.get("TraceState"), Some("a=1"));
        assert_eq!(e.get_all("tracestate"), Some(vec!["a=1", "b=2"]));
        assert_eq!(e.get("x"), None, "non-ASCII values are skipped by get");
        assert_eq!(
            e.get_all("x"),
            Some(vec![INVALID_HEADER_VALUE]),
            "but still counted by get_all"
        );
        assert_eq!(e.get_all("missing"), None);
        let mut keys = e.keys();
        keys.sort_unstable();
        assert_eq!(keys, vec!["tracestate", "x"]);
    }

    #[test]
    fn header_injector_replaces_and_skips_invalid() {
        let mut h = http::HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static("old"));
        let mut inj = HeaderInjector(&mut h);
        inj.set("traceparent", "new".into());
        inj.set("bad header", "v".into());
        inj.set("ok", "bad\nvalue".into());
        assert_eq!(h.get_all("traceparent").iter().count(), 1);
        assert_eq!(h.get("traceparent").unwrap(), "new");
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn message_carriers_match_case_insensitively() {
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert("TraceParent".into(), "v1".into());
        assert_eq!(MessageExtractor(&map).get("traceparent"), Some("v1"));
        MessageInjector(&mut map).set("traceparent", "v2".into());
        assert_eq!(map.len(), 1);
        assert_eq!(map.get("traceparent").map(String::as_str), Some("v2"));

        let list = vec![
            ("tracestate".to_string(), "a=1".to_string()),
            ("other".to_string(), "x".to_string()),
            ("TRACESTATE".to_string(), "b=2".to_string()),
        ];
        assert_eq!(MessageExtractor(&list).get_all("tracestate"), Some(vec!["a=1", "b=2"]));

        let mut bytes: Vec<(String, Vec<u8>)> = vec![("traceparent".into(), vec![0xff, 0xfe])];
        assert_eq!(MessageExtractor(&bytes).get("traceparent"), None);
        MessageInjector(&mut bytes).set("traceparent", "ok".into());
        assert_eq!(bytes, vec![("traceparent".to_string(), b"ok".to_vec())]);

        let mut tree = BTreeMap::new();
        MessageInjector(&mut tree).set("baggage", "k=v".into());
        assert_eq!(MessageExtractor(&tree).get("BAGGAGE"), Some("k=v"));
    }
}
