//! `cargo +nightly fuzz run redis_mask`
//!
//! Input: a Redis command, its arguments separated by spaces (`SET user:1 hunter2`), or, when the
//! input starts with a NUL byte, by NUL bytes (so arguments can hold spaces and any other byte).
//!
//! Properties of `otelrs_redis::mask_command` / `operation_name`:
//! * no panic; the operation name is `_OTHER` or a non-empty token of at most 129 bytes, and the
//!   masked text starts with it; the masked text is ASCII (kept bytes are escaped) and at most the
//!   escaped size of the input;
//! * values never appear: every argument in a value position (from the Redis command reference,
//!   not from the masker's table: `SET k v`, `HSET h f v ...`, `LPUSH l v ...`, `MSET`, `SETEX`,
//!   `LSET`, `ZADD`, `PUBLISH`, `XADD`, `EVAL*` / `FCALL*` arguments, `ECHO`, `PING`, module
//!   commands, ...) and every secret (`AUTH`, `HELLO ... AUTH user pass`, `CONFIG SET` values,
//!   `MIGRATE ... AUTH pass` / `AUTH2 user pass`, `ACL SETUSER` rules) is replaced by a marker,
//!   and the marker must not occur in the masked text or the operation name;
//! * script bodies (`EVAL`/`EVAL_RO`, `SCRIPT LOAD`, `FUNCTION LOAD`): a string literal holding the
//!   marker, appended to the script on a line of its own, never shows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otelrs_redis::{mask_command, operation_name, OPERATION_OTHER};

const MARKER: &[u8] = b"SeCrEt";

fuzz_target!(|data: &[u8]| {
    let args: Vec<&[u8]> = match data.strip_prefix(b"\0") {
        Some(rest) => rest.split(|b| *b == 0).collect(),
        None => data.split(|b| *b == b' ').collect(),
    };
    check_bounds(&args);
    check_script_literals(&args);

    let values = value_positions(&args);
    if values.is_empty() {
        return;
    }
    let mut with_marker = args.clone();
    for &i in &values {
        with_marker[i] = MARKER;
    }
    // A key or keyword that itself holds the marker would legitimately be shown.
    if with_marker
        .iter()
        .enumerate()
        .any(|(i, a)| !values.contains(&i) && contains(a, MARKER))
    {
        return;
    }
    check_bounds(&with_marker);
    let masked = mask_command(&with_marker);
    assert!(
        !masked.contains("SeCrEt"),
        "value leaked: {:?} -> {masked:?}",
        lossy(&with_marker)
    );
    assert!(!operation_name(&with_marker).contains("SeCrEt"));
});

/// Script bodies (`EVAL`/`EVAL_RO` script, `SCRIPT LOAD`, `FUNCTION LOAD [REPLACE]`): whatever the
/// script is, a string literal appended after an empty line (inside or after it, in a string, a
/// comment or code) never shows.
fn check_script_literals(args: &[&[u8]]) {
    let Some(first) = args.first() else {
        return;
    };
    let cmd = String::from_utf8_lossy(first).to_ascii_uppercase();
    let at = match cmd.as_str() {
        "EVAL" | "EVAL_RO" => 1,
        "SCRIPT" if is(args.get(1), "LOAD") => 2,
        "FUNCTION" if is(args.get(1), "LOAD") => {
            if is(args.get(2), "REPLACE") {
                3
            } else {
                2
            }
        }
        _ => return,
    };
    let Some(script) = args.get(at) else {
        return;
    };
    if contains(script, MARKER) || args.iter().enumerate().any(|(i, a)| i != at && contains(a, MARKER)) {
        return;
    }
    // Two line breaks: a script ending in `\` escapes the first (a Lua line continuation).
    for literal in [&b"\n\n'SeCrEt'"[..], b"\n\n\"SeCrEt\"", b"\n\n[==[SeCrEt]==]"] {
        let body = [*script, literal].concat();
        let mut with_literal = args.to_vec();
        with_literal[at] = &body;
        let masked = mask_command(&with_literal);
        assert!(
            !masked.contains("SeCrEt"),
            "script literal leaked: {:?} -> {masked:?}",
            lossy(&with_literal)
        );
    }
}

