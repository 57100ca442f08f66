//! Apple Keychain store (macOS): generic-password items with service = the namespace and
//! account = the secret name, in the user's default (file-based) keychain, through
//! Keychain Services. An item the daemon creates trusts, in its access list, this
//! program and the other host of the daemon (app or CLI) when a team signs both
//! (`keychain_owners.rs` decides whom, `SecAccessCreate` here); what a status code means
//! is `keychain_status.rs`'s. The calls block, so each runs on the blocking pool.
//!
//! Type-checked on Linux (`cargo clippy --target x86_64-apple-darwin`); not run here.

use super::keychain_owners;
use super::keychain_status::{self, DUPLICATE_ITEM, ITEM_NOT_FOUND};
use super::{secret_from_bytes, BoxFuture, SecretStore, StoreError};
use crate::peer::macos::code_signature::{
    key, signing_information, team_of, CS_SIGNING_INFORMATION,
};
use core_foundation::array::{CFArray, CFArrayRef};
use core_foundation::base::{CFType, CFTypeRef, TCFType};
use core_foundation::data::CFData;
use core_foundation::dictionary::{CFDictionary, CFDictionaryRef};
use core_foundation::string::{CFString, CFStringRef};
use core_foundation::url::CFURL;
use keychain_auth_sdk::Secret;
use security_framework::item::{ItemClass, ItemSearchOptions, Limit};
use security_framework::os::macos::access::SecAccess;
use security_framework::os::macos::code_signing::{Flags, SecCode, SecRequirement, SecStaticCode};
use security_framework::passwords;
use std::ffi::{c_char, c_void, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

#[link(name = "Security", kind = "framework")]
extern "C" {
    /// A trusted-application entry for the code at `path` (NULL: this program), named by
    /// its designated requirement. Deprecated by Apple but the only way to build an
    /// access list of the file-based keychain.
    fn SecTrustedApplicationCreateFromPath(path: *const c_char, app: *mut CFTypeRef) -> i32;
    /// An access object whose access list trusts exactly `trusted`.
    fn SecAccessCreate(
        descriptor: CFStringRef,
        trusted: CFArrayRef,
        access: *mut *const c_void,
    ) -> i32;
    fn SecItemAdd(attributes: CFDictionaryRef, result: *mut CFTypeRef) -> i32;
    fn SecItemUpdate(query: CFDictionaryRef, changes: CFDictionaryRef) -> i32;
    static kSecClass: CFStringRef;
    static kSecClassGenericPassword: CFStringRef;
    static kSecAttrService: CFStringRef;
    static kSecAttrAccount: CFStringRef;
    static kSecValueData: CFStringRef;
    static kSecAttrAccess: CFStringRef;
}

/// The Apple Keychain store.
#[derive(Debug)]
pub struct KeychainStore {
    service: String,
    /// The team that signed this program, when one did.
    team: Option<String>,
    /// The other host of the daemon, signed by `team`, as found at open.
    co_owners: Vec<PathBuf>,
}

fn failed(what: &str, e: security_framework::base::Error) -> StoreError {
    keychain_status::store_error(what, e.code(), &e.message().unwrap_or_default())
}

fn failed_code(what: &str, code: i32) -> StoreError {
    failed(what, security_framework::base::Error::from_code(code))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Unavailable(format!("keychain task failed: {e}")))?
}

/// The team identifier this program is signed by, if any.
fn own_team() -> Option<String> {
    let code = SecCode::for_self(Flags::NONE).ok()?;
    let info = signing_information(&code, CS_SIGNING_INFORMATION).ok()?;
    team_of(&info)
}

/// Whether the code at `path` is intact and satisfies `requirement`.
fn satisfies(path: &Path, requirement: &SecRequirement) -> bool {
    let Some(url) = CFURL::from_path(path, path.is_dir()) else {
        return false;
    };
    SecStaticCode::from_path(&url, Flags::NONE)
        .and_then(|code| code.check_validity(Flags::NONE, requirement))
        .is_ok()
}

/// Those of `candidates` that exist and are signed by `team`.
fn signed_by_team(team: Option<&str>, candidates: &[PathBuf]) -> Vec<PathBuf> {
    let Some(requirement) = team
        .and_then(keychain_owners::team_requirement)
        .and_then(|r| r.parse::<SecRequirement>().ok())
    else {
        return Vec::new();
    };
    candidates
        .iter()
        .filter(|c| c.exists() && satisfies(c, &requirement))
        .cloned()
        .collect()
}

