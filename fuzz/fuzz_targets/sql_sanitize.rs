//! `cargo +nightly fuzz run sql_sanitize`
//!
//! Two input modes, chosen by the first byte:
//!
//! * **raw** (first byte < 0x80, e.g. a plain SQL statement): the input (UTF-8, lossily decoded) is
//!   sanitized in every dialect (PostgreSQL, MySQL, SQLite, generic), with comments dropped and
//!   kept, uncapped and with a small cap. Properties: no panic; the sanitized text is at most
//!   `max_len` bytes (the cap has no marker: the text is just cut) and, capped, a prefix of the
//!   uncapped text; the summary is at most `MAX_SUMMARY_LEN`; with comments dropped the text never
//!   grows beyond the input. Then the input is embedded as the body of a string literal, a block
//!   comment, a dollar-quoted string (every dialect), a string written for MySQL's
//!   `NO_BACKSLASH_ESCAPES` (MySQL and generic) and SQLite double-quoted strings in expression
//!   positions, behind a marker, escaped as the dialect requires: the marker never appears, and
//!   a string literal sanitizes to exactly `SELECT * FROM t WHERE a = ?`.
//! * **structured** (first byte >= 0x80): the rest drives `arbitrary::Unstructured` to build a
//!   statement of keywords and identifiers (no digits, no marker characters) mixed with string
//!   literals of every form (standard, MySQL backslash and double-quoted, `E''`, `N''`, `X''`,
//!   `B''`, dollar-quoted) carrying marker characters, numbers (including `987654321`), booleans,
//!   `IN` lists and comments. Property: neither the sanitized text nor the summary contains a
//!   marker character or an ASCII digit. This mirrors the proptest in
//!   `reliability/tests/bad_input_sanitizers.rs`.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use otelrs_sql::sanitize::{analyze, Dialect, SanitizeOptions, MAX_SUMMARY_LEN};

const DIALECTS: [Dialect; 4] = [Dialect::PostgreSql, Dialect::MySql, Dialect::Sqlite, Dialect::Generic];

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode >= 0x80 => structured(rest),
        _ => raw(data),
    }
});

// ---------------------------------------------------------------------------------------------
// Raw mode.
// ---------------------------------------------------------------------------------------------

const MARKER: &str = "Zq9xSECRET_4711";

fn raw(data: &[u8]) {
    let sql = String::from_utf8_lossy(data);
    let cap = data.len() % 97;
    for d in DIALECTS {
        for keep_comments in [false, true] {
            let options = SanitizeOptions::new(d).with_keep_comments(keep_comments);
            let full = analyze(&sql, &options.with_max_len(usize::MAX));
            assert!(full.summary.len() <= MAX_SUMMARY_LEN);
            if !keep_comments {
                assert!(
                    full.sanitized.len() <= sql.len().max(1),
                    "{d:?}: output grew: {sql:?} -> {:?}",
                    full.sanitized
                );
            }
            let default = analyze(&sql, &options);
            assert!(default.sanitized.len() <= otelrs_sql::sanitize::DEFAULT_MAX_TEXT_LEN);
            assert!(full.sanitized.starts_with(&default.sanitized));
            let capped = analyze(&sql, &options.with_max_len(cap));
            assert!(capped.sanitized.len() <= cap, "{} > {cap}", capped.sanitized.len());
            assert!(
                full.sanitized.starts_with(&capped.sanitized),
                "{d:?}: capped text is not a prefix:\n  capped: {:?}\n  full:   {:?}\n  in:     {sql:?}",
                capped.sanitized,
                full.sanitized
            );
            assert_eq!(capped.summary, full.summary, "the cap changed the summary");
        }
        embedded(&sql, d);
    }
}

