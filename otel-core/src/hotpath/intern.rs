//! Bounded interning of low-cardinality strings (route templates, span names), so the hot path
//! can reuse one value instead of allocating per operation.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use super::hasher::FxBuildHasher;

type Bucket<V> = Vec<(Box<[Box<str>]>, V)>;

/// `s` as a reference-counted attribute string: cloning it for every span, metric key and export
/// is a reference-count increment, where an owned `String` value would be copied each time (and
/// freed on the export thread). For values built once and attached to many operations.
pub fn shared_str(s: &str) -> opentelemetry::StringValue {
    opentelemetry::StringValue::from(std::sync::Arc::<str>::from(s))
}

/// Values longer than this are never interned by [`interned_static`] and [`static_str`].
pub const STATIC_STR_MAX_LEN: usize = 256;

/// How many distinct values [`static_str`] interns in the whole process.
const STATIC_STR_CAPACITY: usize = 4096;

/// `s` interned in `interner` as a leaked `&'static str` (one copy per distinct value, made with
/// [`leak_str`]); `None` when `s` is longer than [`STATIC_STR_MAX_LEN`], the interner is full or
/// the leak budget is spent. The length limit, the interner's capacity and the budget keep
/// repeating but peer-supplied values (host names, user agents) from growing memory.
pub fn interned_static(interner: &Interner<&'static str>, s: &str) -> Option<&'static str> {
    if s.len() > STATIC_STR_MAX_LEN {
        return None;
    }
    interner.get_or_try_insert_with(&[s], || leak_str(s))
}

/// `s` as an attribute string that costs nothing to clone or drop: interned process-wide as a
/// `&'static str` ([`interned_static`] on one table of 4 096 entries), or [`shared_str`] when it
/// cannot be.
///
/// For configuration-like values attached to every operation of a connection or client (server
/// address, database namespace, peer address): connections come and go, their few distinct
/// values do not, and a static value spares each span an atomic reference-count increment on the
/// calling thread and a decrement on the export thread.
pub fn static_str(s: &str) -> opentelemetry::StringValue {
    static TABLE: std::sync::OnceLock<Interner<&'static str>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| Interner::new(STATIC_STR_CAPACITY));
    match interned_static(table, s) {
        Some(v) => opentelemetry::StringValue::from(v),
        None => shared_str(s),
    }
}

/// How many bytes [`leak_str`] may leak in the whole process (4 MiB).
pub const LEAK_BUDGET_BYTES: usize = 4 << 20;

static LEAKED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// `s` copied into memory kept for the rest of the process, or `None` once the process-wide
/// budget ([`LEAK_BUDGET_BYTES`]) is spent.
///
/// For interned values that end up on every span: a `&'static str` attribute value is cloned and
/// dropped without touching a reference count (an `Arc<str>` value costs an atomic increment on
/// the request thread and a decrement on the export thread, per span). Call it only for a new
/// entry of a bounded [`Interner`]: the budget bounds the total across all interners, including
/// ones made and dropped repeatedly.
pub fn leak_str(s: &str) -> Option<&'static str> {
    let reserved = LEAKED_BYTES.fetch_add(s.len(), Ordering::Relaxed);
    if reserved.saturating_add(s.len()) > LEAK_BUDGET_BYTES {
        LEAKED_BYTES.fetch_sub(s.len(), Ordering::Relaxed);
        return None;
    }
    Some(Box::leak(Box::from(s)))
}

/// Maps a short sequence of strings (e.g. method and route) to a value created once.
///
/// Lookups hash the parts without allocating. At most `capacity` entries are kept: once full,
/// [`Interner::get_or_insert_with`] returns `None` for new keys and the caller falls back to its
/// per-call path, so memory stays bounded whatever the input.
pub struct Interner<V> {
    buckets: RwLock<HashMap<u64, Bucket<V>, FxBuildHasher>>,
    capacity: usize,
}

