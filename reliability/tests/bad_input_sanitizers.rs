//! Bad input to the SQL sanitizer (`otelrs_sql::sanitize`) and the Redis masker
//! (`otelrs_redis::mask_command`): no panic on anything, bounded output, and the sanitized /
//! masked text never contains a literal or a value of the input.

use otelrs_sql::sanitize::{analyze, Dialect, SanitizeOptions, MAX_SUMMARY_LEN};
use proptest::prelude::*;

const DIALECTS: [Dialect; 4] = [Dialect::PostgreSql, Dialect::MySql, Dialect::Sqlite, Dialect::Generic];

fn dialect() -> impl Strategy<Value = Dialect> {
    prop::sample::select(DIALECTS.to_vec())
}

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

/// Characters that only ever occur inside generated literals. If any of them shows up in the
/// sanitized text or the summary, a literal leaked.
const MARKERS: [char; 4] = ['Z', '~', '€', '日'];

/// String-literal content: markers, quotes of every kind, backslashes and comment / placeholder
/// look-alikes, which are exactly what a lexer can get wrong.
fn string_content() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
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
            "Z4111 1111 1111 1111",
            "Zhunter2",
            "Zbob@example.com",
        ]),
        1..12,
    )
    .prop_map(|parts| {
        let mut s: String = parts.concat();
        // Every literal carries a marker, so a leak of any part of it is detectable.
        s.push('Z');
        s
    })
}

/// A string literal written as `dialect` reads it (quotes doubled, backslashes escaped where
/// they are escapes), optionally with a prefix (`E`, `N`, `X` / `B` with hex / bit content).
fn string_literal(d: Dialect) -> impl Strategy<Value = String> {
    (string_content(), 0u8..6, "[0-9a-f]{0,8}", "[01]{0,8}").prop_map(move |(content, form, hex, bits)| {
        let doubled = content.replace('\'', "''");
        match form {
            // Standard string; MySQL treats backslashes as escapes, so they are doubled.
            0 | 1 if d == Dialect::MySql => format!("'{}'", doubled.replace('\\', "\\\\")),
            0 | 1 => format!("'{doubled}'"),
            // E'..' with backslash escapes (PostgreSQL; a prefix elsewhere too).
            2 => format!("E'{}'", content.replace('\\', "\\\\").replace('\'', "\\'")),
            3 if d == Dialect::MySql => format!("N'{}'", doubled.replace('\\', "\\\\")),
            3 => format!("N'{doubled}'"),
            // Hex and bit strings: content is digits, prefixed so the leak check sees a marker-free
            // literal; these are checked by the no-digit rule instead.
            4 => format!("X'{hex}'"),
            _ => format!("B'{bits}'"),
        }
    })
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        "[1-9][0-9]{0,18}",
        "[0-9]{1,6}\\.[0-9]{1,6}",
        "\\.[0-9]{1,6}",
        "[1-9][0-9]{0,3}(\\.[0-9]{1,3})?[eE][+-]?[0-9]{1,3}",
        "0[xX][0-9a-fA-F]{1,12}",
        "0[bB][01]{1,12}",
        "[1-9]_[0-9]{3}_[0-9]{3}",
        Just("4111111111111111".to_owned()),
    ]
}

/// One token of a generated statement: keywords and identifiers (never containing digits or
/// markers) mixed with literals, comments and punctuation.
fn sql_token(d: Dialect) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "SELECT", "FROM", "WHERE", "AND", "OR", "INSERT", "INTO", "VALUES", "UPDATE", "SET", "DELETE",
            "users", "orders", "name", "email", "password", "card", "IN", "NOT", "LIKE", "LIMIT", "AS",
        ]).prop_map(str::to_owned),
        3 => string_literal(d),
        3 => number_literal(),
        1 => prop::sample::select(vec!["TRUE", "false"]).prop_map(str::to_owned),
        2 => prop::sample::select(vec!["=", "<>", "(", ")", ",", ";", "*", "+", "-", ".", "||", "::"]).prop_map(str::to_owned),
        // PostgreSQL nests block comments, so the content holds neither opener nor closer.
        1 => string_content().prop_map(|c| format!("/* {} */", c.replace("*/", "").replace("/*", ""))),
        1 => string_content().prop_map(|c| format!("-- {}\n", c.replace('\n', " "))),
        1 => prop::collection::vec(number_literal(), 1..5).prop_map(|n| format!("IN ({})", n.join(", "))),
    ]
}