/// `sql` as the body of literals and comments, behind [`MARKER`].
fn embedded(sql: &str, d: Dialect) {
    let options = SanitizeOptions::new(d).with_max_len(usize::MAX);
    let body = format!("{MARKER}{sql}");
    let quoted = if d == Dialect::MySql {
        body.replace('\\', "\\\\").replace('\'', "''")
    } else {
        body.replace('\'', "''")
    };
    let stmt = format!("SELECT * FROM t WHERE a = '{quoted}'");
    let a = analyze(&stmt, &options);
    assert_eq!(a.sanitized, "SELECT * FROM t WHERE a = ?", "{d:?}: {stmt:?}");
    assert_eq!(a.summary, "SELECT t", "{d:?}: {stmt:?}");

    // E'..' takes backslash escapes in every dialect.
    let e = format!(
        "SELECT * FROM t WHERE a = E'{}'",
        body.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let a = analyze(&e, &options);
    assert_eq!(a.sanitized, "SELECT * FROM t WHERE a = ?", "{d:?}: {e:?}");

    // A block comment (PostgreSQL and generic SQL nest them, so neither opener nor closer).
    if !body.contains("*/") && !body.contains("/*") {
        let c = format!("SELECT a /* {body} */ FROM t");
        let a = analyze(&c, &options);
        assert!(!a.sanitized.contains(MARKER), "{d:?}: {c:?} -> {:?}", a.sanitized);
        assert!(!a.summary.contains(MARKER));
    }
    // A line comment.
    if !body.contains('\n') {
        let c = format!("SELECT a FROM t -- {body}\nWHERE b = 1");
        let a = analyze(&c, &options);
        assert!(!a.sanitized.contains(MARKER), "{d:?}: {c:?} -> {:?}", a.sanitized);
    }
    // A dollar-quoted body: a literal in PostgreSQL, hidden in every dialect (elsewhere together
    // with whatever the server's reading of the body covers, so only the marker is checked).
    if format!("{body}$q$").find("$q$") == Some(body.len()) {
        let c = format!("SELECT $q${body}$q$ FROM t");
        let a = analyze(&c, &options);
        if matches!(d, Dialect::PostgreSql) {
            assert_eq!(a.sanitized, "SELECT ? FROM t", "{d:?}: {c:?}");
        }
        assert!(!a.sanitized.contains(MARKER), "{d:?}: {c:?} -> {:?}", a.sanitized);
        assert!(!a.summary.contains(MARKER));
        assert!(!a.has_placeholders, "{d:?}: {c:?}");
    }
    // A string written for NO_BACKSLASH_ESCAPES (quotes doubled, backslashes as they are), which
    // MySQL/MariaDB and unknown SQL may read either way.
    if matches!(d, Dialect::MySql | Dialect::Generic) {
        let c = format!("SELECT * FROM t WHERE a = '{}' AND b = 1", body.replace('\'', "''"));
        let a = analyze(&c, &options);
        assert!(!a.sanitized.contains(MARKER), "{d:?}: {c:?} -> {:?}", a.sanitized);
        assert!(!a.summary.contains(MARKER));
    }
    // A SQLite double-quoted string in expression positions.
    if d == Dialect::Sqlite {
        let q = format!("\"{}\"", body.replace('"', "\"\""));
        for c in [
            format!("SELECT a FROM t JOIN u ON {q} = u.b"),
            format!("SELECT CASE WHEN a = {q} THEN f({q}) END FROM t GROUP BY a HAVING b > {q}"),
            format!("UPDATE t SET a = {q} WHERE b IS DISTINCT FROM {q}"),
            format!("INSERT INTO t VALUES ({q}, {q})"),
        ] {
            let a = analyze(&c, &options);
            assert!(!a.sanitized.contains(MARKER), "{d:?}: {c:?} -> {:?}", a.sanitized);
            assert!(!a.summary.contains(MARKER));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Structured mode.
// ---------------------------------------------------------------------------------------------

/// Characters that only ever occur inside generated literals and comments.
const MARKERS: [char; 4] = ['Z', '~', '€', '日'];

const WORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "users",
    "orders",
    "name",
    "email",
    "password",
    "card",
    "IN",
    "NOT",
    "LIKE",
    "LIMIT",
    "AS",
    "JOIN",
    "ON",
    "CREATE",
    "TABLE",
    "WITH",
    "RETURNING",
    "GROUP",
    "BY",
    "ORDER",
    "CALL",
    "exec",
    "t",
    "x",
    "E",
    "N",
    "X",
    "B",
];

const PUNCT: &[&str] = &[
    "=", "<>", "(", ")", ",", ";", "*", "+", "-", ".", "||", "::", "<", ">", "!=",
];

const PARTS: &[&str] = &[
    "Z",
    "~",
    "€",
    "日",
    " ",
    "'",
    "\"",
    "`",
    "\\",
    "--",
    "/*",
    "*/",
    "#",
    "$$",
    "$q$",
    "$1",
    "?",
    ":n",
    "@n",
    ";",
    "(",
    ")",
    ",",
    "%",
    "\n",
    "\t",
    "[",
    "]",
    "Z4111 1111 1111 1111",
    "Zhunter2",
    "Zbob@example.com",
    "SECRET_1",
    "987654321",
    "\\'",
    "''",
    "E'",
    "X'",
];

const SPACES: &[&str] = &[" ", "\n", "\t", "  ", "\r\n"];

/// Literal content: always ends in a marker, so a leak of any part of it is detectable.
fn content(u: &mut Unstructured) -> Result<String> {
    let n = u.int_in_range(1..=12)?;
    let mut s = String::new();
    for _ in 0..n {
        s.push_str(u.choose(PARTS)?);
    }
    s.push('Z');
    Ok(s)
}

fn digits(u: &mut Unstructured, first_nonzero: bool, max: usize) -> Result<String> {
    let n = u.int_in_range(1..=max)?;
    let mut s = String::new();
    for i in 0..n {
        let lo = if i == 0 && first_nonzero { 1 } else { 0 };
        s.push(char::from(b'0' + u.int_in_range(lo..=9)?));
    }
    Ok(s)
}

fn number(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=8)? {
        0 => digits(u, true, 19)?,
        1 => format!("{}.{}", digits(u, false, 6)?, digits(u, false, 6)?),
        2 => format!(".{}", digits(u, false, 6)?),
        3 => format!(
            "{}{}{}{}",
            digits(u, true, 4)?,
            u.choose(&["e", "E"])?,
            u.choose(&["", "+", "-"])?,
            digits(u, false, 3)?
        ),
        4 => {
            let n = u.int_in_range(1..=12)?;
            let mut s = String::from(*u.choose(&["0x", "0X"])?);
            for _ in 0..n {
                s.push(*u.choose(&['0', '9', 'a', 'F', 'c', '7'])?);
            }
            s
        }
        5 => format!("0b{}", digits(u, false, 12)?.replace(|c: char| c > '1', "1")),
        6 => format!(
            "{}_{}_{}",
            digits(u, true, 1)?,
            digits(u, false, 3)?,
            digits(u, false, 3)?
        ),
        7 => "4111111111111111".to_owned(),
        _ => "987654321".to_owned(),
    })
}

/// A string literal as `d` reads it.
fn string_literal(u: &mut Unstructured, d: Dialect) -> Result<String> {
    let c = content(u)?;
    // Quotes doubled; MySQL treats backslashes as escapes, so they are doubled too.
    let doubled = if d == Dialect::MySql {
        c.replace('\\', "\\\\").replace('\'', "''")
    } else {
        c.replace('\'', "''")
    };
    Ok(match u.int_in_range(0..=7)? {
        0 | 1 => format!("'{doubled}'"),
        // MySQL: backslash escapes instead of doubled quotes.
        2 if d == Dialect::MySql => format!("'{}'", c.replace('\\', "\\\\").replace('\'', "\\'")),
        2 => format!("'{doubled}'"),
        // E'..' with backslash escapes (PostgreSQL; a prefix elsewhere too).
        3 => format!("E'{}'", c.replace('\\', "\\\\").replace('\'', "\\'")),
        4 => format!("N'{doubled}'"),
        // MySQL double-quoted strings.
        5 if d == Dialect::MySql => format!("\"{}\"", c.replace('\\', "\\\\").replace('"', "\"\"")),
        // Dollar-quoted bodies (a literal in PostgreSQL, hidden in every dialect).
        5 | 6 => {
            let tag = *u.choose(&["", "q", "body", "_t", "Fn"])?;
            let delim = format!("${tag}$");
            let body = if c.contains(&delim) { c.replace('$', "") } else { c };
            format!("{delim}{body}{delim}")
        }
        // Hex and bit strings: digits only, caught by the no-digit rule.
        _ => {
            if u.arbitrary()? {
                format!("X'{}'", digits(u, false, 8)?)
            } else {
                format!("B'{}'", digits(u, false, 8)?.replace(|c: char| c > '1', "0"))
            }
        }
    })
}

fn token(u: &mut Unstructured, d: Dialect, out: &mut String) -> Result<()> {
    match u.int_in_range(0..=15)? {
        0..=3 => out.push_str(u.choose(WORDS)?),
        4..=6 => out.push_str(&string_literal(u, d)?),
        7..=8 => out.push_str(&number(u)?),
        9 => out.push_str(u.choose(&["TRUE", "false", "True"])?),
        10..=11 => out.push_str(u.choose(PUNCT)?),
        // Comments: block comments hold neither `*` nor `/` (PostgreSQL nests them), line comments no
        // line break.
        12 => {
            let c: String = content(u)?.chars().filter(|c| *c != '*' && *c != '/').collect();
            out.push_str(&format!("/* {c} */"));
        }
        13 => {
            let c = content(u)?.replace(['\n', '\r'], " ");
            let opener = if d == Dialect::MySql {
                *u.choose(&["-- ", "# "])?
            } else {
                "-- "
            };
            out.push_str(&format!("{opener}{c}\n"));
        }
        _ => {
            let n = u.int_in_range(1..=5)?;
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(if u.ratio(1, 4)? {
                    string_literal(u, d)?
                } else {
                    number(u)?
                });
            }
            out.push_str(&format!("IN ({})", items.join(", ")));
        }
    }
    Ok(())
}

