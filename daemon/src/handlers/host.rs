//! What an app hosting the daemon in-process (the tray app) may do with it: the admin
//! requests the CLI sends, answered without a socket and audited with where the person
//! decided ([`Actor::Tray`], [`Actor::Window`], [`Actor::Notification`]); a person's
//! answers about a pending binary; scope edits; pause; a snapshot of everything a menu
//! or window shows; and the hashes of the CLI that may still send admin requests over
//! the socket while the app hosts the daemon.

use super::{Actor, Daemon, Gone};
use crate::audit::{Decision, Entry, Event, Record};
use crate::desktop::approver::Answer;
use keychain_auth_sdk::protocol::{PendingEntry, Request, Response, Tool};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Everything the tray menu and the window show, at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// Whether every secret request is being refused.
    pub paused: bool,
    /// Approved tools.
    pub tools: Vec<Tool>,
    /// Binaries waiting for a decision, oldest first.
    pub pending: Vec<PendingEntry>,
    /// Deny rules, oldest first (a denied script as the script).
    pub denied: Vec<crate::config::DenyRule>,
    /// What approving each pending binary grants, by hash: exactly the patterns
    /// ([`crate::pending::grants`]).
    pub grants: std::collections::BTreeMap<String, Vec<String>>,
    /// Every secret name in the store (sorted); empty when the store did not answer.
    pub names: Vec<String>,
    /// Why `names` is empty, when the store did not answer.
    pub names_error: Option<String>,
    /// The newest audit records, oldest first.
    pub recent: Vec<Record>,
    /// The socket tools connect to.
    pub socket: String,
    /// Which secret store is in use.
    pub store: String,
    /// The machine's ptrace policy, for a person ([`crate::ptrace::Scope::describe`]).
    pub ptrace: String,
    /// When that policy lets a program write an approved tool's memory, a few words
    /// saying so ([`crate::ptrace::Scope::warning`]).
    pub ptrace_warning: Option<String>,
    /// How widening decisions are proven (`polkit`, `off: …`: see
    /// [`crate::presence::Presence::describe`]).
    pub presence: String,
    /// When they are not proven, why ([`crate::presence::Presence::warning`]).
    pub presence_warning: Option<String>,
}

impl Daemon {
    /// Whether every secret request is being refused.
    pub fn is_paused(&self) -> bool {
        self.state.is_paused()
    }

    /// Pauses (every secret request is refused, nothing is queued or shown) or resumes.
    /// Audited; waiting requests are woken and refused. Lasts until resumed or the
    /// daemon stops.
    /// Resuming widens (every approved tool is served again), so it needs proof of
    /// presence; pausing does not.
    pub async fn set_paused(&self, by: Actor<'_>, paused: bool) -> Response {
        let mut presence = None;
        if !paused && self.state.is_paused() {
            let change = crate::presence::Change::new(
                "keychain-auth: resume answering the secret requests of approved programs",
            );
            match self.prove(by, Event::Daemon, ("", ""), &change).await {
                Ok(p) => presence = Some(p.to_string()),
                Err(r) => return r,
            }
        }
        if self.state.swap_paused(paused) == paused {
            return Response::Ok;
        }
        self.state.audit().write(
            Entry {
                event: Event::Daemon.into(),
                decision: Decision::Ok.into(),
                reason: if paused {
                    "paused: every secret request is refused".into()
                } else {
                    "resumed".into()
                },
                via: Some(by.via().into()),
                pid: by.peer().map(|p| p.pid),
                uid: by.peer().map(|p| p.uid),
                presence,
                ..Entry::default()
            },
            true,
        );
        // Wake waiting `get`s so they see the pause.
        self.state.configs().wake();
        Response::Ok
    }

    /// Answers an admin request from the hosting app, as the CLI's would be answered
    /// (approve, register, deny, revoke, upgrade, list_tools, list_pending, names,
    /// status). `get_for_parent` and `shutdown` are not for in-process callers.
    pub async fn admin_local(&self, by: Actor<'_>, req: Request) -> Response {
        self.dispatch(by, req, &Gone::never()).await
    }

