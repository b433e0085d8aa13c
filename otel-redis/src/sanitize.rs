//! Command masking: renders a Redis command in `redis-cli` syntax with keys kept and values
//! replaced by `?`, and derives `db.operation.name` (one- and two-word commands).
//!
//! The per-command table follows the OpenTelemetry Java agent's `RedisCommandSanitizer`, tightened
//! where that table keeps values (`ECHO`, `PING <message>`, `ACL SETUSER` rules, geo members):
//!
//! | Shape | Commands (examples) | Rendering |
//! | --- | --- | --- |
//! | every argument is a key, number, keyword or name | `GET`, `MGET`, `DEL`, `EXPIRE`, `HGET`, `LRANGE`, `ZRANGEBYSCORE`, `INCRBY`, `SCAN`, `SELECT`, `WATCH`, `XREAD`, `CLIENT SETNAME`, `CONFIG GET` | all kept |
//! | key (and fixed positions) then values | `SET`, `SETNX`, `APPEND`, `GETSET`, `LPUSH`, `RPUSH`, `SADD`, `SREM`, `ZADD`, `ZREM`, `ZSCORE`, `PFADD`, `PUBLISH`, `XADD`, `GEOADD` | `SET key ?`, `LPUSH key ? ?` |
//! | key + number then values | `SETEX`, `PSETEX`, `SETRANGE`, `LSET`, `LREM`, `HSETNX`, `ZINCRBY`, `SMOVE`, `RESTORE` | `SETEX key 10 ?` |
//! | key/value pairs | `MSET`, `MSETNX`, `HSET`, `HMSET`, `CONFIG SET` | `HSET h f1 ? f2 ?` |
//! | secrets | `AUTH`, `HELLO ... AUTH user pass`, `MIGRATE ... AUTH pass` / `AUTH2 user pass`, `ACL SETUSER name rules...`, `CONFIG SET param value` | `AUTH ? ?`, `HELLO 3 AUTH ? ?`, `ACL SETUSER alice ? ?` |
//! | scripts | `EVAL`, `EVALSHA`, `EVAL_RO`, `EVALSHA_RO`, `FCALL`, `FCALL_RO` | sha or function name, `numkeys` and keys kept, script body with its literals masked, arguments masked: `EVALSHA 1a2b 1 key ?`, `EVAL "return redis.call(?, KEYS[1], ?)" 1 key ?` |
//! | script bodies | `SCRIPT LOAD script`, `FUNCTION LOAD [REPLACE] code` | body with its literals masked: `SCRIPT LOAD "return ?"` |
//! | anything else | unknown and module commands, `ECHO`, `PING <message>`, `DEBUG ...` | every argument masked: `FOO.BAR ? ?` |
//!
//! Kept arguments that are not plain printable ASCII are quoted and escaped as `redis-cli` does
//! (`"a b"`, `"\xff"`). The masker never panics and is pure: no I/O, no global state.
//!
//! Script bodies (`EVAL`, `EVAL_RO`, `SCRIPT LOAD`, `FUNCTION LOAD`) carry literals as often as
//! arguments do, so they go through a small Lua lexer: every string (`'..'` and `".."` with
//! backslash escapes, long brackets `[[..]]` and `[==[..]==]`) and every number (`42`, `1.5e3`,
//! `0xff`) becomes `?`, every comment (`-- ..`, `--[[ .. ]]`) one space; names, keywords,
//! operators, a leading `#!lua name=lib` line and the index of `KEYS[n]` / `ARGV[n]` stay. What
//! you give up: the literal parts of a script (command names passed to `redis.call`, the name a
//! library registers its functions under, constants) show as `?`; the script's sha1 (from
//! `SCRIPT LOAD`'s reply or `EVALSHA`) still identifies it. `QueryText::Raw` records it as sent.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The fallback operation name for an empty command or a command name that is not a plain token
/// (longer than 64 bytes, or containing bytes other than ASCII letters, digits, `_ - . : |`).
pub const OPERATION_OTHER: &str = "_OTHER";

/// Commands whose second word is a subcommand, reported together in `db.operation.name`
/// (`CLIENT SETNAME`, `CONFIG GET`).
const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE", "OBJECT",
    "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// How the arguments after the command (and subcommand) are rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Every argument is kept (keys, numbers, keywords, names).
    KeepAll,
    /// The first `n` arguments are kept, the rest masked.
    Keep(usize),
    /// The first `n` arguments are kept, then `key value` pairs with the values masked.
    Pairs(usize),
    /// Every argument is masked.
    MaskAll,
    /// `script|sha numkeys key... arg...`: arguments masked; with `script`, the first argument
    /// is a Lua body whose literals are masked ([`mask_lua`]).
    Eval {
        /// Whether the first argument is a script body (`EVAL`, `EVAL_RO`) rather than a sha1
        /// or function name.
        script: bool,
    },
    /// `SCRIPT LOAD script`: the Lua body with its literals masked.
    ScriptLoad,
    /// `FUNCTION LOAD [REPLACE] code`: `REPLACE` kept, the library code with its literals masked.
    FunctionLoad,
    /// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
    Hello,
    /// `MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH pass | AUTH2 user pass] [KEYS key...]`.
    Migrate,
}

