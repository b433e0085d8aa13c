//! W3C Trace Context (`traceparent` / `tracestate`), parsed strictly.
//!
//! Rules (W3C Trace Context Level 2, and what the official test suite checks at
//! `STRICT_LEVEL=2 SPEC_LEVEL=2`):
//!
//! * `traceparent` is `version-traceid-parentid-flags`, lowercase hex only, optional leading and
//!   trailing spaces/tabs. Version `ff` is invalid. Version `00` must be exactly 55 characters.
//!   A higher version is parsed by its first 55 characters, which must be followed by nothing or
//!   by `-` (version-forward parsing). All-zero trace or parent ids are invalid.
//! * Two or more `traceparent` header lines are invalid: a new trace starts.
//! * The sampled (`01`) and random (`02`) flags are kept; other bits are dropped.
//! * `tracestate` lines are concatenated in order. Empty list members (and empty lines) are
//!   ignored. Keys follow `[a-z0-9][a-z0-9_\-*/@]{0,255}`; values are 1 to 256 printable ASCII
//!   characters without `,` or `=`, not ending in a space. More than 32 members or any invalid
//!   member discards the whole `tracestate`. A repeated key keeps its first occurrence.
//! * `tracestate` is only read together with a valid `traceparent`.
//!
//! `opentelemetry`'s `TraceState` type enforces an older key grammar (vendor part of at most 14
//! characters, one `@`). Keys valid today but refused by that type are kept in a context value
//! and re-emitted verbatim on injection as long as the span's trace state was not changed.

use opentelemetry::propagation::{text_map_propagator::FieldIter, Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use std::sync::OnceLock;

/// Name of the `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// Name of the `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

static TRACEPARENT_NAME: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: http::HeaderName = http::HeaderName::from_static(TRACESTATE);

const MAX_MEMBERS: usize = 32;
const MAX_KEY_LEN: usize = 256;
const MAX_VALUE_LEN: usize = 256;
/// Bound on the `tracestate` bytes looked at: 32 maximal members, separators and generous OWS.
/// Anything longer cannot be valid and is discarded without further work.
const MAX_TRACESTATE_BYTES: usize = 32 * (MAX_KEY_LEN + 1 + MAX_VALUE_LEN) + 32 * 64;
/// Flags this implementation understands: sampled and random (Level 2).
const KNOWN_FLAGS: u8 = 0x03;

/// The strict W3C Trace Context propagator.
#[derive(Clone, Copy, Debug, Default)]
pub struct W3cTraceContextPropagator {
    _private: (),
}

fn fields() -> &'static [String] {
    static FIELDS: OnceLock<[String; 2]> = OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()])
}

impl W3cTraceContextPropagator {
    /// Creates the propagator.
    pub const fn new() -> Self {
        Self { _private: () }
    }

