//! The sanitizer and summary generator on a corpus of tricky statements, plus properties.

use otelrs_sql::sanitize::{analyze, sanitize, summarize, Dialect, SanitizeOptions, MAX_SUMMARY_LEN};
use proptest::prelude::*;

fn pg(sql: &str) -> String {
    sanitize(sql, &SanitizeOptions::new(Dialect::PostgreSql))
}
fn my(sql: &str) -> String {
    sanitize(sql, &SanitizeOptions::new(Dialect::MySql))
}
fn lite(sql: &str) -> String {
    sanitize(sql, &SanitizeOptions::new(Dialect::Sqlite))
}

#[test]
fn string_numeric_hex_boolean_literals_become_placeholders() {
    assert_eq!(
        pg("SELECT * FROM t WHERE a = 'x' AND b = 42 AND c = -1.5e10 AND d = .5 AND e = TRUE OR f = false"),
        "SELECT * FROM t WHERE a = ? AND b = ? AND c = -? AND d = ? AND e = ? OR f = ?"
    );
    assert_eq!(
        my("SELECT 0x1F, 0b101, X'ff', x'00', B'01', 1_000"),
        "SELECT ?, ?, ?, ?, ?, ?"
    );
    assert_eq!(pg("SELECT 1e+5, 2E-3, 3.e4"), "SELECT ?, ?, ?");
    assert_eq!(
        pg("SELECT DATE '2024-01-01', INTERVAL '1 day'"),
        "SELECT DATE ?, INTERVAL ?"
    );
    // Identifiers containing digits are not numbers.
    assert_eq!(pg("SELECT t1.c2 FROM t1"), "SELECT t1.c2 FROM t1");
    // NULL is not a literal to hide.
    assert_eq!(
        pg("UPDATE t SET a = NULL WHERE b IS NOT NULL"),
        "UPDATE t SET a = NULL WHERE b IS NOT NULL"
    );
}

