//! Bound instruments: a metric recorded with the same attributes again and again is bound to
//! them once, so a recording skips the SDK's attribute hashing and lookup. [`FixedBound`] for an
//! attribute set fixed at construction, [`BoundInstruments`] for a bounded cache keyed by the
//! operation's dimensions, and the per-thread "last handle" helpers for the common case of the
//! same key twice in a row.

use opentelemetry::metrics::{BoundCounter, BoundHistogram, BoundUpDownCounter, Counter, Histogram, UpDownCounter};
use opentelemetry::KeyValue;

use super::hasher::FxBuildHasher;

/// An instrument that can be bound to a fixed attribute set (`opentelemetry`'s bound
/// instruments), so recording skips the SDK's per-call attribute hashing and lookup.
pub trait Bindable<T>: Clone + Send + Sync + 'static {
    /// The bound handle.
    type Bound: Clone + Send + Sync + 'static;
    /// Binds `attributes`.
    fn bind_attributes(&self, attributes: &[KeyValue]) -> Self::Bound;
    /// Records through a bound handle.
    fn record_bound(bound: &Self::Bound, value: T);
    /// Records with explicit attributes (the unbound path).
    fn record_unbound(&self, value: T, attributes: &[KeyValue]);
}

impl Bindable<f64> for Histogram<f64> {
    type Bound = BoundHistogram<f64>;
    fn bind_attributes(&self, attributes: &[KeyValue]) -> Self::Bound {
        self.bind(attributes)
    }
    fn record_bound(bound: &Self::Bound, value: f64) {
        bound.record(value)
    }
    fn record_unbound(&self, value: f64, attributes: &[KeyValue]) {
        self.record(value, attributes)
    }
}

impl Bindable<u64> for Histogram<u64> {
    type Bound = BoundHistogram<u64>;
    fn bind_attributes(&self, attributes: &[KeyValue]) -> Self::Bound {
        self.bind(attributes)
    }
    fn record_bound(bound: &Self::Bound, value: u64) {
        bound.record(value)
    }
    fn record_unbound(&self, value: u64, attributes: &[KeyValue]) {
        self.record(value, attributes)
    }
}

impl Bindable<i64> for UpDownCounter<i64> {
    type Bound = BoundUpDownCounter<i64>;
    fn bind_attributes(&self, attributes: &[KeyValue]) -> Self::Bound {
        self.bind(attributes)
    }
    fn record_bound(bound: &Self::Bound, value: i64) {
        bound.add(value)
    }
    fn record_unbound(&self, value: i64, attributes: &[KeyValue]) {
        self.add(value, attributes)
    }
}

impl Bindable<u64> for Counter<u64> {
    type Bound = BoundCounter<u64>;
    fn bind_attributes(&self, attributes: &[KeyValue]) -> Self::Bound {
        self.bind(attributes)
    }
    fn record_bound(bound: &Self::Bound, value: u64) {
        bound.add(value)
    }
    fn record_unbound(&self, value: u64, attributes: &[KeyValue]) {
        self.add(value, attributes)
    }
}

/// Default number of attribute sets a [`BoundInstruments`] keeps bound.
pub const DEFAULT_BOUND_CAPACITY: usize = 512;

/// An instrument plus a bounded cache of bound handles, keyed by a small, cheap-to-hash key that
/// identifies a low-cardinality attribute combination (method × route × status class …).
///
/// Recording with a cached key costs a read lock and one hash of the key instead of the SDK's
/// hashing, sorting and de-duplication of the attribute list. Attributes are built only when a
/// key is seen for the first time. Past `capacity` keys (or with capacity 0), recording falls back
/// to the ordinary unbound path, so memory stays bounded whatever the input.
///
/// Bound instruments need a meter provider that implements binding (`opentelemetry_sdk` does);
/// see [`crate::Instrumentation::with_bound_instruments`] to turn this off for others.
pub struct BoundInstruments<I, K, T>
where
    I: Bindable<T>,
{
    instrument: I,
    capacity: usize,
    map: std::sync::RwLock<std::collections::HashMap<K, I::Bound, FxBuildHasher>>,
    _value: std::marker::PhantomData<fn(T)>,
}

