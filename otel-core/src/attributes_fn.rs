//! [`AttributesFn`]: attributes an application computes from a request or response, added by
//! an adapter to its span or, separately, to its duration metric.

use std::fmt;
use std::sync::Arc;

use opentelemetry::{KeyValue, StringValue, Value};

/// The most attributes one call of an [`AttributesFn`] adds; the rest are dropped.
pub const MAX_HOOK_ATTRIBUTES: usize = 16;

/// The longest string value (in bytes) an [`AttributesFn`] adds; longer values are cut at a
/// character boundary.
pub const MAX_HOOK_VALUE_LEN: usize = 256;

/// A function that adds attributes computed from `T` (a request head, a response head) to a
/// span or a metric point. Adapters take it through setters such as `with_span_attributes` and
/// `with_metric_attributes`.
///
/// Bounded: each call adds at most [`MAX_HOOK_ATTRIBUTES`] attributes and string values of at
/// most [`MAX_HOOK_VALUE_LEN`] bytes, so a hook that returns large or many values cannot grow a
/// span without limit. On a **metric**, every distinct value makes its own time series: return
/// only low-cardinality values there (a tenant tier, not a tenant id; a route group, not a
/// user). The SDK caps the series per instrument (its cardinality limit, 2 000 by default, then
/// an overflow series), which bounds memory but not the value of the data.
///
/// ```
/// use opentelemetry::KeyValue;
/// use otelrs_core::AttributesFn;
///
/// let tier = AttributesFn::<str>::new(|tenant, out| {
///     out.push(KeyValue::new("app.tenant.tier", if tenant.starts_with("gold-") { "gold" } else { "standard" }));
/// });
/// let mut attributes = Vec::new();
/// tier.collect("gold-42", &mut attributes);
/// assert_eq!(attributes, [KeyValue::new("app.tenant.tier", "gold")]);
/// ```
pub struct AttributesFn<T: ?Sized>(Arc<HookFn<T>>);

/// The function behind an [`AttributesFn`].
type HookFn<T> = dyn Fn(&T, &mut Vec<KeyValue>) + Send + Sync;

impl<T: ?Sized> Clone for AttributesFn<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: ?Sized> fmt::Debug for AttributesFn<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AttributesFn(..)")
    }
}

impl<T: ?Sized + 'static> AttributesFn<T> {
    /// A hook from a function that pushes attributes for `T` onto the vector it is given.
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&T, &mut Vec<KeyValue>) + Send + Sync + 'static,
    {
        Self(Arc::new(f))
    }

    /// Calls the hook for `input` and appends what it added to `out`, bounded (see the type's
    /// docs). What `out` held before is untouched.
    pub fn collect(&self, input: &T, out: &mut Vec<KeyValue>) {
        let before = out.len();
        (self.0)(input, out);
        out.truncate(before + MAX_HOOK_ATTRIBUTES);
        for kv in &mut out[before..] {
            if let Value::String(s) = &kv.value {
                if s.as_str().len() > MAX_HOOK_VALUE_LEN {
                    let text = s.as_str();
                    let mut end = MAX_HOOK_VALUE_LEN;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    kv.value = Value::String(StringValue::from(text[..end].to_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_count_and_length() {
        let flood = AttributesFn::<u32>::new(|n, out| {
            for i in 0..*n {
                out.push(KeyValue::new(format!("k{i}"), "é".repeat(400)));
            }
        });
        let mut out = vec![KeyValue::new("kept", 1i64)];
        flood.collect(&100, &mut out);
        assert_eq!(out.len(), 1 + MAX_HOOK_ATTRIBUTES);
        assert_eq!(out[0], KeyValue::new("kept", 1i64));
        for kv in &out[1..] {
            let Value::String(s) = &kv.value else { panic!("{kv:?}") };
            assert_eq!(s.as_str().len(), MAX_HOOK_VALUE_LEN, "cut at a char boundary");
            assert!(s.as_str().chars().all(|c| c == 'é'));
        }
        let mut small = Vec::new();
        flood.collect(&2, &mut small);
        assert_eq!(small.len(), 2);
    }
}
