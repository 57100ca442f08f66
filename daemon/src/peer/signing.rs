//! macOS code-signing facts about a peer and what the daemon makes of them. Reading the
//! facts (`SecCodeCopyGuestWithAttributes` with the audit token, then
//! `SecCodeCopySigningInformation`) is in `macos/code_signature.rs`; judging them is here, pure and
//! tested on every platform.
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

    /// Whether the hardened runtime is on.
    pub fn hardened(&self) -> bool {
        self.signed && self.flags & RUNTIME != 0
    }

    /// Why the signature makes the code injectable by design, if it does: the peer is
    /// then refused.
    pub fn refusal(&self) -> Option<String> {
        let mut why = Vec::new();
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
            identifier: Some("tool-55554944".into()),
            ..Facts::default()
        };
        assert_eq!(adhoc.refusal(), None);
        assert_eq!(
            adhoc.describe(),
            "ad-hoc signed as tool-55554944, without the hardened runtime: identified by its SHA-256 only"
        );
    }
}