impl<I: Bindable<T>, K, T> std::fmt::Debug for BoundInstruments<I, K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundInstruments")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<I, K, T> BoundInstruments<I, K, T>
where
    I: Bindable<T>,
    K: std::hash::Hash + Eq,
{
    /// Wraps `instrument`, keeping at most `capacity` bound attribute sets.
    pub fn new(instrument: I, capacity: usize) -> Self {
        Self {
            instrument,
            capacity,
            map: std::sync::RwLock::new(std::collections::HashMap::default()),
            _value: std::marker::PhantomData,
        }
    }

    /// The wrapped instrument.
    pub fn instrument(&self) -> &I {
        &self.instrument
    }

    /// The bound handle for `key`, binding `attributes()` the first time (while capacity lasts).
    /// `None` when the cache is full or disabled: record with [`BoundInstruments::record`] or the
    /// instrument itself.
    pub fn handle(&self, key: &K, attributes: impl FnOnce() -> Vec<KeyValue>) -> Option<I::Bound>
    where
        K: Clone,
    {
        if self.capacity == 0 {
            return None;
        }
        if let Some(b) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Some(b.clone());
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = map.get(key) {
            return Some(b.clone());
        }
        if map.len() >= self.capacity {
            return None;
        }
        let bound = self.instrument.bind_attributes(&attributes());
        map.insert(key.clone(), bound.clone());
        Some(bound)
    }

    /// Records `value` for the attribute set identified by `key`; `attributes()` is called only
    /// when the key is not bound yet.
    pub fn record(&self, key: &K, value: T, attributes: impl FnOnce() -> Vec<KeyValue>)
    where
        K: Clone,
    {
        if self.capacity > 0 {
            if let Some(b) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
                I::record_bound(b, value);
                return;
            }
        }
        let attrs = attributes();
        if self.capacity > 0 {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            if map.len() < self.capacity {
                let bound = map
                    .entry(key.clone())
                    .or_insert_with(|| self.instrument.bind_attributes(&attrs));
                I::record_bound(bound, value);
                return;
            }
        }
        self.instrument.record_unbound(value, &attrs);
    }

    /// Records `value` with the key's `attributes` followed by `extra`: attributes an
    /// application hook computed (`AttributesFn`), which are not part of the key and so go
    /// through the SDK's attribute path, never a bound handle (their values are the
    /// application's; the SDK's cardinality limit bounds them).
    pub fn record_extended(&self, value: T, mut attributes: Vec<KeyValue>, extra: &[KeyValue]) {
        attributes.extend_from_slice(extra);
        self.instrument.record_unbound(value, &attributes);
    }

    /// Number of bound attribute sets.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is bound yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bound handle a thread used last for one [`BoundInstruments`], with its key. Kept in a
/// [`LastBoundSlot`] and used through [`bound_handle_with_last`].
pub struct LastBound<I: Bindable<T>, K, T> {
    instruments: std::sync::Arc<BoundInstruments<I, K, T>>,
    key: K,
    bound: I::Bound,
}

/// A thread-local slot holding a thread's [`LastBound`]; declare one per key type:
///
/// ```
/// use otelrs_core::hotpath::LastBoundSlot;
/// thread_local! {
///     static LAST: LastBoundSlot<opentelemetry::metrics::Histogram<f64>, (u16, &'static str), f64> =
///         const { std::cell::RefCell::new(None) };
/// }
/// ```
pub type LastBoundSlot<I, K, T> = std::cell::RefCell<Option<LastBound<I, K, T>>>;

