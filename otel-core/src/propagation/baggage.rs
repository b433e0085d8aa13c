//! W3C Baggage with the specification's limits.
//!
//! * `baggage` lines are concatenated; list members are `key = value *( ; property )` with
//!   optional spaces/tabs around members, keys and values.
//! * Keys are RFC 7230 tokens; values are percent-decoded and must be UTF-8. Properties are kept
//!   as the member's metadata.
//! * Limits (W3C Baggage §Limits): at most 64 list members and 8192 bytes in total. Members past
//!   either limit are dropped whole, never truncated. An invalid member is dropped; the others
//!   are kept.

use opentelemetry::baggage::{Baggage, BaggageExt, BaggageMetadata};
use opentelemetry::propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator};
use opentelemetry::Context;
use std::sync::OnceLock;

/// Name of the `baggage` header.
pub const BAGGAGE: &str = "baggage";
/// Maximum number of list members propagated.
pub const MAX_MEMBERS: usize = 64;
/// Maximum total size in bytes of the propagated `baggage` value.
pub const MAX_BYTES: usize = 8192;

/// The W3C Baggage propagator.
#[derive(Clone, Copy, Debug, Default)]
pub struct W3cBaggagePropagator {
    _private: (),
}

fn fields() -> &'static [String] {
    static FIELDS: OnceLock<[String; 1]> = OnceLock::new();
    FIELDS.get_or_init(|| [BAGGAGE.to_owned()])
}

impl W3cBaggagePropagator {
    /// Creates the propagator.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// Parses `baggage` header lines into a [`Baggage`], applying the limits.
    pub fn parse<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> Baggage {
        let mut baggage = Baggage::new();
        let mut count = 0usize;
        let mut bytes = 0usize;
        'lines: for line in lines {
            for raw in line.split(',') {
                let member = trim_ows(raw);
                if member.is_empty() {
                    continue;
                }
                if count == MAX_MEMBERS {
                    break 'lines;
                }
                // Separators between members count towards the size limit.
                let cost = member.len() + usize::from(count > 0);
                if bytes + cost > MAX_BYTES {
                    // A later, shorter member could still fit; the spec only forbids partial ones.
                    continue;
                }
                let Some((key, value, metadata)) = parse_member(member) else {
                    continue;
                };
                baggage.insert_with_metadata(key.to_owned(), value, metadata);
                count += 1;
                bytes += cost;
            }
        }
        baggage
    }

    /// Serialises `baggage` as a `baggage` header value, applying the limits. Returns `None` when
    /// nothing is to be sent.
    pub fn serialize(&self, baggage: &Baggage) -> Option<String> {
        let mut out = String::new();
        let mut count = 0usize;
        for (key, (value, metadata)) in baggage {
            if count == MAX_MEMBERS {
                break;
            }
            if !is_token(key.as_str()) {
                continue;
            }
            let mut member = String::with_capacity(key.as_str().len() + value.as_str().len() + 1);
            member.push_str(key.as_str());
            member.push('=');
            percent_encode_into(value.as_str(), &mut member);
            let meta = metadata.as_str().trim();
            if !meta.is_empty() {
                member.push(';');
                member.push_str(meta);
            }
            let cost = member.len() + usize::from(count > 0);
            if out.len() + cost > MAX_BYTES {
                continue;
            }
            if count > 0 {
                out.push(',');
            }
            out.push_str(&member);
            count += 1;
        }
        (!out.is_empty()).then_some(out)
    }
}