    /// Extracts the remote span context from `traceparent` / `tracestate` values, or `None` when
    /// the `traceparent` is missing, repeated or invalid.
    ///
    /// `traceparents` is every `traceparent` line; `tracestates` every `tracestate` line.
    pub fn extract_span_context<'a>(
        &self,
        traceparents: impl IntoIterator<Item = &'a str>,
        tracestates: impl IntoIterator<Item = &'a str>,
    ) -> Option<(SpanContext, Option<VerbatimTraceState>)> {
        let mut lines = traceparents.into_iter();
        let first = lines.next()?;
        if lines.next().is_some() {
            return None;
        }
        let (trace_id, span_id, flags) = parse_traceparent(first)?;
        let (trace_state, verbatim) = match parse_tracestate(tracestates) {
            Some(parsed) => parsed.into_trace_state(trace_id),
            None => (TraceState::NONE, None),
        };
        let sc = SpanContext::new(trace_id, span_id, flags, true, trace_state);
        Some((sc, verbatim))
    }

    /// Extracts the remote span context from an [`http::HeaderMap`]. Allocation-free unless a
    /// `tracestate` is present.
    pub fn extract_span_context_from_headers(
        &self,
        headers: &http::HeaderMap,
    ) -> Option<(SpanContext, Option<VerbatimTraceState>)> {
        self.extract_span_context_scanned(headers, &W3cHeaders::scan(headers))
    }

    pub(crate) fn extract_span_context_scanned(
        &self,
        headers: &http::HeaderMap,
        found: &W3cHeaders<'_>,
    ) -> Option<(SpanContext, Option<VerbatimTraceState>)> {
        if found.traceparent_lines != 1 {
            return None;
        }
        let value = found.traceparent?;
        let (trace_id, span_id, flags) = parse_traceparent_bytes(value.as_bytes())?;
        // A line that is not visible ASCII is invalid, as `HeaderExtractor` reports it. The parser
        // only ignores bytes in the tail of a future version, so only a value longer than a
        // version-00 one needs the check.
        if value.len() > 55 && value.to_str().is_err() {
            return None;
        }
        let (trace_state, verbatim) = if !found.tracestate {
            (TraceState::NONE, None)
        } else {
            match parse_tracestate(headers.get_all(&TRACESTATE_NAME).iter().map(header_str)) {
                Some(parsed) => parsed.into_trace_state(trace_id),
                None => (TraceState::NONE, None),
            }
        };
        Some((SpanContext::new(trace_id, span_id, flags, true, trace_state), verbatim))
    }

    /// Extraction from an [`http::HeaderMap`] without an intermediate extractor; the only
    /// allocation for a `traceparent` alone is the `Context` entry itself.
    pub fn extract_headers_with_context(&self, parent: &Context, headers: &http::HeaderMap) -> Context {
        self.context_from(parent, self.extract_span_context_from_headers(headers))
    }

    pub(crate) fn extract_scanned_with_context(
        &self,
        parent: &Context,
        headers: &http::HeaderMap,
        found: &W3cHeaders<'_>,
    ) -> Context {
        self.context_from(parent, self.extract_span_context_scanned(headers, found))
    }

    fn context_from(&self, parent: &Context, extracted: Option<(SpanContext, Option<VerbatimTraceState>)>) -> Context {
        match extracted {
            Some((sc, None)) => parent.with_remote_span_context(sc),
            Some((sc, Some(verbatim))) => parent.with_remote_span_context(sc).with_value(verbatim),
            None => parent.clone(),
        }
    }
}

/// Header maps up to this many values are scanned once for the W3C fields; larger ones use
/// hashed lookups (a scan is cheaper than three lookups only while the map is small).
const SCAN_LIMIT: usize = 24;

/// Where the W3C propagation fields are in a header map, found with one pass (small maps) or a
/// lookup per field (large maps).
pub(crate) struct W3cHeaders<'a> {
    pub(crate) traceparent: Option<&'a http::HeaderValue>,
    pub(crate) traceparent_lines: usize,
    pub(crate) tracestate: bool,
    pub(crate) baggage: bool,
}

impl<'a> W3cHeaders<'a> {
    pub(crate) fn scan(headers: &'a http::HeaderMap) -> Self {
        let mut found = W3cHeaders {
            traceparent: None,
            traceparent_lines: 0,
            tracestate: false,
            baggage: false,
        };
        if headers.len() <= SCAN_LIMIT {
            for (name, value) in headers {
                if *name == TRACEPARENT_NAME {
                    found.traceparent.get_or_insert(value);
                    found.traceparent_lines += 1;
                } else if *name == TRACESTATE_NAME {
                    found.tracestate = true;
                } else if *name == super::BAGGAGE_NAME {
                    found.baggage = true;
                }
            }
        } else {
            let mut lines = headers.get_all(&TRACEPARENT_NAME).iter();
            found.traceparent = lines.next();
            found.traceparent_lines = usize::from(found.traceparent.is_some()) + lines.count();
            found.tracestate = headers.contains_key(&TRACESTATE_NAME);
            found.baggage = headers.contains_key(&super::BAGGAGE_NAME);
        }
        found
    }
}

/// Non-ASCII header bytes make a value invalid; mapping it to an invalid marker keeps the line
/// count (a second, garbled `traceparent` line still invalidates the first) without allocating.
fn header_str(v: &http::HeaderValue) -> &str {
    v.to_str().unwrap_or(super::INVALID_HEADER_VALUE)
}

impl TextMapPropagator for W3cTraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, format_traceparent(sc));
        let state = match cx.get::<VerbatimTraceState>() {
            Some(v) if v.applies_to(sc) => v.header.clone(),
            _ => sc.trace_state().header(),
        };
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let Some(traceparents) = extractor.get_all(TRACEPARENT) else {
            return cx.clone();
        };
        let tracestates = extractor.get_all(TRACESTATE).unwrap_or_default();
        let extracted = self.extract_span_context(traceparents, tracestates);
        self.context_from(cx, extracted)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(fields())
    }
}

