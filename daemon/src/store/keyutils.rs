//! Kernel keyutils store (Linux): `user` keys in the user keyring (`@u`), described as
//! `<namespace>:<name>`. No daemon or D-Bus needed, but the keys live in kernel memory and
//! are gone after a reboot; the daemon warns loudly when it uses this store.
//!
//! The serial number a name was found under is remembered, so a warm read is one
//! `keyctl read` instead of a search and a read. A remembered key that cannot be read
//! (deleted, invalidated, revoked, expired) is searched for again by name. Serials are random and
//! never reused while a key lives; any same-user process can read and change `@u` keys
//! directly anyway, so remembering a serial gives nobody a power they did not have.

use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use keychain_auth_sdk::Secret;
use linux_keyutils::{Key, KeyError, KeyRing, KeyRingIdentifier, KeySerialId, KeyType};
use std::collections::HashMap;
use std::sync::Mutex;

/// Most remembered serials before the map is emptied.
const KNOWN_LIMIT: usize = 4096;

/// Every serial linked from the user keyring, however many. (linux-keyutils 0.2's
/// `get_links` passes its element count as the buffer's byte length and then trusts the
/// kernel's "size needed" answer, so a keyring with more links than fit comes back cut
/// short, with entries that were never written. This uses the kernel's sizing protocol:
/// ask, grow to the size it reports, ask again.)
fn user_keyring_serials() -> std::io::Result<Vec<i32>> {
    let mut buf: Vec<i32> = Vec::with_capacity(1024);
    loop {
        let cap = buf.capacity() * std::mem::size_of::<i32>();
        // SAFETY: KEYCTL_READ writes at most `cap` bytes into buf's spare capacity and
        // returns how many bytes the whole list takes.
        let n = unsafe {
            libc::syscall(
                libc::SYS_keyctl,
                libc::KEYCTL_READ,
                libc::KEY_SPEC_USER_KEYRING,
                buf.as_mut_ptr(),
                cap,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = n as usize;
        if n <= cap {
            // SAFETY: the kernel wrote n bytes (n / 4 serials) into the buffer.
            unsafe { buf.set_len(n / std::mem::size_of::<i32>()) };
            return Ok(buf);
        }
        // Keys were added since the last call, or the buffer was small: grow and retry.
        buf = Vec::with_capacity(n / std::mem::size_of::<i32>() + 256);
    }
}

/// Links the user keyring (`@u`) into this thread's process keyring (created if there is
/// none), so threads started afterwards share it. Call before the runtime starts its
/// threads: credentials, keyrings among them, are per thread and copied at thread start.
///
/// Why: on every `keyctl read` the kernel checks whether the caller possesses the key by
/// searching its thread, process and session keyrings. A daemon without a session
/// keyring (a systemd service, a shell without `pam_keyinit`) falls back to finding its
/// user-session keyring by name, on every read. With `@u` linked here the search ends
/// in the process keyring. Measured on the benchmark machine: a warm read 2.2–2.7 µs
/// before, 1.4–1.9 µs after.
///
/// It grants nothing: the process keyring belongs to this process's threads alone (a
/// child process starts without one), and every process of the user already possesses
/// `@u`'s keys through the user-session keyring.
pub fn link_user_keyring_into_process_keyring() -> std::io::Result<()> {
    for (op, a, b) in [
        // Created if missing, then the link; both only touch this thread's credentials.
        (
            libc::KEYCTL_GET_KEYRING_ID,
            libc::KEY_SPEC_PROCESS_KEYRING,
            1,
        ),
        (
            libc::KEYCTL_LINK,
            libc::KEY_SPEC_USER_KEYRING,
            libc::KEY_SPEC_PROCESS_KEYRING,
        ),
    ] {
        // SAFETY: both keyctl operations take two integer arguments and no memory.
        if unsafe { libc::syscall(libc::SYS_keyctl, op, a, b) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The keyutils store.
#[derive(Debug)]
pub struct KeyutilsStore {
    ring: KeyRing,
    prefix: String,
    known: Mutex<HashMap<String, Key>>,
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
            known: Mutex::new(HashMap::new()),
        })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, Key>> {
        crate::lock::lock(&self.known)
    }

    fn find(&self, name: &str) -> Result<Option<Key>, StoreError> {
        match self.ring.search(&format!("{}{name}", self.prefix)) {
            Ok(k) => {
                let mut known = self.known();
                if known.len() >= KNOWN_LIMIT {
                    known.clear();
                }
                known.insert(name.to_string(), k);
                Ok(Some(k))
            }
            Err(KeyError::KeyDoesNotExist)
            | Err(KeyError::KeyExpired)
            | Err(KeyError::KeyRevoked) => Ok(None),
            Err(e) => Err(unavailable("search", e)),
        }
    }
}

/// Reads a key's value; `None` if the key no longer exists. One `keyctl read` into a
/// 4 KiB buffer (most values fit); a larger key is read again at its full size.
fn read_key(name: &str, key: Key) -> Result<Option<Secret>, StoreError> {
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
        Err(KeyError::KeyDoesNotExist | KeyError::KeyRevoked | KeyError::KeyExpired) => Ok(None),
        Err(e) => Err(unavailable("read", e)),
    }
}

impl SecretStore for KeyutilsStore {
    fn kind(&self) -> &'static str {
        "keyutils"
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async move {
            let remembered = self.known().get(name).copied();
            if let Some(key) = remembered {
                // Any failure of a remembered serial (an invalidated key reads as EACCES)
                // means it is stale: forget it and search by name.
                if let Ok(Some(value)) = read_key(name, key) {
                    return Ok(Some(value));
                }
                self.known().remove(name);
            }
            match self.find(name)? {
                Some(key) => read_key(name, key),
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
            self.known().remove(name);
            match key.invalidate() {
                Ok(()) => Ok(true),
                Err(KeyError::KeyDoesNotExist) => Ok(false),
                Err(e) => Err(unavailable("invalidate", e)),
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async move {
            let serials = user_keyring_serials().map_err(|e| {
                StoreError::Unavailable(format!(
                    "kernel keyutils reading the user keyring failed: {e}"
                ))
            })?;
            let mut names: Vec<String> = serials
                .into_iter()
                .map(|id| Key::from_id(KeySerialId(id)))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn block_on<T>(f: BoxFuture<'_, T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// The serial of a special keyring (`@u`, `@p`), without creating it.
    fn keyring_id(special: i32) -> i64 {
        // SAFETY: KEYCTL_GET_KEYRING_ID takes two integers and no memory.
        unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_GET_KEYRING_ID, special, 0) }
    }

    /// After the call, this thread's process keyring links `@u`, and a key in `@u` is
    /// found by searching the process keyring (which is how the kernel decides that a
    /// read is by a possessor). A thread started afterwards shares the keyring.
    #[test]
    fn the_user_keyring_is_reachable_from_the_process_keyring() {
        std::thread::spawn(|| {
            assert!(
                keyring_id(libc::KEY_SPEC_PROCESS_KEYRING) < 0,
                "no keyring yet"
            );
            link_user_keyring_into_process_keyring().unwrap();
            let ns = format!("ka-unit-pk-{}", std::process::id());
            let store = KeyutilsStore::open(&ns).unwrap();
            block_on(store.set("pk/one", &Secret::from("v"))).unwrap();
            let desc = std::ffi::CString::new(format!("{ns}:pk/one")).unwrap();
            let kind = std::ffi::CString::new("user").unwrap();
            // SAFETY: the strings are valid C strings; no destination keyring.
            let found = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_SEARCH,
                    libc::KEY_SPEC_PROCESS_KEYRING,
                    kind.as_ptr(),
                    desc.as_ptr(),
                    0,
                )
            };
            let later = std::thread::spawn(move || {
                (
                    keyring_id(libc::KEY_SPEC_PROCESS_KEYRING),
                    keyring_id(libc::KEY_SPEC_USER_KEYRING),
                )
            })
            .join()
            .unwrap();
            let _ = block_on(store.delete("pk/one"));
            assert!(found > 0, "the key is found through the process keyring");
            assert_eq!(later.0, keyring_id(libc::KEY_SPEC_PROCESS_KEYRING));
            assert!(later.1 > 0);
        })
        .join()
        .unwrap();
    }

    /// Real kernel keyutils: a listing sees every key of the namespace even when the user
    /// keyring holds more links than one small read returns (the kernel allows a
    /// non-root user only 200 keys, so the full count needs root).
    #[test]
    fn listing_sees_every_key_however_full_the_keyring_is() {
        let many = if crate::dirs::euid() == 0 { 5000 } else { 150 };
        let ns = format!("ka-unit-{}", std::process::id());
        let store = KeyutilsStore::open(&ns).unwrap();
        let names: Vec<String> = (0..many).map(|i| format!("many/{i:05}")).collect();
        for n in &names {
            block_on(store.set(n, &Secret::from("v"))).unwrap();
        }
        let listed = block_on(store.list());
        for n in &names {
            let _ = block_on(store.delete(n));
        }
        assert_eq!(listed.unwrap(), names);
    }
}