fn statement(u: &mut Unstructured, d: Dialect) -> Result<String> {
    let mut s = String::new();
    let n = u.int_in_range(1..=40)?;
    for _ in 0..n {
        token(u, d, &mut s)?;
        s.push_str(u.choose(SPACES)?);
    }
    Ok(s)
}

#[track_caller]
fn assert_no_literal(what: &str, text: &str, d: Dialect, sql: &str) {
    for m in MARKERS {
        assert!(
            !text.contains(m),
            "{d:?}: {what} leaks literal content ({m:?}):\n  out: {text:?}\n  in:  {sql:?}"
        );
    }
    assert!(
        !text.bytes().any(|b| b.is_ascii_digit()),
        "{d:?}: {what} leaks a numeric literal:\n  out: {text:?}\n  in:  {sql:?}"
    );
}

fn structured(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(&d) = u.choose(&DIALECTS) else {
        return;
    };
    let Ok(cap) = u.int_in_range(0..=300usize) else {
        return;
    };
    // Running out of bytes just ends the statement.
    let sql = match statement(&mut u, d) {
        Ok(s) => s,
        Err(_) => return,
    };
    let a = analyze(&sql, &SanitizeOptions::new(d).with_max_len(usize::MAX));
    assert_no_literal("sanitized text", &a.sanitized, d, &sql);
    assert_no_literal("summary", &a.summary, d, &sql);
    assert!(a.summary.len() <= MAX_SUMMARY_LEN);
    let capped = analyze(&sql, &SanitizeOptions::new(d).with_max_len(cap));
    assert!(capped.sanitized.len() <= cap);
    assert_no_literal("capped text", &capped.sanitized, d, &sql);
}