fn statement(d: Dialect) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(sql_token(d), 1..30),
        prop::collection::vec(" |\n|\t|  ", 30),
    )
        .prop_map(|(tokens, spaces)| {
            let mut s = String::new();
            for (t, sp) in tokens.iter().zip(spaces.iter()) {
                s.push_str(t);
                s.push_str(sp);
            }
            s
        })
}

fn dialect_and_statement() -> impl Strategy<Value = (Dialect, String)> {
    dialect().prop_flat_map(|d| (Just(d), statement(d)))
}

#[track_caller]
fn assert_no_literal(what: &str, text: &str, sql: &str) {
    for m in MARKERS {
        assert!(
            !text.contains(m),
            "{what} leaks literal content ({m:?}):\n  out: {text:?}\n  in:  {sql:?}"
        );
    }
    assert!(
        !text.bytes().any(|b| b.is_ascii_digit()),
        "{what} leaks a numeric literal:\n  out: {text:?}\n  in:  {sql:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Statements made of keywords, identifiers and literals of every form: neither the
    /// sanitized text nor the summary contains any part of a string literal or any digit (the
    /// identifiers have none), in every dialect, with comments dropped (the default).
    #[test]
    fn sanitized_sql_never_contains_a_literal((d, sql) in dialect_and_statement()) {
        let a = analyze(&sql, &SanitizeOptions::new(d).with_max_len(usize::MAX));
        assert_no_literal("sanitized text", &a.sanitized, &sql);
        assert_no_literal("summary", &a.summary, &sql);
    }

    /// Arbitrary text (any Unicode), any dialect, any cap: no panic, the cap and the summary
    /// limit hold, and the output is a prefix-safe cut (valid UTF-8 by construction).
    #[test]
    fn arbitrary_sql_never_panics_and_respects_caps(
        sql in "\\PC{0,300}|[ -~]{0,300}",
        d in dialect(),
        max_len in 0usize..400,
        keep_comments in any::<bool>(),
    ) {
        let a = analyze(&sql, &SanitizeOptions::new(d).with_max_len(max_len).with_keep_comments(keep_comments));
        prop_assert!(a.sanitized.len() <= max_len, "{} > {}", a.sanitized.len(), max_len);
        prop_assert!(a.summary.len() <= MAX_SUMMARY_LEN);
        // Without comments the output never grows beyond the input (a literal becomes `?`;
        // a dropped comment leaves one space).
        if !keep_comments {
            prop_assert!(a.sanitized.len() <= sql.len().max(1));
        }
    }
}

/// A 1 MiB statement (one huge literal, and many small ones) is sanitized in bounded time with
/// output capped at the default 4096 bytes and no literal in it.
#[test]
fn one_mebibyte_statement_is_capped_and_hidden() {
    let huge_string = format!("SELECT * FROM users WHERE note = '{}'", "Zsecret".repeat(150_000));
    let many_literals = format!(
        "INSERT INTO cards VALUES {}",
        vec!["(4111111111111111, 'Zbob@example.com')"; 30_000].join(", ")
    );
    for sql in [huge_string, many_literals] {
        assert!(sql.len() >= 1 << 20);
        for d in DIALECTS {
            let started = std::time::Instant::now();
            let a = analyze(&sql, &SanitizeOptions::new(d));
            let took = started.elapsed();
            assert!(a.sanitized.len() <= otelrs_sql::sanitize::DEFAULT_MAX_TEXT_LEN);
            assert_no_literal("sanitized text", &a.sanitized, &sql[..200]);
            assert_no_literal("summary", &a.summary, &sql[..200]);
            // Generous for a loaded 2-core machine in a debug build; a quadratic lexer would take
            // minutes on 1 MiB.
            assert!(took < std::time::Duration::from_secs(2), "{d:?}: {took:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// The marker every value carries; keys are lowercase hex, command names upper-case, so the
/// marker appears in the masked text only if a value leaked.
const VALUE_MARK: &str = "SeCrEt";

fn value() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(any::<u8>(), 0..12),
        prop::collection::vec(any::<u8>(), 0..12),
    )
        .prop_map(|(a, b)| {
            let mut v = a;
            v.extend_from_slice(VALUE_MARK.as_bytes());
            v.extend(b);
            v
        })
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    "[0-9a-f:_]{1,12}".prop_map(String::into_bytes)
}

/// A command with values in the positions Redis defines as values (from the Redis command
/// reference, not from the masker's table), in random letter case.
fn command_with_values() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let k = key;
    let v = value;
    let n = || "[0-9]{1,4}".prop_map(String::into_bytes);
    let w = |s: &'static str| Just(s.as_bytes().to_vec());
    let templates: Vec<BoxedStrategy<Vec<Vec<u8>>>> = vec![
        (w("SET"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("SET"), k(), v(), w("EX"), n())
            .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
            .boxed(),
        (w("SETNX"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("GETSET"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("APPEND"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("SETEX"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("PSETEX"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("SETRANGE"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("MSET"), prop::collection::vec((k(), v()), 1..4))
            .prop_map(|(a, kv)| {
                std::iter::once(a)
                    .chain(kv.into_iter().flat_map(|(k, v)| [k, v]))
                    .collect()
            })
            .boxed(),
        (w("HSET"), k(), prop::collection::vec((k(), v()), 1..4))
            .prop_map(|(a, h, kv)| {
                [a, h]
                    .into_iter()
                    .chain(kv.into_iter().flat_map(|(k, v)| [k, v]))
                    .collect()
            })
            .boxed(),
        (w("HMSET"), k(), k(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("HSETNX"), k(), k(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (
            prop::sample::select(vec![
                "LPUSH",
                "RPUSH",
                "LPUSHX",
                "RPUSHX",
                "SADD",
                "SREM",
                "SISMEMBER",
                "SMISMEMBER",
                "PFADD",
                "ZREM",
                "ZMSCORE",
                "LPOS",
            ]),
            k(),
            prop::collection::vec(v(), 1..4),
        )
            .prop_map(|(a, b, vs)| [a.as_bytes().to_vec(), b].into_iter().chain(vs).collect())
            .boxed(),
        (w("LINSERT"), k(), w("BEFORE"), v(), v())
            .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
            .boxed(),
        (w("LSET"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("LREM"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("SMOVE"), k(), k(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("ZADD"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("ZSCORE"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("ZRANK"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("ZINCRBY"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("GEOADD"), k(), n(), n(), v())
            .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
            .boxed(),
        (w("PUBLISH"), k(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("XADD"), k(), w("*"), k(), v())
            .prop_map(|(a, b, c, d, e)| vec![a, b, c, d, e])
            .boxed(),
        (w("RESTORE"), k(), n(), v())
            .prop_map(|(a, b, c, d)| vec![a, b, c, d])
            .boxed(),
        (w("AUTH"), v()).prop_map(|(a, b)| vec![a, b]).boxed(),
        (w("AUTH"), v(), v()).prop_map(|(a, b, c)| vec![a, b, c]).boxed(),
        (w("HELLO"), w("3"), w("AUTH"), v(), v(), w("SETNAME"), k())
            .prop_map(|(a, b, c, d, e, f, g)| vec![a, b, c, d, e, f, g])
            .boxed(),
        (
            w("CONFIG"),
            w("SET"),
            prop::sample::select(vec!["requirepass", "masterauth", "tls-key-file-pass"]),
            v(),
        )
            .prop_map(|(a, b, c, d)| vec![a, b, c.as_bytes().to_vec(), d])
            .boxed(),
        (w("ACL"), w("SETUSER"), k(), w("on"), v(), w("~*"))
            .prop_map(|(a, b, c, d, e, f)| {
                let mut pw = b">".to_vec();
                pw.extend(e);
                vec![a, b, c, d, pw, f]
            })
            .boxed(),
        (
            w("MIGRATE"),
            w("127.0.0.1"),
            w("6379"),
            k(),
            w("0"),
            w("5000"),
            w("AUTH"),
            v(),
        )
            .prop_map(|(a, b, c, d, e, f, g, h)| vec![a, b, c, d, e, f, g, h])
            .boxed(),
        (
            w("MIGRATE"),
            w("127.0.0.1"),
            w("6379"),
            k(),
            w("0"),
            w("5000"),
            w("AUTH2"),
            v(),
            v(),
        )
            .prop_map(|(a, b, c, d, e, f, g, h, i)| vec![a, b, c, d, e, f, g, h, i])
            .boxed(),
        (
            w("EVALSHA"),
            "[0-9a-f]{40}".prop_map(String::into_bytes),
            w("1"),
            k(),
            prop::collection::vec(v(), 0..3),
        )
            .prop_map(|(a, b, c, d, vs)| [a, b, c, d].into_iter().chain(vs).collect())
            .boxed(),
        (
            w("FCALL"),
            "[a-z_]{1,10}".prop_map(String::into_bytes),
            w("0"),
            prop::collection::vec(v(), 0..3),
        )
            .prop_map(|(a, b, c, vs)| [a, b, c].into_iter().chain(vs).collect())
            .boxed(),
        (prop::sample::select(vec!["ECHO", "PING"]), v())
            .prop_map(|(a, b)| vec![a.as_bytes().to_vec(), b])
            .boxed(),
        ("[A-Z]{2,8}\\.[A-Z]{2,8}", prop::collection::vec(v(), 0..4))
            .prop_map(|(a, vs)| std::iter::once(a.into_bytes()).chain(vs).collect())
            .boxed(),
    ];
    (
        prop::sample::select((0..templates.len()).collect::<Vec<_>>()),
        any::<bool>(),
    )
        .prop_flat_map(move |(i, lower)| {
            templates[i].clone().prop_map(move |mut args| {
                if lower {
                    args[0] = args[0].to_ascii_lowercase();
                }
                args
            })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Values (including passwords of AUTH / HELLO / CONFIG SET / ACL SETUSER / MIGRATE and script
    /// arguments) never appear in the masked command, in any letter case of the command.
    #[test]
    fn masked_redis_command_never_contains_a_value(args in command_with_values()) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let masked = otelrs_redis::mask_command(&refs);
        prop_assert!(!masked.contains(VALUE_MARK), "value leaked: {:?}", masked);
        let op = otelrs_redis::operation_name(&refs);
        prop_assert!(!op.contains(VALUE_MARK));
    }

    /// Arbitrary argument vectors (any bytes, any count): no panic, the operation name is a
    /// plain token or `_OTHER`, and the masked text is at most the escaped size of the input.
    #[test]
    fn arbitrary_redis_args_never_panic(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12)) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let masked = otelrs_redis::mask_command(&refs);
        let op = otelrs_redis::operation_name(&refs);
        prop_assert!(op == otelrs_redis::OPERATION_OTHER || (op.len() <= 129 && !op.is_empty()), "{:?}", op);
        // Worst case every byte becomes `\xHH` plus quotes and separators.
        let bound: usize = refs.iter().map(|a| 4 * a.len() + 3).sum::<usize>() + 8;
        prop_assert!(masked.len() <= bound, "{} > {}", masked.len(), bound);
    }
}

/// A 1 MiB value is masked to `?` without being copied into the text.
#[test]
fn one_mebibyte_value_is_masked() {
    let big = vec![b'x'; 1 << 20];
    assert_eq!(otelrs_redis::mask_command(&[b"SET", b"k", &big]), "SET k ?");
    assert_eq!(otelrs_redis::mask_command(&[b"AUTH", &big]), "AUTH ?");
    let many: Vec<&[u8]> = std::iter::once(b"RPUSH".as_slice())
        .chain(std::iter::once(b"list".as_slice()))
        .chain(std::iter::repeat_n(b"SeCrEt".as_slice(), 100_000))
        .collect();
    let masked = otelrs_redis::mask_command(&many);
    assert_eq!(masked.len(), "RPUSH list".len() + 2 * 100_000);
    assert!(!masked.contains(VALUE_MARK));
}