fn command_rule(upper: &str) -> Rule {
    use Rule::*;
    match upper {
        // Connection.
        "AUTH" => MaskAll,
        "HELLO" => Hello,
        "SELECT" | "QUIT" | "RESET" | "READONLY" | "READWRITE" => KeepAll,
        "PING" | "ECHO" => MaskAll,
        // Strings.
        "GET" | "MGET" | "GETDEL" | "GETEX" | "GETRANGE" | "SUBSTR" | "STRLEN" | "INCR" | "INCRBY" | "INCRBYFLOAT"
        | "DECR" | "DECRBY" | "LCS" | "BITCOUNT" | "BITOP" | "BITPOS" | "GETBIT" | "BITFIELD" | "BITFIELD_RO" => {
            KeepAll
        }
        "SET" | "SETNX" | "GETSET" | "APPEND" => Keep(1),
        "SETEX" | "PSETEX" | "SETRANGE" | "SETBIT" => Keep(2),
        "MSET" | "MSETNX" => Pairs(0),
        // Hashes.
        "HSET" | "HMSET" => Pairs(1),
        "HSETNX" => Keep(2),
        "HSETEX" => Keep(1),
        "HDEL" | "HEXISTS" | "HGET" | "HGETALL" | "HINCRBY" | "HINCRBYFLOAT" | "HKEYS" | "HLEN" | "HMGET" | "HSCAN"
        | "HSTRLEN" | "HVALS" | "HRANDFIELD" | "HGETDEL" | "HGETEX" | "HEXPIRE" | "HPEXPIRE" | "HEXPIREAT"
        | "HPEXPIREAT" | "HTTL" | "HPTTL" | "HEXPIRETIME" | "HPEXPIRETIME" | "HPERSIST" => KeepAll,
        // Lists.
        "LPUSH" | "RPUSH" | "LPUSHX" | "RPUSHX" | "LPOS" => Keep(1),
        "LINSERT" | "LSET" | "LREM" => Keep(2),
        "LINDEX" | "LLEN" | "LPOP" | "RPOP" | "LRANGE" | "LTRIM" | "LMOVE" | "BLMOVE" | "RPOPLPUSH" | "BRPOPLPUSH"
        | "BLPOP" | "BRPOP" | "LMPOP" | "BLMPOP" => KeepAll,
        // Sets.
        "SADD" | "SREM" | "SISMEMBER" | "SMISMEMBER" => Keep(1),
        "SMOVE" => Keep(2),
        "SCARD" | "SDIFF" | "SDIFFSTORE" | "SINTER" | "SINTERSTORE" | "SINTERCARD" | "SMEMBERS" | "SPOP"
        | "SRANDMEMBER" | "SSCAN" | "SUNION" | "SUNIONSTORE" => KeepAll,
        // Sorted sets.
        "ZADD" | "ZREM" | "ZSCORE" | "ZMSCORE" | "ZRANK" | "ZREVRANK" | "ZRANGE" | "ZRANGEBYLEX" | "ZREVRANGEBYLEX"
        | "ZLEXCOUNT" | "ZREMRANGEBYLEX" | "ZRANGESTORE" => Keep(1),
        "ZINCRBY" => Keep(2),
        "ZCARD" | "ZCOUNT" | "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" | "ZREVRANGE" | "ZREMRANGEBYRANK"
        | "ZREMRANGEBYSCORE" | "ZPOPMIN" | "ZPOPMAX" | "BZPOPMIN" | "BZPOPMAX" | "ZMPOP" | "BZMPOP" | "ZUNION"
        | "ZUNIONSTORE" | "ZINTER" | "ZINTERSTORE" | "ZINTERCARD" | "ZDIFF" | "ZDIFFSTORE" | "ZSCAN"
        | "ZRANDMEMBER" => KeepAll,
        // HyperLogLog.
        "PFADD" => Keep(1),
        "PFCOUNT" | "PFMERGE" => KeepAll,
        // Geo: members and coordinates are application data.
        "GEOADD"
        | "GEODIST"
        | "GEOHASH"
        | "GEOPOS"
        | "GEORADIUSBYMEMBER"
        | "GEORADIUSBYMEMBER_RO"
        | "GEOSEARCH"
        | "GEOSEARCHSTORE" => Keep(1),
        "GEORADIUS" | "GEORADIUS_RO" => KeepAll,
        // Keys.
        "DEL" | "UNLINK" | "EXISTS" | "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "EXPIRETIME"
        | "PEXPIRETIME" | "PERSIST" | "TTL" | "PTTL" | "TYPE" | "TOUCH" | "RENAME" | "RENAMENX" | "COPY" | "MOVE"
        | "KEYS" | "SCAN" | "RANDOMKEY" | "DUMP" | "SORT" | "SORT_RO" | "WAIT" | "WAITAOF" => KeepAll,
        "RESTORE" => Keep(2),
        "MIGRATE" => Migrate,
        // Pub/sub.
        "PUBLISH" | "SPUBLISH" => Keep(1),
        "SUBSCRIBE" | "UNSUBSCRIBE" | "PSUBSCRIBE" | "PUNSUBSCRIBE" | "SSUBSCRIBE" | "SUNSUBSCRIBE" => KeepAll,
        // Streams.
        "XADD" => Keep(1),
        "XRANGE" | "XREVRANGE" | "XLEN" | "XREAD" | "XREADGROUP" | "XDEL" | "XTRIM" | "XACK" | "XPENDING"
        | "XCLAIM" | "XAUTOCLAIM" | "XSETID" => KeepAll,
        // Scripting.
        "EVAL" | "EVAL_RO" => Eval { script: true },
        "EVALSHA" | "EVALSHA_RO" | "FCALL" | "FCALL_RO" => Eval { script: false },
        // Transactions.
        "MULTI" | "EXEC" | "DISCARD" | "WATCH" | "UNWATCH" => KeepAll,
        // Server.
        "BGSAVE" | "BGREWRITEAOF" | "DBSIZE" | "FLUSHALL" | "FLUSHDB" | "INFO" | "LASTSAVE" | "ROLE" | "SAVE"
        | "TIME" | "SWAPDB" | "REPLICAOF" | "SLAVEOF" | "MONITOR" | "SHUTDOWN" | "LOLWUT" | "SYNC" | "PSYNC"
        | "FAILOVER" => KeepAll,
        _ => MaskAll,
    }
}

/// The rule for the arguments after `CONTAINER SUBCOMMAND`.
fn subcommand_rule(container: &str, sub: &str) -> Rule {
    use Rule::*;
    match (container, sub) {
        ("ACL", "SETUSER" | "DRYRUN") => Keep(1),
        (
            "ACL",
            "CAT" | "DELUSER" | "GETUSER" | "LIST" | "USERS" | "WHOAMI" | "LOG" | "SAVE" | "LOAD" | "GENPASS" | "HELP",
        ) => KeepAll,
        (
            "CLIENT",
            "SETNAME" | "GETNAME" | "ID" | "INFO" | "LIST" | "KILL" | "PAUSE" | "UNPAUSE" | "REPLY" | "NO-EVICT"
            | "NO-TOUCH" | "TRACKING" | "TRACKINGINFO" | "GETREDIR" | "CACHING" | "UNBLOCK" | "SETINFO" | "HELP",
        ) => KeepAll,
        ("CONFIG", "SET") => Pairs(0),
        ("CONFIG", "GET" | "RESETSTAT" | "REWRITE" | "HELP") => KeepAll,
        ("SCRIPT", "LOAD") => ScriptLoad,
        ("SCRIPT", "EXISTS" | "FLUSH" | "KILL" | "DEBUG" | "HELP") => KeepAll,
        ("FUNCTION", "LOAD") => FunctionLoad,
        ("FUNCTION", "DELETE" | "DUMP" | "FLUSH" | "KILL" | "LIST" | "STATS" | "HELP") => KeepAll,
        ("MODULE", "LOAD" | "LOADEX") => Keep(1),
        ("MODULE", "LIST" | "UNLOAD" | "HELP") => KeepAll,
        ("CLUSTER" | "COMMAND" | "LATENCY" | "MEMORY" | "OBJECT" | "PUBSUB" | "SLOWLOG" | "XGROUP" | "XINFO", _) => {
            KeepAll
        }
        _ => MaskAll,
    }
}

