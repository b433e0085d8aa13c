//! A bounded, sharded cache from statement text to its analysis, so repeated statements are
//! lexed once.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use otelrs_core::hotpath::FxBuildHasher;

const SHARDS: usize = 16;

/// Statements longer than this are analysed every time instead of being cached.
pub(crate) const MAX_CACHED_SQL_LEN: usize = 16 * 1024;

// The Fx hash (not DoS-resistant) is fine here: a shard holds at most `per_shard` entries, so even
// keys crafted to collide cost a bounded scan; SipHash cost more than the rest of a cache hit.
type Shard<V> = Mutex<HashMap<Box<str>, Arc<V>, FxBuildHasher>>;

pub(crate) struct Cache<V> {
    shards: Box<[Shard<V>]>,
    per_shard: usize,
}

impl<V> Cache<V> {
    /// A cache of at most `capacity` entries (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::default())).collect(),
            per_shard,
        }
    }

    /// The cached value of `key`, computing and inserting it with `make` when absent.
    pub(crate) fn get_or_insert_with(&self, key: &str, make: impl FnOnce() -> V) -> Arc<V> {
        if self.per_shard == 0 || key.len() > MAX_CACHED_SQL_LEN {
            return Arc::new(make());
        }
        // The shard from the high bits, the map's buckets from the low ones.
        let shard = &self.shards[(FxBuildHasher.hash_one(key) >> 60) as usize % SHARDS];
        if let Some(v) = lock(shard).get(key) {
            return Arc::clone(v);
        }
        // Computed outside the lock; two racing threads may both compute, which is harmless.
        let value = Arc::new(make());
        let mut map = lock(shard);
        if map.len() >= self.per_shard {
            // Evict an arbitrary entry: the cache is a bound on memory, not an LRU.
            if let Some(victim) = map.keys().next().cloned() {
                map.remove(&victim);
            }
        }
        map.insert(key.into(), Arc::clone(&value));
        value
    }

    /// Number of cached entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the map inconsistent (single operations).
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_stays_bounded() {
        let cache: Cache<usize> = Cache::new(32);
        let mut made = 0;
        for _ in 0..3 {
            let v = cache.get_or_insert_with("SELECT 1", || {
                made += 1;
                7
            });
            assert_eq!(*v, 7);
        }
        assert_eq!(made, 1, "computed once");
        for i in 0..10_000 {
            cache.get_or_insert_with(&format!("SELECT {i}"), || i);
        }
        assert!(cache.len() <= 32, "bounded: {}", cache.len());
        let long = "x".repeat(MAX_CACHED_SQL_LEN + 1);
        let before = cache.len();
        cache.get_or_insert_with(&long, || 1);
        assert_eq!(cache.len(), before, "long statements are not cached");
        let off: Cache<usize> = Cache::new(0);
        off.get_or_insert_with("a", || 1);
        assert_eq!(off.len(), 0);
    }
}