#[test]
fn escaped_and_nested_quotes() {
    // Doubled quotes everywhere.
    assert_eq!(pg("SELECT 'it''s', 'a''''b' FROM t"), "SELECT ?, ? FROM t");
    // PostgreSQL: a backslash is an ordinary character in standard strings ...
    assert_eq!(pg(r"SELECT 'a\' , 'b'"), "SELECT ? , ?");
    // ... but escapes in E'' strings.
    assert_eq!(pg(r"SELECT E'it\'s \\ here', e'x\'y' FROM t"), "SELECT ?, ? FROM t");
    // MySQL: backslash escapes in both quote kinds; double quotes are strings.
    assert_eq!(my(r#"SELECT 'it''s', "x""y" FROM t"#), "SELECT ?, ? FROM t");
    // A backslash may be an escape or (`NO_BACKSLASH_ESCAPES`) an ordinary character: where
    // the two readings disagree on where literals end, everything either could cover is hidden.
    assert_eq!(my(r#"SELECT 'a\\b', "c\\d" FROM t"#), "SELECT ?, ? FROM t");
    assert_eq!(my(r#"SELECT 'it\'s', "say \"hi\"", "x""y" FROM t"#), "SELECT ?");
    // PostgreSQL: double quotes are identifiers and stay.
    assert_eq!(
        pg(r#"SELECT "col ""x""" FROM "Users" WHERE a = 'q"q'"#),
        r#"SELECT "col ""x""" FROM "Users" WHERE a = ?"#
    );
    // SQLite: backticks and brackets are identifiers; a double-quoted token outside a name
    // position may be a string (SQLite's fallback), so it is hidden.
    assert_eq!(
        lite(r#"SELECT "a", `b`, [c d] FROM t WHERE x = 'y'"#),
        r#"SELECT ?, `b`, [c d] FROM t WHERE x = ?"#
    );
    // MySQL backticks are identifiers.
    assert_eq!(
        my("SELECT `we``ird` FROM `t` WHERE a = 'b'"),
        "SELECT `we``ird` FROM `t` WHERE a = ?"
    );
    // A quote inside a quoted identifier does not open a string.
    assert_eq!(
        pg(r#"SELECT "it's" FROM t WHERE a = 1"#),
        r#"SELECT "it's" FROM t WHERE a = ?"#
    );
}

#[test]
fn dollar_quoted_bodies() {
    assert_eq!(
        pg("SELECT $$secret ' stuff$$, $tag$ a $$ b $tag$, $1"),
        "SELECT ?, ?, $1"
    );
    assert_eq!(pg("DO $body$ BEGIN RAISE NOTICE 'x'; END $body$"), "DO ?");
    // `$` inside identifiers is not a delimiter.
    assert_eq!(pg("SELECT a$b$ FROM t WHERE c = 'd'"), "SELECT a$b$ FROM t WHERE c = ?");
    // Unterminated body runs to the end.
    assert_eq!(pg("SELECT $q$ never closed 'x"), "SELECT ?");
}

#[test]
fn comments_dropped_or_kept() {
    let sql = "SELECT a -- it's 'hidden'\nFROM t /* don't 'leak' */ WHERE b = 'c'";
    assert_eq!(pg(sql), "SELECT a  \nFROM t   WHERE b = ?");
    let keep = SanitizeOptions::new(Dialect::PostgreSql).with_keep_comments(true);
    assert_eq!(
        sanitize(sql, &keep),
        "SELECT a -- it's 'hidden'\nFROM t /* don't 'leak' */ WHERE b = ?"
    );
    // Nested block comments in PostgreSQL.
    assert_eq!(pg("SELECT /* a /* 'b' */ c' */ 1"), "SELECT   ?");
    // MySQL `#` comments; not comments in PostgreSQL.
    assert_eq!(my("SELECT 1 # it's\nFROM t"), "SELECT ?  \nFROM t");
    // Quotes inside comments never open strings.
    assert_eq!(my("SELECT /* ' */ 'x' /* \" */ FROM t"), "SELECT   ?   FROM t");
}

#[test]
fn placeholders_are_kept_and_detected() {
    let a = analyze(
        "SELECT * FROM t WHERE a = $1 AND b = $2::int",
        &SanitizeOptions::new(Dialect::PostgreSql),
    );
    assert_eq!(a.sanitized, "SELECT * FROM t WHERE a = $1 AND b = $2::int");
    assert!(a.has_placeholders);
    let a = analyze(
        "SELECT * FROM t WHERE a = ? AND b = 'x'",
        &SanitizeOptions::new(Dialect::MySql),
    );
    assert_eq!(a.sanitized, "SELECT * FROM t WHERE a = ? AND b = ?");
    assert!(a.has_placeholders);
    let a = analyze(
        "SELECT :name, ?2, @p, $v FROM t",
        &SanitizeOptions::new(Dialect::Sqlite),
    );
    assert_eq!(a.sanitized, "SELECT :name, ?2, @p, $v FROM t");
    assert!(a.has_placeholders);
    // PostgreSQL `?` is a JSON operator and `::` a cast, neither a placeholder.
    let a = analyze(
        "SELECT data ? 'k', x::text FROM t",
        &SanitizeOptions::new(Dialect::PostgreSql),
    );
    assert_eq!(a.sanitized, "SELECT data ? ?, x::text FROM t");
    assert!(!a.has_placeholders);
    // A placeholder inside a string is not a placeholder.
    let a = analyze("SELECT '$1' FROM t", &SanitizeOptions::new(Dialect::PostgreSql));
    assert!(!a.has_placeholders);
}

#[test]
fn in_lists_collapse() {
    assert_eq!(
        pg("SELECT * FROM t WHERE id IN (1, 2, 3)"),
        "SELECT * FROM t WHERE id IN (?)"
    );
    assert_eq!(
        pg("SELECT * FROM t WHERE id in ('a','b') AND x NOT IN (-1,+2)"),
        "SELECT * FROM t WHERE id in (?) AND x NOT IN (?)"
    );
    // Placeholders and sub-queries are left alone.
    assert_eq!(
        pg("SELECT * FROM t WHERE id IN ($1, $2)"),
        "SELECT * FROM t WHERE id IN ($1, $2)"
    );
    assert_eq!(
        pg("SELECT * FROM t WHERE id IN (SELECT 1)"),
        "SELECT * FROM t WHERE id IN (SELECT ?)"
    );
    assert_eq!(
        pg("SELECT * FROM t WHERE id IN (1, a)"),
        "SELECT * FROM t WHERE id IN (?, a)"
    );
    assert_eq!(pg("SELECT * FROM t WHERE id IN ()"), "SELECT * FROM t WHERE id IN ()");
}

#[test]
fn unterminated_literals_hide_the_rest() {
    assert_eq!(pg("SELECT * FROM t WHERE a = 'secret"), "SELECT * FROM t WHERE a = ?");
    assert_eq!(my(r"SELECT 'abc\"), "SELECT ?");
    assert_eq!(my(r#"SELECT "abc"#), "SELECT ?");
    assert_eq!(pg(r#"SELECT "unterminated ident"#), "SELECT ?");
    assert_eq!(pg("SELECT E'abc\\'"), "SELECT ?");
    assert_eq!(pg("SELECT 1 /* open"), "SELECT ?  ");
    assert_eq!(lite("SELECT [abc"), "SELECT ?");
}

#[test]
fn length_cap_cuts_at_a_char_boundary() {
    let opts = SanitizeOptions::new(Dialect::PostgreSql).with_max_len(10);
    assert_eq!(sanitize("SELECT ééééé FROM t", &opts), "SELECT é");
    assert_eq!(sanitize("SELECT 1", &opts), "SELECT ?");
    assert_eq!(sanitize("SELECT a, 'x'", &opts), "SELECT a, ");
    let zero = SanitizeOptions::new(Dialect::PostgreSql).with_max_len(0);
    assert_eq!(sanitize("SELECT 1", &zero), "");
    // An IN-list at the cap still collapses below it.
    let opts = SanitizeOptions::new(Dialect::PostgreSql).with_max_len(14);
    assert_eq!(sanitize("x IN (1, 2, 3, 4, 5)", &opts), "x IN (?)");
}

#[test]
fn summaries_follow_semconv_examples() {
    let s = |sql| summarize(sql, Dialect::PostgreSql);
    assert_eq!(s("SELECT * FROM wuser_table WHERE username = ?"), "SELECT wuser_table");
    assert_eq!(
        s("INSERT INTO shipping_details (id, addr) SELECT id, addr FROM orders WHERE x = 1"),
        "INSERT shipping_details SELECT orders"
    );
    assert_eq!(s("SELECT * FROM songs, artists"), "SELECT songs artists");
    assert_eq!(
        s("SELECT * FROM (SELECT * FROM orders) o JOIN customers c ON c.id = o.cid"),
        "SELECT SELECT orders customers"
    );
}

#[test]
fn summaries_of_common_statements() {
    let s = |sql| summarize(sql, Dialect::PostgreSql);
    assert_eq!(
        s("select id from users where id = $1"),
        "select users",
        "original casing"
    );
    assert_eq!(s("SELECT 1"), "SELECT");
    assert_eq!(s("UPDATE accounts SET balance = 1 WHERE id = 2"), "UPDATE accounts");
    assert_eq!(s("DELETE FROM sessions WHERE expires < now()"), "DELETE sessions");
    assert_eq!(s("INSERT INTO public.users (a) VALUES ($1)"), "INSERT public.users");
    assert_eq!(s("SELECT a FROM s.t AS x, u y WHERE 1=1"), "SELECT s.t u");
    assert_eq!(
        s(r#"SELECT * FROM "Users" u LEFT JOIN "Orders" o ON true"#),
        r#"SELECT "Users" "Orders""#
    );
    assert_eq!(s("SELECT * FROM generate_series(1, 3)"), "SELECT");
    assert_eq!(s("SELECT EXTRACT(YEAR FROM ts) FROM events"), "SELECT events");
    assert_eq!(
        s("SELECT * FROM t WHERE id IN (SELECT uid FROM bans)"),
        "SELECT t SELECT bans"
    );
    assert_eq!(s("SELECT a FROM x UNION ALL SELECT b FROM y"), "SELECT x SELECT y");
    assert_eq!(
        s("WITH c AS (SELECT * FROM orders) UPDATE t SET a = 1"),
        "SELECT orders UPDATE t"
    );
    assert_eq!(s("SELECT * FROM t FOR UPDATE"), "SELECT t");
    assert_eq!(
        s("INSERT INTO t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = 2"),
        "INSERT t"
    );
    assert_eq!(s("CREATE TABLE IF NOT EXISTS items (id INT)"), "CREATE TABLE items");
    assert_eq!(s("DROP TABLE IF EXISTS items"), "DROP TABLE items");
    assert_eq!(s("TRUNCATE TABLE items"), "TRUNCATE TABLE items");
    assert_eq!(s("CREATE UNIQUE INDEX idx ON items (id)"), "CREATE INDEX idx");
    assert_eq!(s("BEGIN"), "BEGIN");
    assert_eq!(s("COMMIT; SELECT 1"), "COMMIT SELECT");
    assert_eq!(s("CALL refresh_stats(1)"), "CALL refresh_stats");
    assert_eq!(s("SELECT * FROM ONLY parent"), "SELECT parent");
    assert_eq!(s("/* comment */ SELECT * FROM t -- x"), "SELECT t");
    assert_eq!(s(""), "");
    assert_eq!(s("'just a string'"), "");
    assert_eq!(summarize("REPLACE INTO `t` VALUES (1)", Dialect::MySql), "REPLACE `t`");
    assert_eq!(
        summarize("SELECT REPLACE(a, 'x', 'y') FROM t", Dialect::MySql),
        "SELECT t"
    );
}

#[test]
fn summaries_never_contain_literals_and_are_capped() {
    let s = summarize("SELECT * FROM t WHERE a = 'secret' AND b = 12345", Dialect::PostgreSql);
    assert_eq!(s, "SELECT t");
    let many: Vec<String> = (0..100).map(|i| format!("table_number_{i}")).collect();
    let sql = format!("SELECT * FROM {}", many.join(", "));
    let s = summarize(&sql, Dialect::PostgreSql);
    assert!(s.len() <= MAX_SUMMARY_LEN, "{}", s.len());
    // Cut at a token boundary: every part is a whole table name.
    let parts: Vec<&str> = s.split(' ').collect();
    assert_eq!(parts[0], "SELECT");
    for (i, p) in parts[1..].iter().enumerate() {
        assert_eq!(*p, format!("table_number_{i}"));
    }
    assert!(s.len() + " table_number_NN".len() > MAX_SUMMARY_LEN);
}

/// Text that can appear inside a literal: anything, including quotes, backslashes, dollars,
/// comment markers and non-ASCII.
fn literal_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("'".to_owned()),
            Just("''".to_owned()),
            Just("\\".to_owned()),
            Just("\"".to_owned()),
            Just("$".to_owned()),
            Just("--".to_owned()),
            Just("/*".to_owned()),
            Just("*/".to_owned()),
            Just("é".to_owned()),
            "[a-z0-9 ]{1,4}",
        ],
        0..8,
    )
    .prop_map(|v| v.concat())
}

/// A marker that is certainly not a keyword or identifier of the statement.
const SECRET: &str = "Zq9xSecret";

/// Quotes `body` (carrying the secret) as a valid literal of `dialect`.
fn quote(dialect: Dialect, body: &str, style: u8) -> String {
    let body = format!("{SECRET}{body}");
    match (dialect, style % 3) {
        // A dollar-quoted body cannot contain its own delimiter; keep it simple and drop `$`.
        (Dialect::PostgreSql, 1) => format!("$z$ {} $z$", body.replace('$', "")),
        (Dialect::PostgreSql, 2) => format!("E'{}'", body.replace('\\', "\\\\").replace('\'', "\\'")),
        (Dialect::MySql, 1) => format!("\"{}\"", body.replace('\\', "\\\\").replace('"', "\\\"")),
        (Dialect::MySql, _) => format!("'{}'", body.replace('\\', "\\\\").replace('\'', "\\'")),
        _ => format!("'{}'", body.replace('\'', "''")),
    }
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![
        Just(Dialect::PostgreSql),
        Just(Dialect::MySql),
        Just(Dialect::Sqlite),
        Just(Dialect::Generic)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics_and_respects_the_cap(sql in ".{0,300}", d in dialect(), keep in any::<bool>(), cap in 0usize..400) {
        let opts = SanitizeOptions::new(d).with_keep_comments(keep).with_max_len(cap);
        let a = analyze(&sql, &opts);
        prop_assert!(a.sanitized.len() <= cap);
        prop_assert!(a.summary.len() <= MAX_SUMMARY_LEN);
    }

    #[test]
    fn never_panics_on_sql_shaped_noise(
        parts in prop::collection::vec(prop_oneof![
            Just("'"), Just("\""), Just("`"), Just("$"), Just("$$"), Just("$a$"), Just("E'"), Just("\\"),
            Just("--"), Just("/*"), Just("*/"), Just("#"), Just("\n"), Just("("), Just(")"), Just(","),
            Just("IN"), Just("SELECT"), Just("FROM"), Just("INTO"), Just("CREATE"), Just("TABLE"), Just("."),
            Just("1"), Just("0x"), Just("e"), Just("?"), Just(":"), Just("@"), Just("["), Just("]"), Just("é"), Just(" "),
        ], 0..60),
        d in dialect(),
    ) {
        let sql = parts.concat();
        let a = analyze(&sql, &SanitizeOptions::new(d));
        prop_assert!(a.summary.len() <= MAX_SUMMARY_LEN);
    }

    #[test]
    fn string_literals_never_leak(
        d in dialect(),
        body in literal_body(),
        style in any::<u8>(),
        keep in any::<bool>(),
        prefix in prop_oneof![Just("SELECT * FROM t WHERE a = "), Just("INSERT INTO t (a) VALUES ("), Just("UPDATE t SET a = "), Just("SELECT * FROM t WHERE a IN (1, ")],
        suffix in prop_oneof![Just(""), Just(")"), Just(" AND b = 2"), Just(", 3)"), Just(" -- done")],
    ) {
        // Generic follows PostgreSQL quoting.
        let qd = if d == Dialect::Generic { Dialect::PostgreSql } else { d };
        let sql = format!("{prefix}{}{suffix}", quote(qd, &body, style));
        let a = analyze(&sql, &SanitizeOptions::new(d).with_keep_comments(keep));
        prop_assert!(!a.sanitized.contains(SECRET), "leaked: {:?} -> {:?}", sql, a.sanitized);
        prop_assert!(!a.summary.contains(SECRET), "leaked in summary: {:?} -> {:?}", sql, a.summary);
    }

    #[test]
    fn numeric_literals_never_leak(
        d in dialect(),
        n in 100_000u64..u64::MAX,
        form in 0u8..5,
    ) {
        let lit = match form {
            0 => n.to_string(),
            1 => format!("{n}.5"),
            2 => format!("{n}e10"),
            3 => format!("0x{n:X}"),
            _ => format!("-{n}"),
        };
        let sql = format!("SELECT * FROM t WHERE a = {lit} AND b IN ({lit}, {lit})");
        let a = analyze(&sql, &SanitizeOptions::new(d));
        let digits = n.to_string();
        prop_assert!(!a.sanitized.contains(&digits[..6]), "leaked: {:?} -> {:?}", sql, a.sanitized);
        prop_assert!(!a.summary.contains(&digits[..6]));
    }
}

#[test]
fn sqlite_double_quoted_values_are_hidden_and_names_kept() {
    // SQLite runs `"..."` as a string when no such column exists: hidden outside name positions.
    assert_eq!(
        lite(r#"SELECT id FROM users WHERE password = "hunter2-Pa55w0rd""#),
        "SELECT id FROM users WHERE password = ?"
    );
    assert_eq!(lite(r#"SELECT "secret@example.com""#), "SELECT ?");
    assert_eq!(
        lite(r#"SELECT "t"."name" FROM "users" AS "u" JOIN "orders" ON "u".id = 1"#),
        r#"SELECT "t"."name" FROM "users" AS "u" JOIN "orders" ON "u".id = ?"#
    );
    assert_eq!(
        lite(r#"INSERT INTO "logs" VALUES ("x")"#),
        r#"INSERT INTO "logs" VALUES (?)"#
    );
    assert_eq!(lite(r#"UPDATE "t" SET a = "v""#), r#"UPDATE "t" SET a = ?"#);
    assert_eq!(
        summarize(r#"SELECT * FROM "users" WHERE a = "b""#, Dialect::Sqlite),
        r#"SELECT "users""#
    );
    // PostgreSQL keeps double quotes as identifiers everywhere.
    assert_eq!(pg(r#"SELECT "password" FROM t"#), r#"SELECT "password" FROM t"#);
}

#[test]
fn a_list_past_the_cap_adds_nothing() {
    // Found by the sql_sanitize fuzz target: a cap inside a multi-byte word left a later `IN (`
    // tracked, and its collapse wrote `?)` after the cut.
    for d in [Dialect::PostgreSql, Dialect::MySql, Dialect::Sqlite, Dialect::Generic] {
        let full = analyze("SELECT 日 IN (1)", &SanitizeOptions::new(d).with_max_len(usize::MAX)).sanitized;
        for cap in 0..full.len() {
            let capped = analyze("SELECT 日 IN (1)", &SanitizeOptions::new(d).with_max_len(cap)).sanitized;
            assert!(full.starts_with(&capped), "{d:?} cap {cap}: {capped:?} vs {full:?}");
        }
    }
}

// --- Issue 16: classes of leak ------------------------------------------------------------------

/// Characters that only ever occur inside the generated literals of the class properties below:
/// if one shows up in the sanitized text or the summary, a literal leaked.
const CLASS_MARKERS: [char; 4] = ['Z', '~', '€', '日'];

fn leaks(text: &str) -> bool {
    text.contains(CLASS_MARKERS)
}

/// Literal content for the class properties: markers, quotes of every kind, backslashes
/// (also last), dollars and comment markers; always holds a marker.
fn class_body() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "Z", "~", "€", "日", " ", "'", "''", "\"", "`", "\\", "\\\\", "\\'", "--", "/*", "*/", "#", "$", "$$",
            "$q$", "\n", "[", "]", "(", ")", ",", "?", ":n", "tok", "hunter",
        ]),
        0..10,
    )
    .prop_map(|parts| format!("Z{}", parts.concat()))
}

/// Expression positions of SQLite, each `{}` a value.
const SQLITE_EXPRESSION_TEMPLATES: &[&str] = &[
    "SELECT a FROM t JOIN u ON {} = u.b",
    "SELECT a FROM t JOIN u ON t.a = {}",
    "SELECT a FROM t LEFT JOIN u ON {}",
    "SELECT a FROM t WHERE b = {} AND c = 1",
    "SELECT a FROM t WHERE {} = b",
    "SELECT a, count(*) FROM t GROUP BY a HAVING count(*) > {}",
    "SELECT a FROM t GROUP BY a HAVING max(b) = {}",
    "SELECT CASE WHEN a = {} THEN {} ELSE {} END FROM t",
    "SELECT CASE {} WHEN 1 THEN 2 END FROM t",
    "SELECT coalesce(a, {}) FROM t",
    "SELECT lower({}), substr({}, 1, 2) FROM t",
    "SELECT f({}, {})",
    "UPDATE t SET a = {}",
    "UPDATE t SET a = 1, b = {} WHERE c = {}",
    "INSERT INTO t (a, b) VALUES ({}, {})",
    "INSERT INTO t VALUES ({}) ON CONFLICT DO UPDATE SET a = {}",
    "SELECT a FROM t WHERE b IS DISTINCT FROM {}",
    "SELECT a FROM t WHERE b IS NOT DISTINCT FROM {}",
    "SELECT a FROM t ORDER BY {}",
    "SELECT {} AS x",
    "SELECT {}",
    "SELECT a FROM t WHERE b IN ({}, {})",
    "SELECT a FROM t WHERE b BETWEEN {} AND {}",
    "SELECT a FROM t WHERE b LIKE {} ESCAPE {}",
    "SELECT -{}, NOT {}, {} || {} FROM t",
    "SELECT a FROM t WHERE b = ({})",
    "SELECT a FROM t LIMIT {} OFFSET {}",
    "INSERT INTO t SELECT f({}, {})",
    "INSERT INTO t (a) VALUES (1) ON CONFLICT ({}) DO NOTHING",
    "INSERT INTO t (a) VALUES (1) RETURNING {}, {}",
    "SELECT a FROM t WHERE b = -- FROM t JOIN INTO u (\n{}",
    "DELETE FROM t WHERE a = {}",
    "PRAGMA key = {}",
];

fn fill(template: &str, mut value: impl FnMut() -> String) -> String {
    let mut out = String::new();
    let mut parts = template.split("{}").peekable();
    while let Some(p) = parts.next() {
        out.push_str(p);
        if parts.peek().is_some() {
            out.push_str(&value());
        }
    }
    out
}

#[test]
fn sqlite_double_quoted_strings_are_hidden_in_every_expression_position() {
    for template in SQLITE_EXPRESSION_TEMPLATES {
        let sql = fill(template, || "\"Zsecret\"".to_owned());
        let a = analyze(&sql, &SanitizeOptions::new(Dialect::Sqlite));
        assert!(!a.sanitized.contains("Zsecret"), "{sql} -> {}", a.sanitized);
        assert!(!a.summary.contains("Zsecret"), "{sql} -> {}", a.summary);
    }
    assert_eq!(
        lite(r#"SELECT a FROM t JOIN u ON "Zsecret" = u.b"#),
        "SELECT a FROM t JOIN u ON ? = u.b"
    );
    assert_eq!(
        lite(r#"SELECT a FROM t WHERE b IS NOT DISTINCT FROM "Zsecret""#),
        "SELECT a FROM t WHERE b IS NOT DISTINCT FROM ?"
    );
    // Positions that can only hold a name keep it.
    assert_eq!(
        lite(r#"SELECT "u"."name" AS "n" FROM "users" AS "u" JOIN "orders" ON "u".id = "orders"."uid""#),
        r#"SELECT "u"."name" AS "n" FROM "users" AS "u" JOIN "orders" ON "u".id = "orders"."uid""#
    );
    assert_eq!(
        lite(r#"UPDATE "t" SET "c" = "v" WHERE "t"."id" = 1"#),
        r#"UPDATE "t" SET "c" = ? WHERE "t"."id" = ?"#
    );
    assert_eq!(
        lite(r#"CREATE INDEX IF NOT EXISTS "i" ON "t"("c")"#),
        r#"CREATE INDEX IF NOT EXISTS "i" ON "t"(?)"#
    );
    assert_eq!(
        lite(r#"ALTER TABLE "t" ADD COLUMN "c" TEXT"#),
        r#"ALTER TABLE "t" ADD COLUMN "c" TEXT"#
    );
    assert_eq!(lite(r#"SELECT count("x") FROM t"#), "SELECT count(?) FROM t");
    // The column list of `INSERT INTO name (..)` holds names only (as ORMs write it).
    assert_eq!(
        lite(r#"INSERT INTO "users" ("name", "email") VALUES ("x", "y"), ("z", 1) RETURNING "id""#),
        r#"INSERT INTO "users" ("name", "email") VALUES (?, ?), (?, ?) RETURNING ?"#
    );
    assert_eq!(
        lite(r#"REPLACE INTO main."t"("a""b", [c], `d`, e,"f") SELECT "x""#),
        r#"REPLACE INTO main."t"("a""b", [c], `d`, e,"f") SELECT ?"#
    );
    for sql in [
        r#"INSERT INTO t VALUES ("Zsecret")"#,
        r#"INSERT INTO t SELECT coalesce(a, "Zsecret") FROM u"#,
        r#"INSERT INTO t (a) VALUES (1) ON CONFLICT ("Zsecret") DO NOTHING"#,
        r#"UPDATE t SET (a, b) = ("Zsecret", 1)"#,
        r#"SELECT a FROM t WHERE b IN ("x", "Zsecret")"#,
        r#"INSERT INTO t (a, b'Zsecret', "Zsecret") VALUES (1)"#,
        r#"SELECT x INTO ("Zsecret")"#,
        // A comment holds any text: what it holds is no name position.
        "SELECT a FROM t WHERE b = -- FROM\n\"Zsecret\"",
        "SELECT a FROM t WHERE b = /* x. */ \"Zsecret\"",
        "SELECT a FROM t WHERE b = -- INSERT INTO t (\n\"Zsecret\"",
        "SELECT a FROM t WHERE b IN (-- INTO u (\n\"Zsecret\")",
    ] {
        assert!(!lite(sql).contains("Zsecret"), "{sql} -> {}", lite(sql));
    }
    // A list longer than the look-back is hidden.
    let long: Vec<String> = (0..200).map(|i| format!("\"c{i}\"")).collect();
    let out = lite(&format!("INSERT INTO t ({}) VALUES (1)", long.join(", ")));
    assert!(
        out.starts_with(r#"INSERT INTO t ("c0", "c1""#) && out.contains("?"),
        "{out}"
    );
}

#[test]
fn backslash_readings_that_disagree_hide_the_union() {
    // Under NO_BACKSLASH_ESCAPES `'a\'` is a whole literal and the secret after it is a second
    // one; with backslash escapes the secret sits between two literals. Either way it is hidden.
    assert_eq!(my(r"SELECT 'a\', 'Zsecret'"), "SELECT ?");
    assert_eq!(my(r"SELECT 'a\', 'Zsecret', 'b'"), "SELECT ?");
    assert_eq!(
        my(r"SELECT * FROM t WHERE a = 'x\' AND b = 'Zsecret' AND c = 1"),
        "SELECT * FROM t WHERE a = ?"
    );
    assert_eq!(my(r#"SELECT "a\", "Zsecret""#), "SELECT ?");
    assert_eq!(my(r"SELECT N'a\', 'Zsecret'"), "SELECT ?");
    // Readings that agree change nothing.
    assert_eq!(my(r"SELECT 'a\\', 'b' FROM t"), "SELECT ?, ? FROM t");
    assert_eq!(
        my(r"SELECT 'plain', 'b' FROM t WHERE c = 1"),
        "SELECT ?, ? FROM t WHERE c = ?"
    );
    // Unknown SQL may be either too; PostgreSQL's standard strings never take escapes.
    assert_eq!(
        sanitize(r"SELECT 'a\', 'Zsecret'", &SanitizeOptions::new(Dialect::Generic)),
        "SELECT ?"
    );
    assert_eq!(pg(r"SELECT 'a\', 'b'"), "SELECT ?, ?");
    // A placeholder look-alike inside the disputed span is not a placeholder.
    let a = analyze(r"SELECT 'a\', '?', 'Zsecret'", &SanitizeOptions::new(Dialect::MySql));
    assert!(!a.has_placeholders);
    assert!(!leaks(&a.sanitized), "{}", a.sanitized);
    // `E'..'` takes backslash escapes only where `E` is a prefix (PostgreSQL); SQLite and
    // MySQL read `E` as a name and the string without them: both readings are hidden.
    for d in [Dialect::Sqlite, Dialect::MySql, Dialect::Generic] {
        let a = analyze(r"SELECT E'a\', 'Zsecret'", &SanitizeOptions::new(d));
        assert!(!leaks(&a.sanitized), "{d:?}: {}", a.sanitized);
    }
    // Found by the sql_sanitize fuzz target: where the readings met, the lexer's own reading
    // (an `E'..'` string, then a dollar-quoted body) was still inside a literal.
    let sql = "SELECT\t/* Z4111 1111 1111 1111()]$q$?'[`(Z */\n>\tIN  0x9FFFF9ac $q$'' ''987654321E'987654321\tZE'Z$q$ $q$Z4111 1111 1111 1111 SECRET_1987654321--987654321\n987654321*/--#Z$q$  ;  IN\t:: IN (B'0000', E'\\\\\\'?%:n~Z日Z', 582E+2)  card <\n$_t$:n--)/*;;\t\\'\\\nZ$_t$\n-- %'@nZ4111 1111 1111 1111$q$ \\'$1Z\n\nSELECT ";
    let a = analyze(sql, &SanitizeOptions::new(Dialect::Sqlite));
    assert!(!leaks(&a.sanitized), "{sql:?} -> {:?}", a.sanitized);
    // MySQL's `--` comment needs whitespace after it: `1--'x'` is `1 - -'x'`.
    assert_eq!(my("SELECT 1--'Zsecret'"), "SELECT ?--?");
    assert_eq!(my("SELECT 1 -- 'Zsecret'\nFROM t"), "SELECT ?  \nFROM t");
    assert_eq!(my("SELECT 1 --'\n Zsecret '"), "SELECT ? --?");
}

#[test]
fn dollar_quoted_text_is_hidden_in_every_dialect() {
    for d in [Dialect::PostgreSql, Dialect::MySql, Dialect::Sqlite, Dialect::Generic] {
        let o = SanitizeOptions::new(d);
        assert_eq!(
            sanitize("SELECT $x$ Zsecret $x$ FROM t", &o),
            "SELECT ? FROM t",
            "{d:?}"
        );
        assert_eq!(sanitize("SELECT $$Zsecret$$, 1", &o), "SELECT ?, ?", "{d:?}");
        let a = analyze("SELECT $tag$Zsecret$tag$", &o);
        assert_eq!(a.sanitized, "SELECT ?", "{d:?}");
        assert!(!a.has_placeholders, "{d:?}: a dollar quote is not a placeholder");
        // Where the server reads `$x$` as a name or placeholder, a string it opens in between
        // runs past the closing tag: hidden as well (in PostgreSQL `Zsecret` is a name there).
        let a = analyze("SELECT $x$ ' $x$ Zsecret ' FROM t", &o);
        assert_eq!(leaks(&a.sanitized), d == Dialect::PostgreSql, "{d:?}: {}", a.sanitized);
    }
    // SQLite placeholders and names with `$` are unchanged.
    let a = analyze(
        "SELECT a$b, $v FROM t WHERE c = $1",
        &SanitizeOptions::new(Dialect::Sqlite),
    );
    assert_eq!(a.sanitized, "SELECT a$b, $v FROM t WHERE c = $1");
    assert!(a.has_placeholders);
}

fn dq(body: &str) -> String {
    format!("\"{}\"", body.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Class 1: a SQLite double-quoted token in any expression position, whatever it holds.
    #[test]
    fn sqlite_double_quoted_strings_never_leak(
        template in prop::sample::select(SQLITE_EXPRESSION_TEMPLATES),
        bodies in prop::collection::vec(class_body(), 4),
    ) {
        let mut i = 0;
        let sql = fill(template, || { i += 1; dq(&bodies[i % bodies.len()]) });
        let a = analyze(&sql, &SanitizeOptions::new(Dialect::Sqlite));
        prop_assert!(!leaks(&a.sanitized), "leaked: {:?} -> {:?}", sql, a.sanitized);
        prop_assert!(!leaks(&a.summary), "leaked in summary: {:?} -> {:?}", sql, a.summary);
    }

    /// Class 2: MySQL/MariaDB literals written for either reading of backslashes (escapes, or
    /// `NO_BACKSLASH_ESCAPES`), mixed in one statement, never show; nor in unknown SQL.
    #[test]
    fn literals_never_leak_under_either_backslash_reading(
        items in prop::collection::vec((class_body(), any::<bool>()), 1..6),
        escapes in any::<bool>(),
        glue in prop::collection::vec(prop::sample::select(vec![", ", " AND a = ", " = ", ") OR (b = ", " "]), 6),
        d in prop::sample::select(vec![Dialect::MySql, Dialect::Generic]),
    ) {
        // One statement is written for one reading (the session's mode), either of them.
        let mut sql = String::from("SELECT * FROM t WHERE a = ");
        for (i, (body, double)) in items.iter().enumerate() {
            let quote = if *double && d == Dialect::MySql { '"' } else { '\'' };
            let q = quote.to_string();
            let inner = if escapes {
                // Read with backslash escapes.
                body.replace('\\', "\\\\").replace(quote, &format!("\\{quote}"))
            } else {
                // Read with NO_BACKSLASH_ESCAPES: a backslash is itself, quotes are doubled.
                body.replace(quote, &format!("{q}{q}"))
            };
            sql.push_str(&format!("{q}{inner}{q}"));
            sql.push_str(glue[i % glue.len()]);
        }
        let a = analyze(&sql, &SanitizeOptions::new(d));
        prop_assert!(!leaks(&a.sanitized), "leaked: {:?} -> {:?}", sql, a.sanitized);
        prop_assert!(!leaks(&a.summary), "leaked in summary: {:?} -> {:?}", sql, a.summary);
    }

    /// Class 5: `$tag$..$tag$` in every dialect, whatever the body holds (but its own closing
    /// tag), in several positions.
    #[test]
    fn dollar_quoted_text_never_leaks_in_any_dialect(
        d in dialect(),
        tag in prop::sample::select(vec!["", "q", "body", "_t", "Fn"]),
        body in class_body(),
        template in prop::sample::select(vec![
            "SELECT {} FROM t",
            "SELECT a FROM t WHERE b = {} AND c = 'x'",
            "INSERT INTO t (a) VALUES ({})",
            "DO {}",
            "SELECT a FROM t WHERE b IN ({}, 1)",
        ]),
    ) {
        let delim = format!("${tag}$");
        let body = body.replace(&delim, "");
        let sql = fill(template, || format!("{delim}{body}{delim}"));
        let a = analyze(&sql, &SanitizeOptions::new(d));
        prop_assert!(!leaks(&a.sanitized), "leaked: {:?} -> {:?}", sql, a.sanitized);
        prop_assert!(!leaks(&a.summary), "leaked in summary: {:?} -> {:?}", sql, a.summary);
        prop_assert!(!a.has_placeholders, "{:?}: {:?}", d, sql);
    }
}