/// Upper-cases a short ASCII token into `buf`; `None` for anything that is not a plain token.
fn upper_token<'b>(bytes: &[u8], buf: &'b mut [u8; 64]) -> Option<&'b str> {
    if bytes.is_empty() || bytes.len() > buf.len() || !bytes.iter().all(|b| is_token_byte(*b)) {
        return None;
    }
    let out = &mut buf[..bytes.len()];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_uppercase();
    }
    std::str::from_utf8(out).ok()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'|')
}

/// A token as given, if it is a plain token (see [`OPERATION_OTHER`]).
fn token_as_given(bytes: &[u8]) -> Option<&str> {
    if bytes.is_empty() || bytes.len() > 64 || !bytes.iter().all(|b| is_token_byte(*b)) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// One argument of a command: bytes, or a SCAN cursor whose value is filled in by the client.
pub(crate) type ArgRef<'a> = Option<&'a [u8]>;

/// The parts of a command the instrumentation reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// `db.operation.name` and span name: the command (and subcommand) as given.
    pub(crate) operation: Cow<'static, str>,
    /// How many leading words (1 or 2) form the operation name.
    words: usize,
    rule: Rule,
}

/// Parses the command name (and the subcommand of container commands).
pub(crate) fn parse(args: &[ArgRef<'_>]) -> Parsed {
    let mut buf = [0u8; 64];
    let Some(Some(name)) = args.first().copied() else {
        return Parsed {
            operation: Cow::Borrowed(OPERATION_OTHER),
            words: 1,
            rule: Rule::MaskAll,
        };
    };
    let Some(given) = token_as_given(name) else {
        return Parsed {
            operation: Cow::Borrowed(OPERATION_OTHER),
            words: 1,
            rule: Rule::MaskAll,
        };
    };
    let upper = upper_token(name, &mut buf).unwrap_or(OPERATION_OTHER);
    if let Some(container) = CONTAINERS.iter().copied().find(|c| *c == upper) {
        let mut sub_buf = [0u8; 64];
        if let Some(Some(sub)) = args.get(1).copied() {
            if let (Some(sub_given), Some(sub_upper)) = (token_as_given(sub), upper_token(sub, &mut sub_buf)) {
                return Parsed {
                    operation: Cow::Owned(format!("{given} {sub_given}")),
                    words: 2,
                    rule: subcommand_rule(container, sub_upper),
                };
            }
        }
        // A container without a readable subcommand: report the container, mask everything.
        return Parsed {
            operation: static_or_owned(given, container),
            words: 1,
            rule: Rule::MaskAll,
        };
    }
    let operation = if given == upper {
        static_name(upper).map_or_else(|| Cow::Owned(given.to_owned()), Cow::Borrowed)
    } else {
        Cow::Owned(given.to_owned())
    };
    Parsed {
        operation,
        words: 1,
        rule: command_rule(upper),
    }
}

fn static_or_owned(given: &str, canonical: &'static str) -> Cow<'static, str> {
    if given == canonical {
        Cow::Borrowed(canonical)
    } else {
        Cow::Owned(given.to_owned())
    }
}

/// The `&'static` spelling of the most frequent commands, so that the common upper-case call path
/// does not allocate for the span name.
fn static_name(upper: &str) -> Option<&'static str> {
    // A `match` compiles to a length switch and a few comparisons, not a scan of the list.
    macro_rules! names {
        ($($name:literal),* $(,)?) => {
            match upper {
                $($name => Some($name),)*
                _ => None,
            }
        };
    }
    names!(
        "GET",
        "SET",
        "DEL",
        "MGET",
        "MSET",
        "INCR",
        "INCRBY",
        "DECR",
        "EXISTS",
        "EXPIRE",
        "TTL",
        "PEXPIRE",
        "SETEX",
        "SETNX",
        "GETDEL",
        "HGET",
        "HSET",
        "HMGET",
        "HMSET",
        "HGETALL",
        "HDEL",
        "HINCRBY",
        "LPUSH",
        "RPUSH",
        "LPOP",
        "RPOP",
        "LRANGE",
        "LLEN",
        "SADD",
        "SREM",
        "SMEMBERS",
        "SISMEMBER",
        "ZADD",
        "ZREM",
        "ZRANGE",
        "ZSCORE",
        "ZINCRBY",
        "ZRANGEBYSCORE",
        "PUBLISH",
        "EVAL",
        "EVALSHA",
        "PING",
        "AUTH",
        "HELLO",
        "SELECT",
        "MULTI",
        "EXEC",
        "WATCH",
        "UNWATCH",
        "SCAN",
        "KEYS",
        "TYPE",
        "UNLINK",
        "XADD",
        "XREAD",
        "PFADD",
        "FLUSHDB",
    )
}

/// The stored procedure (`db.stored_procedure.name`) of `EVALSHA`/`FCALL`: the sha1 or function
/// name, when it is a plain token.
pub(crate) fn stored_procedure(args: &[ArgRef<'_>]) -> Option<String> {
    let mut buf = [0u8; 64];
    let upper = upper_token(args.first().copied().flatten()?, &mut buf)?;
    if !matches!(upper, "EVALSHA" | "EVALSHA_RO" | "FCALL" | "FCALL_RO") {
        return None;
    }
    token_as_given(args.get(1).copied().flatten()?).map(str::to_owned)
}

impl Parsed {
    /// Whether the command may name a stored procedure (`EVALSHA`, `FCALL` and their `_RO`
    /// forms), so the argument scan of [`stored_procedure`] is skipped for every other command.
    pub(crate) fn may_name_procedure(&self) -> bool {
        self.rule == Rule::Eval { script: false }
    }

    /// A capacity for the rendering of `args`: enough for every kept argument unquoted.
    pub(crate) fn rendered_len_hint(&self, args: &[ArgRef<'_>]) -> usize {
        self.operation.len()
            + args
                .iter()
                .skip(self.words)
                .map(|a| 1 + a.map_or(1, <[u8]>::len))
                .sum::<usize>()
    }
}

/// Appends the masked rendering of a parsed command to `out`.
pub(crate) fn render_into(out: &mut String, parsed: &Parsed, args: &[ArgRef<'_>]) {
    out.push_str(&parsed.operation);
    let rest = args.get(parsed.words..).unwrap_or(&[]);
    let push_kept = |out: &mut String, a: ArgRef<'_>| {
        out.push(' ');
        match a {
            Some(bytes) => push_repr(out, bytes),
            None => out.push('?'),
        }
    };
    let push_masked = |out: &mut String| out.push_str(" ?");
    match parsed.rule {
        Rule::KeepAll => rest.iter().for_each(|a| push_kept(out, *a)),
        Rule::MaskAll => rest.iter().for_each(|_| push_masked(out)),
        Rule::Keep(n) => {
            for (i, a) in rest.iter().enumerate() {
                if i < n {
                    push_kept(out, *a)
                } else {
                    push_masked(out)
                }
            }
        }
        Rule::Pairs(n) => {
            for (i, a) in rest.iter().enumerate() {
                if i < n || (i - n) % 2 == 0 {
                    push_kept(out, *a)
                } else {
                    push_masked(out)
                }
            }
        }
        Rule::Eval { script } => {
            // script|sha, numkeys, keys..., args...
            let numkeys = rest
                .get(1)
                .copied()
                .flatten()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|n| *n <= rest.len().saturating_sub(2));
            for (i, a) in rest.iter().enumerate() {
                let keep = match numkeys {
                    Some(n) => i < 2 + n,
                    None => i == 0,
                };
                if i == 0 && script {
                    push_lua(out, *a);
                } else if keep {
                    push_kept(out, *a)
                } else {
                    push_masked(out)
                }
            }
        }
        Rule::ScriptLoad => {
            for (i, a) in rest.iter().enumerate() {
                if i == 0 {
                    push_lua(out, *a);
                } else {
                    push_masked(out);
                }
            }
        }
        Rule::FunctionLoad => {
            let mut i = 0;
            if rest
                .first()
                .copied()
                .flatten()
                .is_some_and(|a| a.eq_ignore_ascii_case(b"REPLACE"))
            {
                push_kept(out, rest[0]);
                i = 1;
            }
            for (j, a) in rest.iter().enumerate().skip(i) {
                if j == i {
                    push_lua(out, *a);
                } else {
                    push_masked(out);
                }
            }
        }
        Rule::Hello => {
            let mut i = 0;
            if let Some(Some(v)) = rest.first() {
                if !v.is_empty() && v.iter().all(u8::is_ascii_digit) {
                    push_kept(out, Some(v));
                    i = 1;
                }
            }
            while i < rest.len() {
                match keyword(rest[i]) {
                    Some("AUTH") => {
                        push_kept(out, rest[i]);
                        for _ in rest.iter().skip(i + 1).take(2) {
                            push_masked(out);
                        }
                        i += 3;
                    }
                    Some("SETNAME") => {
                        push_kept(out, rest[i]);
                        if let Some(name) = rest.get(i + 1) {
                            push_kept(out, *name);
                        }
                        i += 2;
                    }
                    _ => {
                        push_masked(out);
                        i += 1;
                    }
                }
            }
        }
        Rule::Migrate => {
            let mut i = 0;
            while i < rest.len() {
                if i < 5 {
                    push_kept(out, rest[i]);
                    i += 1;
                    continue;
                }
                match keyword(rest[i]) {
                    Some("COPY" | "REPLACE") => {
                        push_kept(out, rest[i]);
                        i += 1;
                    }
                    Some("AUTH") => {
                        push_kept(out, rest[i]);
                        rest.iter().skip(i + 1).take(1).for_each(|_| push_masked(out));
                        i += 2;
                    }
                    Some("AUTH2") => {
                        push_kept(out, rest[i]);
                        rest.iter().skip(i + 1).take(2).for_each(|_| push_masked(out));
                        i += 3;
                    }
                    Some("KEYS") => {
                        rest[i..].iter().for_each(|a| push_kept(out, *a));
                        i = rest.len();
                    }
                    _ => {
                        push_masked(out);
                        i += 1;
                    }
                }
            }
        }
    }
}

/// Appends the command with every argument as sent (`QueryText::Raw`), in `redis-cli` syntax.
pub(crate) fn render_raw_into(out: &mut String, args: &[ArgRef<'_>]) {
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match a {
            Some(bytes) => push_repr(out, bytes),
            None => out.push('?'),
        }
    }
}

/// Appends a Lua script body with its literals masked ([`mask_lua`]), quoted as `redis-cli` does.
fn push_lua(out: &mut String, script: ArgRef<'_>) {
    out.push(' ');
    match script {
        Some(bytes) => push_repr(out, &mask_lua(bytes)),
        None => out.push('?'),
    }
}

/// Masks the literals of a Lua script body (`EVAL`, `SCRIPT LOAD`, `FUNCTION LOAD`), keeping its
/// code: every string (`'..'` and `".."` with backslash escapes, long brackets `[[..]]`,
/// `[==[..]==]`) and every number (`42`, `3.5e-2`, `0xff`, `0x1p4`) becomes `?`, every comment
/// (`-- ..`, `--[[ .. ]]`, `--[==[ .. ]==]`) one space. Kept: names, keywords, operators, a
/// leading `#!` line (engine and library name: `#!lua name=lib`) and the index of `KEYS[n]` and
/// `ARGV[n]`. Unterminated strings (also a short string broken by a line break) and comments run
/// to the end. The result is never longer than the script and, like the script, not necessarily
/// UTF-8.
///
/// `redis.call('SET', KEYS[1], 'v', 'EX', 60)` becomes `redis.call(?, KEYS[1], ?, ?, ?)`.
pub(crate) fn mask_lua(script: &[u8]) -> Vec<u8> {
    let b = script;
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    // Redis reads a first line `#!<engine> [name=<library>] [flags=..]` itself.
    if b.starts_with(b"#!") {
        i = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
        out.extend_from_slice(&b[..i]);
    }
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = match long_bracket_level(b, i + 2) {
                    Some(level) => long_bracket_end(b, i + 2, level),
                    None => b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |n| i + n),
                };
                out.push(b' ');
            }
            b'[' => match long_bracket_level(b, i) {
                Some(level) => {
                    i = long_bracket_end(b, i, level);
                    out.push(b'?');
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            },
            b'\'' | b'"' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    // A line break ends a short string in Lua (as an error): the script is
                    // invalid, and whatever follows may be the rest of the string, so it is
                    // all hidden.
                    if matches!(b[i], b'\n' | b'\r') {
                        i = b.len();
                        break;
                    }
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(b.len());
                out.push(b'?');
            }
            b'0'..=b'9' => {
                let start = i;
                i = lua_number_end(b, i);
                let index = &b[start..i];
                let before = &b[..start];
                let is_index = index.iter().all(u8::is_ascii_digit)
                    && b.get(i) == Some(&b']')
                    && (before.ends_with(b"KEYS[") || before.ends_with(b"ARGV["))
                    && !before[..before.len() - 5]
                        .last()
                        .is_some_and(|&p| p.is_ascii_alphanumeric() || p == b'_' || p == b'.');
                if is_index {
                    out.extend_from_slice(index);
                } else {
                    out.push(b'?');
                }
            }
            // `..` and `...` are operators (`x..5` concatenates a number).
            b'.' if b.get(i + 1) == Some(&b'.') => {
                let dots = b[i..].iter().take_while(|&&c| c == b'.').count();
                out.extend_from_slice(&b[i..i + dots]);
                i += dots;
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = lua_number_end(b, i);
                out.push(b'?');
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] >= 0x80) {
                    i += 1;
                }
                out.extend_from_slice(&b[start..i]);
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// If a long bracket `[`, `=`*level, `[` opens at `at`: its level.
fn long_bracket_level(b: &[u8], at: usize) -> Option<usize> {
    if b.get(at) != Some(&b'[') {
        return None;
    }
    let level = b.get(at + 1..)?.iter().take_while(|&&c| c == b'=').count();
    (b.get(at + 1 + level) == Some(&b'[')).then_some(level)
}

