//! macOS code-signing facts about a peer and what the daemon makes of them. Reading the
//! facts (`SecCodeCopyGuestWithAttributes` with the audit token, `SecCodeCheckValidity`,
//! then `SecCodeCopySigningInformation`) is in `macos/code_signature.rs`; judging them is
//! here, pure and tested on every platform.
//!
//! The signing information of a guest is read from the file at the process's path
//! (Security's `KernelCode::identifyGuest` → `DiskRep::bestGuess(path)`), so on its own it
//! describes whatever is on disk now. Only `SecCodeCheckValidity` compares the running
//! code's cdhash with that file and requires the kernel's `CS_VALID`: its answer is
//! judged by [`validity`] first (a file swapped after exec is refused), and the running
//! process by its dynamic status word (`kSecCodeInfoStatus`, [`Facts::status`]).
//!
//! The policy: a signature that *opts into* injection — the `get-task-allow` entitlement
//! (any process of the user may attach a debugger), `allow-dyld-environment-variables` or
//! `disable-library-validation` — is refused, with the reason audited. Code that is
//! unsigned or signed without the hardened runtime (most command-line tools, including
//! ad-hoc signed ones) is allowed but identified by its SHA-256 alone, and the person is
//! told so; the advisory environment and debugger checks still apply to it.

use serde::{Deserialize, Serialize};

/// What the code signature of a running process says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Whether the code is signed at all (ad-hoc counts as signed).
    pub signed: bool,
    /// Hex of the code directory hash of the running code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdhash: Option<String>,
    /// The signing identifier (often a bundle id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    /// The Apple team id of a Developer ID signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    /// The code-signing flags word.
    pub flags: u32,
    /// The `com.apple.security.get-task-allow` entitlement.
    #[serde(default)]
    pub get_task_allow: bool,
    /// The `com.apple.security.cs.allow-dyld-environment-variables` entitlement.
    #[serde(default)]
    pub allow_dyld_environment: bool,
    /// The `com.apple.security.cs.disable-library-validation` entitlement.
    #[serde(default)]
    pub disable_library_validation: bool,
    /// The running process's code-signing status (`kSecCodeInfoStatus`: `CS_VALID`,
    /// `CS_GET_TASK_ALLOW`, `CS_RUNTIME`, `CS_DEBUGGED`, …); `None` for unsigned code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
}

/// What `SecCodeCheckValidity` of the running code said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validity {
    /// The running code is validly signed and matches the file on disk.
    Valid,
    /// The code is not signed (`errSecCSUnsigned`): identified by its SHA-256 alone.
    Unsigned,
    /// Anything else: the peer is refused, with why.
    Refused(String),
}

/// `errSecCSUnsigned`.
pub const ERR_UNSIGNED: i32 = -67062;
/// `errSecCSStaticCodeChanged`: the file on disk is not the code that is running.
pub const ERR_STATIC_CODE_CHANGED: i32 = -67034;
/// `errSecCSGuestInvalid`: the kernel no longer considers the running code valid.
pub const ERR_GUEST_INVALID: i32 = -67063;
/// `errSecCSSignatureFailed`: the signature does not verify.
pub const ERR_SIGNATURE_FAILED: i32 = -67061;

/// `CS_VALID`: the kernel considers the running code's signature valid.
pub const CS_VALID: u32 = 0x0000_0001;
/// `CS_GET_TASK_ALLOW`: the process may be attached to by a debugger of the same user.
pub const CS_GET_TASK_ALLOW: u32 = 0x0000_0004;
/// `CS_RUNTIME`: the hardened runtime applies to the running process.
pub const CS_RUNTIME: u32 = 0x0001_0000;
/// `CS_DEBUGGED`: a debugger has attached (or the process was allowed invalid pages).
pub const CS_DEBUGGED: u32 = 0x1000_0000;

/// Maps the `OSStatus` of `SecCodeCheckValidity(code, kSecCSDefaultFlags, NULL)`.
/// Unknown failures are refusals: an answer that is not understood proves nothing.
pub fn validity(status: i32) -> Validity {
    match status {
        0 => Validity::Valid,
        ERR_UNSIGNED => Validity::Unsigned,
        ERR_STATIC_CODE_CHANGED => Validity::Refused(
            "its executable on disk is not the code that is running (it was replaced after it started)".into(),
        ),
        ERR_GUEST_INVALID => Validity::Refused(
            "the system no longer considers its running code validly signed".into(),
        ),
        ERR_SIGNATURE_FAILED => Validity::Refused("its code signature does not verify".into()),
        other => Validity::Refused(format!(
            "its code signature could not be validated (OSStatus {other})"
        )),
    }
}

/// `kSecCodeSignatureRuntime`: the hardened runtime is on.
pub const RUNTIME: u32 = 0x0001_0000;
/// `kSecCodeSignatureAdhoc`: signed without an identity.
pub const ADHOC: u32 = 0x0000_0002;