/// A `tracestate` that `opentelemetry::trace::TraceState` cannot hold in full (keys of the current
/// W3C grammar it refuses), kept in the [`Context`] so injection can forward it unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerbatimTraceState {
    trace_id: TraceId,
    /// The subset stored in the span context; injection forwards `header` only while the span's
    /// trace state still equals it (nobody modified it).
    stored: TraceState,
    header: String,
}

impl VerbatimTraceState {
    /// The `tracestate` header value as it will be forwarded.
    pub fn header(&self) -> &str {
        &self.header
    }

    fn applies_to(&self, sc: &SpanContext) -> bool {
        sc.trace_id() == self.trace_id && *sc.trace_state() == self.stored
    }
}

/// Formats a `traceparent` (version `00`) for `sc`, keeping the sampled and random flags.
pub fn format_traceparent(sc: &SpanContext) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 55];
    buf[..3].copy_from_slice(b"00-");
    let mut i = 3;
    for b in sc.trace_id().to_bytes() {
        buf[i] = HEX[(b >> 4) as usize];
        buf[i + 1] = HEX[(b & 0xf) as usize];
        i += 2;
    }
    buf[i] = b'-';
    i += 1;
    for b in sc.span_id().to_bytes() {
        buf[i] = HEX[(b >> 4) as usize];
        buf[i + 1] = HEX[(b & 0xf) as usize];
        i += 2;
    }
    buf[i] = b'-';
    let flags = sc.trace_flags().to_u8() & KNOWN_FLAGS;
    buf[i + 1] = HEX[(flags >> 4) as usize];
    buf[i + 2] = HEX[(flags & 0xf) as usize];
    // Only ASCII hex digits and dashes were written.
    String::from_utf8(buf.to_vec()).unwrap_or_default()
}

/// Lowercase hex digit → value; anything else → 0xFF (uppercase hex is invalid in W3C headers).
static HEX_LUT: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Decodes `2 * N` lowercase hex digits. Invalid digits are collected branch-free and checked once.
#[inline(always)]
fn hex_bytes<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    let mut bad = 0u8;
    for i in 0..N {
        let hi = HEX_LUT[s[2 * i] as usize];
        let lo = HEX_LUT[s[2 * i + 1] as usize];
        bad |= hi | lo;
        out[i] = (hi << 4) | (lo & 0x0F);
    }
    (bad & 0xF0 == 0).then_some(out)
}

const LANES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Decodes 8 lowercase hex digits (one little-endian word) into 4 bytes, branch-free (SWAR).
/// Returns the bytes and a non-zero mask when any digit is not `0-9` / `a-f`. The per-byte range
/// checks cannot carry between bytes for ASCII input; non-ASCII input is flagged by its high bit.
#[inline(always)]
fn hex_word(chunk: [u8; 8]) -> ([u8; 4], u64) {
    let x = u64::from_le_bytes(chunk);
    let ge_0 = x.wrapping_add(LANES * (0x80 - 0x30));
    let gt_9 = x.wrapping_add(LANES * (0x80 - 0x3a));
    let ge_a = x.wrapping_add(LANES * (0x80 - 0x61));
    let gt_f = x.wrapping_add(LANES * (0x80 - 0x67));
    let valid = ((ge_0 & !gt_9) | (ge_a & !gt_f)) & HIGH;
    let bad = (x & HIGH) | (valid ^ HIGH);
    // '0'..'9' -> 0..9; 'a'..'f' (bit 0x40 set) -> 1..6 + 9.
    let nibbles = (x & (LANES * 0x0f)) + ((x & (LANES * 0x40)) >> 6) * 9;
    // Pair nibbles into bytes, then pack the four bytes into the low 32 bits.
    let mut v = ((nibbles & 0x00ff_00ff_00ff_00ff) << 4) | ((nibbles >> 8) & 0x00ff_00ff_00ff_00ff);
    v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    v = (v | (v >> 16)) & 0x0000_0000_ffff_ffff;
    ((v as u32).to_le_bytes(), bad)
}

