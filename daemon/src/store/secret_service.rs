//! Secret Service store (Linux, over the session D-Bus): gnome-keyring, KWallet,
//! KeePassXC. Items carry the attributes `service=<namespace>` and `account=<name>`, so
//! `secret-tool lookup service keychain-auth account NAME` finds what keychain-auth
//! stored. Values cross the bus encrypted (the DH session of the specification).

use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use secret_service::{EncryptionType, SecretService};
use std::collections::HashMap;
use std::time::Duration;

/// How long to wait for the bus and the service when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The Secret Service store.
pub struct SecretServiceStore {
    ss: SecretService<'static>,
    namespace: String,
}

impl std::fmt::Debug for SecretServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretServiceStore")
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn unavailable(what: &str, e: secret_service::Error) -> StoreError {
    match e {
        secret_service::Error::Locked => StoreError::Locked(format!(
            "the Secret Service collection is locked ({what}); unlock it (log in to the desktop, or unlock the keyring) and retry"
        )),
        other => StoreError::Unavailable(format!("Secret Service {what} failed: {other}")),
    }
}

impl SecretServiceStore {
    /// Connects to the Secret Service on the session bus and checks that the default
    /// collection is there and unlocked.
    pub async fn connect(namespace: &str) -> Result<SecretServiceStore, StoreError> {
        let ss = tokio::time::timeout(CONNECT_TIMEOUT, SecretService::connect(EncryptionType::Dh))
            .await
            .map_err(|_| {
                StoreError::Unavailable("the Secret Service did not answer in time".into())
            })?
            .map_err(|e| unavailable("connect", e))?;
        let store = SecretServiceStore {
            ss,
            namespace: namespace.to_string(),
        };
        let coll = store
            .ss
            .get_default_collection()
            .await
            .map_err(|e| unavailable("finding the default collection", e))?;
        if coll
            .is_locked()
            .await
            .map_err(|e| unavailable("lock check", e))?
        {
            return Err(StoreError::Locked(
                "the default Secret Service collection is locked; unlock it and start keychain-auth again".into(),
            ));
        }
        Ok(store)
    }

    fn attrs<'a>(&'a self, name: &'a str) -> HashMap<&'a str, &'a str> {
        HashMap::from([("service", self.namespace.as_str()), ("account", name)])
    }
}

impl SecretStore for SecretServiceStore {
    fn kind(&self) -> &'static str {
        "secret-service"
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let found = self
                .ss
                .search_items(self.attrs(name))
                .await
                .map_err(|e| unavailable("search", e))?;
            match found.unlocked.first() {
                Some(item) => {
                    let bytes = item.get_secret().await.map_err(|e| unavailable("read", e))?;
                    secret_from_bytes(name, bytes).map(Some)
                }
                None if !found.locked.is_empty() => Err(StoreError::Locked(format!(
                    "the secret {name:?} is in a locked Secret Service collection; unlock it and retry"
                ))),
                None => Ok(None),
            }
        })
    }

    fn set<'a>(
        &'a self,
        name: &'a str,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let coll = self
                .ss
                .get_default_collection()
                .await
                .map_err(|e| unavailable("finding the default collection", e))?;
            let label = format!("{}: {name}", self.namespace);
            coll.create_item(
                &label,
                self.attrs(name),
                value.expose().as_bytes(),
                true,
                "text/plain",
            )
            .await
            .map(|_| ())
            .map_err(|e| unavailable("store", e))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let found = self
                .ss
                .search_items(self.attrs(name))
                .await
                .map_err(|e| unavailable("search", e))?;
            if !found.locked.is_empty() {
                return Err(StoreError::Locked(format!(
                    "the secret {name:?} is in a locked Secret Service collection; unlock it and retry"
                )));
            }
            let mut any = false;
            for item in &found.unlocked {
                item.delete().await.map_err(|e| unavailable("delete", e))?;
                any = true;
            }
            Ok(any)
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let found = self
                .ss
                .search_items(HashMap::from([("service", self.namespace.as_str())]))
                .await
                .map_err(|e| unavailable("search", e))?;
            let mut names = Vec::new();
            for item in found.unlocked.iter().chain(found.locked.iter()) {
                let attrs = item
                    .get_attributes()
                    .await
                    .map_err(|e| unavailable("reading attributes", e))?;
                if let Some(n) = attrs.get("account") {
                    names.push(n.clone());
                }
            }
            names.sort();
            names.dedup();
            Ok(names)
        })
    }
}
