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
//! | dollar-quoted bodies (every dialect) | `$$body$$`, `$tag$body$tag$` |
//! | SQLite double-quoted tokens outside name positions | `WHERE a = "x"`, `ON "x" = b` |
//! | numbers | `42`, `-1.5e10` (the sign stays), `.5`, `0x1F`, `0b101`, `1_000` |
//! | booleans | `TRUE`, `false` |
//!
//! Identifiers are kept: PostgreSQL `"quoted"` identifiers, MySQL and SQLite `` `backticked` ``
//! ones, SQLite `[bracketed]` ones, and SQLite `"quoted"` ones where only a name can stand (see
//! below). Placeholders are kept (`$1`, `?`, `?1`, `:name`, `@name`, per dialect).
//! `IN (1, 2, 3)` becomes `IN (?)`. Comments (`-- ..`, `/* .. */`, nested in PostgreSQL, MySQL
//! `# ..` and `-- ` followed by whitespace) are dropped unless [`SanitizeOptions::keep_comments`]
//! is set, in which case they are copied verbatim (so only keep them when they never contain
//! data, e.g. sqlcommenter tags). Unterminated literals and comments run to the end of the input.
//!
//! ## Text a server may read in more than one way
//!
//! The sanitizer cannot see the server's settings, so where they change what is a literal it
//! hides everything any of the readings could hold:
//!
//! * **SQLite double-quoted strings.** SQLite runs `"..."` as a string when no column of that name
//!   exists (the "double-quoted string literal" misfeature, on in sqlx's bundled build). A
//!   double-quoted token is kept only where nothing but a name can stand: after `FROM` (not
//!   `IS [NOT] DISTINCT FROM`), `JOIN`, `INTO`, `UPDATE`, `TABLE`, `INDEX`, `VIEW`, `TRIGGER`,
//!   `AS`, `EXISTS`, `SET`, `COLUMN` or a `.`, before a `.` or `(`, or in the column list of
//!   `INSERT INTO name (..)` (what precedes it is looked at only back to the last comment). In
//!   every expression (`ON`, `WHERE`, `HAVING`, `CASE`, function arguments, `SET a = "x"`,
//!   `VALUES`, select lists, `RETURNING`) it becomes `?`. What you give up: double-quoted
//!   column names in select lists, conditions and `RETURNING` show as `?` (write them unquoted
//!   or qualified, `"t"."c"`, to keep them).
//! * **Backslashes in MySQL/MariaDB strings** (and in unknown SQL). With `NO_BACKSLASH_ESCAPES`
//!   a backslash is an ordinary character, without it an escape, so `'a\', 'b'` is one literal
//!   or two. When a string holds a backslash, both readings are followed from its opening quote
//!   until they agree again (both outside any string, quoted name and comment), and that whole
//!   span becomes one `?`. Literals without a backslash are unaffected. `E'..'` is read both
//!   ways too outside PostgreSQL (elsewhere `E` is a name before an ordinary string). What you
//!   give up: after an escaped quote (`'it\'s'`) the text up to where the readings meet, often
//!   the rest of the statement, is hidden, and so is its summary.
//! * **Dollar-quoted text in every dialect.** `$tag$...$tag$` is a literal in PostgreSQL and
//!   hidden there; MySQL and SQLite read the same characters as names or placeholders, but the
//!   body is as likely to be data, so it is hidden in every dialect, and (as for backslashes)
//!   together with whatever a string or comment opened inside it would cover in the server's
//!   reading. It is never taken for a placeholder (which would record the text as written).
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
    /// MySQL and MariaDB: `` `identifiers` ``, `'strings'` and `"strings"` with doubled-quote
    /// escapes and backslash escapes (or none, with `NO_BACKSLASH_ESCAPES`: both readings are
    /// hidden), `#` and `-- ` comments, `?` placeholders.
    MySql,
    /// SQLite: `` `identifiers` `` and `[identifiers]`, `"identifiers"` where only a name can
    /// stand (else `"strings"`), `'strings'` with `''` escapes, `?`, `?NNN`, `:name`, `@name` and
    /// `$name` placeholders.
    Sqlite,
    /// Unknown SQL: like PostgreSQL quoting (but a backslash in a plain string may be an
    /// escape, so both readings are hidden), every placeholder form of every dialect.
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
        comment_end: 0,
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
    /// Where the last comment ended: the look-behind of SQLite double-quoted tokens stops
    /// there (a comment may hold any text, `-- FROM` included).
    comment_end: usize,
}

