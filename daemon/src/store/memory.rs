//! An in-memory store for unit tests. Never used by the daemon binary.

use super::{BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Secrets in a map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, Secret>>,
    generation: std::sync::atomic::AtomicU64,
    deaf: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// Acts as if the store announced a change made by another program.
    pub fn announce_change(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Acts like a store whose change announcements stopped: from now on every
    /// [`SecretStore::generation`] call returns a new value (as the Secret Service store does).
    pub fn stop_announcing(&self) {
        self.deaf.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Secret>> {
        crate::lock::lock(&self.map)
    }
}

impl SecretStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn generation(&self) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        if self.deaf.load(SeqCst) {
            return self.generation.fetch_add(1, SeqCst) + 1;
        }
        self.generation.load(SeqCst)
    }
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move { Ok(self.map().get(name).cloned()) })
    }
    fn set<'a>(
        &'a self,
        name: &'a str,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.map().insert(name.to_string(), value.clone());
            Ok(())
        })
    }
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move { Ok(self.map().remove(name).is_some()) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move { Ok(self.map().keys().cloned().collect()) })
    }
}