/// The bound handle for `key` in `instruments`: the thread's last one when the key repeats (a key
/// comparison instead of the cache's hash, shared lock and probe), else from the cache, binding
/// `attributes()` the first time. `None` when binding is off or the cache is full: record
/// unbound then (e.g. with [`BoundInstruments::record`]).
///
/// Consecutive operations on a thread mostly share their metric attributes (same route and
/// status, same query summary). The slot holds its `BoundInstruments`, so the pointer comparison
/// never matches a different instrument set.
pub fn bound_handle_with_last<I, K, T>(
    slot: &'static std::thread::LocalKey<LastBoundSlot<I, K, T>>,
    instruments: &std::sync::Arc<BoundInstruments<I, K, T>>,
    key: &K,
    attributes: impl FnOnce() -> Vec<KeyValue>,
) -> Option<I::Bound>
where
    I: Bindable<T>,
    K: std::hash::Hash + Eq + Clone + 'static,
    T: 'static,
{
    let last = slot.try_with(|s| {
        s.borrow()
            .as_ref()
            .filter(|l| std::sync::Arc::ptr_eq(&l.instruments, instruments) && l.key == *key)
            .map(|l| l.bound.clone())
    });
    if let Ok(Some(bound)) = last {
        return Some(bound);
    }
    let bound = instruments.handle(key, attributes)?;
    let _ = slot.try_with(|s| {
        *s.borrow_mut() = Some(LastBound {
            instruments: std::sync::Arc::clone(instruments),
            key: key.clone(),
            bound: bound.clone(),
        });
    });
    Some(bound)
}

/// Records `value` for `key` through [`bound_handle_with_last`], or unbound when no handle is
/// available.
pub fn record_with_last<I, K, T>(
    slot: &'static std::thread::LocalKey<LastBoundSlot<I, K, T>>,
    instruments: &std::sync::Arc<BoundInstruments<I, K, T>>,
    key: &K,
    value: T,
    attributes: impl Fn() -> Vec<KeyValue>,
) where
    I: Bindable<T>,
    K: std::hash::Hash + Eq + Clone + 'static,
    T: 'static,
{
    match bound_handle_with_last(slot, instruments, key, &attributes) {
        Some(bound) => I::record_bound(&bound, value),
        None => instruments.instrument().record_unbound(value, &attributes()),
    }
}

/// An instrument bound once to a fixed attribute set, for metrics whose attributes never vary
/// per record (a connection pool's wait, use and create times, which carry only the pool name).
///
/// Recording is the bound handle's update: no per-record attribute processing, and no cache
/// lookup or lock shared between threads as [`BoundInstruments`] needs for varying keys. With
/// binding turned off ([`crate::Instrumentation::with_bound_instruments`]) it records with the
/// attributes through the instrument.
pub struct FixedBound<I, T>
where
    I: Bindable<T>,
{
    instrument: I,
    bound: Option<I::Bound>,
    attributes: Vec<KeyValue>,
    _value: std::marker::PhantomData<fn(T)>,
}

impl<I: Bindable<T>, T> std::fmt::Debug for FixedBound<I, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBound")
            .field("attributes", &self.attributes)
            .field("bound", &self.bound.is_some())
            .finish_non_exhaustive()
    }
}

impl<I: Bindable<T>, T> FixedBound<I, T> {
    /// Binds `instrument` to `attributes` when `bind` is true (pass
    /// `Instrumentation::bound_instrument_capacity() > 0`).
    pub fn new(instrument: I, attributes: Vec<KeyValue>, bind: bool) -> Self {
        let bound = bind.then(|| instrument.bind_attributes(&attributes));
        Self {
            instrument,
            bound,
            attributes,
            _value: std::marker::PhantomData,
        }
    }

    /// Records `value` with the fixed attributes.
    pub fn record(&self, value: T) {
        match &self.bound {
            Some(b) => I::record_bound(b, value),
            None => self.instrument.record_unbound(value, &self.attributes),
        }
    }

    /// The wrapped instrument.
    pub fn instrument(&self) -> &I {
        &self.instrument
    }

    /// The fixed attributes.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }
}

#[cfg(all(test, feature = "testing"))]
mod bound_tests {
    use super::*;
    use crate::instruments::{duration_histogram, up_down_counter, DURATION_BUCKETS};
    use crate::testing::{kv, TestTelemetry};
    use crate::Instrumentation;

