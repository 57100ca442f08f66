//! Apple Keychain store (macOS): generic-password items with service = the namespace and
//! account = the secret name, in the user's default keychain, through Keychain Services
//! (security-framework). An item the daemon creates trusts only the daemon's executable
//! in its access list, so other programs reading it directly get macOS's own prompt.
//! Keychain Services calls block, so each runs on the blocking pool.
//!
//! Type-checked on Linux (`cargo check --target x86_64-apple-darwin`); not run here.

use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit};
use security_framework::passwords;

/// `errSecItemNotFound`.
const NOT_FOUND: i32 = -25300;
/// `errSecInteractionNotAllowed`: the keychain is locked and no prompt may be shown.
const INTERACTION_NOT_ALLOWED: i32 = -25308;

/// The Apple Keychain store.
#[derive(Debug)]
pub struct KeychainStore {
    service: String,
}

fn failed(what: &str, e: security_framework::base::Error) -> StoreError {
    if e.code() == INTERACTION_NOT_ALLOWED {
        StoreError::Locked(format!(
            "the keychain is locked ({what}); unlock it (log in) and retry"
        ))
    } else {
        StoreError::Unavailable(format!("Keychain Services {what} failed: {e}"))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("keychain task failed: {e}")))?
}

impl KeychainStore {
    /// The store for a namespace; checks that the keychain answers a search.
    pub async fn open(namespace: &str) -> Result<KeychainStore, StoreError> {
        let store = KeychainStore {
            service: namespace.to_string(),
        };
        store.list().await?;
        Ok(store)
    }
}

impl SecretStore for KeychainStore {
    fn kind(&self) -> &'static str {
        "keychain"
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        let (service, account) = (self.service.clone(), name.to_string());
        Box::pin(async move {
            blocking(
                move || match passwords::get_generic_password(&service, &account) {
                    Ok(bytes) => secret_from_bytes(&account, bytes).map(Some),
                    Err(e) if e.code() == NOT_FOUND => Ok(None),
                    Err(e) => Err(failed("read", e)),
                },
            )
            .await
        })
    }

    fn set<'a>(
        &'a self,
        name: &'a str,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (service, account) = (self.service.clone(), name.to_string());
        let value = value.clone();
        Box::pin(async move {
            blocking(move || {
                passwords::set_generic_password(&service, &account, value.expose().as_bytes())
                    .map_err(|e| failed("store", e))
            })
            .await
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (service, account) = (self.service.clone(), name.to_string());
        Box::pin(async move {
            blocking(
                move || match passwords::delete_generic_password(&service, &account) {
                    Ok(()) => Ok(true),
                    Err(e) if e.code() == NOT_FOUND => Ok(false),
                    Err(e) => Err(failed("delete", e)),
                },
            )
            .await
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        let service = self.service.clone();
        Box::pin(async move {
            blocking(move || {
                let found = ItemSearchOptions::new()
                    .class(ItemClass::generic_password())
                    .service(&service)
                    .load_attributes(true)
                    .limit(Limit::All)
                    .search();
                let results = match found {
                    Ok(r) => r,
                    Err(e) if e.code() == NOT_FOUND => return Ok(Vec::new()),
                    Err(e) => return Err(failed("search", e)),
                };
                let mut names: Vec<String> = results
                    .iter()
                    .filter_map(|r| r.simplify_dict())
                    .filter_map(|d| d.get("acct").cloned())
                    .collect();
                names.sort();
                names.dedup();
                Ok(names)
            })
            .await
        })
    }
}
