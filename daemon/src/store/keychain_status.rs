//! What the status codes of Apple's Keychain Services mean to the person reading the
//! error: a pure mapping from `OSStatus` to a [`StoreError`] that says what happened and
//! what to do, compiled and tested on every platform. The calls that produce the codes
//! are `keychain.rs`'s (macOS only).

use super::StoreError;

/// `errSecItemNotFound`: no such item (callers answer "absent", never an error).
pub const ITEM_NOT_FOUND: i32 = -25300;
/// `errSecDuplicateItem`: an item with this service and account exists already.
pub const DUPLICATE_ITEM: i32 = -25299;
/// `errSecInteractionNotAllowed`, "User interaction is not allowed": the keychain is
/// locked, or the item's access list wants the person to confirm, and no prompt can be
/// shown (no login session, SSH, a job outside the GUI).
pub const INTERACTION_NOT_ALLOWED: i32 = -25308;
/// `errSecAuthFailed`: the person chose Deny (or gave a wrong password) at the keychain's
/// own prompt.
pub const AUTH_FAILED: i32 = -25293;
/// `errSecUserCanceled` (`userCanceledErr`): the person cancelled the keychain's prompt.
pub const USER_CANCELED: i32 = -128;

/// What a status code means for keychain-auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The item does not exist.
    NotFound,
    /// Locked, or waiting for a confirmation that cannot be asked for here.
    LockedOrNeedsConfirmation,
    /// The person refused at macOS's keychain prompt.
    RefusedAtPrompt,
    /// Anything else: reported with its code.
    Other,
}

/// The meaning of a Keychain Services status code.
pub fn meaning(code: i32) -> Meaning {
    match code {
        ITEM_NOT_FOUND => Meaning::NotFound,
        INTERACTION_NOT_ALLOWED => Meaning::LockedOrNeedsConfirmation,
        AUTH_FAILED | USER_CANCELED => Meaning::RefusedAtPrompt,
        _ => Meaning::Other,
    }
}

/// The store error for a failed Keychain Services call: `what` is the operation ("read",
/// "store", "delete", "search"), `code` its status and `description` the system's text
/// for it (`SecCopyErrorMessageString`, may be empty).
pub fn store_error(what: &str, code: i32, description: &str) -> StoreError {
    let said = if description.is_empty() {
        format!("OSStatus {code}")
    } else {
        format!("{description}, OSStatus {code}")
    };
    match meaning(code) {
        Meaning::LockedOrNeedsConfirmation => StoreError::Locked(format!(
            "the keychain is locked or needs your confirmation ({what}: {said}): unlock it, \
             or run keychain-auth where macOS can show its prompt (the app, or a daemon \
             started in your login session), answer the prompt, and retry"
        )),
        Meaning::RefusedAtPrompt => StoreError::Unavailable(format!(
            "refused at the keychain prompt ({what}: {said}); to allow it, retry and choose \
             Allow or Always Allow (docs/macos.md, \"The daemon's own Keychain items\")"
        )),
        Meaning::NotFound | Meaning::Other => {
            StoreError::Unavailable(format!("Keychain Services {what} failed: {said}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interaction_not_allowed_is_locked_or_needs_confirmation() {
        assert_eq!(meaning(-25308), Meaning::LockedOrNeedsConfirmation);
        let e = store_error("read", -25308, "User interaction is not allowed.");
        let StoreError::Locked(m) = &e else {
            panic!("not Locked: {e:?}")
        };
        assert!(m.contains("locked or needs your confirmation"), "{m}");
        assert!(m.contains("User interaction is not allowed"), "{m}");
        assert!(m.contains("-25308"), "{m}");
    }

    #[test]
    fn deny_and_cancel_at_the_prompt_are_refusals() {
        for code in [-25293, -128] {
            assert_eq!(meaning(code), Meaning::RefusedAtPrompt, "{code}");
            let e = store_error("store", code, "");
            let StoreError::Unavailable(m) = &e else {
                panic!("not Unavailable: {e:?}")
            };
            assert!(m.starts_with("refused at the keychain prompt"), "{m}");
            assert!(m.contains(&format!("store: OSStatus {code}")), "{m}");
        }
    }

    #[test]
    fn other_codes_keep_the_system_text_and_the_code() {
        assert_eq!(meaning(-25300), Meaning::NotFound);
        assert_eq!(meaning(-25299), Meaning::Other);
        assert_eq!(meaning(0), Meaning::Other);
        let m = store_error("search", -25291, "No keychain is available.").to_string();
        assert_eq!(
            m,
            "Keychain Services search failed: No keychain is available., OSStatus -25291"
        );
    }
}