impl TextMapPropagator for W3cBaggagePropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let baggage = cx.baggage();
        if baggage.is_empty() {
            return;
        }
        if let Some(value) = self.serialize(baggage) {
            injector.set(BAGGAGE, value);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match extractor.get_all(BAGGAGE) {
            Some(lines) => {
                let baggage = self.parse(lines);
                if baggage.is_empty() {
                    cx.clone()
                } else {
                    cx.with_baggage(baggage)
                }
            }
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(fields())
    }
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// RFC 7230 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// `baggage-octet`: printable ASCII except space, `"`, `,`, `;` and `\`.
fn is_baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn parse_member(member: &str) -> Option<(&str, String, BaggageMetadata)> {
    let (kv, props) = match member.find(';') {
        Some(i) => (&member[..i], Some(&member[i + 1..])),
        None => (member, None),
    };
    let eq = kv.find('=')?;
    let key = trim_ows(&kv[..eq]);
    let raw_value = trim_ows(&kv[eq + 1..]);
    if !is_token(key) || !raw_value.bytes().all(is_baggage_octet) {
        return None;
    }
    let value = percent_decode(raw_value)?;
    let metadata = match props {
        Some(p) => {
            let p = trim_ows(p);
            // Properties are `key[=value]` separated by `;`; reject obviously broken ones.
            if p.split(';').map(trim_ows).any(|prop| {
                let name = prop.split('=').next().map(trim_ows).unwrap_or("");
                !is_token(name)
            }) {
                return None;
            }
            BaggageMetadata::from(p)
        }
        None => BaggageMetadata::default(),
    };
    Some((key, value, metadata))
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = (*b.get(i + 1)? as char).to_digit(16)?;
            let lo = (*b.get(i + 2)? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s.as_bytes() {
        if is_baggage_octet(c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[(c >> 4) as usize] as char);
            out.push(HEX[(c & 0xf) as usize] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(lines: &[&str]) -> Baggage {
        W3cBaggagePropagator::new().parse(lines.iter().copied())
    }

    #[test]
    fn parses_members_properties_and_percent_encoding() {
        let b = parse(&["userId=alice, serverNode = DF%2028 ;prop1;p2=v", "isProduction=false"]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.get("userId").unwrap().as_str(), "alice");
        let (v, meta) = b.get_with_metadata("serverNode").unwrap();
        assert_eq!(v.as_str(), "DF 28");
        assert_eq!(meta.as_str(), "prop1;p2=v");
        assert_eq!(b.get("isProduction").unwrap().as_str(), "false");
    }

    #[test]
    fn invalid_members_are_dropped_alone() {
        let b = parse(&["ok=1,bad key=2,novalue,quote=\"x\",badpct=%zz,badutf=%ff,also=2"]);
        let mut keys: Vec<_> = b.iter().map(|(k, _)| k.as_str().to_owned()).collect();
        keys.sort();
        assert_eq!(keys, vec!["also", "ok"]);
    }

    #[test]
    fn member_count_limit() {
        let line: Vec<String> = (0..70).map(|i| format!("k{i}=v")).collect();
        let b = parse(&[&line.join(",")]);
        assert_eq!(b.len(), MAX_MEMBERS);
        assert!(b.get("k63").is_some());
        assert!(b.get("k64").is_none());
    }

    #[test]
    fn byte_limit_drops_whole_members() {
        let big = format!("big={}", "x".repeat(8000));
        let b = parse(&[&big, "small=1", &format!("huge={}", "y".repeat(500))]);
        assert!(b.get("big").is_some());
        assert!(b.get("small").is_some());
        assert!(b.get("huge").is_none(), "would exceed 8192 bytes");
        let s = W3cBaggagePropagator::new().serialize(&b).unwrap();
        assert!(s.len() <= MAX_BYTES);
    }

    #[test]
    fn round_trip_through_a_carrier() {
        let p = W3cBaggagePropagator::new();
        let mut b = Baggage::new();
        b.insert_with_metadata("user", "jo ë,;", "p=1");
        let cx = Context::new().with_baggage(b);
        let mut carrier = HashMap::new();
        p.inject_context(&cx, &mut carrier);
        assert_eq!(carrier["baggage"], "user=jo%20%C3%AB%2C%3B;p=1");
        let back = p.extract_with_context(&Context::new(), &carrier);
        let (v, meta) = back.baggage().get_with_metadata("user").unwrap();
        assert_eq!(v.as_str(), "jo ë,;");
        assert_eq!(meta.as_str(), "p=1");
    }

    #[test]
    fn empty_or_garbage_keeps_parent() {
        let p = W3cBaggagePropagator::new();
        let mut carrier = HashMap::new();
        carrier.insert("baggage".to_string(), ",,;=,".to_string());
        let cx = p.extract_with_context(&Context::new(), &carrier);
        assert!(cx.baggage().is_empty());
        let mut out: HashMap<String, String> = HashMap::new();
        p.inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }
}
