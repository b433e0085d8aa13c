//! `cargo +nightly fuzz run baggage`
//!
//! Input: `baggage` header lines, one per `\n` (UTF-8, lossily decoded).
//!
//! Properties (limits: `BAGGAGE_MAX_MEMBERS` = 64 members, `BAGGAGE_MAX_BYTES` = 8192 bytes):
//! * parsing never panics and keeps at most 64 members;
//! * every kept key is an RFC 7230 token;
//! * the serialised header is at most 8192 bytes, holds every kept member (one list member per
//!   baggage entry) and, when the input could have come from an HTTP header (visible ASCII, space,
//!   tab), is itself a valid HTTP header value;
//! * round trip: parsing the serialised header gives the same entries (key, value, metadata), and
//!   serialising those gives the same members.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_rs_fuzz::{baggage_entries, sorted_members};
use otelrs_core::propagation::{W3cBaggagePropagator, BAGGAGE_MAX_BYTES, BAGGAGE_MAX_MEMBERS};

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn http_safe(line: &str) -> bool {
    line.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<&str> = text.split('\n').collect();
    let p = W3cBaggagePropagator::new();
    let baggage = p.parse(lines.iter().copied());
    assert!(baggage.len() <= BAGGAGE_MAX_MEMBERS, "{} members", baggage.len());
    let entries = baggage_entries(&baggage);
    for key in entries.keys() {
        assert!(is_token(key), "key {key:?} is not a token");
    }

    let Some(header) = p.serialize(&baggage) else {
        assert!(baggage.is_empty(), "non-empty baggage serialised to nothing");
        return;
    };
    assert!(header.len() <= BAGGAGE_MAX_BYTES, "{} bytes", header.len());
    let members = sorted_members(&header);
    assert_eq!(
        members.len(),
        baggage.len(),
        "members dropped by serialisation: {header:?}"
    );
    if lines.iter().all(|l| http_safe(l)) {
        assert!(
            http::HeaderValue::from_str(&header).is_ok(),
            "not a valid header value: {header:?}"
        );
    }

    let again = p.parse([header.as_str()]);
    assert_eq!(
        baggage_entries(&again),
        entries,
        "round trip changed the baggage: {header:?}"
    );
    let header2 = p.serialize(&again).expect("non-empty");
    assert_eq!(sorted_members(&header2), members, "re-serialisation is not stable");
});