#[inline]
fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

#[inline]
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Keywords after which a SQLite double-quoted token can only be a name (`FROM "t"`,
/// `INSERT INTO "t"`, `UPDATE "t" SET "c" = ..`, `CREATE INDEX "i"`, `AS "alias"`,
/// `IF NOT EXISTS "t"`, `ADD COLUMN "c"`).
const SQLITE_NAME_KEYWORDS: [&[u8]; 12] = [
    b"from", b"join", b"into", b"update", b"table", b"index", b"view", b"trigger", b"as", b"exists", b"set", b"column",
];

/// How far [`sqlite_insert_columns`] looks back, in bytes: a longer column list is hidden.
const SQLITE_COLUMN_LIST_LOOKBACK: usize = 512;

/// Whether `before` (the text before a SQLite double-quoted token, trailing whitespace trimmed,
/// ending in `(` or `,`) ends inside the column list of `INSERT INTO name (..`: only names,
/// commas and whitespace back to a `(` that follows `INTO name` (the name possibly qualified).
/// Looks back at most [`SQLITE_COLUMN_LIST_LOOKBACK`] bytes.
fn sqlite_insert_columns(before: &[u8]) -> bool {
    let floor = before.len().saturating_sub(SQLITE_COLUMN_LIST_LOOKBACK);
    let text = &before[floor..];
    let mut i = text.len();
    // Back over the list to its `(`.
    loop {
        let Some(&c) = i.checked_sub(1).and_then(|k| text.get(k)) else {
            return false;
        };
        match c {
            b'(' => {
                i -= 1;
                break;
            }
            b',' => i -= 1,
            c if c.is_ascii_whitespace() => i -= 1,
            _ => match name_start_before(text, i) {
                Some(start) => i = start,
                None => return false,
            },
        }
    }
    // Before the `(`: a name, possibly qualified (`"main"."t"`), then `INTO`.
    let skip_space = |mut k: usize| {
        while k > 0 && text[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        k
    };
    let Some(mut k) = name_start_before(text, skip_space(i)) else {
        return false;
    };
    while k > 0 && text[k - 1] == b'.' {
        match name_start_before(text, k - 1) {
            Some(start) => k = start,
            None => return false,
        }
    }
    let end = skip_space(k);
    let start = text[..end]
        .iter()
        .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
        .map_or(0, |p| p + 1);
    text[start..end].eq_ignore_ascii_case(b"into") && (start > 0 || floor == 0)
}

/// If a name (`"quoted"` with `""` escapes, `` `quoted` ``, `[bracketed]` or a plain word) ends
/// at `end` in `text`: where it starts.
fn name_start_before(text: &[u8], end: usize) -> Option<usize> {
    let last = *text.get(end.checked_sub(1)?)?;
    match last {
        b'"' | b'`' => {
            // Back to the opening quote; a doubled quote is an escape inside the name.
            let mut j = end - 1;
            loop {
                let k = text[..j].iter().rposition(|&c| c == last)?;
                if k > 0 && text[k - 1] == last {
                    j = k - 1;
                } else {
                    return Some(k);
                }
            }
        }
        b']' => text[..end - 1].iter().rposition(|&c| c == b'['),
        c if is_word_byte(c) => {
            let start = text[..end].iter().rposition(|&c| !is_word_byte(c)).map_or(0, |p| p + 1);
            text.get(start).is_some_and(|&c| is_word_start(c)).then_some(start)
        }
        _ => None,
    }
}

/// One way a server (or the lexer) may read the text.
#[derive(Clone, Copy, Debug)]
struct Reading {
    /// A backslash escapes the next byte in plain strings.
    backslash: bool,
    /// `$tag$..$tag$` is a literal.
    dollar: bool,
    /// `E'..'` is a string with backslash escapes (else `E` is a name before a plain string).
    e_escapes: bool,
}

/// Bytes that continue a word: ASCII letters, digits, `_`, `$` and every non-ASCII byte (a
/// table: the word scan is the lexer's hottest loop).
const WORD_TAIL: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        table[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
        i += 1;
    }
    table
};

/// The end of the word starting at `at` (word bytes and `$`).
fn word_end(bytes: &[u8], at: usize) -> usize {
    let rest = bytes.get(at..).unwrap_or_default();
    at + rest
        .iter()
        .position(|&c| !WORD_TAIL[usize::from(c)])
        .unwrap_or(rest.len())
}

/// The end of a number starting at `at`: digits, a fraction, an exponent with its sign, digit
/// separators, and any identifier bytes glued to the number (all part of one literal).
fn number_end(bytes: &[u8], at: usize) -> usize {
    let mut i = at;
    if bytes.get(i) == Some(&b'0') && matches!(bytes.get(i + 1), Some(b'x' | b'X' | b'b' | b'B' | b'o' | b'O')) {
        i += 2;
    }
    while let Some(&c) = bytes.get(i) {
        if is_word_byte(c) || c == b'.' {
            i += 1;
            if (c == b'e' || c == b'E') && matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
        } else {
            break;
        }
    }
    i
}

/// The end of a line comment starting at `at`: the line break (not consumed) or the end.
fn line_end(bytes: &[u8], at: usize) -> usize {
    bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&c| c == b'\n'))
        .map_or(bytes.len(), |i| at + i)
}

