//! Secret Service store (Linux, over the session D-Bus): gnome-keyring, KWallet,
//! KeePassXC. Items carry the attributes `service=<namespace>` and `account=<name>`, so
//! `secret-tool lookup service keychain-auth account NAME` finds what keychain-auth
//! stored. Values cross the bus encrypted (the DH session of the specification).
//!
//! A `get` costs one D-Bus round trip once a name has been read: the item found by the
//! first search is kept (its object path, never its value) and asked directly with
//! `GetSecret`, so the value is always the store's current one. Kept items are forgotten
//! when the service announces any change (an item created, changed or deleted, a
//! collection locked or changed), when `set` or `delete` goes through keychain-auth, and
//! when asking one fails (then the name is searched again). Each announcement also bumps
//! the store's generation, which the optional value cache (`cache.rs`) watches.

use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use futures_lite::StreamExt;
use keychain_auth_sdk::Secret;
use secret_service::{EncryptionType, Item, SecretService};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long to wait for the bus and the service when connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Items already found, by secret name.
type KnownItems = Arc<Mutex<HashMap<String, Arc<Item<'static>>>>>;

/// The Secret Service store.
pub struct SecretServiceStore {
    /// One connection for the daemon's lifetime (leaked so found items can be kept).
    ss: &'static SecretService<'static>,
    namespace: String,
    known: KnownItems,
    changes: Arc<Changes>,
}

/// What the store has heard of the service's change announcements.
#[derive(Debug, Default)]
struct Changes {
    /// Bumped on every change the service announces.
    generation: AtomicU64,
    /// Set if the announcements stopped (the bus connection that carried them ended):
    /// from then on [`Changes::current`] differs on every call, so the value cache
    /// keeps nothing.
    deaf: AtomicBool,
}

impl Changes {
    /// The generation a read is tagged with (see [`SecretStore::generation`]).
    fn current(&self) -> u64 {
        if self.deaf.load(Ordering::SeqCst) {
            // Nothing announces changes any more: no read may be trusted past itself.
            return self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        }
        self.generation.load(Ordering::SeqCst)
    }

    /// Counts announcements (calling `forget` on each) until the stream ends; from then
    /// on nothing read is trusted past its own request.
    async fn follow<T, E>(
        &self,
        mut signals: impl futures_lite::Stream<Item = Result<T, E>> + Unpin,
        forget: impl Fn(),
    ) {
        while let Some(msg) = signals.next().await {
            if msg.is_ok() {
                self.generation.fetch_add(1, Ordering::SeqCst);
                forget();
            }
        }
        self.deaf.store(true, Ordering::SeqCst);
        tracing::error!(
            "Secret Service change notifications stopped: values are no longer cached (value_cache_ms)"
        );
    }
}

impl std::fmt::Debug for SecretServiceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretServiceStore")
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Names whose item is kept at most (the map is emptied when it would grow past this).
const MAX_KNOWN: usize = 4096;

/// Forgets every kept item and bumps `generation` whenever the service announces a change
/// (any signal under its object paths: items created, changed or deleted, collections
/// locked, changed or deleted), by keychain-auth or by any other program.
async fn forget_on_changes(known: KnownItems, changes: Arc<Changes>) -> Result<(), StoreError> {
    let fail = |e: zbus::Error| {
        StoreError::Unavailable(format!("Secret Service change notifications: {e}"))
    };
    let conn = zbus::Connection::session().await.map_err(fail)?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path_namespace("/org/freedesktop/secrets")
        .map_err(fail)?
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None)
        .await
        .map_err(fail)?;
    tokio::spawn(async move {
        let _conn = conn;
        let forget = || crate::lock::lock(&known).clear();
        changes.follow(&mut signals, forget).await;
    });
    Ok(())
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
            ss: Box::leak(Box::new(ss)),
            namespace: namespace.to_string(),
            known: KnownItems::default(),
            changes: Arc::default(),
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
        forget_on_changes(store.known.clone(), store.changes.clone()).await?;
        Ok(store)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Item<'static>>>> {
        crate::lock::lock(&self.known)
    }

    fn attrs<'a>(&'a self, name: &'a str) -> HashMap<&'a str, &'a str> {
        HashMap::from([("service", self.namespace.as_str()), ("account", name)])
    }

    /// The items holding `name`, unlocked and locked.
    async fn search(
        &self,
        name: &str,
    ) -> Result<secret_service::SearchItemsResult<Item<'static>>, StoreError> {
        self.ss
            .search_items(self.attrs(name))
            .await
            .map_err(|e| unavailable("search", e))
    }
}

impl SecretStore for SecretServiceStore {
    fn kind(&self) -> &'static str {
        "secret-service"
    }

    fn generation(&self) -> u64 {
        self.changes.current()
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let known = self.known().get(name).cloned();
            if let Some(item) = known {
                match item.get_secret().await {
                    Ok(bytes) => return secret_from_bytes(name, bytes).map(Some),
                    Err(e @ secret_service::Error::Locked) => return Err(unavailable("read", e)),
                    // Deleted or replaced since: search again.
                    Err(_) => {
                        self.known().remove(name);
                    }
                }
            }
            let found = self.search(name).await?;
            match found.unlocked.into_iter().next() {
                Some(item) => {
                    let bytes = item.get_secret().await.map_err(|e| unavailable("read", e))?;
                    let secret = secret_from_bytes(name, bytes)?;
                    let mut known = self.known();
                    if known.len() >= MAX_KNOWN {
                        known.clear();
                    }
                    known.insert(name.to_string(), Arc::new(item));
                    Ok(Some(secret))
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
            self.known().remove(name);
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
            self.known().remove(name);
            let found = self.search(name).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn each_announcement_forgets_and_once_they_stop_no_generation_repeats() {
        let changes = Changes::default();
        assert_eq!(changes.current(), 0);
        assert_eq!(changes.current(), 0, "steady while nothing is announced");
        let forgot = AtomicUsize::new(0);
        let signals = futures_lite::stream::iter(vec![Ok::<(), ()>(()), Err(()), Ok(())]);
        changes
            .follow(signals, || {
                forgot.fetch_add(1, Ordering::SeqCst);
            })
            .await;
        assert_eq!(
            forgot.load(Ordering::SeqCst),
            2,
            "one forget per announcement"
        );
        let a = changes.current();
        let b = changes.current();
        assert!(a >= 2, "{a}");
        assert_ne!(a, b, "the stream ended: every read gets a new generation");
    }
}
