//! Runs the SQL sanitizer or the Redis command masker N times on the inputs the criterion
//! benches use (`benches/sql.rs` `sanitizer`, `benches/redis.rs` `redis_mask`), plus a MySQL
//! statement whose strings hold backslashes and an `EVAL` with a script body, for instruction
//! counting under callgrind: instructions per call = `(Ir(N) - Ir(0)) / N`. No I/O, no SDK.
//!
//! Usage: `sanitizer_instructions <variant> <calls>`, variant one of `sql-postgres`,
//! `sql-mysql`, `sql-sqlite`, `sql-mysql-backslash`, `redis-set`, `redis-hset`, `redis-hello`,
//! `redis-eval`.

use std::hint::black_box;

use otelrs_redis::mask_command;
use otelrs_sql::sanitize::{analyze, Dialect, SanitizeOptions};

/// The 36.6 KB statement of the criterion `sanitizer` bench.
fn statement() -> String {
    let mut sql = String::from("SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.uid = u.id WHERE ");
    for i in 0..400 {
        sql.push_str(&format!(
            "(u.name = 'user {i} it''s' AND o.total > {i}.5 AND o.code IN ({i}, {}, {}) /* c {i} */) OR ",
            i + 1,
            i + 2
        ));
    }
    sql.push_str("u.id = $1");
    sql
}

/// A MySQL statement of the same shape whose strings end in an escaped backslash (both readings
/// of backslashes agree, so each string is read twice) or hold an escaped quote (they disagree).
fn backslash_statement() -> String {
    let mut sql = String::from("SELECT u.id FROM users u WHERE ");
    for i in 0..400 {
        sql.push_str(&format!(
            r"(u.path = 'C:\\dir {i}\\' AND u.note = 'it\'s {i}' AND u.total > {i}.5) OR "
        ));
    }
    sql.push_str("u.id = ?");
    sql
}

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let sql = statement();
    let backslashes = backslash_statement();
    let set: Vec<&[u8]> = vec![b"SET", b"user:1:session", b"some session payload value", b"EX", b"3600"];
    let hset: Vec<&[u8]> = vec![
        b"HSET",
        b"user:1",
        b"name",
        b"Ada",
        b"email",
        b"ada@example.com",
        b"city",
        b"London",
        b"lang",
        b"en",
    ];
    let hello: Vec<&[u8]> = vec![b"HELLO", b"3", b"AUTH", b"default", b"hunter2", b"SETNAME", b"app"];
    let eval: Vec<&[u8]> = vec![
        b"EVAL",
        b"local v = redis.call('GET', KEYS[1]) if v == 'x' then return redis.call('SET', KEYS[1], ARGV[1], 'EX', 60) end return 0",
        b"1",
        b"k",
        b"v",
    ];
    let sql_run = |text: &str, dialect: Dialect| {
        let options = SanitizeOptions::new(dialect).with_max_len(usize::MAX);
        analyze(black_box(text), &options).sanitized.len()
    };
    let mut total = 0usize;
    for _ in 0..n {
        total += match variant.as_str() {
            "sql-postgres" => sql_run(&sql, Dialect::PostgreSql),
            "sql-mysql" => sql_run(&sql, Dialect::MySql),
            "sql-sqlite" => sql_run(&sql, Dialect::Sqlite),
            "sql-mysql-backslash" => sql_run(&backslashes, Dialect::MySql),
            "redis-set" => mask_command(black_box(&set)).len(),
            "redis-hset" => mask_command(black_box(&hset)).len(),
            "redis-hello" => mask_command(black_box(&hello)).len(),
            "redis-eval" => mask_command(black_box(&eval)).len(),
            other => panic!("unknown variant {other:?}"),
        };
    }
    println!(
        "{variant}: {n} calls, {total} bytes out (statement {} bytes, backslash statement {} bytes)",
        sql.len(),
        backslashes.len()
    );
}
