//! Refusals: how each [`Decision`] that is not `Allow` is answered, audited and (for a
//! program not approved yet) queued for a person, with the texts a person reads. Every
//! refusal of the handlers goes through [`Daemon::refuse`] or the few answers beside it
//! here.

use super::{error, Daemon};
use crate::audit;
use crate::peer::Peer;
use crate::pending::Sighting;
use crate::policy::Decision;
use keychain_auth_sdk::protocol::{ErrorBody, ErrorCode, Response};

/// How a peer is named to a person: its executable, or for a script the script and
/// what runs it.
pub fn describe(peer: &Peer) -> String {
    if peer.terminal.is_some() {
        return crate::peer::chain::origin_name(peer);
    }
    match &peer.script {
        Some(s) => format!("the script {} (run by {})", s.path, s.interpreter),
        None => peer.path.clone(),
    }
}

impl Daemon {
    /// Answers (and audits) a decision that is not `Allow`; a program not approved yet
    /// is queued for a person.
    pub(super) fn refuse(&self, peer: &Peer, op: &str, names: &[&str], d: Decision) -> Response {
        let names: Vec<&str> = names.iter().copied().filter(|n| !n.is_empty()).collect();
        match d {
            Decision::Allow => Response::Ok,
            Decision::NotApproved => {
                // What approving grants by default: the scopes its hello asked for, else
                // the names it asked for; suggest a scope only in the second case.
                let asked_scopes = peer.wants.get().is_some_and(|w| !w.scopes.is_empty());
                let scope_hint = names
                    .first()
                    .filter(|_| !asked_scopes)
                    .map(|n| format!(" --scope '{}'", crate::scope::literal(n)))
                    .unwrap_or_default();
                let asking = match &peer.via {
                    Some(chain) => format!("{chain} asked; "),
                    None => String::new(),
                };
                if let Some(u) = self.update_of(peer) {
                    let message = format!(
                        "{asking}{} ({}) is not approved as it is now: {}{}",
                        describe(peer),
                        peer.hash,
                        super::updates::keep_access_advice(&u, &peer.hash),
                        self.state
                            .approver()
                            .where_asked()
                            .map(|w| format!(" ({w}: Keep access)"))
                            .unwrap_or_default(),
                    );
                    return self.not_approved(
                        peer,
                        op,
                        &names,
                        &format!("an update of {}; queued as pending", u.label),
                        message,
                    );
                }
                let message = format!(
                    "{asking}{} ({}) is not approved. It is waiting for your decision; approve it with: keychain-auth approve {}{scope_hint}{}{}",
                    describe(peer),
                    peer.hash,
                    peer.hash,
                    self.state
                        .approver()
                        .where_asked()
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default(),
                    self.deputy_approval_note(peer).unwrap_or_default()
                );
                self.not_approved(
                    peer,
                    op,
                    &names,
                    "binary not approved; queued as pending",
                    message,
                )
            }
            Decision::UnapprovedLibraries(paths) => {
                let paths = paths.join(", ");
                self.not_approved(
                    peer,
                    op,
                    &names,
                    &format!(
                        "approved, but it runs code from files you can change that its approval does not name: {paths}"
                    ),
                    format!(
                        "{} ({}) is approved, but it now runs code from files you can change that its approval does not name: {paths}. If you put them there, approve it again with: keychain-auth approve {}",
                        describe(peer),
                        peer.hash,
                        peer.hash
                    ),
                )
            }
            Decision::Denied(reason) => {
                self.audit_access(peer, op, &names, audit::Decision::Deny, &reason);
                Response::Error(ErrorBody {
                    code: ErrorCode::Denied,
                    message: reason,
                    hash: Some(peer.hash.clone()),
                    pending: None,
                })
            }
            Decision::OutOfScope => {
                self.audit_access(
                    peer,
                    op,
                    &names,
                    audit::Decision::OutOfScope,
                    "name outside the tool's scopes",
                );
                // The name as a pattern that matches it alone, quoted for a shell.
                let (what, pattern) = match names.first() {
                    Some(n) => (
                        format!("{n:?}"),
                        format!("'{}'", crate::scope::literal(n).replace('\'', "'\\''")),
                    ),
                    None => ("the name".to_string(), "'PATTERN'".to_string()),
                };
                error(
                    ErrorCode::OutOfScope,
                    format!(
                        "{what} is outside the scopes approved for this tool; add it, keeping the others, with: keychain-auth approve {} --add-scope {pattern}",
                        peer.hash
                    ),
                )
            }
            Decision::Forbidden(reason) => {
                self.audit_access(peer, op, &names, audit::Decision::Forbidden, &reason);
                error(ErrorCode::Forbidden, reason)
            }
        }
    }

