//! A short-lived cache of secret values in front of a store, off unless config.json sets
//! `value_cache_ms` (at most [`MAX_TTL`]). A value read from the store is served from
//! memory for that long after the read, then dropped, which zeroes it; a sweeper task
//! drops expired values even when nothing reads again, and sleeps while the cache is
//! empty.
//!
//! It never serves what keychain-auth itself changed: `set` and `delete` forget the name
//! before and after writing, and a read that overlapped a write is not kept. A change
//! made by another program is seen at once when the store announces it (the Secret
//! Service signals every item change; see [`SecretStore::generation`]) and otherwise
//! within the TTL (kernel keyutils announces nothing). Every decision is made before the
//! store, so the cache is only ever asked for a value the caller may read.

use super::{BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The longest TTL config.json may set: a cache for bursts of reads, not a second store.
pub const MAX_TTL: Duration = Duration::from_secs(60);
/// Names kept at most; the oldest read is dropped first.
const MAX_ENTRIES: usize = 1024;

/// A store with a value cache in front.
pub struct ValueCache {
    inner: Arc<dyn SecretStore>,
    ttl: Duration,
    entries: Mutex<Entries>,
    sweeper: Arc<Notify>,
}

#[derive(Default)]
struct Entries {
    values: HashMap<String, Cached>,
    /// Bumped by every write through the cache, so a read that overlapped one is not kept.
    writes: u64,
}

struct Cached {
    value: Secret,
    expires: Instant,
    /// The store's [`SecretStore::generation`] when the value was read.
    store_generation: u64,
}

impl ValueCache {
    /// Puts a cache with the given TTL in front of `inner`. Needs a tokio runtime (for the
    /// sweeper).
    pub fn new(inner: Arc<dyn SecretStore>, ttl: Duration) -> Arc<ValueCache> {
        let cache = Arc::new(ValueCache {
            inner,
            ttl: ttl.min(MAX_TTL),
            entries: Mutex::new(Entries::default()),
            sweeper: Arc::new(Notify::new()),
        });
        tokio::spawn(sweep(Arc::downgrade(&cache), cache.sweeper.clone()));
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        crate::lock::lock(&self.entries)
    }

    /// How many values are held now.
    pub fn len(&self) -> usize {
        self.lock().values.len()
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired values; returns when the next one expires.
    fn purge(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut e = self.lock();
        e.values.retain(|_, c| c.expires > now);
        e.values.values().map(|c| c.expires).min()
    }

    /// Forgets a name and marks a write, so that no read overlapping it is kept.
    fn forget(&self, name: &str) {
        let mut e = self.lock();
        e.writes = e.writes.wrapping_add(1);
        e.values.remove(name);
    }
}

impl Drop for ValueCache {
    fn drop(&mut self) {
        // Wakes the sweeper so it sees the cache is gone and ends.
        self.sweeper.notify_one();
    }
}

/// Drops each value when it expires; waits for a first value while the cache is empty.
async fn sweep(cache: Weak<ValueCache>, wake: Arc<Notify>) {
    loop {
        let next = match cache.upgrade() {
            Some(c) => c.purge(),
            None => return,
        };
        match next {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => wake.notified().await,
        }
    }
}

impl SecretStore for ValueCache {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn generation(&self) -> u64 {
        self.inner.generation()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let store_generation = self.inner.generation();
            let writes = {
                let mut e = self.lock();
                match e.values.get(name) {
                    Some(c)
                        if c.expires > Instant::now() && c.store_generation == store_generation =>
                    {
                        return Ok(Some(c.value.clone()));
                    }
                    Some(_) => {
                        e.values.remove(name);
                    }
                    None => {}
                }
                e.writes
            };
            let value = self.inner.get(name).await?;
            if let Some(v) = &value {
                let mut e = self.lock();
                // Kept only if no write went through meanwhile and the store announced
                // no change while it was read.
                if e.writes == writes && self.inner.generation() == store_generation {
                    if e.values.len() >= MAX_ENTRIES {
                        let oldest = e
                            .values
                            .iter()
                            .min_by_key(|(_, c)| c.expires)
                            .map(|(k, _)| k.clone());
                        if let Some(k) = oldest {
                            e.values.remove(&k);
                        }
                    }
                    let was_empty = e.values.is_empty();
                    e.values.insert(
                        name.to_string(),
                        Cached {
                            value: v.clone(),
                            expires: Instant::now() + self.ttl,
                            store_generation,
                        },
                    );
                    if was_empty {
                        self.sweeper.notify_one();
                    }
                }
            }
            Ok(value)
        })
    }

    fn set<'a>(
        &'a self,
        name: &'a str,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.forget(name);
            let r = self.inner.set(name, value).await;
            self.forget(name);
            r
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.forget(name);
            let r = self.inner.delete(name).await;
            self.forget(name);
            r
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.inner.list()
    }

    fn changed_elsewhere(&self, name: &str) {
        self.forget(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn cache(ttl_ms: u64) -> (Arc<MemoryStore>, Arc<ValueCache>) {
        let inner = Arc::new(MemoryStore::default());
        let c = ValueCache::new(inner.clone(), Duration::from_millis(ttl_ms));
        (inner, c)
    }

    async fn get(c: &ValueCache, name: &str) -> Option<String> {
        c.get(name)
            .await
            .expect("get")
            .map(|s| s.expose().to_string())
    }

    #[tokio::test]
    async fn serves_a_read_value_until_it_expires_then_reads_the_store() {
        let (inner, c) = cache(200);
        inner.set("a", &Secret::from("one")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("one"));
        // Changed behind the cache's back (the memory store announces nothing).
        inner.set("a", &Secret::from("two")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("one"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(get(&c, "a").await.as_deref(), Some("two"));
    }

    #[tokio::test]
    async fn the_sweeper_drops_expired_values_without_further_reads() {
        let (inner, c) = cache(50);
        inner.set("a", &Secret::from("one")).await.expect("set");
        inner.set("b", &Secret::from("two")).await.expect("set");
        get(&c, "a").await;
        get(&c, "b").await;
        assert_eq!(c.len(), 2);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !c.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(c.is_empty(), "expired values were not dropped");
        // It goes on working after it emptied.
        get(&c, "a").await;
        assert_eq!(c.len(), 1);
    }

    #[tokio::test]
    async fn writes_through_the_cache_are_seen_at_once() {
        let (_inner, c) = cache(60_000);
        c.set("a", &Secret::from("one")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("one"));
        c.set("a", &Secret::from("two")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("two"));
        assert!(c.delete("a").await.expect("delete"));
        assert_eq!(get(&c, "a").await, None);
        assert_eq!(c.list().await.expect("list"), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_change_the_store_announces_is_seen_at_once() {
        let (inner, c) = cache(60_000);
        inner.set("a", &Secret::from("one")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("one"));
        inner.set("a", &Secret::from("two")).await.expect("set");
        inner.announce_change();
        assert_eq!(get(&c, "a").await.as_deref(), Some("two"));
    }

    #[tokio::test]
    async fn once_a_store_stops_announcing_changes_nothing_is_served_from_memory() {
        let (inner, c) = cache(60_000);
        inner.set("a", &Secret::from("one")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("one"));
        assert_eq!(c.len(), 1);
        inner.stop_announcing();
        inner.set("a", &Secret::from("two")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("two"));
        inner.set("a", &Secret::from("three")).await.expect("set");
        assert_eq!(get(&c, "a").await.as_deref(), Some("three"));
        assert!(c.is_empty(), "a value read while deaf was kept");
    }

    #[tokio::test]
    async fn absent_names_are_not_cached_and_the_cache_is_bounded() {
        let (inner, c) = cache(60_000);
        assert_eq!(get(&c, "missing").await, None);
        assert!(c.is_empty());
        for i in 0..MAX_ENTRIES + 10 {
            let n = format!("n{i}");
            inner.set(&n, &Secret::from("v")).await.expect("set");
            get(&c, &n).await;
        }
        assert_eq!(c.len(), MAX_ENTRIES);
    }
}
