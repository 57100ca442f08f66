//! The seam through which approvals reach a person. The daemon tells an [`Approver`] when
//! a new binary is waiting; the person's answer comes back through the admin path
//! (`approve`/`deny` requests, or the hosting app calling the daemon in-process).
//! Whatever the path, the daemon proves the person's presence itself before it widens
//! anything ([`crate::presence`]): pressing a button is not proof. Headless daemons use
//! [`Headless`].

use keychain_auth_sdk::protocol::PendingEntry;

/// What a person answered about a pending binary, outside the CLI (a notification, the
/// tray).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Approve it with what it asked for, for this long.
    Approve(keychain_auth_sdk::protocol::Lasts),
    /// It is an update of an approved tool: re-pin that tool to it (`upgrade`).
    KeepAccess,
    /// Serve only its waiting request (or its next one, within two minutes).
    AllowOnce,
    /// Deny it: it gets `denied` and is not asked about again.
    Deny,
}

/// Asks a person about pending binaries.
pub trait Approver: Send + Sync {
    /// A binary was queued for the first time (or asked for a new name). Must not block.
    fn pending_added(&self, entry: &PendingEntry);
    /// What to add to a `not_approved` message about where the person is being asked.
    fn where_asked(&self) -> Option<&'static str> {
        None
    }
    /// The binary with this hash was decided, or the request it waited with ended: a
    /// notification about it is taken off the screen. Must not block.
    fn withdraw(&self, _hash: &str) {}
    /// Tells the person something that needs no answer (an update re-pinned by its
    /// provenance). Must not block.
    fn announce(&self, title: &str, body: &str) {
        tracing::info!(%title, %body, "announced");
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
}
