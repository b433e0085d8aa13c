//! Configuration of an instrumented pool.

use std::borrow::Cow;

use otelrs_core::Instrumentation;

use crate::sanitize::DEFAULT_MAX_TEXT_LEN;

/// How `db.query.text` is recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryTextMode {
    /// The semantic-conventions default: text with bind placeholders (`$1`, `?`, `:name`) is
    /// recorded as written; text without placeholders is recorded with its literals sanitized.
    #[default]
    Parameterized,
    /// Always sanitized, even text with placeholders (literals written next to placeholders
    /// are hidden too).
    Sanitized,
    /// No `db.query.text` at all.
    Off,
}

/// Options of [`InstrumentedPool`](crate::InstrumentedPool).
///
/// ```
/// use otelrs_sql::{QueryTextMode, SqlOptions};
///
/// let options = SqlOptions::new()
///     .with_query_text(QueryTextMode::Sanitized)
///     .with_pool_name("orders-db");
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SqlOptions {
    pub(crate) instrumentation: Instrumentation,
    pub(crate) query_text: QueryTextMode,
    pub(crate) keep_comments: bool,
    pub(crate) max_text_len: usize,
    pub(crate) returned_rows: bool,
    pub(crate) pool_name: Option<Cow<'static, str>>,
    pub(crate) system_name: Option<&'static str>,
    pub(crate) cache_capacity: usize,
    pub(crate) capture_parameters: bool,
    pub(crate) require_parent_span: bool,
    pub(crate) sqlcommenter: crate::SqlCommenter,
}

/// Default number of statements whose analysis is cached per pool.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

impl Default for SqlOptions {
    fn default() -> Self {
        Self {
            instrumentation: Instrumentation::new(),
            query_text: QueryTextMode::default(),
            keep_comments: false,
            max_text_len: DEFAULT_MAX_TEXT_LEN,
            returned_rows: true,
            pool_name: None,
            system_name: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            capture_parameters: false,
            require_parent_span: false,
            sqlcommenter: crate::SqlCommenter::Off,
        }
    }
}

impl SqlOptions {
    /// Defaults: global providers, [`QueryTextMode::Parameterized`], comments dropped from
    /// sanitized text, text capped at 4096 bytes, no parameter values, `db.response.returned_rows` recorded, pool
    /// named `server.address:server.port/db.namespace`, 1024 cached statements.
    pub fn new() -> Self {
        Self::default()
    }

    /// Providers to use instead of the globals.
    pub fn with_instrumentation(mut self, instrumentation: Instrumentation) -> Self {
        self.instrumentation = instrumentation;
        self
    }

    /// How `db.query.text` is recorded.
    pub fn with_query_text(mut self, mode: QueryTextMode) -> Self {
        self.query_text = mode;
        self
    }

    /// Keeps comments in sanitized text (default: dropped). Kept comments are copied verbatim,
    /// so enable this only when comments never carry data (e.g. sqlcommenter tags).
    pub fn with_keep_comments(mut self, keep: bool) -> Self {
        self.keep_comments = keep;
        self
    }

    /// Caps `db.query.text` at `bytes` (cut at a character boundary). Default 4096.
    pub fn with_max_text_len(mut self, bytes: usize) -> Self {
        self.max_text_len = bytes;
        self
    }

    /// Records `db.response.returned_rows` on successful operations (default `true`).
    pub fn with_returned_rows(mut self, record: bool) -> Self {
        self.returned_rows = record;
        self
    }

    /// Records no span for an operation that has no parent span (connection-pool health checks,
    /// background jobs, statements outside any request), off by default. The operation's
    /// `db.client.operation.duration` is still recorded, and nothing is propagated for it.
    pub fn with_require_parent_span(mut self, require: bool) -> Self {
        self.require_parent_span = require;
        self
    }

    /// Appends the statement's trace context as a [sqlcommenter](crate::sqlcommenter) comment
    /// (off by default). Commented statements are unique and sent not persistent, so they skip
    /// the prepared-statement cache: use [`SqlCommenter::Marked`](crate::SqlCommenter::Marked)
    /// to comment only the statements you mark.
    pub fn with_sqlcommenter(mut self, mode: crate::SqlCommenter) -> Self {
        self.sqlcommenter = mode;
        self
    }

    /// `db.client.connection.pool.name`. Default: `{server.address}:{port}/{db.namespace}` with
    /// the port as configured (default port included), e.g. `127.0.0.1:5432/app`; for SQLite,
    /// the `db.namespace` alone (the file name, or `:memory:`).
    pub fn with_pool_name(mut self, name: impl Into<Cow<'static, str>>) -> Self {
        self.pool_name = Some(name.into());
        self
    }

    /// Overrides `db.system.name` (e.g. `"mariadb"` for a MariaDB server reached through the
    /// MySQL driver, when the pool is built with [`InstrumentedPool::new`] rather than
    /// [`InstrumentedPool::connect`], which detects it).
    ///
    /// [`InstrumentedPool::new`]: crate::InstrumentedPool::new
    /// [`InstrumentedPool::connect`]: crate::InstrumentedPool::connect
    pub fn with_system_name(mut self, name: &'static str) -> Self {
        self.system_name = Some(name);
        self
    }

    /// Records bind parameter values as `db.query.parameter.<key>` on recorded spans (default
    /// `false`, as semantic conventions advise: values are often personal data). The values
    /// come from [`Parameters`](crate::Parameters) (`sqlx::query_with`) or from
    /// [`QueryInfo::parameter`](crate::QueryInfo::parameter); each is cut at the
    /// [maximum text length](Self::with_max_text_len). Never on metrics.
    pub fn with_parameter_capture(mut self, capture: bool) -> Self {
        self.capture_parameters = capture;
        self
    }

    /// Number of distinct statements whose sanitized text and summary are cached (default
    /// 1024; 0 disables the cache). Statements over 16 KiB are never cached.
    pub fn with_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }
}
