//! Secret stores: the OS keychain behind one small trait. On Linux: Secret Service over
//! D-Bus (`secret_service.rs`) or kernel keyutils (`keyutils.rs`, lost at reboot); on
//! macOS: the Apple Keychain (`keychain.rs`; who owns its items and what its status codes
//! mean are the platform-independent `keychain_owners.rs` and `keychain_status.rs`). An
//! in-memory store (`memory.rs`) exists for unit tests only. `cache.rs` is an optional,
//! short-lived value cache in front of any of them. Stores see names and values
//! and nothing else; every decision is made before a store is called.

use crate::config::StoreChoice;
use keychain_auth_sdk::Secret;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod cache;
#[cfg(target_os = "macos")]
pub mod keychain;
pub mod keychain_owners;
pub mod keychain_status;
#[cfg(target_os = "linux")]
pub mod keyutils;
#[cfg(test)]
pub mod memory;
#[cfg(target_os = "linux")]
pub mod secret_service;

/// A boxed future, so stores can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the operation.
    #[error("{0}")]
    Unavailable(String),
    /// The store is locked and cannot be unlocked without a prompt.
    #[error("{0}")]
    Locked(String),
    /// A stored value is not UTF-8 text.
    #[error("the stored value of {0:?} is not UTF-8 text")]
    NotText(String),
}

/// A place secrets live, namespaced by the config's `namespace`.
pub trait SecretStore: Send + Sync {
    /// `secret-service`, `keyutils`, `keychain` or `memory`.
    fn kind(&self) -> &'static str;
    /// Reads a value; `None` when absent.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>>;
    /// Creates or replaces a value.
    fn set<'a>(&'a self, name: &'a str, value: &'a Secret)
        -> BoxFuture<'a, Result<(), StoreError>>;
    /// Deletes a value; `false` when it was absent.
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Every name in the namespace, sorted.
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// A counter the store bumps whenever it learns that another program changed what it
    /// holds (the Secret Service announces every change; keyutils announces nothing, so
    /// stays 0). The value cache drops what it read before a bump.
    fn generation(&self) -> u64 {
        0
    }
    /// The keychain-auth CLI wrote `name` to the store itself: a layer that keeps copies
    /// of values drops this one.
    fn changed_elsewhere(&self, _name: &str) {}
}

/// Turns raw stored bytes into a [`Secret`], wiping the bytes either way.
pub fn secret_from_bytes(name: &str, bytes: Vec<u8>) -> Result<Secret, StoreError> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Secret::new(s)),
        Err(e) => {
            keychain_auth_sdk::secret::wipe(&mut e.into_bytes());
            Err(StoreError::NotText(name.to_string()))
        }
    }
}

/// Opens the chosen store. Returns the store and, when `auto` fell back to keyutils, the
/// warning to show the user.
pub async fn open(
    choice: StoreChoice,
    namespace: &str,
) -> Result<(Arc<dyn SecretStore>, Option<String>), StoreError> {
    platform_open(choice, namespace).await
}

#[cfg(target_os = "linux")]
async fn platform_open(
    choice: StoreChoice,
    namespace: &str,
) -> Result<(Arc<dyn SecretStore>, Option<String>), StoreError> {
    const KEYUTILS_WARNING: &str = "using the kernel keyutils store: secrets do NOT survive a reboot. Run a Secret Service (gnome-keyring, KeePassXC, KWallet) on the session bus to keep them";
    match choice {
        StoreChoice::SecretService => {
            let s = secret_service::SecretServiceStore::connect(namespace).await?;
            Ok((Arc::new(s), None))
        }
        StoreChoice::Keyutils => Ok((
            Arc::new(keyutils::KeyutilsStore::open(namespace)?),
            Some(KEYUTILS_WARNING.into()),
        )),
        StoreChoice::Auto => match secret_service::SecretServiceStore::connect(namespace).await {
            Ok(s) => Ok((Arc::new(s), None)),
            Err(e) => {
                tracing::info!("no usable Secret Service ({e}); falling back to keyutils");
                Ok((
                    Arc::new(keyutils::KeyutilsStore::open(namespace)?),
                    Some(KEYUTILS_WARNING.into()),
                ))
            }
        },
        StoreChoice::Keychain => Err(StoreError::Unavailable(
            "the keychain store exists on macOS only; use secret-service or keyutils".into(),
        )),
    }
}

#[cfg(target_os = "macos")]
async fn platform_open(
    choice: StoreChoice,
    namespace: &str,
) -> Result<(Arc<dyn SecretStore>, Option<String>), StoreError> {
    match choice {
        StoreChoice::Auto | StoreChoice::Keychain => Ok((
            Arc::new(keychain::KeychainStore::open(namespace).await?),
            None,
        )),
        other => Err(StoreError::Unavailable(format!(
            "the {other:?} store exists on Linux only; use keychain (or auto) on macOS"
        ))),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
async fn platform_open(
    _choice: StoreChoice,
    _namespace: &str,
) -> Result<(Arc<dyn SecretStore>, Option<String>), StoreError> {
    Err(StoreError::Unavailable(
        "no secret store is implemented for this operating system in this build".into(),
    ))
}