    /// Applies a person's answer about a pending binary: Approve grants what it asked
    /// for, Allow once serves its waiting request, Deny records a deny rule. The tray,
    /// the window and the notifications all answer through here.
    pub async fn answer(&self, by: Actor<'_>, hash: &str, answer: Answer) -> Response {
        self.decide_on_desktop(by, hash, answer).await
    }

    /// Everything a menu or window shows; `recent` audit records at most.
    pub async fn snapshot(&self, recent: usize) -> Snapshot {
        let st = &self.state;
        let (names, names_error) = match st.store().list().await {
            Ok(n) => (n, None),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        let recent = crate::audit::tail(&st.paths().audit, recent)
            .map(|v| v.into_iter().filter_map(|(_, r)| r).collect())
            .unwrap_or_default();
        let pending = st.pending().entries();
        let ptrace = crate::ptrace::Scope::read();
        let grants = pending
            .iter()
            .map(|p| (p.hash.clone(), crate::pending::grants(p)))
            .collect();
        Snapshot {
            paused: st.is_paused(),
            tools: st.config().tools.clone(),
            pending,
            denied: st.config().denied.clone(),
            grants,
            names,
            names_error,
            recent,
            socket: st.paths().socket.display().to_string(),
            store: st.store().kind().into(),
            ptrace: ptrace.describe(),
            ptrace_warning: ptrace.warning(),
            presence: self.presence().describe(),
            presence_warning: self.presence().warning(),
        }
    }

    /// The full audit history, filtered (see [`crate::audit::search`]).
    pub fn history(&self, q: &crate::audit::Query) -> std::io::Result<Vec<Record>> {
        crate::audit::search(&self.state.paths().audit, q)
    }

    /// Writes what the desktop notifier reports to the audit log.
    /// Ignored (forged) clicks are refusals: a flood of them is counted, not each
    /// written (see [`crate::audit::repeats`]).
    pub fn note_desktop(&self, reason: String, decision: Decision, hash: Option<String>) {
        let e = Entry {
            event: Event::Notification.into(),
            decision: decision.into(),
            reason,
            hash,
            ..Entry::default()
        };
        if decision == Decision::Deny {
            self.state.audit().refusal(e);
        } else {
            self.state.audit().record(e, false);
        }
    }
}

/// The `keychain-auth` CLI binaries an app hosting the daemon accepts admin requests
/// from: the one installed beside the app's executable and the first on `PATH`, hashed
/// as they are when the app starts (a CLI updated later is accepted after a restart of
/// the app, like a headless daemon's).
pub fn cli_admin_hashes(app_exe: &Path) -> Vec<(PathBuf, String)> {
    crate::deputies::installed(app_exe, "keychain-auth")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Deps, State};
    use keychain_auth_sdk::paths::Paths;
    use keychain_auth_sdk::protocol::Access;
    use keychain_auth_sdk::protocol::ErrorCode;
    use std::sync::Arc;

    fn tool(hash: &str, scopes: &[&str]) -> Tool {
        crate::fixtures::tool(hash, "t", "/bin/t", scopes, Access::Read)
    }

    /// A daemon state over an in-memory store, with one approved tool.
    fn state(dir: &Path, hash: &str) -> Daemon {
        let paths = Paths::in_dir(dir);
        let config = crate::config::Config {
            tools: vec![tool(hash, &["a"])],
            ..crate::config::Config::default()
        };
        config.save(&paths.config).expect("save config");
        Daemon::new(Arc::new(
            State::load(Deps {
                paths,
                store: Arc::new(crate::store::memory::MemoryStore::default()),
                approver: Arc::new(crate::desktop::approver::Headless),
                presence: Arc::new(crate::presence::NoMechanism("unit test".into())),
                clock: Arc::new(crate::clock::SystemClock),
                admin_hashes: Vec::new(),
                deputy_hashes: Vec::new(),
            })
            .expect("load"),
        ))
    }

    fn audit(dir: &Path) -> Vec<Record> {
        crate::audit::read_all(&Paths::in_dir(dir).audit, 0).expect("audit")
    }