fn lossy<'a>(args: &'a [&[u8]]) -> Vec<std::borrow::Cow<'a, str>> {
    args.iter().map(|a| String::from_utf8_lossy(a)).collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn check_bounds(args: &[&[u8]]) {
    let masked = mask_command(args);
    let op = operation_name(args);
    assert!(
        op == OPERATION_OTHER || (!op.is_empty() && op.len() <= 129),
        "operation name {op:?}"
    );
    assert!(masked.starts_with(&op), "{masked:?} does not start with {op:?}");
    assert!(masked.is_ascii(), "raw non-ASCII bytes in {masked:?}");
    // Worst case every byte becomes `\xHH`, plus quotes and separators.
    let bound: usize = args.iter().map(|a| 4 * a.len() + 3).sum::<usize>() + OPERATION_OTHER.len() + 2;
    assert!(masked.len() <= bound, "{} > {bound}", masked.len());
}

fn is(arg: Option<&&[u8]>, word: &str) -> bool {
    arg.is_some_and(|a| a.eq_ignore_ascii_case(word.as_bytes()))
}

/// Positions of values and secrets per the Redis command reference.
fn value_positions(args: &[&[u8]]) -> Vec<usize> {
    let n = args.len();
    let Some(first) = args.first() else {
        return Vec::new();
    };
    let cmd = String::from_utf8_lossy(first).to_ascii_uppercase();
    let from = |i: usize| (i..n).collect::<Vec<_>>();
    let every_other = |i: usize| (i..n).step_by(2).collect::<Vec<_>>();
    match cmd.as_str() {
        "AUTH" | "ECHO" | "PING" => from(1),
        // key value [options] / key member...
        "SET" | "SETNX" | "GETSET" | "APPEND" | "PUBLISH" | "SPUBLISH" | "ZSCORE" | "ZRANK" | "ZREVRANK"
        | "SISMEMBER" | "SMISMEMBER" | "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" | "SADD" | "SREM" | "PFADD" | "ZREM"
        | "ZMSCORE" | "LPOS" | "XADD" | "ZADD" | "GEOADD" => from(2),
        // key <number|field|destination> value...
        "SETEX" | "PSETEX" | "SETRANGE" | "LSET" | "LREM" | "LINSERT" | "HSETNX" | "ZINCRBY" | "SMOVE" | "RESTORE" => {
            from(3)
        }
        "MSET" | "MSETNX" => every_other(2),
        "HSET" | "HMSET" => every_other(3),
        "EVAL" | "EVALSHA" | "EVAL_RO" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => {
            let numkeys = args
                .get(2)
                .and_then(|a| std::str::from_utf8(a).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|k| *k <= n.saturating_sub(3));
            match numkeys {
                Some(k) => from(3 + k),
                None => from(2),
            }
        }
        // HELLO [protover [AUTH username password] [SETNAME clientname]]
        "HELLO" => {
            let mut out = Vec::new();
            let mut i = 1;
            if args
                .get(1)
                .is_some_and(|a| !a.is_empty() && a.iter().all(u8::is_ascii_digit))
            {
                i = 2;
            }
            while i < n {
                if is(args.get(i), "AUTH") {
                    out.extend((i + 1..n).take(2));
                    i += 3;
                } else if is(args.get(i), "SETNAME") {
                    i += 2;
                } else {
                    i += 1;
                }
            }
            out
        }
        // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH password | AUTH2 user password] [KEYS key...]
        "MIGRATE" => {
            let mut out = Vec::new();
            let mut i = 6;
            while i < n {
                if is(args.get(i), "AUTH") {
                    out.extend((i + 1..n).take(1));
                    i += 2;
                } else if is(args.get(i), "AUTH2") {
                    out.extend((i + 1..n).take(2));
                    i += 3;
                } else if is(args.get(i), "KEYS") {
                    break;
                } else {
                    i += 1;
                }
            }
            out
        }
        // CONFIG SET parameter value [parameter value ...]
        "CONFIG" if is(args.get(1), "SET") => every_other(3),
        // ACL SETUSER username [rule ...]: rules hold passwords (`>pw`, `#hash`).
        "ACL" if is(args.get(1), "SETUSER") => from(3),
        // Module commands (`JSON.SET`, `FT.SEARCH`): arguments are unknown, hence values.
        c if c.contains('.') && !c.contains(' ') => from(1),
        _ => Vec::new(),
    }
}