impl<V> std::fmt::Debug for Interner<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn hash_parts(parts: &[&str]) -> u64 {
    let mut h = FxBuildHasher.build_hasher();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

fn same(stored: &[Box<str>], parts: &[&str]) -> bool {
    stored.len() == parts.len() && stored.iter().zip(parts).all(|(a, b)| &**a == *b)
}

impl<V: Clone> Interner<V> {
    /// An interner keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            buckets: RwLock::new(HashMap::default()),
            capacity,
        }
    }

    /// The value for `parts`, created with `make` the first time. `None` when `parts` is new and
    /// the interner is full.
    pub fn get_or_insert_with(&self, parts: &[&str], make: impl FnOnce() -> V) -> Option<V> {
        self.get_or_try_insert_with(parts, || Some(make()))
    }

    /// [`Interner::get_or_insert_with`] with a `make` that may decline (e.g. [`leak_str`] over
    /// its budget): then nothing is inserted and `None` is returned.
    pub fn get_or_try_insert_with(&self, parts: &[&str], make: impl FnOnce() -> Option<V>) -> Option<V> {
        let hash = hash_parts(parts);
        {
            let map = self.buckets.read().unwrap_or_else(|p| p.into_inner());
            if let Some(bucket) = map.get(&hash) {
                if let Some((_, v)) = bucket.iter().find(|(k, _)| same(k, parts)) {
                    return Some(v.clone());
                }
            }
            if map.len() >= self.capacity {
                return None;
            }
        }
        let mut map = self.buckets.write().unwrap_or_else(|p| p.into_inner());
        if let Some((_, v)) = map.get(&hash).and_then(|b| b.iter().find(|(k, _)| same(k, parts))) {
            return Some(v.clone());
        }
        if map.len() >= self.capacity {
            return None;
        }
        let value = make()?;
        let key: Box<[Box<str>]> = parts.iter().map(|p| Box::from(*p)).collect();
        map.entry(hash).or_default().push((key, value.clone()));
        Some(value)
    }

    /// Number of interned keys (distinct hashes).
    pub fn len(&self) -> usize {
        self.buckets.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Interns `parts` joined with spaces as a `&'static str` (for span names, which the OpenTelemetry
/// API takes as `Cow<'static, str>`). Each distinct name is leaked once ([`leak_str`]); the
/// interner's capacity and the process-wide leak budget bound the total. Returns an owned string
/// when either is spent.
pub fn static_name(interner: &Interner<&'static str>, parts: &[&str]) -> std::borrow::Cow<'static, str> {
    let joined = || parts.join(" ");
    match interner.get_or_try_insert_with(parts, || leak_str(&joined())) {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(joined()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn interns_until_full_then_declines() {
        let i: Interner<String> = Interner::new(2);
        let mut made = 0;
        let mut get = |parts: &[&str]| {
            i.get_or_insert_with(parts, || {
                made += 1;
                parts.join("|")
            })
        };
        assert_eq!(get(&["GET", "/a"]).as_deref(), Some("GET|/a"));
        assert_eq!(get(&["GET", "/a"]).as_deref(), Some("GET|/a"));
        assert_eq!(get(&["GET", "/b"]).as_deref(), Some("GET|/b"));
        assert_eq!(get(&["GET", "/c"]), None, "full");
        assert_eq!(
            get(&["GET", "/b"]).as_deref(),
            Some("GET|/b"),
            "existing keys still hit"
        );
        assert_eq!(made, 2);
        // Parts are compared as a sequence, not as a concatenation.
        let j: Interner<u8> = Interner::new(8);
        assert_eq!(j.get_or_insert_with(&["ab", "c"], || 1), Some(1));
        assert_eq!(j.get_or_insert_with(&["a", "bc"], || 2), Some(2));
    }

    #[test]
    fn declined_values_are_not_inserted() {
        let i: Interner<&'static str> = Interner::new(4);
        assert_eq!(i.get_or_try_insert_with(&["a"], || None), None);
        assert!(i.is_empty(), "a declined value takes no slot");
        assert_eq!(i.get_or_try_insert_with(&["a"], || Some("x")), Some("x"));
        assert_eq!(
            i.get_or_try_insert_with(&["a"], || None),
            Some("x"),
            "existing keys still hit"
        );
    }

    #[test]
    fn static_str_interns_short_values_once() {
        let a = static_str("db.example.internal");
        let b = static_str("db.example.internal");
        assert_eq!(a.as_str(), "db.example.internal");
        assert_eq!(
            a.as_str().as_ptr(),
            b.as_str().as_ptr(),
            "the same leaked copy for the same value"
        );
        let long = "h".repeat(STATIC_STR_MAX_LEN + 1);
        assert_eq!(static_str(&long).as_str(), long, "long values are still returned whole");
    }

    #[test]
    fn leak_str_stops_at_the_budget() {
        assert_eq!(leak_str("route"), Some("route"));
        // More than the whole budget at once is declined and reserves nothing.
        let huge = "x".repeat(LEAK_BUDGET_BYTES + 1);
        assert_eq!(leak_str(&huge), None);
        assert_eq!(leak_str("still fits"), Some("still fits"));
    }

    #[test]
    fn static_names_are_borrowed_once_interned() {
        let i = Interner::new(1);
        let a = static_name(&i, &["GET", "/users/{id}"]);
        assert_eq!(a, "GET /users/{id}");
        assert!(matches!(a, Cow::Borrowed(_)));
        let b = static_name(&i, &["POST", "/x"]);
        assert_eq!(b, "POST /x");
        assert!(matches!(b, Cow::Owned(_)), "over capacity: allocated per call");
    }
}
