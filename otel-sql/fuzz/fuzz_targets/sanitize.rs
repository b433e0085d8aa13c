//! `cargo +nightly fuzz run sanitize`: the sanitizer must never panic, must respect its length
//! cap and summary cap, and must never output the body of a string literal it was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otel_sql::sanitize::{analyze, Dialect, SanitizeOptions, MAX_SUMMARY_LEN};

const MARKER: &str = "Zq9xSecret";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(rest) else {
        return;
    };
    let dialect = match selector % 4 {
        0 => Dialect::PostgreSql,
        1 => Dialect::MySql,
        2 => Dialect::Sqlite,
        _ => Dialect::Generic,
    };
    let cap = usize::from(selector) * 8;
    let options = SanitizeOptions::new(dialect).with_max_len(cap);
    let a = analyze(sql, &options);
    assert!(a.sanitized.len() <= cap);
    assert!(a.summary.len() <= MAX_SUMMARY_LEN);

    // The same input embedded as a standard string literal (quotes doubled, no backslashes)
    // must never show through.
    if !sql.contains('\\') {
        let quoted = format!("SELECT * FROM t WHERE a = '{MARKER}{}'", sql.replace('\'', "''"));
        let dialect = if dialect == Dialect::MySql { Dialect::PostgreSql } else { dialect };
        let a = analyze(&quoted, &SanitizeOptions::new(dialect));
        assert!(!a.sanitized.contains(MARKER), "{quoted:?} -> {:?}", a.sanitized);
        assert!(!a.summary.contains(MARKER));
    }
});
