//! The config the daemon decides with: read by every request as one `Arc` (a snapshot
//! that a change never alters under a reader), changed by one writer at a time, saved
//! (atomically, durably) before the change is published, and watched by waiting
//! requests.

use crate::config::Config;
use crate::lock;
use keychain_auth_sdk::protocol::ErrorCode;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// Why a config change was refused: an error code and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub ErrorCode, pub String);

/// config.json, as the daemon holds it.
#[derive(Debug)]
pub struct ConfigStore {
    path: PathBuf,
    current: RwLock<Arc<Config>>,
    /// Serialises changes (the file write happens under it).
    write: tokio::sync::Mutex<()>,
    /// Bumped after every change; waiting `get`s watch it.
    changes: watch::Sender<u64>,
}

impl ConfigStore {
    /// Holds `config`, saved at `path`.
    pub fn new(config: Config, path: PathBuf) -> ConfigStore {
        ConfigStore {
            path,
            current: RwLock::new(Arc::new(config)),
            write: tokio::sync::Mutex::new(()),
            changes: watch::channel(0).0,
        }
    }

    /// The current config.
    pub fn current(&self) -> Arc<Config> {
        lock::read(&self.current).clone()
    }

    /// A receiver that wakes after the next change (or [`ConfigStore::wake`]).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Wakes the requests waiting for a change without one (a pause, an "Allow once").
    pub fn wake(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Applies a change: computes it from the current config, validates and saves it
    /// durably, then publishes it. Returns what `change` returned.
    pub async fn change<T>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let _guard = self.write.lock().await;
        let mut next = (*self.current()).clone();
        let out = change(&mut next)?;
        next.validate()
            .map_err(|e| Refusal(ErrorCode::BadRequest, e))?;
        next.save(&self.path)
            .map_err(|e| Refusal(ErrorCode::StoreUnavailable, e.to_string()))?;
        *lock::write(&self.current) = Arc::new(next);
        self.wake();
        Ok(out)
    }
}
