//! `cargo +nightly fuzz run http_redaction`
//!
//! Input: the first line is a query string (what follows `?`), every further line a header
//! `name: value` (`fuzz/src/lib.rs` `header_lines`).
//!
//! Properties of `otelrs_http::attributes` (issue 16):
//! * `redact_query` never panics, keeps the number of `&`-separated pairs, is idempotent, and
//!   turns each pair into exactly what the rule says: empty stays empty, `REDACTED` stays, a
//!   pair whose value holds a byte other than `=` becomes `key=REDACTED`, and every other pair
//!   (no `=`, an empty value, only `=` padding: a token such as `dGhpcy1pcy1hLXRva2Vu=`) becomes
//!   `REDACTED` whole. So no value and no value-less token ever survives;
//! * `redacted_url_full` of `http://h/p?<query>` ends in `?` and the same redacted query;
//! * header capture of every header of the input: a name that
//!   `otelrs_core::conv::sensitive::is_sensitive_name` classifies as sensitive is captured as one
//!   `REDACTED` per non-empty value, any other name with its values.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use otel_rs_fuzz::header_lines;
use otelrs_core::conv::sensitive::is_sensitive_name;
use otelrs_core::opentelemetry::{Array, Value};
use otelrs_http::attributes::{redact_query, redacted_url_full, HeaderCapture, HeaderSide, REDACTED};

fuzz_target!(|data: &[u8]| {
    let (first, rest) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let query = String::from_utf8_lossy(first);
    check_query(&query);
    check_headers(rest);
});

fn expected_pair(pair: &str) -> String {
    if pair.is_empty() || pair == REDACTED {
        return pair.to_owned();
    }
    match pair.split_once('=') {
        Some((_, v)) if v == REDACTED => pair.to_owned(),
        Some((k, v)) if v.bytes().any(|b| b != b'=') => format!("{k}={REDACTED}"),
        _ => REDACTED.to_owned(),
    }
}

fn check_query(query: &str) {
    let redacted = redact_query(query);
    let pairs: Vec<&str> = query.split('&').collect();
    let out: Vec<&str> = redacted.split('&').collect();
    assert_eq!(pairs.len(), out.len(), "{query:?} -> {redacted:?}");
    for (p, o) in pairs.iter().zip(&out) {
        assert_eq!(*o, expected_pair(p), "pair {p:?} of {query:?}");
    }
    assert_eq!(redact_query(&redacted), redacted, "not idempotent: {query:?}");
    if let Ok(uri) = format!("http://h/p?{query}").parse::<Uri>() {
        if let (Some(q), Some(full)) = (uri.query(), redacted_url_full(&uri, &HeaderMap::new())) {
            assert!(
                full.ends_with(&format!("?{}", redact_query(q))),
                "{full:?} for {query:?}"
            );
        }
    }
}

fn check_headers(rest: &[u8]) {
    let mut headers = HeaderMap::new();
    let mut names: Vec<String> = Vec::new();
    for (name, value) in header_lines(rest, b"x-bare") {
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        if !names.iter().any(|n| n == name.as_str()) {
            names.push(name.as_str().to_owned());
        }
        headers.append(name, value);
    }
    for side in [HeaderSide::Request, HeaderSide::Response] {
        let mut out = Vec::new();
        HeaderCapture::new(side, &names).collect(&headers, &mut out);
        for kv in &out {
            let key = kv.key.as_str();
            let name = key
                .strip_prefix("http.request.header.")
                .or_else(|| key.strip_prefix("http.response.header."))
                .unwrap_or_else(|| panic!("unexpected key {key}"));
            let Value::Array(Array::String(values)) = &kv.value else {
                panic!("{key}: not a string array");
            };
            let sent: Vec<&HeaderValue> = headers.get_all(name).iter().filter(|v| !v.is_empty()).collect();
            assert_eq!(values.len(), sent.len(), "{key}");
            if is_sensitive_name(name) {
                assert!(
                    values.iter().all(|v| v.as_str() == REDACTED),
                    "sensitive {name:?} exported: {values:?}"
                );
            } else {
                for (v, s) in values.iter().zip(&sent) {
                    assert_eq!(v.as_str(), String::from_utf8_lossy(s.as_bytes()), "{key}");
                }
            }
        }
    }
}
