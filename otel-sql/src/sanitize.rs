//! A single-pass SQL lexer that sanitizes query text (`db.query.text`) and generates the
//! low-cardinality query summary (`db.query.summary`) of semantic conventions §5.2.
//!
//! It is a lexer, not a parser: it never rejects input, never panics, allocates only its two
//! outputs, and looks at each byte once. Literals it replaces with `?`:
//!
//! | Literal | Examples |
//! | --- | --- |
//! | strings | `'it''s'`, MySQL `'it\'s'` and `"double"`, PostgreSQL `E'a\'b'` |
//! | prefixed strings | `X'ff'`, `B'0101'`, `N'text'`, `E'..'` |
//! | dollar-quoted bodies (PostgreSQL) | `$$body$$`, `$tag$body$tag$` |
//! | numbers | `42`, `-1.5e10` (the sign stays), `.5`, `0x1F`, `0b101`, `1_000` |
//! | booleans | `TRUE`, `false` |
//!
//! Identifiers are kept: PostgreSQL and SQLite `"quoted"` identifiers, MySQL and SQLite
//! `` `backticked` `` ones, SQLite `[bracketed]` ones. Placeholders are kept (`$1`, `?`, `?1`,
//! `:name`, `@name`, per dialect). `IN (1, 2, 3)` becomes `IN (?)`. Comments (`-- ..`, `/* .. */`,
//! nested in PostgreSQL, MySQL `# ..`) are dropped unless [`SanitizeOptions::keep_comments`] is
//! set, in which case they are copied verbatim (so only keep them when they never contain data,
//! e.g. sqlcommenter tags). Unterminated literals and comments run to the end of the input.
//!
//! ```
//! use otelrs_sql::sanitize::{analyze, Dialect, SanitizeOptions};
//!
//! let a = analyze(
//!     "SELECT * FROM users WHERE name = 'bob' AND id IN (1, 2, 3) /* note */",
//!     &SanitizeOptions::new(Dialect::PostgreSql),
//! );
//! // A dropped comment leaves one space.
//! assert_eq!(a.sanitized, "SELECT * FROM users WHERE name = ? AND id IN (?)  ");
//! assert_eq!(a.summary, "SELECT users");
//! assert!(!a.has_placeholders);
//! ```

/// The SQL dialect, which decides what quotes, escapes, comments and placeholders mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: `"identifiers"`, `'strings'` with `''` escapes, `E'..'` with backslash
    /// escapes, `$tag$..$tag$` bodies, nested block comments, `$1` placeholders.
    PostgreSql,
    /// MySQL and MariaDB: `` `identifiers` ``, `'strings'` and `"strings"` with backslash and
    /// doubled-quote escapes, `#` comments, `?` placeholders.
    MySql,
    /// SQLite: `"identifiers"`, `` `identifiers` `` and `[identifiers]`, `'strings'` with `''`
    /// escapes, `?`, `?NNN`, `:name`, `@name` and `$name` placeholders.
    Sqlite,
    /// Unknown SQL: like PostgreSQL quoting, every placeholder form of every dialect.
    Generic,
}

/// Options of [`analyze`] and [`sanitize`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SanitizeOptions {
    /// The dialect.
    pub dialect: Dialect,
    /// Copy comments verbatim instead of dropping them (default `false`).
    pub keep_comments: bool,
    /// Maximum length in bytes of the sanitized text; longer output is cut at a character
    /// boundary (default [`DEFAULT_MAX_TEXT_LEN`]).
    pub max_len: usize,
}

/// Default cap of the sanitized text, in bytes.
pub const DEFAULT_MAX_TEXT_LEN: usize = 4096;

/// Maximum length of a query summary, in bytes (semantic conventions: 255 characters, cut at a
/// token boundary; every byte of a summary is ASCII or part of a whole identifier).
pub const MAX_SUMMARY_LEN: usize = 255;