impl Facts {
    /// The facts recorded with a pending entry (macOS), if any.
    pub fn from_entry(e: &keychain_auth_sdk::protocol::PendingEntry) -> Option<Facts> {
        e.macos
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Whether the hardened runtime is on, for the running process when its status is
    /// known (it is for every signed peer), else as the signature asks.
    pub fn hardened(&self) -> bool {
        self.signed
            && match self.status {
                Some(status) => status & CS_RUNTIME != 0,
                None => self.flags & RUNTIME != 0,
            }
    }

    /// Why the running process cannot be trusted to be the signed code, or why the
    /// signature makes it injectable by design, if either: the peer is then refused.
    pub fn refusal(&self) -> Option<String> {
        if self.signed {
            match self.status {
                None => return Some("its code-signing status could not be read".into()),
                Some(s) if s & CS_VALID == 0 => {
                    return Some("the system does not consider its running code valid".into())
                }
                Some(s) if s & CS_DEBUGGED != 0 => {
                    return Some("a debugger has attached to it (CS_DEBUGGED)".into())
                }
                Some(_) => {}
            }
        }
        let mut why = Vec::new();
        if self.status.is_some_and(|s| s & CS_GET_TASK_ALLOW != 0) && !self.get_task_allow {
            why.push(
                "get-task-allow in its running status (any process of yours may attach a debugger)",
            );
        }
        if self.get_task_allow {
            why.push("get-task-allow (any process of yours may attach a debugger)");
        }
        if self.allow_dyld_environment {
            why.push("allow-dyld-environment-variables");
        }
        if self.disable_library_validation {
            why.push("disable-library-validation");
        }
        (!why.is_empty()).then(|| {
            format!(
                "its code signature allows code injection: {}",
                why.join(", ")
            )
        })
    }

    /// One line for a person: who signed it, and what that means for its identity.
    pub fn describe(&self) -> String {
        if !self.signed {
            return "unsigned: identified by its SHA-256 only".into();
        }
        let who = match (&self.team_id, &self.identifier) {
            (Some(t), Some(i)) => format!("signed by team {t} as {i}"),
            (None, Some(i)) if self.flags & ADHOC != 0 => format!("ad-hoc signed as {i}"),
            (None, Some(i)) => format!("signed as {i}"),
            (Some(t), None) => format!("signed by team {t}"),
            (None, None) => "signed".into(),
        };
        if self.hardened() {
            format!("{who}, hardened runtime")
        } else {
            format!("{who}, without the hardened runtime: identified by its SHA-256 only")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_entitlements_are_refused_and_named() {
        let ok = Facts {
            signed: true,
            flags: RUNTIME,
            status: Some(CS_VALID | CS_RUNTIME),
            team_id: Some("ABCDE12345".into()),
            identifier: Some("com.example.tool".into()),
            ..Facts::default()
        };
        assert_eq!(ok.refusal(), None);
        assert_eq!(
            ok.describe(),
            "signed by team ABCDE12345 as com.example.tool, hardened runtime"
        );
        let debuggable = Facts {
            get_task_allow: true,
            ..ok.clone()
        };
        assert!(debuggable
            .refusal()
            .expect("refused")
            .contains("get-task-allow"));
        let both = Facts {
            allow_dyld_environment: true,
            disable_library_validation: true,
            ..ok
        };
        let why = both.refusal().expect("refused");
        assert!(
            why.contains("allow-dyld-environment-variables")
                && why.contains("disable-library-validation")
        );
    }

    #[test]
    fn unsigned_and_unhardened_code_is_allowed_but_said_to_be_hash_only() {
        let unsigned = Facts::default();
        assert_eq!(unsigned.refusal(), None);
        assert!(unsigned.describe().contains("SHA-256 only"));
        let adhoc = Facts {
            signed: true,
            flags: ADHOC,
            status: Some(CS_VALID),
            identifier: Some("tool-55554944".into()),
            ..Facts::default()
        };
        assert_eq!(adhoc.refusal(), None);
        assert_eq!(
            adhoc.describe(),
            "ad-hoc signed as tool-55554944, without the hardened runtime: identified by its SHA-256 only"
        );
    }

    #[test]
    fn validity_answers_are_mapped_and_unknown_ones_refused() {
        assert_eq!(validity(0), Validity::Valid);
        assert_eq!(validity(ERR_UNSIGNED), Validity::Unsigned);
        for (status, words) in [
            (ERR_STATIC_CODE_CHANGED, "replaced after it started"),
            (ERR_GUEST_INVALID, "no longer considers"),
            (ERR_SIGNATURE_FAILED, "does not verify"),
            (-67050, "OSStatus -67050"),
            (-1, "OSStatus -1"),
        ] {
            match validity(status) {
                Validity::Refused(why) => assert!(why.contains(words), "{status}: {why}"),
                v => panic!("{status}: {v:?}"),
            }
        }
    }

    #[test]
    fn the_running_status_decides_for_signed_code() {
        let signed = |status| Facts {
            signed: true,
            flags: RUNTIME,
            team_id: Some("ABCDE12345".into()),
            identifier: Some("com.example.tool".into()),
            status,
            ..Facts::default()
        };
        assert_eq!(signed(Some(CS_VALID | CS_RUNTIME)).refusal(), None);
        assert!(signed(Some(CS_VALID | CS_RUNTIME)).hardened());
        // The signature asks for the runtime but the process does not run with it.
        assert!(!signed(Some(CS_VALID)).hardened());
        for (status, words) in [
            (None, "could not be read"),
            (Some(CS_RUNTIME), "not consider its running code valid"),
            (
                Some(CS_VALID | CS_RUNTIME | CS_DEBUGGED),
                "debugger has attached",
            ),
            (Some(CS_VALID | CS_GET_TASK_ALLOW), "get-task-allow"),
        ] {
            let why = signed(status).refusal().expect("refused");
            assert!(why.contains(words), "{status:?}: {why}");
        }
        // Unsigned code has no status to judge: hash only, as before.
        assert_eq!(Facts::default().refusal(), None);
    }
}
