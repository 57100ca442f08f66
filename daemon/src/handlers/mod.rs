//! What each request does, once the server has framed it and re-checked the peer. The
//! path is one way: [`Daemon::handle`] (a peer's request) and the in-process calls of
//! an app hosting the daemon ([`host`]) both reach [`Daemon::dispatch`], where the pause
//! and the admin gates are; from there one function per request, grouped by family:
//! [`secrets`] (get, set, delete, list, get for the parent), [`approvals`] (approve,
//! register, deny, revoke, scopes, desktop answers; what an approve sets and changed is
//! [`changes`], lifting a deny [`denies`]), [`upgrade`] and [`info`] (whoami,
//! status, lists), [`proof`] (the presence gate every widening change passes, the
//! `presence` setting, protected secrets) and [`expiry`] (approvals that run out). They ask [`crate::policy`], then read or write the store, the
//! pending queue and the config ([`crate::state`]) and write the audit line; refusals
//! and their texts are [`refusals`].
//! A hash a person gives (maybe a prefix) is made whole first (`hash_ref.rs`).
//!
//! Admin changes are saved (atomically, durably) before they are acknowledged, so an
//! approval a client saw survives `kill -9`. Sockets and framing are not here
//! ([`crate::server`]).

pub mod approvals;
pub mod chains;
mod changes;
mod denies;
pub mod expiry;
mod hash_ref;
pub mod host;
pub mod info;
pub mod proof;
pub mod refusals;
pub mod secrets;
#[cfg(test)]
mod tests;
pub mod updates;
pub mod upgrade;

use crate::audit::{self, Entry, Event};
use crate::peer::{Peer, Recv};
use crate::policy::{self, Decision, Op, PeerFacts};
use crate::state::{Refusal, State};
use approvals::Grant;
use keychain_auth_sdk::protocol::{ErrorBody, ErrorCode, Request, Response};
use std::os::fd::AsFd;
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UnixStream;

pub use host::{cli_admin_hashes, Snapshot};

/// The daemon as requests reach it: its [`State`], and what each request does with it.
/// Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct Daemon {
    state: Arc<State>,
}

/// Who makes a request or a decision, as the audit log records it (`via`, and the
/// CLI's pid and uid) and as a tool's `approved_via` says.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A connected peer: the keychain-auth CLI (verified by hash) for admin requests,
    /// any approved tool for secret requests.
    Cli(&'a Peer),
    /// A person pressing a button of a desktop notification.
    Notification,
    /// A person in the tray (menu-bar) menu.
    Tray,
    /// A person in the app's window.
    Window,
}

impl Actor<'_> {
    /// The peer, when a connected program asks.
    pub fn peer(&self) -> Option<&Peer> {
        match self {
            Actor::Cli(p) => Some(p),
            _ => None,
        }
    }

    /// How the audit log and `approved_via` name it.
    pub fn via(&self) -> &'static str {
        match self {
            Actor::Cli(_) => "cli",
            Actor::Notification => "notification",
            Actor::Tray => "tray",
            Actor::Window => "window",
        }
    }
}

/// An error response.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorBody {
        code,
        message: message.into(),
        hash: None,
        pending: None,
    })
}

impl From<Refusal> for Response {
    fn from(Refusal(code, message): Refusal) -> Response {
        error(code, message)
    }
}

/// Completes when the client of a request that is waiting has gone away (hung up), or
/// sent more while it should be waiting for its answer, so the wait can end. Only for
/// a connection whose read bytes were all taken off the socket first: anything readable
/// is then new.
pub struct Gone<'a>(Option<&'a UnixStream>);

impl<'a> Gone<'a> {
    /// Watches `stream`.
    pub fn watching(stream: &'a UnixStream) -> Gone<'a> {
        Gone(Some(stream))
    }

    /// For a request that has no connection (in-process callers, benchmarks).
    pub fn never() -> Gone<'static> {
        Gone(None)
    }