impl SanitizeOptions {
    /// Defaults for `dialect`: comments dropped, [`DEFAULT_MAX_TEXT_LEN`].
    pub const fn new(dialect: Dialect) -> Self {
        Self {
            dialect,
            keep_comments: false,
            max_len: DEFAULT_MAX_TEXT_LEN,
        }
    }

    /// Keeps (`true`) or drops (`false`, the default) comments.
    pub const fn with_keep_comments(mut self, keep: bool) -> Self {
        self.keep_comments = keep;
        self
    }

    /// Sets the length cap of the sanitized text, in bytes.
    pub const fn with_max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

/// The result of [`analyze`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// The text with every literal replaced by `?`, IN-lists collapsed, capped at
    /// [`SanitizeOptions::max_len`].
    pub sanitized: String,
    /// The `db.query.summary` (`SELECT users`, `INSERT orders SELECT carts`); empty when the text
    /// has no recognised operation.
    pub summary: String,
    /// Whether the text contains bind placeholders of the dialect (`$1`, `?`, `:name`).
    pub has_placeholders: bool,
}

/// Sanitizes `sql` (see the [module docs](self)).
pub fn sanitize(sql: &str, options: &SanitizeOptions) -> String {
    analyze(sql, options).sanitized
}

/// The `db.query.summary` of `sql` (empty when no operation is recognised).
pub fn summarize(sql: &str, dialect: Dialect) -> String {
    analyze(sql, &SanitizeOptions::new(dialect).with_max_len(0)).summary
}

/// Sanitizes `sql` and generates its summary in one pass.
pub fn analyze(sql: &str, options: &SanitizeOptions) -> Analysis {
    let mut lexer = Lexer {
        src: sql,
        bytes: sql.as_bytes(),
        pos: 0,
        dialect: options.dialect,
    };
    let mut out = Output::new(options.max_len, sql.len());
    let mut summary = Summary::default();
    let mut in_list = InList::None;
    let mut has_placeholders = false;

    while let Some(token) = lexer.next_token() {
        let text = &sql[token.start..token.end];
        match token.kind {
            Kind::Whitespace => {
                out.push(text);
                // whitespace keeps an IN-list candidate alive
            }
            Kind::Comment => {
                if options.keep_comments {
                    out.push(text);
                } else {
                    out.push(" ");
                }
            }
            Kind::Literal => {
                in_list = in_list.on_literal();
                out.push("?");
                summary.on_other();
            }
            Kind::Placeholder => {
                has_placeholders = true;
                in_list = InList::None;
                out.push(text);
                summary.on_other();
            }
            Kind::Word => {
                if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") {
                    in_list = in_list.on_literal();
                    out.push("?");
                    summary.on_other();
                } else {
                    in_list = if text.eq_ignore_ascii_case("in") {
                        InList::AfterIn
                    } else {
                        InList::None
                    };
                    out.push(text);
                    summary.on_word(text);
                }
            }
            Kind::QuotedIdent => {
                in_list = InList::None;
                out.push(text);
                summary.on_ident(text);
            }
            Kind::Punct(b) => {
                match (b, in_list) {
                    (b'(', InList::AfterIn) => {
                        let before = out.len();
                        out.push(text);
                        // A list whose `(` fell past the cap is never collapsed: nothing of it
                        // was written, so writing its `?)` would put text after the cut.
                        in_list = if out.len() > before {
                            InList::Open {
                                start: out.len(),
                                literals: 0,
                                expect_value: true,
                            }
                        } else {
                            InList::None
                        };
                    }
                    (b',', InList::Open { start, literals, .. }) => {
                        out.push(text);
                        in_list = InList::Open {
                            start,
                            literals,
                            expect_value: true,
                        };
                    }
                    (b'+' | b'-', InList::Open { expect_value: true, .. }) => out.push(text),
                    (b')', InList::Open { start, literals, .. }) if literals > 0 => {
                        out.collapse_list(start);
                        in_list = InList::None;
                    }
                    _ => {
                        out.push(text);
                        in_list = InList::None;
                    }
                }
                summary.on_punct(b);
            }
        }
        if out.full && summary.full {
            break;
        }
    }
    summary.end_target(false);
    Analysis {
        sanitized: out.finish(),
        summary: summary.text,
        has_placeholders,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InList {
    None,
    AfterIn,
    /// Inside `IN (`: output position after `(`, literals seen, whether a value comes next.
    Open {
        start: usize,
        literals: u32,
        expect_value: bool,
    },
}

impl InList {
    fn on_literal(self) -> InList {
        match self {
            InList::Open {
                start,
                literals,
                expect_value: true,
            } => InList::Open {
                start,
                literals: literals.saturating_add(1),
                expect_value: false,
            },
            _ => InList::None,
        }
    }
}

/// The sanitized text under construction, capped at a byte length.
struct Output {
    buf: String,
    max_len: usize,
    full: bool,
}

impl Output {
    fn new(max_len: usize, input_len: usize) -> Self {
        Self {
            buf: String::with_capacity(input_len.min(max_len)),
            max_len,
            full: max_len == 0,
        }
    }

    fn len(&self) -> usize {
        self.buf.len()
    }

    fn push(&mut self, s: &str) {
        if self.full {
            return;
        }
        // Keep one byte of slack beyond the cap so an IN-list can still collapse back below it.
        let room = self.max_len.saturating_add(1).saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
        } else {
            self.buf.push_str(&s[..floor_char_boundary(s, room)]);
            self.full = true;
        }
    }

    fn collapse_list(&mut self, start: usize) {
        if start <= self.buf.len() && self.buf.is_char_boundary(start) {
            self.buf.truncate(start);
            self.full = false;
        }
        self.push("?)");
    }

    fn finish(mut self) -> String {
        if self.buf.len() > self.max_len {
            let cut = floor_char_boundary(&self.buf, self.max_len);
            self.buf.truncate(cut);
        }
        self.buf
    }
}