/// Decodes `8 * W` hex digits into `4 * W` bytes; `None` if any digit is invalid.
#[inline(always)]
fn hex_words<const W: usize, const OUT: usize>(s: &[u8]) -> Option<[u8; OUT]> {
    let mut out = [0u8; OUT];
    let mut bad = 0u64;
    for (i, chunk) in s.chunks_exact(8).take(W).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let (bytes, b) = hex_word(word);
        bad |= b;
        out[i * 4..i * 4 + 4].copy_from_slice(&bytes);
    }
    (bad == 0).then_some(out)
}

/// Decodes 16 lowercase hex digits into 8 bytes.
#[inline(always)]
fn hex16(s: &[u8]) -> Option<[u8; 8]> {
    hex_words::<2, 8>(s)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

fn trim_ows_bytes(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Parses one `traceparent` value. Returns `None` for anything invalid.
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    parse_traceparent_bytes(value.as_bytes())
}

/// [`parse_traceparent`] on raw header bytes (non-ASCII bytes are simply invalid).
pub fn parse_traceparent_bytes(value: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    let s = trim_ows_bytes(value);
    if s.len() < 55 {
        return None;
    }
    let [version] = hex_bytes::<1>(&s[..2])?;
    if version == 0xff {
        return None;
    }
    if s.len() > 55 && (version == 0 || s[55] != b'-') {
        return None;
    }
    if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
        return None;
    }
    let trace_id = hex_words::<4, 16>(&s[3..35])?;
    let span_id = hex16(&s[36..52])?;
    let [flags] = hex_bytes::<1>(&s[53..55])?;
    if trace_id == [0; 16] || span_id == [0; 8] {
        return None;
    }
    Some((
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(flags & KNOWN_FLAGS),
    ))
}

/// `[a-z0-9][a-z0-9_\-*/@]{0,255}`
pub fn is_valid_tracestate_key(key: &str) -> bool {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > MAX_KEY_LEN {
        return false;
    }
    if !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
        return false;
    }
    b[1..]
        .iter()
        .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@'))
}

/// 1 to 256 characters of `%x20-2B / %x2D-3C / %x3E-7E`, the last one not a space.
pub fn is_valid_tracestate_value(value: &str) -> bool {
    let b = value.as_bytes();
    if b.is_empty() || b.len() > MAX_VALUE_LEN || b[b.len() - 1] == b' ' {
        return false;
    }
    b.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
}

struct ParsedTraceState<'a> {
    members: Vec<(&'a str, &'a str)>,
}

/// Parses and validates the concatenated `tracestate` lines; `None` means "no tracestate"
/// (absent, empty or invalid).
fn parse_tracestate<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<ParsedTraceState<'a>> {
    let mut members: Vec<(&'a str, &'a str)> = Vec::new();
    let mut total = 0usize;
    for line in lines {
        total += line.len();
        if total > MAX_TRACESTATE_BYTES {
            return None;
        }
        for raw in line.split(',') {
            let member = trim_ows(raw);
            if member.is_empty() {
                continue;
            }
            let eq = member.find('=')?;
            let (key, value) = (&member[..eq], &member[eq + 1..]);
            // OWS is only allowed around list members, not around `=`.
            if key.bytes().last().is_some_and(is_ows) || !is_valid_tracestate_key(key) {
                return None;
            }
            if !is_valid_tracestate_value(value) {
                return None;
            }
            if members.iter().any(|(k, _)| *k == key) {
                continue;
            }
            if members.len() == MAX_MEMBERS {
                return None;
            }
            members.push((key, value));
        }
    }
    if members.is_empty() {
        None
    } else {
        Some(ParsedTraceState { members })
    }
}