    #[test]
    fn bound_and_unbound_recordings_land_in_the_same_points() {
        let t = TestTelemetry::new();
        let meter = t.instrumentation().meter(Instrumentation::scope("t", "0"));
        let h = duration_histogram(&meter, "b.duration", "B.", &DURATION_BUCKETS);
        let cache: BoundInstruments<_, (u16, &'static str), f64> = BoundInstruments::new(h.clone(), 2);
        let attrs = |s: u16, r: &'static str| move || vec![kv("status", i64::from(s)), kv("route", r)];
        cache.record(&(200, "/a"), 0.1, attrs(200, "/a"));
        cache.record(&(200, "/a"), 0.2, attrs(200, "/a"));
        cache.record(&(500, "/a"), 0.3, attrs(500, "/a"));
        // Capacity reached: a third key is recorded unbound, still correctly.
        cache.record(&(404, "/b"), 0.4, attrs(404, "/b"));
        assert_eq!(cache.len(), 2);
        // An unbound recording with the same attributes as a bound key joins its point.
        h.record(0.5, &[kv("route", "/a"), kv("status", 200i64)]);
        let m = t.metrics();
        assert_eq!(
            m.assert_histogram_point("b.duration", &[kv("status", 200i64), kv("route", "/a")])
                .count,
            3
        );
        assert_eq!(
            m.assert_histogram_point("b.duration", &[kv("status", 500i64), kv("route", "/a")])
                .count,
            1
        );
        assert_eq!(
            m.assert_histogram_point("b.duration", &[kv("status", 404i64), kv("route", "/b")])
                .count,
            1
        );
    }

    #[test]
    fn handles_pair_increments_and_decrements_and_capacity_zero_disables_binding() {
        let t = TestTelemetry::new();
        let meter = t.instrumentation().meter(Instrumentation::scope("t", "0"));
        let active = up_down_counter(&meter, "b.active", "{request}", "B.");
        let cache: BoundInstruments<_, &'static str, i64> = BoundInstruments::new(active.clone(), 8);
        let h = cache
            .handle(&"GET", || vec![kv("method", "GET")])
            .expect("capacity left");
        <UpDownCounter<i64> as Bindable<i64>>::record_bound(&h, 1);
        <UpDownCounter<i64> as Bindable<i64>>::record_bound(&h, 1);
        <UpDownCounter<i64> as Bindable<i64>>::record_bound(&h, -1);
        assert_eq!(t.metrics().sum_i64("b.active", &[kv("method", "GET")]), Some(1));
        let off: BoundInstruments<_, &'static str, i64> = BoundInstruments::new(active, 0);
        assert!(off.handle(&"GET", || vec![kv("method", "GET")]).is_none());
        off.record(&"POST", 1, || vec![kv("method", "POST")]);
        assert!(off.is_empty());
        assert_eq!(t.metrics().sum_i64("b.active", &[kv("method", "POST")]), Some(1));
    }

    #[test]
    fn fixed_bound_records_with_its_attributes_bound_or_not() {
        let t = TestTelemetry::new();
        let meter = t.instrumentation().meter(Instrumentation::scope("t", "0"));
        let pool = vec![kv("db.client.connection.pool.name", "p")];
        let bound = FixedBound::new(
            duration_histogram(&meter, "f.wait", "F.", &DURATION_BUCKETS),
            pool.clone(),
            true,
        );
        let unbound = FixedBound::new(
            duration_histogram(&meter, "f.use", "F.", &DURATION_BUCKETS),
            pool.clone(),
            false,
        );
        bound.record(0.25);
        bound.record(0.5);
        unbound.record(1.0);
        assert_eq!(bound.attributes(), &pool[..]);
        let m = t.metrics();
        let w = m.assert_histogram_point("f.wait", &pool);
        assert_eq!((w.count, w.sum), (2, 0.75));
        let u = m.assert_histogram_point("f.use", &pool);
        assert_eq!((u.count, u.sum), (1, 1.0));
    }

    #[test]
    fn fx_hash_distinguishes_keys() {
        use std::hash::BuildHasher;
        let b = FxBuildHasher;
        assert_ne!(b.hash_one("GET /a"), b.hash_one("GET /b"));
        assert_ne!(b.hash_one((200u16, "x")), b.hash_one((201u16, "x")));
        assert_eq!(b.hash_one("same"), b.hash_one("same"));
    }
}