/// The access object for a new item: this program and `co_owners`. An entry for one of
/// `co_owners` that cannot be made is left out (the item then prompts that program).
fn access_for(descriptor: &str, co_owners: &[PathBuf]) -> Result<SecAccess, StoreError> {
    let mut apps: Vec<CFType> = Vec::new();
    for path in std::iter::once(None).chain(co_owners.iter().map(Some)) {
        let c_path = match path {
            Some(p) => match CString::new(p.as_os_str().as_bytes()) {
                Ok(c) => Some(c),
                Err(_) => continue,
            },
            None => None,
        };
        let mut app: CFTypeRef = std::ptr::null();
        // SAFETY: `c_path` is NUL-terminated and outlives the call (or NULL: this
        // program); the entry is returned under the create rule.
        let status = unsafe {
            SecTrustedApplicationCreateFromPath(
                c_path.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
                &mut app,
            )
        };
        if status != 0 || app.is_null() {
            if let Some(p) = path {
                tracing::warn!(
                    "cannot name {} in a Keychain access list (OSStatus {status})",
                    p.display()
                );
                continue;
            }
            return Err(failed_code("naming this program in an access list", status));
        }
        // SAFETY: a valid object returned under the create rule.
        apps.push(unsafe { CFType::wrap_under_create_rule(app) });
    }
    let trusted = CFArray::from_CFTypes(&apps);
    let descriptor = CFString::new(descriptor);
    let mut access = std::ptr::null();
    // SAFETY: valid descriptor and array for the call; the access object is returned
    // under the create rule.
    let status = unsafe {
        SecAccessCreate(
            descriptor.as_concrete_TypeRef(),
            trusted.as_concrete_TypeRef(),
            &mut access,
        )
    };
    if status != 0 || access.is_null() {
        return Err(failed_code("creating an access list", status));
    }
    // SAFETY: a valid SecAccessRef returned under the create rule.
    Ok(unsafe { SecAccess::wrap_under_create_rule(access.cast_mut().cast()) })
}

/// Creates the item with `access`, or replaces the value of the item that exists (whose
/// access list is left as it is).
fn store_item(service: &str, account: &str, value: &[u8], access: &SecAccess) -> i32 {
    // SAFETY: reading exported constants.
    let (class, generic, svc, acct, data_key, access_key) = unsafe {
        (
            kSecClass,
            kSecClassGenericPassword,
            kSecAttrService,
            kSecAttrAccount,
            kSecValueData,
            kSecAttrAccess,
        )
    };
    let query: Vec<(CFString, CFType)> = vec![
        (key(class), key(generic).into_CFType()),
        (key(svc), CFString::new(service).into_CFType()),
        (key(acct), CFString::new(account).into_CFType()),
    ];
    let data = CFData::from_buffer(value).into_CFType();
    let mut add = query.clone();
    add.push((key(data_key), data.clone()));
    add.push((key(access_key), access.as_CFType()));
    let add = CFDictionary::from_CFType_pairs(&add);
    // SAFETY: a valid attribute dictionary; no result is asked for.
    let status = unsafe { SecItemAdd(add.as_concrete_TypeRef(), std::ptr::null_mut()) };
    if status != DUPLICATE_ITEM {
        return status;
    }
    let query = CFDictionary::from_CFType_pairs(&query);
    let change = CFDictionary::from_CFType_pairs(&[(key(data_key), data)]);
    // SAFETY: valid query and change dictionaries.
    unsafe { SecItemUpdate(query.as_concrete_TypeRef(), change.as_concrete_TypeRef()) }
}

impl KeychainStore {
    /// The store for a namespace; finds who owns the items it will create and checks
    /// that the keychain answers a search.
    pub async fn open(namespace: &str) -> Result<KeychainStore, StoreError> {
        let (team, co_owners) = blocking(|| {
            let team = own_team();
            let exe = std::env::current_exe()
                .and_then(|e| e.canonicalize())
                .map_err(|e| StoreError::Unavailable(format!("locating this program: {e}")))?;
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let candidates = keychain_owners::co_host_candidates(
                &exe,
                home.as_deref(),
                std::env::var_os("PATH").as_deref(),
            );
            let co_owners = signed_by_team(team.as_deref(), &candidates);
            let said = keychain_owners::summary(
                keychain_owners::host_of(&exe),
                team.as_deref(),
                &co_owners,
            );
            if team.is_some() {
                tracing::info!("{said}");
            } else {
                tracing::warn!("{said}");
            }
            Ok((team, co_owners))
        })
        .await?;
        let store = KeychainStore {
            service: namespace.to_string(),
            team,
            co_owners,
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
                    Err(e) if e.code() == ITEM_NOT_FOUND => Ok(None),
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
        let (team, co_owners) = (self.team.clone(), self.co_owners.clone());
        let value = value.clone();
        Box::pin(async move {
            blocking(move || {
                // Checked again: a file found at open may have been replaced since.
                let co_owners = signed_by_team(team.as_deref(), &co_owners);
                let access = access_for(&format!("{service}: {account}"), &co_owners)?;
                match store_item(&service, &account, value.expose().as_bytes(), &access) {
                    0 => Ok(()),
                    code => Err(failed_code("store", code)),
                }
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
                    Err(e) if e.code() == ITEM_NOT_FOUND => Ok(false),
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
                    Err(e) if e.code() == ITEM_NOT_FOUND => return Ok(Vec::new()),
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
