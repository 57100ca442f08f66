//! The seam through which approvals reach a person. The daemon tells an [`Approver`] when
//! a new binary is waiting; the person's answer comes back through the admin path
//! (`approve`/`deny` requests, or the hosting app calling the daemon in-process).
//! [`Approver::confirm`] is where proof of presence (Touch ID, polkit) can be required
//! later without touching callers. Headless daemons use [`Headless`].

use keychain_auth_sdk::protocol::PendingEntry;

/// An admin change that may need the user's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminAction<'a> {
    /// Approve or register a binary.
    Approve(&'a str),
    /// Re-pin a tool to a new hash.
    Upgrade(&'a str),
}

/// What a person answered about a pending binary, outside the CLI (a notification, the
/// tray).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Approve it with what it asked for.
    Approve,
    /// Serve only its waiting request (or its next one, within two minutes).
    AllowOnce,
    /// Deny it: it gets `denied` and is not asked about again.
    Deny,
}

/// Asks a person about pending binaries.
pub trait Approver: Send + Sync {
    /// A binary was queued for the first time (or asked for a new name). Must not block.
    fn pending_added(&self, entry: &PendingEntry);
    /// Confirms an admin change before it is applied. `true` lets it through.
    fn confirm(&self, action: AdminAction<'_>) -> bool;
    /// What to add to a `not_approved` message about where the person is being asked.
    fn where_asked(&self) -> Option<&'static str> {
        None
    }
}

/// No person to ask: the CLI (`list-pending`, `approve`) is the only path, and the
/// client's error names the exact command to run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Headless;

impl Approver for Headless {
    fn pending_added(&self, entry: &PendingEntry) {
        tracing::info!(hash = %entry.hash, path = %entry.path, "binary waiting for approval");
    }

    fn confirm(&self, _action: AdminAction<'_>) -> bool {
        // Intent was already shown by running the CLI; presence is not checked here.
        true
    }
}