/// The end of a block comment opening at `at` (`/*`), nested when `nested`; the end of the
/// input when unterminated.
fn block_comment_end(bytes: &[u8], at: usize, nested: bool) -> usize {
    let mut i = at + 2;
    let mut depth = 1usize;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'*', Some(b'/')) => {
                i += 2;
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            (b'/', Some(b'*')) if nested => {
                i += 2;
                depth += 1;
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The end of a literal quoted by `quote` opening at `at`: doubled quotes are escapes, and
/// with `backslash` so is `\x`; unterminated literals run to the end. Also whether a
/// backslash occurs in it (where the two readings of backslashes may disagree).
fn quoted_end(bytes: &[u8], at: usize, quote: u8, backslash: bool) -> (usize, bool) {
    let mut i = at + 1;
    let mut saw_backslash = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' {
            saw_backslash = true;
            i += if backslash { 2 } else { 1 };
        } else if c == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return (i + 1, saw_backslash);
            }
        } else {
            i += 1;
        }
    }
    (bytes.len(), saw_backslash)
}

/// If a dollar-quote opener `$tag$` (tag empty or a name) starts at `at`: the end of the body
/// closed by the same `$tag$`, or the end of the input when it is never closed.
fn dollar_quote_end(src: &str, at: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let rest = bytes.get(at + 1..)?;
    let tag_len = if rest.first().is_some_and(|&c| is_word_start(c)) {
        rest.iter().take_while(|&&c| is_word_byte(c)).count()
    } else {
        0
    };
    if rest.get(tag_len) != Some(&b'$') {
        return None;
    }
    // The opener is ASCII `$`, word bytes (whole UTF-8 sequences) and `$`: char boundaries.
    let delim = src.get(at..at + tag_len + 2)?;
    let body_start = at + tag_len + 2;
    Some(
        src.get(body_start..)
            .and_then(|body| body.find(delim))
            .map_or(bytes.len(), |i| body_start + i + delim.len()),
    )
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
            // MySQL and MariaDB read `--` as a comment only before whitespace or a control
            // character (`1--2` is `1 - -2`).
            b'-' if self.peek(1) == Some(b'-')
                && (self.dialect != Dialect::MySql || self.peek(2).is_none_or(|c| c <= b' ')) =>
            {
                self.line_comment()
            }
            b'#' if self.dialect == Dialect::MySql => self.line_comment(),
            b'/' if self.peek(1) == Some(b'*') => self.block_comment(),
            b'\'' => {
                let backslash = self.dialect == Dialect::MySql;
                self.string(start, b'\'', backslash, self.backslash_ambiguous());
                Kind::Literal
            }
            b'"' => {
                if self.dialect == Dialect::MySql {
                    self.string(start, b'"', true, true);
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
                    let e = c.eq_ignore_ascii_case(&b'E');
                    let backslash = e || self.dialect == Dialect::MySql;
                    // `E'..'` takes backslash escapes in PostgreSQL; MySQL and SQLite have no
                    // such prefix (`E` is a name there, the string an ordinary one), so outside
                    // PostgreSQL both readings are hidden.
                    let ambiguous = match self.dialect {
                        Dialect::PostgreSql => false,
                        Dialect::Sqlite => e,
                        Dialect::MySql | Dialect::Generic => true,
                    };
                    self.string(start, b'\'', backslash, ambiguous);
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
        // `$` continues a word in every dialect (`a$b` is one name in PostgreSQL, MySQL and
        // SQLite alike).
        self.pos = word_end(self.bytes, self.pos);
    }

    fn line_comment(&mut self) -> Kind {
        self.pos = line_end(self.bytes, self.pos);
        self.comment_end = self.pos;
        Kind::Comment
    }

    fn block_comment(&mut self) -> Kind {
        let nested = matches!(self.dialect, Dialect::PostgreSql | Dialect::Generic);
        self.pos = block_comment_end(self.bytes, self.pos, nested);
        self.comment_end = self.pos;
        Kind::Comment
    }

    /// Whether a plain `'..'` string of this dialect may be read with or without backslash
    /// escapes, depending on the server's settings: MySQL and MariaDB (`NO_BACKSLASH_ESCAPES`)
    /// and unknown SQL. (PostgreSQL's standard strings never take them; `E'..'` always does.)
    fn backslash_ambiguous(&self) -> bool {
        matches!(self.dialect, Dialect::MySql | Dialect::Generic)
    }

    /// Consumes a string literal quoted by `quote` (the opening quote is at `pos`; the token,
    /// with its prefix letter if any, starts at `start`), read with backslash escapes when
    /// `backslash`. When the literal holds a backslash and `ambiguous` (the server may read it
    /// either way), the token is extended over every reading's span ([`Lexer::union_end`]).
    fn string(&mut self, start: usize, quote: u8, backslash: bool, ambiguous: bool) {
        let (end, saw_backslash) = quoted_end(self.bytes, self.pos, quote, backslash);
        self.pos = end;
        if ambiguous && saw_backslash {
            self.pos = self.union_end(start);
        }
    }

    /// The ways a server may read this dialect's text, and the lexer's own (first). They
    /// differ only in backslash escapes inside plain and `E'..'` strings and in whether
    /// `$tag$..$tag$` is a literal: MySQL/MariaDB with and without `NO_BACKSLASH_ESCAPES` (and
    /// never dollar quotes or `E'..'`), SQLite (neither), unknown SQL any of them.
    fn readings(&self) -> &'static [Reading] {
        const LEXER_BS: Reading = Reading {
            backslash: true,
            dollar: true,
            e_escapes: true,
        };
        const LEXER_STD: Reading = Reading {
            backslash: false,
            dollar: true,
            e_escapes: true,
        };
        const SERVER_BS: Reading = Reading {
            backslash: true,
            dollar: false,
            e_escapes: false,
        };
        const SERVER_STD: Reading = Reading {
            backslash: false,
            dollar: false,
            e_escapes: false,
        };
        match self.dialect {
            Dialect::PostgreSql => &[LEXER_STD],
            Dialect::MySql => &[LEXER_BS, SERVER_BS, SERVER_STD],
            Dialect::Sqlite => &[LEXER_STD, SERVER_STD],
            Dialect::Generic => &[LEXER_STD, LEXER_BS, SERVER_BS, SERVER_STD],
        }
    }

    /// The end of the span that covers the construct opening at `start` under every reading of
    /// [`Lexer::readings`]: the first position after `start` where every reading is outside
    /// any string, quoted name and comment. Each reading is advanced from `start` token by
    /// token; whichever is behind is moved up to the one ahead until all meet. Every step moves
    /// a cursor forward, so this is linear in the text it covers.
    fn union_end(&self, start: usize) -> usize {
        let readings = self.readings();
        let mut cursors = [start; 4];
        let n = readings.len().min(cursors.len());
        let mut target = start + 1;
        loop {
            for (cursor, reading) in cursors.iter_mut().zip(readings).take(n) {
                while *cursor < target {
                    *cursor = self.construct_end(*cursor, *reading).unwrap_or(*cursor + 1);
                }
            }
            let max = cursors[..n].iter().copied().max().unwrap_or(target);
            if cursors[..n].iter().all(|&c| c == max) {
                return max.min(self.bytes.len());
            }
            target = max;
        }
    }

    /// The end of the string, quoted name, comment, word, number or (per `reading`)
    /// dollar-quoted body that starts at `at`, as a server reading the text as `reading` sees
    /// it; `None` for a byte that is a token of its own. Words and numbers end where the
    /// lexer's do, so the lexer's own reading is modelled exactly.
    fn construct_end(&self, at: usize, reading: Reading) -> Option<usize> {
        let bytes = self.bytes;
        let c = *bytes.get(at)?;
        let next = bytes.get(at + 1).copied();
        let d = self.dialect;
        Some(match c {
            b'\'' => quoted_end(bytes, at, c, reading.backslash).0,
            b'"' => quoted_end(bytes, at, c, reading.backslash && d == Dialect::MySql).0,
            b'`' if d != Dialect::PostgreSql => quoted_end(bytes, at, c, false).0,
            b'[' if d == Dialect::Sqlite => bytes[at..]
                .iter()
                .position(|&b| b == b']')
                .map_or(bytes.len(), |i| at + i + 1),
            b'-' if next == Some(b'-') && (d != Dialect::MySql || bytes.get(at + 2).is_none_or(|&b| b <= b' ')) => {
                line_end(bytes, at)
            }
            b'#' if d == Dialect::MySql => line_end(bytes, at),
            b'/' if next == Some(b'*') => {
                block_comment_end(bytes, at, matches!(d, Dialect::PostgreSql | Dialect::Generic))
            }
            b'$' if reading.dollar => return dollar_quote_end(self.src, at),
            b'0'..=b'9' => number_end(bytes, at),
            b'.' if next.is_some_and(|c| c.is_ascii_digit()) => number_end(bytes, at),
            // A one-letter prefix glued to a string: `E'..'` (backslash escapes where `E` is a
            // prefix), `X'..'`, `B'..'`, `N'..'`.
            c if is_word_start(c)
                && next == Some(b'\'')
                && matches!(c.to_ascii_uppercase(), b'E' | b'X' | b'B' | b'N') =>
            {
                let e = c.eq_ignore_ascii_case(&b'E');
                quoted_end(bytes, at + 1, b'\'', reading.backslash || (e && reading.e_escapes)).0
            }
            c if is_word_start(c) => word_end(bytes, at),
            _ => return None,
        })
    }

    /// SQLite accepts `"..."` as a string literal when no column of that name exists, so a
    /// double-quoted token is only trusted as an identifier where nothing but a name can
    /// stand: after one of [`SQLITE_NAME_KEYWORDS`] (`FROM` except in `IS DISTINCT FROM`) or a
    /// `.`, before a `.` or `(`, or in the column list of `INSERT INTO name (..)`. Anywhere else
    /// (any expression: `ON`, `WHERE`, `HAVING`, `CASE`, function arguments, the right of
    /// `SET a =`, `VALUES`, select lists, `RETURNING`) it is hidden like a string.
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
        // Only the text since the last comment counts.
        let before = self.bytes.get(self.comment_end.min(start)..start).unwrap_or_default();
        let trimmed_end = before
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        let before = &before[..trimmed_end];
        if before.last() == Some(&b'.') {
            return Kind::QuotedIdent;
        }
        if matches!(before.last(), Some(b'(' | b',')) {
            return if sqlite_insert_columns(before) {
                Kind::QuotedIdent
            } else {
                Kind::Literal
            };
        }
        let word_start = before
            .iter()
            .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
            .map_or(0, |i| i + 1);
        let word = &before[word_start..];
        if !SQLITE_NAME_KEYWORDS.iter().any(|k| word.eq_ignore_ascii_case(k)) {
            return Kind::Literal;
        }
        // `a IS [NOT] DISTINCT FROM "x"` compares with a value.
        if word.eq_ignore_ascii_case(b"from") {
            let before = &before[..word_start];
            let end = before
                .iter()
                .rposition(|c| !c.is_ascii_whitespace())
                .map_or(0, |i| i + 1);
            let before = &before[..end];
            let start = before
                .iter()
                .rposition(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
                .map_or(0, |i| i + 1);
            if before[start..].eq_ignore_ascii_case(b"distinct") {
                return Kind::Literal;
            }
        }
        Kind::QuotedIdent
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
        self.pos = number_end(self.bytes, self.pos);
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
        // `$tag$` opens a dollar-quoted body closed by the same `$tag$`: a literal in
        // PostgreSQL, hidden in every dialect. Where the server reads it as names or
        // placeholders (SQLite, MySQL), the strings and comments it reads in between may reach
        // past the closing tag, so the token covers both readings.
        if let Some(end) = dollar_quote_end(self.src, start) {
            self.pos = end;
            if self.dialect != Dialect::PostgreSql {
                self.pos = self.union_end(start);
            }
            return Kind::Literal;
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