/// The largest `i <= index` that is a char boundary of `s`.
pub(crate) fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    let mut i = index;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Whitespace,
    Comment,
    /// A string, number, hex, bit or dollar-quoted literal.
    Literal,
    Placeholder,
    /// An unquoted identifier or keyword.
    Word,
    QuotedIdent,
    /// Any other single ASCII byte (operators, parentheses, commas, dots, semicolons).
    Punct(u8),
}

#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    dialect: Dialect,
}

#[inline]
fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

impl Lexer<'_> {
    #[inline]
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn next_token(&mut self) -> Option<Token> {
        let start = self.pos;
        let b = *self.bytes.get(start)?;
        let kind = match b {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                while matches!(self.peek(0), Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
                    self.pos += 1;
                }
                Kind::Whitespace
            }
            b'-' if self.peek(1) == Some(b'-') => self.line_comment(),
            b'#' if self.dialect == Dialect::MySql => self.line_comment(),
            b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
            b'\'' => {
                let backslash = self.dialect == Dialect::MySql;
                self.quoted(b'\'', backslash);
                Kind::Literal
            }
            b'"' => {
                if self.dialect == Dialect::MySql {
                    self.quoted(b'"', true);
                    Kind::Literal
                } else if self.dialect == Dialect::Sqlite {
                    self.sqlite_double_quoted()
                } else {
                    self.quoted_ident(b'"')
                }
            }
            b'`' if self.dialect != Dialect::PostgreSql => self.quoted_ident(b'`'),
            b'[' if self.dialect == Dialect::Sqlite => {
                self.pos += 1;
                match self.bytes[self.pos..].iter().position(|&c| c == b']') {
                    Some(i) => {
                        self.pos += i + 1;
                        Kind::QuotedIdent
                    }
                    None => {
                        // Unterminated: it may as well be data, so it is hidden.
                        self.pos = self.bytes.len();
                        Kind::Literal
                    }
                }
            }
            b'0'..=b'9' => self.number(),
            b'.' if self.peek(1).is_some_and(|c| c.is_ascii_digit()) => self.number(),
            b'$' => self.dollar(),
            b'?' => {
                self.pos += 1;
                if self.dialect == Dialect::PostgreSql {
                    // A JSON operator (`?`, `?|`, `?&`), never a placeholder in PostgreSQL.
                    Kind::Punct(b'?')
                } else {
                    while self.peek(0).is_some_and(|c| c.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    Kind::Placeholder
                }
            }
            b':' | b'@'
                if matches!(self.dialect, Dialect::Sqlite | Dialect::Generic)
                    && self.peek(1).is_some_and(is_word_start)
                    && !(b == b':' && start > 0 && self.bytes[start - 1] == b':') =>
            {
                self.pos += 1;
                self.word_tail();
                Kind::Placeholder
            }
            c if is_word_start(c) => {
                self.pos += 1;
                // Prefixed string literals: E'..' (backslash escapes), X'..', B'..', N'..'.
                if self.peek(0) == Some(b'\'') && matches!(c.to_ascii_uppercase(), b'E' | b'X' | b'B' | b'N') {
                    let backslash = c.eq_ignore_ascii_case(&b'E') || self.dialect == Dialect::MySql;
                    self.quoted(b'\'', backslash);
                    Kind::Literal
                } else {
                    self.word_tail();
                    Kind::Word
                }
            }
            c => {
                self.pos += 1;
                // Non-ASCII bytes are word bytes, so `c` is ASCII and the slice stays on a char
                // boundary.
                Kind::Punct(c)
            }
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    fn word_tail(&mut self) {
        let dollar_in_words = matches!(self.dialect, Dialect::PostgreSql | Dialect::MySql | Dialect::Generic);
        while let Some(c) = self.peek(0) {
            if is_word_byte(c) || (c == b'$' && dollar_in_words) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    fn line_comment(&mut self) -> Kind {
        match self.bytes[self.pos..].iter().position(|&c| c == b'\n') {
            Some(i) => self.pos += i,
            None => self.pos = self.bytes.len(),
        }
        Kind::Comment
    }

    fn block_comment(&mut self) -> Kind {
        self.pos += 2;
        let nested = matches!(self.dialect, Dialect::PostgreSql | Dialect::Generic);
        let mut depth = 1usize;
        while self.pos < self.bytes.len() {
            match (self.bytes[self.pos], self.peek(1)) {
                (b'*', Some(b'/')) => {
                    self.pos += 2;
                    depth -= 1;
                    if depth == 0 {
                        return Kind::Comment;
                    }
                }
                (b'/', Some(b'*')) if nested => {
                    self.pos += 2;
                    depth += 1;
                }
                _ => self.pos += 1,
            }
        }
        Kind::Comment
    }

    /// Consumes a literal quoted by `quote` (the opening quote is at `pos`): doubled quotes are
    /// escapes, and with `backslash` so is `\x`. Unterminated literals run to the end.
    fn quoted(&mut self, quote: u8, backslash: bool) {
        self.pos += 1;
        while self.pos < self.bytes.len() {
            let c = self.bytes[self.pos];
            if backslash && c == b'\\' {
                self.pos = (self.pos + 2).min(self.bytes.len());
            } else if c == quote {
                if self.peek(1) == Some(quote) {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return;
                }
            } else {
                self.pos += 1;
            }
        }
    }

    /// SQLite accepts `"..."` as a string literal when no column of that name exists, so a
    /// double-quoted token is only trusted as an identifier where a name is expected: after
    /// `FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE`, `ON`, `AS` or a `.`, or before a `.` or `(`.
    /// Anywhere else it is hidden like a string.
    fn sqlite_double_quoted(&mut self) -> Kind {
        let start = self.pos;
        let kind = self.quoted_ident(b'"');
        if kind != Kind::QuotedIdent {
            return kind;
        }
        let next = self.bytes[self.pos..]
            .iter()
            .copied()
            .find(|c| !c.is_ascii_whitespace());
        if matches!(next, Some(b'.' | b'(')) {
            return Kind::QuotedIdent;
        }
        let before = &self.bytes[..start];
        let trimmed_end = before
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let before = &before[..trimmed_end];
        if before.last() == Some(&b'.') {
            return Kind::QuotedIdent;
        }
        let word_start = before
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(0, |i| i + 1);
        let word = &before[word_start..];
        const NAME_KEYWORDS: [&[u8]; 8] = [b"from", b"join", b"into", b"update", b"table", b"on", b"as", b"exists"];
        if NAME_KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k)) {
            Kind::QuotedIdent
        } else {
            Kind::Literal
        }
    }

    fn quoted_ident(&mut self, quote: u8) -> Kind {
        self.pos += 1;
        while self.pos < self.bytes.len() {
            if self.bytes[self.pos] == quote {
                if self.peek(1) == Some(quote) {
                    self.pos += 2;
                } else {
                    self.pos += 1;
                    return Kind::QuotedIdent;
                }
            } else {
                self.pos += 1;
            }
        }
        // Unterminated: it may as well be data, so it is hidden.
        Kind::Literal
    }

    fn number(&mut self) -> Kind {
        let b = self.bytes;
        if b[self.pos] == b'0' && matches!(self.peek(1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')) {
            self.pos += 2;
        }
        // Digits, a fraction, an exponent with its sign, digit separators, and any identifier
        // bytes glued to the number (all part of one literal).
        while let Some(c) = self.peek(0) {
            if is_word_byte(c) || c == b'.' {
                self.pos += 1;
                if (c == b'e' || c == b'E') && matches!(self.peek(0), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
        Kind::Literal
    }

    fn dollar(&mut self) -> Kind {
        let start = self.pos;
        let rest = &self.bytes[start + 1..];
        // `$1`: a positional placeholder (PostgreSQL, SQLite, generic).
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits > 0 && self.dialect != Dialect::MySql {
            self.pos += 1 + digits;
            return Kind::Placeholder;
        }
        if matches!(self.dialect, Dialect::PostgreSql | Dialect::Generic) {
            // `$tag$` opens a dollar-quoted body closed by the same `$tag$`.
            let tag_len = if rest.first().is_some_and(|&c| is_word_start(c)) {
                rest.iter().take_while(|&&c| is_word_byte(c)).count()
            } else {
                0
            };
            if rest.get(tag_len) == Some(&b'$') {
                let delim = &self.src[start..start + tag_len + 2];
                let body_start = start + tag_len + 2;
                match self.src[body_start..].find(delim) {
                    Some(i) => self.pos = body_start + i + delim.len(),
                    None => self.pos = self.bytes.len(),
                }
                return Kind::Literal;
            }
        }
        if self.dialect == Dialect::Sqlite && rest.first().is_some_and(|&c| is_word_start(c)) {
            self.pos += 1;
            self.word_tail();
            return Kind::Placeholder;
        }
        self.pos += 1;
        Kind::Punct(b'$')
    }
}

/// Operations that may appear anywhere (sub-queries, `INSERT .. SELECT`, `UNION SELECT`).
const NESTED_OPS: [&str; 1] = ["SELECT"];
/// Operations recognised only where a statement starts (after `;`, `(` or `)`, or first).
const STATEMENT_OPS: [&str; 30] = [
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "REPLACE",
    "UPSERT",
    "CALL",
    "EXEC",
    "EXECUTE",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "SHOW",
    "USE",
    "PRAGMA",
    "VACUUM",
    "ANALYZE",
    "EXPLAIN",
    "COPY",
    "GRANT",
    "REVOKE",
    "LOCK",
    "TRUNCATE",
    "CREATE",
    "ALTER",
    "DROP",
];
/// Object kinds that follow `CREATE`, `ALTER`, `DROP` and `TRUNCATE` in the summary.
const DDL_OBJECTS: [&str; 14] = [
    "TABLE",
    "INDEX",
    "VIEW",
    "SCHEMA",
    "DATABASE",
    "SEQUENCE",
    "FUNCTION",
    "PROCEDURE",
    "TRIGGER",
    "TYPE",
    "EXTENSION",
    "ROLE",
    "USER",
    "MATERIALIZED",
];
/// Words skipped between a DDL keyword and its object or target.
const DDL_NOISE: [&str; 11] = [
    "OR",
    "REPLACE",
    "TEMP",
    "TEMPORARY",
    "UNIQUE",
    "UNLOGGED",
    "IF",
    "NOT",
    "EXISTS",
    "CONCURRENTLY",
    "ONLY",
];
/// Keywords that end a `FROM` list.
const FROM_LIST_END: [&str; 21] = [
    "WHERE",
    "JOIN",
    "INNER",
    "LEFT",
    "RIGHT",
    "FULL",
    "CROSS",
    "NATURAL",
    "ON",
    "USING",
    "GROUP",
    "ORDER",
    "LIMIT",
    "HAVING",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "WINDOW",
    "OFFSET",
    "FOR",
    "RETURNING",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Expect {
    #[default]
    Nothing,
    /// A table name comes next (after `FROM`, `JOIN`, `INTO`, `UPDATE`, `TABLE`, `USING`).
    Table {
        from_list: bool,
    },
    /// A `.name` may extend the pending target.
    QualifiedDot {
        from_list: bool,
    },
    QualifiedName {
        from_list: bool,
    },
    /// After a table of a `FROM` list: an alias, or `,` and another table.
    AfterTable,
    /// After `CREATE`/`ALTER`/`DROP`/`TRUNCATE`: optional object kind, then the target.
    DdlObject,
}

/// Builds the summary while tokens stream by.
#[derive(Default)]
struct Summary {
    text: String,
    full: bool,
    expect: Expect,
    /// The last target, held back until we know it is not a function call (`FROM f(..)`).
    pending: String,
    /// Parenthesis depth.
    depth: u32,
    /// Bit `d` set: a statement (operation) is active at depth `d` (for `d < 64`).
    stmt_depths: u64,
    /// Whether the previous significant token may start a statement.
    at_statement_start: bool,
    started: bool,
}

impl Summary {
    fn add(&mut self, part: &str) {
        if self.full || part.is_empty() {
            return;
        }
        let extra = if self.text.is_empty() { 0 } else { 1 };
        if self.text.len() + extra + part.len() > MAX_SUMMARY_LEN {
            self.full = true;
            return;
        }
        if extra == 1 {
            self.text.push(' ');
        }
        self.text.push_str(part);
    }

    fn statement_start(&self) -> bool {
        !self.started || self.at_statement_start
    }

    fn mark_statement(&mut self) {
        if self.depth < 64 {
            self.stmt_depths |= 1 << self.depth;
        }
    }

    fn statement_here(&self) -> bool {
        self.depth < 64 && self.stmt_depths & (1 << self.depth) != 0
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            let p = std::mem::take(&mut self.pending);
            self.add(&p);
        }
    }

    fn on_other(&mut self) {
        self.started = true;
        self.at_statement_start = false;
        self.end_target(false);
    }

    /// Ends a pending target; `call` means it was followed by `(` (a function in a FROM list).
    fn end_target(&mut self, call: bool) {
        match self.expect {
            Expect::QualifiedDot { from_list } | Expect::QualifiedName { from_list } => {
                if call && from_list {
                    self.pending.clear();
                } else {
                    self.flush_pending();
                }
                self.expect = if from_list && !call {
                    Expect::AfterTable
                } else {
                    Expect::Nothing
                };
            }
            Expect::Table { .. } | Expect::DdlObject => self.expect = Expect::Nothing,
            Expect::Nothing | Expect::AfterTable => {}
        }
    }

    fn on_ident(&mut self, ident: &str) {
        self.started = true;
        self.at_statement_start = false;
        match self.expect {
            Expect::Table { .. } | Expect::DdlObject => {
                let from_list = self.expect == (Expect::Table { from_list: true });
                self.pending.clear();
                self.pending.push_str(ident);
                self.expect = Expect::QualifiedDot { from_list };
            }
            Expect::QualifiedName { from_list } => {
                self.pending.push_str(ident);
                self.expect = Expect::QualifiedDot { from_list };
            }
            Expect::QualifiedDot { .. } => {
                // An alias right after the table name.
                self.end_target(false);
            }
            Expect::AfterTable | Expect::Nothing => {}
        }
    }

    fn on_word(&mut self, word: &str) {
        let upper = Upper::new(word);
        let w = upper.as_str();
        if self.expect == Expect::DdlObject {
            if DDL_NOISE.contains(&w) {
                return;
            }
            if DDL_OBJECTS.contains(&w) {
                // The object kind joins the operation (`CREATE TABLE`).
                self.add(word);
                return;
            }
        }
        if NESTED_OPS.contains(&w) || (self.statement_start() && STATEMENT_OPS.contains(&w)) {
            self.end_target(false);
            self.add(word);
            self.mark_statement();
            self.expect = match w {
                "UPDATE" | "CALL" | "EXEC" | "EXECUTE" | "COPY" => Expect::Table { from_list: false },
                "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "LOCK" => Expect::DdlObject,
                _ => Expect::Nothing,
            };
        } else if self.statement_here() && matches!(w, "FROM" | "JOIN") {
            self.end_target(false);
            self.expect = Expect::Table { from_list: true };
        } else if self.statement_here() && matches!(w, "INTO" | "TABLE") {
            self.end_target(false);
            self.expect = Expect::Table { from_list: false };
        } else if w == "USING" && self.statement_here() && self.expect != Expect::Nothing {
            self.end_target(false);
            self.expect = Expect::Table { from_list: true };
        } else if matches!(w, "ONLY" | "LATERAL") && matches!(self.expect, Expect::Table { .. }) {
            // `FROM ONLY t`, `JOIN LATERAL (..)`: the target is still to come.
        } else if FROM_LIST_END.contains(&w) {
            self.end_target(false);
            self.expect = Expect::Nothing;
        } else {
            // A plain identifier: the target when one is expected, else an alias or noise.
            self.on_ident(word);
        }
        self.started = true;
        self.at_statement_start = false;
    }

    fn on_punct(&mut self, b: u8) {
        match b {
            b'.' => match self.expect {
                Expect::QualifiedDot { from_list } => {
                    self.pending.push('.');
                    self.expect = Expect::QualifiedName { from_list };
                }
                _ => self.end_target(false),
            },
            b',' => {
                let from_list = matches!(
                    self.expect,
                    Expect::AfterTable | Expect::QualifiedDot { from_list: true }
                );
                self.end_target(false);
                if from_list {
                    self.expect = Expect::Table { from_list: true };
                }
            }
            b'(' => {
                self.end_target(true);
                self.depth = self.depth.saturating_add(1);
                if self.depth < 64 {
                    self.stmt_depths &= !(1 << self.depth);
                }
                self.at_statement_start = true;
                self.started = true;
                return;
            }
            b')' => {
                self.end_target(false);
                if self.depth < 64 {
                    self.stmt_depths &= !(1 << self.depth);
                }
                self.depth = self.depth.saturating_sub(1);
                // `WITH x AS (..) UPDATE ..`: a statement may follow a CTE.
                self.at_statement_start = true;
                self.started = true;
                // Back in an enclosing FROM list, `(subquery) alias, next` continues the list.
                return;
            }
            b';' => {
                self.end_target(false);
                self.expect = Expect::Nothing;
                self.depth = 0;
                self.stmt_depths = 0;
                self.at_statement_start = true;
                self.started = true;
                return;
            }
            _ => self.end_target(false),
        }
        self.started = true;
        self.at_statement_start = false;
    }
}

/// An ASCII-uppercased copy of a short word on the stack (keywords are at most 16 bytes).
struct Upper {
    buf: [u8; 16],
    len: usize,
}

impl Upper {
    fn new(word: &str) -> Self {
        let mut buf = [0u8; 16];
        let bytes = word.as_bytes();
        if bytes.len() > buf.len() || !word.is_ascii() {
            return Self { buf, len: 0 };
        }
        for (dst, src) in buf.iter_mut().zip(bytes) {
            *dst = src.to_ascii_uppercase();
        }
        Self { buf, len: bytes.len() }
    }

    fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}