    #[test]
    fn scope_edits_pause_and_admin_requests_are_saved_and_audited_with_the_surface() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = format!("sha256:{}", "ab".repeat(32));
        let st = state(dir.path(), &hash);
        let activity = st.state().activity();
        rt.block_on(async {
            // Scopes: replaced, saved, audited; a bad pattern or unknown tool is refused.
            let r = st
                .set_scopes(Actor::Window, &hash, vec!["a".into(), "b/*".into()])
                .await;
            assert!(matches!(r, Response::Tool { .. }), "{r:?}");
            let saved = crate::config::Config::load(&Paths::in_dir(dir.path()).config)
                .expect("load")
                .expect("exists");
            assert_eq!(saved.tools[0].scopes, vec!["a", "b/*"]);
            assert!(activity.has_changed().expect("watch"), "watchers are told");
            let bad = st.set_scopes(Actor::Window, &hash, vec!["".into()]).await;
            assert!(matches!(bad, Response::Error(_)), "{bad:?}");
            let unknown = format!("sha256:{}", "cd".repeat(32));
            let none = st.set_scopes(Actor::Tray, &unknown, vec![]).await;
            assert!(
                matches!(&none, Response::Error(e) if e.code == ErrorCode::NotFound),
                "{none:?}"
            );

            // Pause and resume: each change audited once, with where it was made.
            st.set_paused(Actor::Tray, true).await;
            st.set_paused(Actor::Tray, true).await;
            assert!(st.is_paused());
            st.set_paused(Actor::Window, false).await;
            assert!(!st.is_paused());

            // Admin requests in-process: deny drops the tool and leaves a deny rule;
            // requests that need a CLI are refused.
            let r = st
                .admin_local(Actor::Window, Request::Deny { hash: hash.clone() })
                .await;
            assert_eq!(r, Response::Ok);
            assert!(st.state().config().is_denied(&hash) && st.state().config().tools.is_empty());
            for r in [
                Request::Shutdown {},
                Request::GetForParent {
                    name: "a".into(),
                    wait_ms: None,
                },
                Request::Whoami {},
            ] {
                let resp = st.admin_local(Actor::Window, r).await;
                assert!(matches!(resp, Response::Error(_)), "{resp:?}");
            }
            let snap = st.snapshot(10).await;
            assert!(snap.tools.is_empty() && !snap.paused);
            assert_eq!(snap.store, "memory");
        });
        let lines = audit(dir.path());
        let scopes: Vec<&Record> = lines.iter().filter(|r| r.entry.event == "scopes").collect();
        assert_eq!(scopes.len(), 1);
        assert_eq!(scopes[0].entry.via.as_deref(), Some("window"));
        assert!(scopes[0].entry.reason.contains("[a] -> [a, b/*]"));
        let pauses: Vec<(&str, Option<&str>)> = lines
            .iter()
            .filter(|r| r.entry.event == "daemon")
            .map(|r| (r.entry.reason.as_str(), r.entry.via.as_deref()))
            .collect();
        assert_eq!(
            pauses,
            vec![
                ("paused: every secret request is refused", Some("tray")),
                ("resumed", Some("window"))
            ]
        );
        let deny = lines
            .iter()
            .find(|r| r.entry.event == "deny")
            .expect("deny audited");
        assert_eq!(deny.entry.via.as_deref(), Some("window"));
        assert_eq!(deny.entry.pid, None);
    }

    #[test]
    fn the_cli_beside_the_app_is_found_and_hashed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cli = dir.path().join("keychain-auth");
        std::fs::write(&cli, b"cli").expect("write");
        let found = cli_admin_hashes(&dir.path().join("keychain-auth-app"));
        assert_eq!(found[0].0, cli);
        assert_eq!(
            found[0].1,
            crate::digest::hash_reader(&b"cli"[..]).expect("hash")
        );
        assert_eq!(
            found.iter().filter(|(_, h)| *h == found[0].1).count(),
            1,
            "no duplicates"
        );
    }
}
