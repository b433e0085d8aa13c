//! Opt-in capture of bind parameter values as `db.query.parameter.<key>`.
//!
//! sqlx encodes a value into the driver's wire format the moment it is bound, and its argument
//! buffers cannot be read back, so no wrapper can recover the values of
//! `sqlx::query(..).bind(x)` after the fact. Values are captured from two explicit sources
//! instead, and recorded only when the pool was built with
//! [`SqlOptions::with_parameter_capture`](crate::SqlOptions::with_parameter_capture):
//!
//! - [`Parameters`], an arguments builder for `sqlx::query_with` / `query_as_with` /
//!   `query_scalar_with` that keeps a text rendering of each value as it binds it, so each
//!   value is written once;
//! - [`QueryInfo::parameter`](crate::QueryInfo::parameter), for `.bind()` chains and the
//!   `query!` macros.

#[cfg(feature = "sqlx")]
use std::cell::Cell;
#[cfg(feature = "sqlx")]
use std::fmt;

use opentelemetry::Key;
#[cfg(feature = "sqlx")]
use opentelemetry::StringValue;
#[cfg(feature = "sqlx")]
use sqlx::error::BoxDynError;
#[cfg(feature = "sqlx")]
use sqlx::{Arguments, Database, Encode, IntoArguments, Type};

/// Bind arguments that remember a text rendering of every value, for
/// `db.query.parameter.<index>` (0-based, in bind order).
///
/// Use it where sqlx takes its own arguments type, with `sqlx::query_with`,
/// `sqlx::query_as_with` or `sqlx::query_scalar_with`:
///
/// ```no_run
/// # #[cfg(feature = "sqlite")]
/// # async fn run(pool: &otelrs_sql::InstrumentedPool<sqlx::Sqlite>) -> Result<(), sqlx::error::BoxDynError> {
/// use otelrs_sql::Parameters;
///
/// let mut params = Parameters::<sqlx::Sqlite>::new();
/// params.add(42_i64)?;
/// params.add("alice")?;
/// let rows = sqlx::query_with("SELECT id FROM users WHERE id = ? OR name = ?", params)
///     .fetch_all(pool)
///     .await?;
/// # let _ = rows; Ok(()) }
/// ```
///
/// The rendering is the value's `Display` text ([`add`](Self::add)) or one the caller gives
/// ([`add_as`](Self::add_as), for types without `Display` such as `Option<T>` or byte
/// arrays). It is recorded only by an [`InstrumentedPool`](crate::InstrumentedPool) whose
/// options enable parameter capture, only on spans that are recorded, and cut at the pool's
/// maximum query-text length; with capture off the renderings are dropped unread. The
/// arguments reach the database exactly as sqlx's own would.
#[cfg(feature = "sqlx")]
pub struct Parameters<DB: Database> {
    arguments: DB::Arguments,
    values: Vec<StringValue>,
}

#[cfg(feature = "sqlx")]
impl<DB: Database> Parameters<DB> {
    /// No arguments yet.
    pub fn new() -> Self {
        Self {
            arguments: DB::Arguments::default(),
            values: Vec::new(),
        }
    }

    /// Binds `value` as the next argument, rendered with its `Display` implementation.
    ///
    /// Fails when the driver cannot encode the value (the error sqlx's `Arguments::add`
    /// returns); the arguments are then left as they were.
    pub fn add<'t, T>(&mut self, value: T) -> Result<(), BoxDynError>
    where
        T: Encode<'t, DB> + Type<DB> + fmt::Display,
    {
        let rendering = value.to_string();
        self.add_as(value, rendering)
    }

    /// Binds `value` as the next argument, rendered as `rendering` (e.g. `"NULL"` for `None`,
    /// or a redacted form of a value that must not be exported).
    pub fn add_as<'t, T>(&mut self, value: T, rendering: impl Into<String>) -> Result<(), BoxDynError>
    where
        T: Encode<'t, DB> + Type<DB>,
    {
        self.arguments.add(value)?;
        self.values.push(StringValue::from(rendering.into()));
        Ok(())
    }

    /// The number of bound arguments.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing is bound.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

#[cfg(feature = "sqlx")]
impl<DB: Database> Default for Parameters<DB> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "sqlx")]
impl<DB: Database> fmt::Debug for Parameters<DB> {
    // The values are what capture is opt-in for: never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parameters")
            .field("len", &self.values.len())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "sqlx")]
thread_local! {
    /// Renderings handed over by [`Parameters::into_arguments`]. sqlx converts the arguments
    /// inside `Execute::take_arguments`, which an instrumented executor calls synchronously
    /// while it takes the query apart, so the executor clears this slot, takes the query apart,
    /// then reads it: what it reads belongs to that query.
    static HANDED_OVER: Cell<Option<Vec<StringValue>>> = const { Cell::new(None) };
}

#[cfg(feature = "sqlx")]
impl<DB: Database> IntoArguments<DB> for Parameters<DB> {
    fn into_arguments(self) -> DB::Arguments {
        HANDED_OVER.with(|slot| slot.set(Some(self.values)));
        self.arguments
    }
}

/// Runs `take_apart` (which converts a query's arguments) and returns its result with the
/// renderings a [`Parameters`] handed over during it, if any.
#[cfg(feature = "sqlx")]
pub(crate) fn with_handed_over<R>(take_apart: impl FnOnce() -> R) -> (R, Option<Vec<StringValue>>) {
    HANDED_OVER.with(|slot| slot.set(None));
    let result = take_apart();
    (result, HANDED_OVER.with(Cell::take))
}

/// Keys for the first indexes, so the common case allocates no key.
const INDEX_KEYS: [&str; 16] = [
    "db.query.parameter.0",
    "db.query.parameter.1",
    "db.query.parameter.2",
    "db.query.parameter.3",
    "db.query.parameter.4",
    "db.query.parameter.5",
    "db.query.parameter.6",
    "db.query.parameter.7",
    "db.query.parameter.8",
    "db.query.parameter.9",
    "db.query.parameter.10",
    "db.query.parameter.11",
    "db.query.parameter.12",
    "db.query.parameter.13",
    "db.query.parameter.14",
    "db.query.parameter.15",
];

/// `db.query.parameter.<index>`.
pub(crate) fn index_key(index: usize) -> Key {
    match INDEX_KEYS.get(index) {
        Some(k) => Key::from_static_str(k),
        None => Key::from(format!(
            "{}.{index}",
            opentelemetry_semantic_conventions::attribute::DB_QUERY_PARAMETER
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_keys_match_the_semconv_template() {
        for (i, k) in INDEX_KEYS.iter().enumerate() {
            assert_eq!(*k, format!("db.query.parameter.{i}"));
        }
        assert_eq!(index_key(3).as_str(), "db.query.parameter.3");
        assert_eq!(index_key(40).as_str(), "db.query.parameter.40");
    }

    #[cfg(feature = "sqlx")]
    #[test]
    fn handed_over_values_belong_to_the_call_that_converted_them() {
        // A stale hand-over (arguments converted outside an instrumented executor) is cleared.
        HANDED_OVER.with(|s| s.set(Some(vec![StringValue::from("stale")])));
        let ((), none) = with_handed_over(|| ());
        assert!(none.is_none());
        let ((), some) = with_handed_over(|| HANDED_OVER.with(|s| s.set(Some(vec![StringValue::from("7")]))));
        assert_eq!(some.map(|v| v[0].to_string()), Some("7".to_owned()));
        assert!(HANDED_OVER.with(Cell::take).is_none());
    }
}