impl ParsedTraceState<'_> {
    fn into_trace_state(self, trace_id: TraceId) -> (TraceState, Option<VerbatimTraceState>) {
        if let Ok(ts) = TraceState::from_key_value(self.members.iter().copied()) {
            return (ts, None);
        }
        // Keep what the TraceState type accepts, in order; forward the full list verbatim.
        let mut ts = TraceState::NONE;
        for (k, v) in self.members.iter().rev() {
            if let Ok(next) = ts.insert(*k, *v) {
                ts = next;
            }
        }
        let mut header = String::with_capacity(self.members.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (i, (k, v)) in self.members.iter().enumerate() {
            if i > 0 {
                header.push(',');
            }
            header.push_str(k);
            header.push('=');
            header.push_str(v);
        }
        let verbatim = VerbatimTraceState {
            trace_id,
            stored: ts.clone(),
            header,
        };
        (ts, Some(verbatim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TP: &str = "00-12345678901234567890123456789012-1234567890123456-01";

    fn tid(s: &str) -> TraceId {
        TraceId::from_hex(s).unwrap()
    }

    fn extract(headers: &[(&str, &str)]) -> Context {
        let mut h = http::HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let p = W3cTraceContextPropagator::new();
        let fast = p.extract_headers_with_context(&Context::new(), &h);
        let generic = p.extract_with_context(&Context::new(), &crate::propagation::HeaderExtractor(&h));
        assert_eq!(
            fast.span().span_context(),
            generic.span().span_context(),
            "fast and generic paths agree for {headers:?}"
        );
        generic
    }

    fn tracestate_out(headers: &[(&str, &str)]) -> Option<String> {
        let cx = extract(headers);
        let mut out = HashMap::new();
        W3cTraceContextPropagator::new().inject_context(&cx, &mut out);
        out.remove("tracestate")
    }

    fn valid(cx: &Context) -> bool {
        cx.span().span_context().is_valid()
    }

    #[test]
    fn swar_hex_matches_the_table_decoder_on_every_byte() {
        // Every byte value at every position, around valid digits.
        for pos in 0..16 {
            for b in 0..=255u8 {
                let mut input = *b"0123456789abcdef";
                input[pos] = b;
                assert_eq!(hex16(&input), hex_bytes::<8>(&input), "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(
            hex16(b"0af7651916cd43dd"),
            Some([0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd])
        );
        assert_eq!(hex16(b"ffffffffffffffff"), Some([0xff; 8]));
        assert_eq!(hex16(b"000000000000000A"), None);
    }

    proptest::proptest! {
        #[test]
        fn swar_hex_matches_the_table_decoder(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 16)) {
            proptest::prop_assert_eq!(hex16(&input), hex_bytes::<8>(&input));
        }

        #[test]
        fn swar_hex_decodes_valid_digits(input in "[0-9a-f]{16}") {
            proptest::prop_assert_eq!(hex16(input.as_bytes()), hex_bytes::<8>(input.as_bytes()));
            proptest::prop_assert!(hex16(input.as_bytes()).is_some());
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = parse_traceparent_bytes(&input);
        }

        #[test]
        fn tracestate_parse_never_panics(input in ".{0,600}") {
            let _ = parse_tracestate([input.as_str()]);
        }
    }

    #[test]
    fn valid_traceparent() {
        let cx = extract(&[("traceparent", TP)]);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), tid("12345678901234567890123456789012"));
        assert_eq!(sc.span_id(), SpanId::from_hex("1234567890123456").unwrap());
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
        assert_eq!(sc.trace_state(), &TraceState::NONE);
    }

    #[test]
    fn non_ascii_future_version_tail_is_invalid_on_both_paths() {
        // Found by the traceparent fuzz target: the fast path accepted what HeaderExtractor
        // reports as invalid.
        let mut h = http::HeaderMap::new();
        h.insert(
            "traceparent",
            http::HeaderValue::from_bytes(b"cc-12345678901234567890123456789012-1234567890123456-01-\xef").unwrap(),
        );
        let p = W3cTraceContextPropagator::new();
        assert!(!p
            .extract_headers_with_context(&Context::new(), &h)
            .span()
            .span_context()
            .is_valid());
        assert!(!p
            .extract_with_context(&Context::new(), &crate::propagation::HeaderExtractor(&h))
            .span()
            .span_context()
            .is_valid());
    }

    #[test]
    fn garbled_second_line_invalidates_on_both_paths() {
        let mut h = http::HeaderMap::new();
        h.append("traceparent", http::HeaderValue::from_static(TP));
        h.append("traceparent", http::HeaderValue::from_bytes(b"\xff\xfe").unwrap());
        let p = W3cTraceContextPropagator::new();
        assert!(!p
            .extract_headers_with_context(&Context::new(), &h)
            .span()
            .span_context()
            .is_valid());
        let generic = p.extract_with_context(&Context::new(), &crate::propagation::HeaderExtractor(&h));
        assert!(!generic.span().span_context().is_valid());
        // A garbled tracestate line discards the tracestate on both paths too.
        let mut h = http::HeaderMap::new();
        h.append("traceparent", http::HeaderValue::from_static(TP));
        h.append("tracestate", http::HeaderValue::from_static("a=1"));
        h.append("tracestate", http::HeaderValue::from_bytes(b"b=\xff").unwrap());
        for cx in [
            p.extract_headers_with_context(&Context::new(), &h),
            p.extract_with_context(&Context::new(), &crate::propagation::HeaderExtractor(&h)),
        ] {
            assert!(cx.span().span_context().is_valid());
            assert_eq!(cx.span().span_context().trace_state().header(), "");
        }
    }

    #[test]
    fn large_header_maps_use_lookups_with_the_same_rules() {
        let mut h = http::HeaderMap::new();
        for i in 0..40 {
            h.insert(
                http::HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                http::HeaderValue::from_static("v"),
            );
        }
        assert!(h.len() > SCAN_LIMIT);
        h.append("traceparent", http::HeaderValue::from_static(TP));
        h.append("tracestate", http::HeaderValue::from_static("a=1"));
        h.append("tracestate", http::HeaderValue::from_static("b=2"));
        let p = W3cTraceContextPropagator::new();
        let (sc, _) = p.extract_span_context_from_headers(&h).expect("valid");
        assert_eq!(sc.trace_state().header(), "a=1,b=2");
        h.append("traceparent", http::HeaderValue::from_static(TP));
        assert!(
            p.extract_span_context_from_headers(&h).is_none(),
            "two lines are invalid"
        );
    }

    #[test]
    fn header_name_is_case_insensitive() {
        assert!(valid(&extract(&[("TraceParent", TP)])));
        assert!(valid(&extract(&[("TRACEPARENT", TP)])));
    }

    #[test]
    fn duplicated_traceparent_is_invalid() {
        let cx = extract(&[
            ("traceparent", "00-12345678901234567890123456789011-1234567890123456-01"),
            ("traceparent", "00-12345678901234567890123456789012-1234567890123456-01"),
        ]);
        assert!(!valid(&cx));
        // Even two identical lines.
        assert!(!valid(&extract(&[("traceparent", TP), ("traceparent", TP)])));
    }

    #[test]
    fn version_rules() {
        let bad = [
            // version 00 with trailing data
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            // future version: extra data must start with '-'
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like",
            "ff-12345678901234567890123456789012-1234567890123456-01",
            // illegal version characters / length
            ".0-12345678901234567890123456789012-1234567890123456-01",
            "0.-12345678901234567890123456789012-1234567890123456-01",
            "000-12345678901234567890123456789012-1234567890123456-01",
            "0-12345678901234567890123456789012-1234567890123456-01",
            "0G-12345678901234567890123456789012-1234567890123456-01",
            "0A-12345678901234567890123456789012-1234567890123456-01",
        ];
        for v in bad {
            assert!(!valid(&extract(&[("traceparent", v)])), "{v} must be invalid");
        }
        let good = [
            "cc-12345678901234567890123456789012-1234567890123456-01",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            "01-12345678901234567890123456789012-1234567890123456-01-",
        ];
        for v in good {
            let cx = extract(&[("traceparent", v)]);
            assert_eq!(
                cx.span().span_context().trace_id(),
                tid("12345678901234567890123456789012"),
                "{v} must be accepted"
            );
        }
    }

    #[test]
    fn id_and_flag_rules() {
        let bad = [
            "00-00000000000000000000000000000000-1234567890123456-01",
            "00-12345678901234567890123456789012-0000000000000000-01",
            "00-.2345678901234567890123456789012-1234567890123456-01",
            "00-1234567890123456789012345678901.-1234567890123456-01",
            "00-ABCDEF78901234567890123456789012-1234567890123456-01",
            "00-123456789012345678901234567890123-1234567890123456-01",
            "00-1234567890123456789012345678901-1234567890123456-01",
            "00-12345678901234567890123456789012-.234567890123456-01",
            "00-12345678901234567890123456789012-123456789012345.-01",
            "00-12345678901234567890123456789012-ABCDEF7890123456-01",
            "00-12345678901234567890123456789012-12345678901234567-01",
            "00-12345678901234567890123456789012-123456789012345-01",
            "00-12345678901234567890123456789012-1234567890123456-.0",
            "00-12345678901234567890123456789012-1234567890123456-0.",
            "00-12345678901234567890123456789012-1234567890123456-0A",
            "00-12345678901234567890123456789012-1234567890123456-001",
            "00-12345678901234567890123456789012-1234567890123456-0",
            "00_12345678901234567890123456789012-1234567890123456-01",
            "",
            "garbage",
        ];
        for v in bad {
            assert!(!valid(&extract(&[("traceparent", v)])), "{v:?} must be invalid");
        }
    }

    #[test]
    fn ows_is_trimmed() {
        for v in [
            " 00-12345678901234567890123456789012-1234567890123456-01",
            "\t00-12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456-01 ",
            "00-12345678901234567890123456789012-1234567890123456-01\t",
            "\t 00-12345678901234567890123456789012-1234567890123456-01 \t",
        ] {
            assert!(valid(&extract(&[("traceparent", v)])), "{v:?}");
        }
    }

    #[test]
    fn random_flag_is_kept_unknown_bits_dropped() {
        let cx = extract(&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-02")]);
        let flags = cx.span().span_context().trace_flags().to_u8();
        assert_eq!(flags, 0x02);
        let cx = extract(&[("traceparent", "00-12345678901234567890123456789012-1234567890123456-ff")]);
        assert_eq!(cx.span().span_context().trace_flags().to_u8(), 0x03);
        let mut out = HashMap::new();
        W3cTraceContextPropagator::new().inject_context(&cx, &mut out);
        assert_eq!(
            out["traceparent"],
            "00-12345678901234567890123456789012-1234567890123456-03"
        );
    }

    #[test]
    fn tracestate_without_traceparent_is_ignored() {
        let cx = extract(&[("tracestate", "foo=1")]);
        assert!(!valid(&cx));
        assert_eq!(tracestate_out(&[("tracestate", "foo=1")]), None);
    }

    #[test]
    fn tracestate_lines_are_combined_in_order_and_empty_ignored() {
        assert_eq!(
            tracestate_out(&[
                ("traceparent", TP),
                ("tracestate", "foo=1,bar=2"),
                ("tracestate", "rojo=1,congo=2"),
                ("tracestate", "baz=3"),
            ])
            .as_deref(),
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3")
        );
        assert_eq!(tracestate_out(&[("traceparent", TP), ("tracestate", "")]), None);
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1"), ("tracestate", "")]).as_deref(),
            Some("foo=1")
        );
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", ""), ("tracestate", "foo=1")]).as_deref(),
            Some("foo=1")
        );
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("TraceState", "foo=1")]).as_deref(),
            Some("foo=1")
        );
    }

    #[test]
    fn tracestate_duplicated_keys_keep_first() {
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1,foo=2")]).as_deref(),
            Some("foo=1")
        );
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1"), ("tracestate", "foo=1")]).as_deref(),
            Some("foo=1")
        );
        let cx = extract(&[("traceparent", TP), ("tracestate", "foo=1,foo=2")]);
        assert_eq!(
            cx.span().span_context().trace_id(),
            tid("12345678901234567890123456789012")
        );
    }

    #[test]
    fn tracestate_all_allowed_characters() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let vendor_key = format!("{key}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x2b)
            .chain(0x2d..=0x3c)
            .chain(0x3e..=0x7e)
            .map(char::from)
            .collect();
        for k in [key.to_string(), vendor_key] {
            let member = format!("{k}={value}");
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", &member)]).as_deref(),
                Some(member.as_str())
            );
        }
    }

    #[test]
    fn tracestate_ows() {
        for v in ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"] {
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", v)]).as_deref(),
                Some("foo=1,bar=2,baz=3")
            );
        }
        for v in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", v)]).as_deref(),
                Some("foo=1"),
                "{v:?}"
            );
        }
    }

    #[test]
    fn tracestate_invalid_members_discard_everything() {
        for v in [
            "foo =1",
            "FOO=1",
            "foo.bar=1",
            "@foo=1,bar=2",
            "foo=bar=baz",
            "foo=,bar=3",
            "foo",
            "foo=1 ,bar=2,=3",
        ] {
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", v)]),
                None,
                "{v:?} must discard the tracestate"
            );
        }
        // The traceparent is still valid.
        assert!(valid(&extract(&[("traceparent", TP), ("tracestate", "FOO=1")])));
        // A value may start with a space (only the last character must not be one).
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo= 1")]).as_deref(),
            Some("foo= 1")
        );
    }

    #[test]
    fn tracestate_vendor_keys_of_the_current_grammar() {
        for (input, expected) in [
            ("foo@=1,bar=2", "foo@=1,bar=2"),
            ("foo@@bar=1,bar=2", "foo@@bar=1,bar=2"),
            ("foo@bar@baz=1,bar=2", "foo@bar@baz=1,bar=2"),
        ] {
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", input)]).as_deref(),
                Some(expected)
            );
        }
    }

    #[test]
    fn tracestate_member_count_limit() {
        let lines32 = [
            "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10",
            "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20",
            "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30",
            "bar31=31,bar32=32",
        ];
        let mut h = vec![("traceparent", TP)];
        h.extend(lines32.iter().map(|l| ("tracestate", *l)));
        let out = tracestate_out(&h).unwrap();
        assert_eq!(out.split(',').count(), 32);
        assert!(out.starts_with("bar01=01,"));

        let mut h = vec![("traceparent", TP)];
        h.extend(lines32[..3].iter().map(|l| ("tracestate", *l)));
        h.push(("tracestate", "bar31=31,bar32=32,bar33=33"));
        assert_eq!(tracestate_out(&h), None);
    }

    #[test]
    fn tracestate_key_length_limit() {
        let k256 = "z".repeat(256);
        let member = format!("{k256}=1");
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1"), ("tracestate", &member)]),
            Some(format!("foo=1,{member}"))
        );
        let k257 = format!("{}=1", "z".repeat(257));
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1"), ("tracestate", &k257)]),
            None
        );
        for key in [
            format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            format!("{}@v", "t".repeat(242)),
            format!("t@{}", "v".repeat(15)),
        ] {
            let member = format!("{key}=1");
            assert_eq!(
                tracestate_out(&[("traceparent", TP), ("tracestate", "foo=1"), ("tracestate", &member)]),
                Some(format!("foo=1,{member}")),
                "{key}"
            );
        }
    }

    #[test]
    fn control_characters_are_invalid_values() {
        assert!(!is_valid_tracestate_value("a\u{7f}"));
        assert!(!is_valid_tracestate_value("a\u{1f}b"));
        assert!(!is_valid_tracestate_value("é"));
        assert!(is_valid_tracestate_value(" a"));
    }

    #[test]
    fn value_length_limit() {
        let ok = format!("foo={}", "v".repeat(256));
        assert_eq!(
            tracestate_out(&[("traceparent", TP), ("tracestate", &ok)]),
            Some(ok.clone())
        );
        let too_long = format!("foo={}", "v".repeat(257));
        assert_eq!(tracestate_out(&[("traceparent", TP), ("tracestate", &too_long)]), None);
    }

    #[test]
    fn oversized_tracestate_is_discarded_without_panic() {
        let huge = "a=1,".repeat(100_000);
        assert_eq!(tracestate_out(&[("traceparent", TP), ("tracestate", &huge)]), None);
        assert!(valid(&extract(&[("traceparent", TP), ("tracestate", &huge)])));
    }

    #[test]
    fn verbatim_tracestate_is_dropped_once_the_state_changes() {
        let cx = extract(&[("traceparent", TP), ("tracestate", "foo@@bar=1,bar=2")]);
        let sc = cx.span().span_context().clone();
        assert_eq!(sc.trace_state().header(), "bar=2");
        // A sampler or the user modifies the state: the modified TraceState wins.
        let modified = SpanContext::new(
            sc.trace_id(),
            SpanId::from_hex("00000000000000aa").unwrap(),
            sc.trace_flags(),
            false,
            sc.trace_state().insert("mine", "x").unwrap(),
        );
        let cx2 = cx.with_remote_span_context(modified);
        let mut out = HashMap::new();
        W3cTraceContextPropagator::new().inject_context(&cx2, &mut out);
        assert_eq!(out["tracestate"], "mine=x,bar=2");
    }

    #[test]
    fn inject_requires_a_valid_context() {
        let mut out: HashMap<String, String> = HashMap::new();
        W3cTraceContextPropagator::new().inject_context(&Context::new(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn extract_via_string_map() {
        let mut map = HashMap::new();
        map.insert("traceparent".to_string(), TP.to_string());
        map.insert("tracestate".to_string(), "a=1".to_string());
        let cx = W3cTraceContextPropagator::new().extract(&map);
        assert_eq!(cx.span().span_context().trace_state().header(), "a=1");
    }
}
