//! Kernel keyutils store (Linux): `user` keys in the user keyring (`@u`), described as
//! `<namespace>:<name>`. No daemon or D-Bus needed, but the keys live in kernel memory and
//! are gone after a reboot; the daemon warns loudly when it uses this store.

use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use linux_keyutils::{KeyError, KeyRing, KeyRingIdentifier, KeyType};

/// Largest number of links read from the user keyring when listing.
const MAX_LINKS: usize = 16_384;

/// The keyutils store.
#[derive(Debug)]
pub struct KeyutilsStore {
    ring: KeyRing,
    prefix: String,
}

fn unavailable(what: &str, e: KeyError) -> StoreError {
    StoreError::Unavailable(format!("kernel keyutils {what} failed: {e:?}"))
}

impl KeyutilsStore {
    /// Opens the user keyring.
    pub fn open(namespace: &str) -> Result<KeyutilsStore, StoreError> {
        let ring = KeyRing::from_special_id(KeyRingIdentifier::User, true)
            .map_err(|e| unavailable("opening the user keyring", e))?;
        Ok(KeyutilsStore {
            ring,
            prefix: format!("{namespace}:"),
        })
    }

    fn find(&self, name: &str) -> Result<Option<linux_keyutils::Key>, StoreError> {
        match self.ring.search(&format!("{}{name}", self.prefix)) {
            Ok(k) => Ok(Some(k)),
            Err(KeyError::KeyDoesNotExist)
            | Err(KeyError::KeyExpired)
            | Err(KeyError::KeyRevoked) => Ok(None),
            Err(e) => Err(unavailable("search", e)),
        }
    }
}

impl SecretStore for KeyutilsStore {
    fn kind(&self) -> &'static str {
        "keyutils"
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let Some(key) = self.find(name)? else {
                return Ok(None);
            };
            // One read into a 4 KiB buffer (most values fit); a larger key is read again
            // at its full size.
            let mut buf = vec![0u8; 4096];
            let read = match key.read(&mut buf) {
                Ok(n) if n <= buf.len() => Ok(n),
                Ok(_) => {
                    keychain_auth_sdk::secret::wipe(&mut buf);
                    key.read_to_vec().map(|v| {
                        buf = v;
                        buf.len()
                    })
                }
                Err(e) => Err(e),
            };
            match read {
                Ok(n) => {
                    buf.truncate(n);
                    secret_from_bytes(name, buf).map(Some)
                }
                Err(KeyError::KeyDoesNotExist) | Err(KeyError::KeyRevoked) => Ok(None),
                Err(e) => Err(unavailable("read", e)),
            }
        })
    }

    fn set<'a>(
        &'a self,
        name: &'a str,
        value: &'a Secret,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.ring
                .add_key(&format!("{}{name}", self.prefix), value.expose().as_bytes())
                .map(|_| ())
                .map_err(|e| unavailable("add_key", e))
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let Some(key) = self.find(name)? else {
                return Ok(false);
            };
            match key.invalidate() {
                Ok(()) => Ok(true),
                Err(KeyError::KeyDoesNotExist) => Ok(false),
                Err(e) => Err(unavailable("invalidate", e)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let links = self
                .ring
                .get_links(MAX_LINKS)
                .map_err(|e| unavailable("reading the user keyring", e))?;
            let mut names: Vec<String> = links
                .iter()
                .filter_map(|node| node.as_key())
                .filter_map(|k| k.metadata().ok())
                .filter(|m| m.get_type() == KeyType::User)
                .filter_map(|m| {
                    m.get_description()
                        .strip_prefix(&self.prefix)
                        .map(str::to_string)
                })
                .collect();
            names.sort();
            names.dedup();
            Ok(names)
        })
    }
}