    async fn wait(&self) {
        let Some(stream) = self.0 else {
            return std::future::pending().await;
        };
        loop {
            let ready = match stream.ready(Interest::READABLE).await {
                Ok(r) => r,
                Err(_) => return,
            };
            if ready.is_read_closed() {
                return;
            }
            let mut byte = [0u8; 1];
            // A peek of one byte tells a hang-up (0) from data; readiness that was stale
            // (WouldBlock) is cleared and waited on again.
            match stream.try_io(Interest::READABLE, || {
                crate::peer::recv_with_sender(stream.as_fd(), &mut byte, Recv::Peek)
            }) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}

impl Daemon {
    /// The daemon over `state`.
    pub fn new(state: Arc<State>) -> Daemon {
        Daemon { state }
    }

    /// Everything it knows.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Answers one request from an identified peer.
    pub async fn handle(&self, peer: &Peer, req: Request) -> Response {
        self.dispatch(Actor::Cli(peer), req, &Gone::never()).await
    }

    /// [`Daemon::handle`] for a request whose wait (`wait_ms`) ends when `gone` does:
    /// its client hung up.
    pub async fn handle_with(&self, peer: &Peer, req: Request, gone: &Gone<'_>) -> Response {
        self.dispatch(Actor::Cli(peer), req, gone).await
    }

    /// Every request passes here, from a peer or from the hosting app: the pause gate
    /// (secret writes and lists are refused while paused; a `get` checks it as it waits),
    /// the admin gate (only the keychain-auth CLI, and a person on the desktop, make
    /// admin requests), then the request's own function.
    async fn dispatch(&self, by: Actor<'_>, req: Request, gone: &Gone<'_>) -> Response {
        let Some(peer) = by.peer() else {
            // A person on the desktop: admin requests only, and not those that need a
            // calling CLI.
            return match req {
                Request::GetForParent { .. } | Request::Shutdown {} => error(
                    ErrorCode::BadRequest,
                    "not available in-process; use State::request_shutdown to stop",
                ),
                r if r.is_admin() => self.admin(by, r, gone).await,
                _ => error(ErrorCode::BadRequest, "not an admin request"),
            };
        };
        let op_name = req.kind();
        if self.state.is_paused() {
            let name = match &req {
                Request::Set { name, .. } | Request::Delete { name } => Some(name.as_str()),
                _ => None,
            };
            if matches!(
                req,
                Request::Set { .. } | Request::Delete { .. } | Request::List { .. }
            ) {
                return self.paused_refusal(peer, op_name, name);
            }
        }
        if req.is_admin() {
            return match self.decide(peer, Op::Admin) {
                Decision::Allow => self.admin(by, req, gone).await,
                d => self.refuse(peer, op_name, &[], d),
            };
        }
        let is_secret = matches!(
            req,
            Request::Get { .. }
                | Request::Set { .. }
                | Request::Delete { .. }
                | Request::List { .. }
        );
        if is_secret && self.is_deputy(peer) {
            // A deputy's own hash says nothing about who is using it: decide for the
            // program at the top of its caller chain.
            let name = match &req {
                Request::Get { name, .. }
                | Request::Set { name, .. }
                | Request::Delete { name } => Some(name.as_str()),
                _ => None,
            };
            let origin = match self.origin_of(peer, false).await {
                Ok(o) => o,
                Err(b) => return self.refuse_broken(peer, op_name, name, b),
            };
            return self.secret_request(&origin, req, gone).await;
        }
        self.secret_request(peer, req, gone).await
    }

    /// A secret request (or `whoami`) of the program it is decided for.
    async fn secret_request(&self, peer: &Peer, req: Request, gone: &Gone<'_>) -> Response {
        if !matches!(req, Request::Whoami {}) {
            // An update of a tool that follows its provenance is re-pinned first; one
            // that does not prove it is refused below, and says why.
            if let Err(why) = self.follow_update(peer).await {
                tracing::info!(hash = %peer.hash, %why, "an update did not prove its provenance");
            }
        }
        match req {
            Request::Whoami {} => Response::Identity(self.identity(peer)),
            Request::Get { name, wait_ms } => self.get(peer, &name, wait_ms, gone).await,
            Request::Set { name, value } => self.set(peer, &name, &value).await,
            Request::Delete { name } => self.delete(peer, &name).await,
            Request::List { offset } => self.list(peer, offset).await,
            _ => error(ErrorCode::BadRequest, "unexpected request"),
        }
    }

    /// An admin request, from the CLI (already verified) or a person on the desktop.
    async fn admin(&self, by: Actor<'_>, req: Request, gone: &Gone<'_>) -> Response {
        // A hash a person gave may be a prefix: made whole first, for every client.
        let req = match self.full_hashes(req) {
            Ok(r) => r,
            Err(u) => return u.into(),
        };
        match req {
            Request::Approve {
                hash,
                scopes,
                access,
                label,
                unbound_get,
                only_through,
                lasts,
                add_scopes,
                remove_scopes,
                follow,
                as_new,
            } => {
                let grant = Grant {
                    scopes,
                    access,
                    label,
                    unbound_get,
                    only_through,
                    lasts,
                    add_scopes,
                    remove_scopes,
                    follow,
                    as_new,
                };
                self.approve(by, hash, grant).await
            }
            Request::Register {
                path,
                scopes,
                access,
                label,
                unbound_get,
                only_through,
                lasts,
                follow,
            } => {
                let grant = Grant {
                    scopes,
                    access,
                    label,
                    unbound_get,
                    only_through,
                    lasts,
                    follow,
                    ..Grant::default()
                };
                self.register(by, &path, grant).await
            }
            Request::Deny { hash } => self.deny_hash(by, hash).await,
            Request::Undeny { hash } => self.undeny(by, hash).await,
            Request::ListDenied { offset } => self.list_denied(offset),
            Request::Revoke { tool } => self.revoke(by, tool).await,
            Request::Upgrade { path, expect } => self.upgrade(by, &path, expect.as_deref()).await,
            Request::SetPresence { presence } => self.set_presence(by, &presence).await,
            Request::Protect { name, protect } => self.protect(by, &name, protect).await,
            Request::Stored { name } => self.stored(by, &name),
            Request::GetForParent { name, wait_ms } => match by.peer() {
                Some(cli) => self.get_for_parent(cli, &name, wait_ms, gone).await,
                None => error(ErrorCode::BadRequest, "get_for_parent needs a calling CLI"),
            },
            Request::ListTools { offset } => self.list_tools(offset),
            Request::ListPending { offset } => self.list_pending(offset),
            Request::Names { offset } => self.names(offset).await,
            Request::Status {} => self.status(),
            Request::SetPaused { paused } => self.set_paused(by, paused).await,
            Request::Shutdown {} => Response::Ok,
            _ => error(ErrorCode::BadRequest, "not an admin request"),
        }
    }

    /// What policy knows about a peer.
    fn facts<'a>(&self, peer: &'a Peer) -> PeerFacts<'a> {
        PeerFacts {
            hash: &peer.hash,
            interpreter: peer.interpreter,
            no_script: peer.no_script.as_deref(),
            injection: peer.injection.as_deref(),
            admin: peer.injection.is_none()
                && peer.libraries.is_empty()
                && self.state.is_admin_hash(&peer.hash),
            unbound: match peer.output {
                Some(crate::peer::OutputBinding::Inheritable(fd)) => Some(fd),
                _ => None,
            },
            libraries: &peer.libraries,
            through: peer.through,
        }
    }