    /// A program that is not approved (as it is now): queued for a person, audited with
    /// `reason`, answered with `message`.
    fn not_approved(
        &self,
        peer: &Peer,
        op: &str,
        names: &[&str],
        reason: &str,
        message: String,
    ) -> Response {
        self.queue_pending(peer, names.first().copied());
        self.audit_access(peer, op, names, audit::Decision::NotApproved, reason);
        Response::Error(ErrorBody {
            code: ErrorCode::NotApproved,
            message,
            hash: Some(peer.hash.clone()),
            pending: Some(true),
        })
    }

    /// The answer to a `get` that asked to wait when no room to wait is left (its binary,
    /// or the daemon, has as many requests waiting as allowed): queued and refused at
    /// once, as without `wait_ms`.
    pub(super) fn refuse_crowded(&self, peer: &Peer, name: &str) -> Response {
        let mut r = self.refuse(peer, "get", &[name], Decision::NotApproved);
        if let Response::Error(b) = &mut r {
            b.message.push_str(&format!(
                " (not held: as many requests of this program, or of all programs, are already waiting as allowed: {} per program, {} in all)",
                crate::capacity::PER_BINARY,
                self.state.waits().limit()
            ));
        }
        r
    }

    /// The answer to a secret request while keychain-auth is paused: refused and
    /// audited; nothing is queued or shown on the desktop.
    pub(super) fn paused_refusal(&self, peer: &Peer, op: &str, name: Option<&str>) -> Response {
        let names: Vec<&str> = name.into_iter().collect();
        self.audit_access(
            peer,
            op,
            &names,
            audit::Decision::Deny,
            "keychain-auth is paused",
        );
        error(
            ErrorCode::Denied,
            "keychain-auth is paused: every secret request is refused until it is resumed (`keychain-auth resume`, or uncheck Pause in the tray menu)",
        )
    }

    /// The answer when the store failed.
    pub(super) fn store_error(
        &self,
        peer: &Peer,
        op: &str,
        name: &str,
        e: crate::store::StoreError,
    ) -> Response {
        self.audit_access(peer, op, &[name], audit::Decision::Error, &e.to_string());
        error(ErrorCode::StoreUnavailable, e.to_string())
    }

    /// Queues a program that is not approved (and asks a person, as often as allowed).
    pub(super) fn queue_pending(&self, peer: &Peer, name: Option<&str>) {
        let now = self.state.clock().rfc3339();
        let update_of = self.update_of(peer);
        let ask = self.state.pending().record(&Sighting {
            hash: &peer.hash,
            path: &peer.path,
            name,
            interpreter: peer.interpreter,
            wants: peer.wants.get(),
            script: peer.script.as_ref(),
            signing: peer.signing.as_ref(),
            libraries: &peer.libraries,
            chain: peer.via.as_deref(),
            terminal: peer
                .terminal
                .as_ref()
                .map(|t| format!("{}, session {}", t.path, t.session)),
            update_of,
            now: &now,
        });
        self.state.touched();
        if let Some(entry) = ask {
            self.state.approver().pending_added(&entry);
        }
    }
}