/// The end of the long bracket of `level` opening at `at`: after its `]`, `=`*level, `]`, or
/// the end of the input.
fn long_bracket_end(b: &[u8], at: usize, level: usize) -> usize {
    let mut i = at + level + 2;
    while i < b.len() {
        if b[i] == b']' {
            let eq = b[i + 1..].iter().take_while(|&&c| c == b'=').count();
            if eq == level && b.get(i + 1 + eq) == Some(&b']') {
                return i + eq + 2;
            }
            i += 1 + eq;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// The end of a Lua numeral starting at `at`: digits, letters (hex digits, `x`), `.`, and a
/// sign after an exponent marker (`e`, or `p` in hex).
fn lua_number_end(b: &[u8], at: usize) -> usize {
    let hex = b.get(at) == Some(&b'0') && matches!(b.get(at + 1), Some(b'x' | b'X'));
    let mut i = at;
    while let Some(&c) = b.get(i) {
        if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' {
            i += 1;
            let exponent = if hex {
                matches!(c, b'p' | b'P')
            } else {
                matches!(c, b'e' | b'E')
            };
            if exponent && matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
        } else {
            break;
        }
    }
    i
}

/// An upper-cased option keyword out of a fixed set, if `arg` is one.
fn keyword(arg: ArgRef<'_>) -> Option<&'static str> {
    const KEYWORDS: &[&str] = &["AUTH", "AUTH2", "SETNAME", "COPY", "REPLACE", "KEYS"];
    let bytes = arg?;
    KEYWORDS
        .iter()
        .copied()
        .find(|k| k.as_bytes().eq_ignore_ascii_case(bytes))
}

/// Appends `bytes` as `redis-cli` shows an argument: as is when it is printable ASCII without
/// spaces or quotes, else double-quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\xHH` escapes.
fn push_repr(out: &mut String, bytes: &[u8]) {
    let plain = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\'));
    if plain {
        // All ASCII, so this cannot fail; fall back to escaping if it somehow did.
        if let Ok(s) = std::str::from_utf8(bytes) {
            out.push_str(s);
            return;
        }
    }
    out.push('"');
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b' ' => out.push(' '),
            b if b.is_ascii_graphic() => out.push(char::from(b)),
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

/// Renders a command given as its arguments (`["HSET", "h", "f", "v"]`) with keys kept and
/// values replaced by `?`: `HSET h f ?`.
///
/// ```
/// use otelrs_redis::mask_command;
/// assert_eq!(mask_command(&[b"SET".as_slice(), b"user:1", b"secret"]), "SET user:1 ?");
/// assert_eq!(mask_command(&[b"AUTH".as_slice(), b"alice", b"hunter2"]), "AUTH ? ?");
/// ```
pub fn mask_command(args: &[&[u8]]) -> String {
    let args: Vec<ArgRef<'_>> = args.iter().map(|a| Some(*a)).collect();
    let parsed = parse(&args);
    let mut out = String::with_capacity(parsed.operation.len() + 4 * args.len());
    render_into(&mut out, &parsed, &args);
    out
}

/// The `db.operation.name` of a command given as its arguments: the command as given, with the
/// subcommand for two-word commands (`CLIENT SETNAME`, `CONFIG GET`, `ACL SETUSER`).
///
/// ```
/// use otelrs_redis::operation_name;
/// assert_eq!(operation_name(&[b"GET".as_slice(), b"k"]), "GET");
/// assert_eq!(operation_name(&[b"CONFIG".as_slice(), b"SET", b"maxmemory", b"1"]), "CONFIG SET");
/// ```
pub fn operation_name(args: &[&[u8]]) -> String {
    let args: Vec<ArgRef<'_>> = args.iter().take(2).map(|a| Some(*a)).collect();
    parse(&args).operation.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(args: &[&str]) -> String {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        mask_command(&bytes)
    }

    fn op(args: &[&str]) -> String {
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        operation_name(&bytes)
    }

    #[test]
    fn keys_only_commands_keep_everything() {
        assert_eq!(m(&["GET", "user:1"]), "GET user:1");
        assert_eq!(m(&["MGET", "a", "b", "c"]), "MGET a b c");
        assert_eq!(m(&["DEL", "a", "b"]), "DEL a b");
        assert_eq!(m(&["EXPIRE", "k", "10"]), "EXPIRE k 10");
        assert_eq!(m(&["HGET", "h", "field"]), "HGET h field");
        assert_eq!(m(&["LRANGE", "l", "0", "-1"]), "LRANGE l 0 -1");
        assert_eq!(m(&["SELECT", "3"]), "SELECT 3");
        assert_eq!(m(&["WATCH", "a"]), "WATCH a");
        assert_eq!(m(&["MULTI"]), "MULTI");
        assert_eq!(m(&["SCAN", "0", "MATCH", "user:*"]), "SCAN 0 MATCH user:*");
    }

    #[test]
    fn values_are_masked() {
        assert_eq!(m(&["SET", "k", "v"]), "SET k ?");
        assert_eq!(m(&["SET", "k", "v", "EX", "10"]), "SET k ? ? ?");
        assert_eq!(m(&["SETEX", "k", "10", "v"]), "SETEX k 10 ?");
        assert_eq!(m(&["HSET", "h", "f1", "v1", "f2", "v2"]), "HSET h f1 ? f2 ?");
        assert_eq!(
            m(&["HMSET", "myhash", "field1", "a", "field2", "b"]),
            "HMSET myhash field1 ? field2 ?"
        );
        assert_eq!(m(&["MSET", "a", "1", "b", "2"]), "MSET a ? b ?");
        assert_eq!(m(&["LPUSH", "l", "x", "y"]), "LPUSH l ? ?");
        assert_eq!(m(&["ZADD", "z", "1", "m"]), "ZADD z ? ?");
        assert_eq!(m(&["SADD", "s", "m1", "m2"]), "SADD s ? ?");
        assert_eq!(m(&["PUBLISH", "chan", "hello"]), "PUBLISH chan ?");
        assert_eq!(m(&["LSET", "l", "0", "v"]), "LSET l 0 ?");
        assert_eq!(m(&["XADD", "s", "*", "f", "v"]), "XADD s ? ? ?");
        assert_eq!(m(&["ECHO", "hi"]), "ECHO ?");
        assert_eq!(m(&["PING"]), "PING");
        assert_eq!(m(&["PING", "msg"]), "PING ?");
    }

    #[test]
    fn secrets_never_shown() {
        assert_eq!(m(&["AUTH", "pw"]), "AUTH ?");
        assert_eq!(m(&["AUTH", "user", "pw"]), "AUTH ? ?");
        assert_eq!(m(&["auth", "user", "pw"]), "auth ? ?");
        assert_eq!(
            m(&["HELLO", "3", "AUTH", "user", "pw", "SETNAME", "app"]),
            "HELLO 3 AUTH ? ? SETNAME app"
        );
        assert_eq!(m(&["HELLO", "3", "AUTH", "AUTH", "AUTH"]), "HELLO 3 AUTH ? ?");
        assert_eq!(m(&["HELLO", "3", "AUTH", "user"]), "HELLO 3 AUTH ?");
        assert_eq!(m(&["HELLO", "x", "pw"]), "HELLO ? ?");
        assert_eq!(m(&["CONFIG", "SET", "requirepass", "pw"]), "CONFIG SET requirepass ?");
        assert_eq!(
            m(&["CONFIG", "SET", "a", "1", "masterauth", "pw"]),
            "CONFIG SET a ? masterauth ?"
        );
        assert_eq!(m(&["CONFIG", "GET", "maxmemory"]), "CONFIG GET maxmemory");
        assert_eq!(
            m(&["MIGRATE", "h", "6379", "", "0", "5000", "COPY", "AUTH", "pw", "KEYS", "a", "b"]),
            "MIGRATE h 6379 \"\" 0 5000 COPY AUTH ? KEYS a b"
        );
        assert_eq!(
            m(&["MIGRATE", "h", "6379", "k", "0", "5000", "AUTH2", "user", "pw"]),
            "MIGRATE h 6379 k 0 5000 AUTH2 ? ?"
        );
        assert_eq!(
            m(&["MIGRATE", "h", "6379", "k", "0", "5000", "AUTH"]),
            "MIGRATE h 6379 k 0 5000 AUTH"
        );
        assert_eq!(
            m(&["ACL", "SETUSER", "alice", "on", ">pw", "~*"]),
            "ACL SETUSER alice ? ? ?"
        );
        assert_eq!(m(&["ACL", "WHOAMI"]), "ACL WHOAMI");
        assert_eq!(m(&["ACL", "NEWTHING", "x"]), "ACL NEWTHING ?");
    }

    #[test]
    fn scripts_keep_script_numkeys_and_keys() {
        assert_eq!(
            m(&["EVALSHA", "abc123", "2", "k1", "k2", "a1", "a2"]),
            "EVALSHA abc123 2 k1 k2 ? ?"
        );
        assert_eq!(m(&["EVAL", "return 1", "1", "k", "a"]), "EVAL \"return ?\" 1 k ?");
        assert_eq!(m(&["EVAL", "s", "x", "a"]), "EVAL s ? ?");
        assert_eq!(
            m(&["EVAL", "s", "9", "a"]),
            "EVAL s ? ?",
            "numkeys beyond the arguments"
        );
        assert_eq!(m(&["FCALL", "fn", "0", "a"]), "FCALL fn 0 ?");
        let args: Vec<ArgRef<'_>> = [b"EVALSHA".as_slice(), b"abc", b"0"].iter().map(|a| Some(*a)).collect();
        assert_eq!(stored_procedure(&args).as_deref(), Some("abc"));
        let args: Vec<ArgRef<'_>> = [b"EVAL".as_slice(), b"abc", b"0"].iter().map(|a| Some(*a)).collect();
        assert_eq!(stored_procedure(&args), None);
    }

    fn lua(script: &str) -> String {
        String::from_utf8(mask_lua(script.as_bytes())).expect("UTF-8 in, UTF-8 out")
    }

    #[test]
    fn lua_literals_are_masked_and_code_kept() {
        assert_eq!(
            lua("return redis.call('SET', KEYS[1], \"v\", 'EX', 60)"),
            "return redis.call(?, KEYS[1], ?, ?, ?)"
        );
        assert_eq!(lua(r#"local s = 'it\'s' .. "a\\\"b" .. 'c'"#), "local s = ? .. ? .. ?");
        assert_eq!(
            lua("local a, b = [[long\n'string']], [==[x]]y]=]z]==]"),
            "local a, b = ?, ?"
        );
        assert_eq!(
            lua("local n = 0xFF + 1.5e-3 + .5 + 3 + 0x1p4 - 2E+2 -- note 'hunter2'\nreturn n"),
            "local n = ? + ? + ? + ? + ? - ?  \nreturn n"
        );
        assert_eq!(lua("return x..5 .. y...z"), "return x..? .. y...z");
        assert_eq!(lua("--[==[ block\n'x' ]] still ]==] return x1"), "  return x1");
        assert_eq!(
            lua("return ARGV[2] .. ARGV [3] .. XKEYS[4] .. KEYS[1+1]"),
            "return ARGV[2] .. ARGV [?] .. XKEYS[?] .. KEYS[?+?]"
        );
        assert_eq!(
            lua("#!lua name=mylib\nredis.register_function('f', function(k, a) return a[1] end)"),
            "#!lua name=mylib\nredis.register_function(?, function(k, a) return a[?] end)"
        );
        // Unterminated strings and comments hide the rest.
        assert_eq!(lua("return 'abc"), "return ?");
        assert_eq!(lua("return [==[abc]]"), "return ?");
        assert_eq!(lua("x = 1 --[[ never closed"), "x = ?  ");
        assert_eq!(lua(r"return 'a\"), "return ?");
        // A line break inside a short string (a Lua error) hides the rest; an escaped one
        // continues the string.
        assert_eq!(lua("return 'S\n'x' .. y"), "return ?");
        assert_eq!(lua("return 'a\\\nb' .. y"), "return ? .. y");
        assert_eq!(mask_lua(b"return '\xff' .. \xfe"), b"return ? .. \xfe");
    }

    #[test]
    fn script_bodies_are_masked_everywhere() {
        assert_eq!(
            m(&["EVAL", "return redis.call('GET', KEYS[1]) == 'hunter2'", "1", "k", "a"]),
            "EVAL \"return redis.call(?, KEYS[1]) == ?\" 1 k ?"
        );
        assert_eq!(m(&["EVAL_RO", "return 'x'", "0"]), "EVAL_RO \"return ?\" 0");
        assert_eq!(m(&["eval", "return 'x'", "nope", "a"]), "eval \"return ?\" ? ?");
        assert_eq!(m(&["EVALSHA", "deadbeef", "0", "a"]), "EVALSHA deadbeef 0 ?");
        assert_eq!(m(&["SCRIPT", "LOAD", "return 'tok_live'"]), "SCRIPT LOAD \"return ?\"");
        assert_eq!(
            m(&["SCRIPT", "LOAD", "return 1", "extra"]),
            "SCRIPT LOAD \"return ?\" ?"
        );
        assert_eq!(
            m(&[
                "FUNCTION",
                "LOAD",
                "REPLACE",
                "#!lua name=l\nredis.register_function('f', function() return 'pw' end)"
            ]),
            "FUNCTION LOAD REPLACE \"#!lua name=l\\nredis.register_function(?, function() return ? end)\""
        );
        assert_eq!(m(&["FUNCTION", "LOAD", "return 7"]), "FUNCTION LOAD \"return ?\"");
        assert_eq!(m(&["SCRIPT", "EXISTS", "a", "b"]), "SCRIPT EXISTS a b");
        assert_eq!(m(&["FUNCTION", "DELETE", "mylib"]), "FUNCTION DELETE mylib");
    }

    #[test]
    fn unknown_commands_mask_all() {
        assert_eq!(m(&["FOO.BAR", "a", "b"]), "FOO.BAR ? ?");
        assert_eq!(m(&["JSON.SET", "k", "$", "{}"]), "JSON.SET ? ? ?");
        assert_eq!(m(&["bad name", "x"]), "_OTHER ?");
        assert_eq!(mask_command(&[]), "_OTHER");
        assert_eq!(mask_command(&[b"\xff\xfe".as_slice(), b"v"]), "_OTHER ?");
    }

    #[test]
    fn two_word_operation_names() {
        assert_eq!(op(&["CLIENT", "SETNAME", "app"]), "CLIENT SETNAME");
        assert_eq!(op(&["CONFIG", "GET", "x"]), "CONFIG GET");
        assert_eq!(op(&["ACL", "SETUSER", "u", ">p"]), "ACL SETUSER");
        assert_eq!(op(&["SCRIPT", "LOAD", "return 1"]), "SCRIPT LOAD");
        assert_eq!(op(&["FUNCTION", "LOAD", "REPLACE", "x"]), "FUNCTION LOAD");
        assert_eq!(op(&["client", "setname", "a"]), "client setname", "as given");
        assert_eq!(op(&["CLIENT"]), "CLIENT");
        assert_eq!(op(&["CLIENT", "a b"]), "CLIENT");
        assert_eq!(op(&["GET", "SETNAME"]), "GET");
        assert_eq!(op(&["hset", "h"]), "hset");
        assert_eq!(m(&["CLIENT", "SETNAME", "app"]), "CLIENT SETNAME app");
        assert_eq!(m(&["CLIENT", "KILL", "ID", "7"]), "CLIENT KILL ID 7");
        assert_eq!(m(&["CLIENT", "a b", "x"]), "CLIENT ? ?");
    }

    #[test]
    fn common_names_are_static() {
        let args: Vec<ArgRef<'_>> = vec![Some(b"GET"), Some(b"k")];
        assert!(matches!(parse(&args).operation, Cow::Borrowed("GET")));
        let args: Vec<ArgRef<'_>> = vec![Some(b"get"), Some(b"k")];
        assert_eq!(parse(&args).operation, "get");
    }

    #[test]
    fn kept_arguments_are_quoted_like_redis_cli() {
        assert_eq!(m(&["GET", "a b"]), "GET \"a b\"");
        assert_eq!(m(&["GET", "q\"\\\n"]), "GET \"q\\\"\\\\\\n\"");
        assert_eq!(mask_command(&[b"GET".as_slice(), b"\xff"]), "GET \"\\xff\"");
        assert_eq!(m(&["GET", "é"]), "GET \"\\xc3\\xa9\"");
        let cursor: Vec<ArgRef<'_>> = vec![Some(b"SCAN"), None];
        let mut out = String::new();
        render_into(&mut out, &parse(&cursor), &cursor);
        assert_eq!(out, "SCAN ?");
    }

    /// A value marker: the lock character never appears in a command name, a kept token or the
    /// escaping of kept bytes (which is ASCII).
    const MARK: &str = "\u{1F512}";

    fn value() -> impl Strategy<Value = String> {
        "[0-9]{6,12}".prop_map(|s| format!("{MARK}zq{s}"))
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-z:]{1,8}"
    }

    /// Commands built from (fixed words, keys, values): every value carries [`MARK`].
    fn command() -> impl Strategy<Value = Vec<String>> {
        fn s(v: &[&str]) -> Vec<String> {
            v.iter().map(|x| x.to_string()).collect()
        }
        prop_oneof![
            (key(), value()).prop_map(move |(k, v)| vec!["SET".into(), k, v]),
            (key(), value(), prop::bool::ANY).prop_map(move |(k, v, ex)| {
                let mut c = vec!["set".into(), k, v];
                if ex {
                    c.extend(s(&["EX", "10", "NX"]));
                }
                c
            }),
            (key(), prop::collection::vec((key(), value()), 1..4)).prop_map(|(k, fv)| {
                let mut c = vec!["HSET".to_string(), k];
                fv.into_iter().for_each(|(f, v)| c.extend([f, v]));
                c
            }),
            prop::collection::vec((key(), value()), 1..4).prop_map(|kv| {
                let mut c = vec!["MSET".to_string()];
                kv.into_iter().for_each(|(k, v)| c.extend([k, v]));
                c
            }),
            (
                prop::sample::select(vec![
                    "LPUSH", "RPUSH", "SADD", "SREM", "ZADD", "PFADD", "GEOADD", "XADD"
                ]),
                key(),
                prop::collection::vec(value(), 1..5)
            )
                .prop_map(|(c, k, vs)| {
                    let mut v = vec![c.to_string(), k];
                    v.extend(vs);
                    v
                }),
            (key(), value()).prop_map(|(k, v)| vec!["PUBLISH".into(), k, v]),
            (key(), value()).prop_map(|(k, v)| vec!["SETEX".into(), k, "10".into(), v]),
            (value(), prop::option::of(value())).prop_map(|(a, b)| {
                let mut c = vec!["AUTH".to_string(), a];
                c.extend(b);
                c
            }),
            (value(), value(), prop::option::of(key())).prop_map(|(u, p, name)| {
                let mut c = vec!["HELLO".to_string(), "3".into(), "AUTH".into(), u, p];
                if let Some(n) = name {
                    c.extend(["SETNAME".to_string(), n]);
                }
                c
            }),
            (key(), value()).prop_map(|(p, v)| vec!["CONFIG".into(), "SET".into(), p, v]),
            (key(), prop::collection::vec(value(), 0..4)).prop_map(|(u, rules)| {
                let mut c = vec!["ACL".to_string(), "SETUSER".into(), u];
                c.extend(rules);
                c
            }),
            (key(), value(), value(), prop::collection::vec(key(), 0..3)).prop_map(move |(k, u, p, keys)| {
                let mut c = s(&["MIGRATE", "host", "6379"]);
                c.extend([k, "0".into(), "5000".into(), "REPLACE".into(), "AUTH2".into(), u, p]);
                if !keys.is_empty() {
                    c.push("KEYS".into());
                    c.extend(keys);
                }
                c
            }),
            (key(), value()).prop_map(|(k, p)| {
                vec![
                    "MIGRATE".into(),
                    "h".into(),
                    "1".into(),
                    k,
                    "0".into(),
                    "1".into(),
                    "AUTH".into(),
                    p,
                ]
            }),
            (prop::collection::vec(key(), 0..3), prop::collection::vec(value(), 0..3)).prop_map(|(keys, vals)| {
                let mut c = vec!["EVALSHA".to_string(), "deadbeef".into(), keys.len().to_string()];
                c.extend(keys);
                c.extend(vals);
                c
            }),
            (key(), prop::collection::vec(value(), 0..4)).prop_map(|(name, vals)| {
                let mut c = vec![format!("X{name}.CMD").replace(':', "_")];
                c.extend(vals);
                c
            }),
            value().prop_map(|v| vec!["ECHO".into(), v]),
        ]
    }

    /// A Lua script whose every literal carries [`MARK`] or secret digits `97531`, and whose
    /// code (names, keywords, operators) never does.
    fn lua_script() -> impl Strategy<Value = String> {
        let body = prop::collection::vec(
            prop::sample::select(vec![
                MARK, "zq", " ", "'", "\"", "\\", "\\'", "\\\"", "]", "]]", "]=]", "[[", "--", "\n", "\t", "97531",
            ]),
            0..8,
        )
        .prop_map(|v| format!("{MARK}{}", v.concat()));
        let literal = prop_oneof![
            body.clone().prop_map(|b| format!(
                "'{}'",
                b.replace('\\', "\\\\").replace('\'', "\\'").replace('\n', "\\n")
            )),
            body.clone().prop_map(|b| format!(
                "\"{}\"",
                b.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
            )),
            (body.clone(), 0usize..4).prop_map(|(b, level)| {
                let close = format!("]{}]", "=".repeat(level));
                format!("[{}[{}{close}", "=".repeat(level), b.replace(&close, ""))
            }),
            (body.clone(), 0usize..3).prop_map(|(b, level)| {
                let close = format!("]{}]", "=".repeat(level));
                format!("--[{}[{}{close}", "=".repeat(level), b.replace(&close, ""))
            }),
            body.prop_map(|b| format!("-- {}\n", b.replace('\n', " "))),
            prop::sample::select(vec![
                "97531",
                "97531.25",
                "0x97531",
                "0X97531FF",
                "97531e10",
                "97531E-3",
                ".97531",
                "0x97531p-4",
                "4097531",
            ])
            .prop_map(str::to_owned),
        ];
        let code = prop::sample::select(vec![
            "return",
            "local",
            "x",
            "redis.call",
            "redis.pcall",
            "KEYS",
            "ARGV",
            "(",
            ")",
            "[",
            "]",
            ",",
            "..",
            "=",
            "==",
            "~=",
            "+",
            "-",
            "*",
            "/",
            "{",
            "}",
            "if",
            "then",
            "end",
            "function",
            "tonumber",
            "#",
            ":",
            ";",
            "cjson.encode",
        ])
        .prop_map(str::to_owned);
        prop::collection::vec(prop_oneof![2 => code, 1 => literal], 1..30).prop_map(|tokens| tokens.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn lua_literals_never_appear(script in lua_script(), numkeys in 0usize..3) {
            let masked = mask_lua(script.as_bytes());
            let text = String::from_utf8_lossy(&masked);
            prop_assert!(!text.contains(MARK) && !text.contains("97531"), "{script:?} -> {text:?}");
            prop_assert!(masked.len() <= script.len());
            let keys: Vec<String> = (0..numkeys).map(|i| format!("k{i}")).collect();
            for cmd in [
                {
                    let mut c = vec!["EVAL".to_string(), script.clone(), numkeys.to_string()];
                    c.extend(keys.iter().cloned());
                    c
                },
                vec!["EVAL_RO".into(), script.clone(), "0".into()],
                vec!["SCRIPT".into(), "LOAD".into(), script.clone()],
                vec!["FUNCTION".into(), "LOAD".into(), "REPLACE".into(), format!("#!lua name=lib\n{script}")],
            ] {
                let bytes: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
                let out = mask_command(&bytes);
                prop_assert!(!out.contains("97531"), "{cmd:?} -> {out}");
                // The marker is non-ASCII, so it can only appear escaped.
                prop_assert!(!out.contains("\\xf0\\x9f\\x94\\x92"), "{cmd:?} -> {out}");
            }
        }

        #[test]
        fn lua_masking_never_panics(script in prop::collection::vec(any::<u8>(), 0..200)) {
            let masked = mask_lua(&script);
            prop_assert!(masked.len() <= script.len().max(1));
        }

        #[test]
        fn no_value_ever_appears(cmd in command()) {
            let bytes: Vec<&[u8]> = cmd.iter().map(|a| a.as_bytes()).collect();
            let out = mask_command(&bytes);
            prop_assert!(!out.contains(MARK), "value leaked: {cmd:?} -> {out}");
            for v in cmd.iter().filter(|a| a.starts_with(MARK)) {
                // The value's ASCII part cannot occur in keys (no digits) or fixed words (no `zq`).
                let tail = &v[MARK.len()..];
                prop_assert!(!out.contains(tail), "value {v:?} leaked: {cmd:?} -> {out}");
            }
            let name = operation_name(&bytes);
            prop_assert!(!name.contains(MARK));
            prop_assert!(out.starts_with(&name), "{out} starts with {name}");
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..10)) {
            let bytes: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let out = mask_command(&bytes);
            let name = operation_name(&bytes);
            prop_assert!(out.starts_with(&name));
        }

        #[test]
        fn unknown_commands_mask_every_argument(
            name in "[A-Z]{3,6}\\.[A-Z]{2,5}",
            args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..12), 0..6),
        ) {
            let mut all: Vec<&[u8]> = vec![name.as_bytes()];
            all.extend(args.iter().map(Vec::as_slice));
            let expected = format!("{name}{}", " ?".repeat(args.len()));
            prop_assert_eq!(mask_command(&all), expected);
        }
    }
}