    /// Decides one operation of a peer with the current config.
    fn decide(&self, peer: &Peer, op: Op<'_>) -> Decision {
        let config = self.state.config();
        policy::decide(self.facts(peer), op, &config, &self.state.clock().rfc3339())
    }

    /// Decides; returns the refusal to send, or `None` to go ahead.
    fn gate(&self, peer: &Peer, op: Op<'_>, op_name: &str, name: &str) -> Option<Response> {
        match self.decide(peer, op) {
            Decision::Allow => None,
            d => Some(self.refuse(peer, op_name, &[name], d)),
        }
    }

    /// Writes the access line of a peer's request.
    fn audit_access(
        &self,
        peer: &Peer,
        op: &str,
        names: &[&str],
        decision: audit::Decision,
        reason: &str,
    ) {
        let e = Entry {
            decision: decision.into(),
            reason: reason.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ..access_entry(peer, Some(op))
        };
        let audit = self.state.audit();
        if decision != audit::Decision::Allow {
            return audit.refusal(e);
        }
        if matches!(op, "get" | "list") {
            // Reads are the hot path: their line may follow the answer.
            audit.record(e, false);
        } else {
            audit.write(e, false);
        }
    }

    /// An admin audit line: the CLI's pid and uid when the CLI asked, else where the
    /// person decided (`notification`, `tray`, `window`).
    fn admin_entry(&self, by: Actor<'_>, event: Event, reason: String) -> Entry {
        let peer = by.peer();
        Entry {
            event: event.into(),
            decision: audit::Decision::Ok.into(),
            reason,
            pid: peer.map(|p| p.pid),
            uid: peer.map(|p| p.uid),
            via: peer.is_none().then(|| by.via().to_string()),
            ..Entry::default()
        }
    }

    /// Applies a config change; a refusal becomes the error response.
    async fn change_config<T>(
        &self,
        change: impl FnOnce(&mut crate::config::Config) -> Result<T, Refusal>,
    ) -> Result<T, Response> {
        self.state
            .change_config(change)
            .await
            .map_err(Response::from)
    }
}

/// The start of an access audit line about a peer.
pub fn access_entry(peer: &Peer, op: Option<&str>) -> Entry {
    Entry {
        event: Event::Access.into(),
        pid: Some(peer.pid),
        uid: Some(peer.uid),
        // For a script, the script: the interpreter is in its identity, not its name.
        path: Some(
            peer.script
                .as_ref()
                .map_or_else(|| peer.path.clone(), |s| s.path.clone()),
        ),
        hash: Some(peer.hash.clone()),
        op: op.map(str::to_string),
        via: peer.via.clone(),
        ..Entry::default()
    }
}
