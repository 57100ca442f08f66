//! Requests about secrets: `get` (which may wait for a person's decision), `set`,
//! `delete`, `list`, the CLI's `get_for_parent` (`keychain-auth get` asking for the
//! program that ran it) and `stored` (the CLI wrote a value to the store itself).

use super::info::page;
use super::refusals::describe;
use super::{error, Actor, Daemon, Gone};
use crate::audit;
use crate::peer::{OutputBinding, Peer};
use crate::policy::{self, Decision, Op};
use keychain_auth_sdk::protocol::{validate_name, ErrorCode, Response, MAX_WAIT_MS};
use std::time::Duration;

impl Daemon {
    pub(super) async fn set(
        &self,
        peer: &Peer,
        name: &str,
        value: &keychain_auth_sdk::Secret,
    ) -> Response {
        if let Err(e) = validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        if let Some(r) = self.gate(peer, Op::Set(name), "set", name) {
            return r;
        }
        match self.state.store().set(name, value).await {
            Ok(()) => {
                self.audit_access(peer, "set", &[name], audit::Decision::Allow, "stored");
                Response::Ok
            }
            Err(e) => self.store_error(peer, "set", name, e),
        }
    }

    pub(super) async fn delete(&self, peer: &Peer, name: &str) -> Response {
        if let Err(e) = validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        if let Some(r) = self.gate(peer, Op::Delete(name), "delete", name) {
            return r;
        }
        match self.state.store().delete(name).await {
            Ok(true) => {
                self.audit_access(peer, "delete", &[name], audit::Decision::Allow, "deleted");
                Response::Ok
            }
            Ok(false) => {
                self.audit_access(
                    peer,
                    "delete",
                    &[name],
                    audit::Decision::NotFound,
                    "no such secret",
                );
                error(ErrorCode::NotFound, format!("no secret named {name:?}"))
            }
            Err(e) => self.store_error(peer, "delete", name, e),
        }
    }

    /// A `get`; with `wait_ms`, a program not approved yet waits (up to that long) for a
    /// person's decision, and the wait ends early when its client goes (`gone`).
    pub(super) async fn get(
        &self,
        peer: &Peer,
        name: &str,
        wait_ms: Option<u64>,
        gone: &Gone<'_>,
    ) -> Response {
        if let Err(e) = validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        let st = &self.state;
        let mut changes = st.configs().watch();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
        // Room to wait, taken with the first wait and held until this request ends.
        let mut slot: Option<crate::capacity::Slot> = None;
        let mut first = true;
        loop {
            if st.is_paused() {
                return self.paused_refusal(peer, "get", Some(name));
            }
            let mut d = self.decide(peer, Op::Get(name));
            let once = d == Decision::NotApproved && st.pending().take_once(&peer.hash);
            if once {
                d = Decision::Allow;
            }
            if d == Decision::NotApproved && tokio::time::Instant::now() < deadline && first {
                slot = st.waits().take(&peer.hash);
                if slot.is_none() {
                    // No room: answered at once, like a request that does not wait.
                    return self.refuse_crowded(peer, name);
                }
            }
            if d == Decision::NotApproved
                && tokio::time::Instant::now() < deadline
                && slot.is_some()
            {
                if first {
                    // Queue (and notify) once, then wait for the user's decision.
                    self.queue_pending(peer, Some(name));
                    self.audit_access(
                        peer,
                        "get",
                        &[name],
                        audit::Decision::NotApproved,
                        "binary not approved; waiting for a decision",
                    );
                    first = false;
                }
                // Lines about a request that waits join the log before the wait.
                st.audit().flush_deferred();
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep_until(deadline) => continue,
                    _ = gone.wait() => {
                        st.approver().withdraw(&peer.hash);
                        return error(
                            ErrorCode::BadRequest,
                            "the client hung up, or sent another request, while this one waited for a decision",
                        );
                    }
                }
                // The process may have changed while it waited.
                if let Err(e) = peer.recheck() {
                    self.audit_access(peer, "get", &[name], audit::Decision::Deny, &e.to_string());
                    return error(ErrorCode::Denied, e.to_string());
                }
                continue;
            }
            if d != Decision::Allow {
                let r = self.refuse(peer, "get", &[name], d);
                if !first {
                    // The request the notification was about has ended undecided.
                    st.approver().withdraw(&peer.hash);
                }
                return r;
            }
            // A secret marked confirm: always is read only once the person proved it.
            let proven = if st.config().is_protected(name) {
                match self.prove_read(peer, name).await {
                    Ok(p) => Some(p),
                    Err(r) => return r,
                }
            } else {
                None
            };
            return match st.store().get(name).await {
                Ok(Some(value)) => {
                    // The program (and its caller chain) may have changed while the
                    // store answered.
                    if let Err(e) = peer.recheck() {
                        self.audit_access(
                            peer,
                            "get",
                            &[name],
                            audit::Decision::Deny,
                            &e.to_string(),
                        );
                        return error(ErrorCode::Denied, e.to_string());
                    }
                    let why = match (once, proven) {
                        (true, _) => "served once (Allow once on the desktop)",
                        (false, Some(_)) => "served (protected: the person proved it)",
                        (false, None) => "served",
                    };
                    if let Some(p) = proven {
                        let mut e = crate::handlers::access_entry(peer, Some("get"));
                        e.decision = audit::Decision::Allow.into();
                        e.reason = why.into();
                        e.names = vec![name.to_string()];
                        e.presence = Some(p.into());
                        st.audit().write(e, true);
                    } else {
                        self.audit_access(peer, "get", &[name], audit::Decision::Allow, why);
                    }
                    Response::Secret {
                        name: name.to_string(),
                        value,
                    }
                }
                Ok(None) => {
                    self.audit_access(
                        peer,
                        "get",
                        &[name],
                        audit::Decision::NotFound,
                        "no such secret",
                    );
                    error(ErrorCode::NotFound, format!("no secret named {name:?}"))
                }
                Err(e) => self.store_error(peer, "get", name, e),
            };
        }
    }

    /// The names a peer may see, a page at a time.
    pub(super) async fn list(&self, peer: &Peer, offset: Option<u64>) -> Response {
        let config = self.state.config();
        let facts = self.facts(peer);
        match policy::decide(facts, Op::List, &config, &self.state.clock().rfc3339()) {
            Decision::Allow => {}
            d => return self.refuse(peer, "list", &[], d),
        }
        let all = match self.state.store().list().await {
            Ok(n) => n,
            Err(e) => return self.store_error(peer, "list", "", e),
        };
        let names = match config.tool(&peer.hash) {
            Some(tool) if !facts.admin => policy::visible_names(tool, all),
            _ if facts.admin => all,
            _ => Vec::new(),
        };
        let (names, next) = page(&names, offset);
        self.audit_access(
            peer,
            "list",
            &[],
            audit::Decision::Allow,
            &format!("{} names", names.len()),
        );
        Response::Names { names, next }
    }

    /// The CLI wrote a value to the store itself (`keychain-auth set`): caches forget
    /// the name, and the write is audited as the CLI's.
    pub(super) fn stored(&self, by: Actor<'_>, name: &str) -> Response {
        if let Err(e) = validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        self.state.store().changed_elsewhere(name);
        match by.peer() {
            Some(cli) => self.audit_access(
                cli,
                "set",
                &[name],
                audit::Decision::Allow,
                "stored (the keychain-auth CLI wrote the value to the store itself)",
            ),
            None => return error(ErrorCode::BadRequest, "stored needs a calling CLI"),
        }
        self.state.touched();
        Response::Ok
    }

    /// `keychain-auth get`: the CLI (already verified by hash) asks for the program that
    /// started it: the origin of its caller chain (through inline shells and git), each
    /// program identified with the same recipe as a connecting peer (pidfd, /proc, hash,
    /// tamper signals, script identity), and the first one up the chain that reads the
    /// CLI's output judged on how it holds it. The request is decided, queued and
    /// audited as the origin's own `get`.
    pub(super) async fn get_for_parent(
        &self,
        cli: &Peer,
        name: &str,
        wait_ms: Option<u64>,
        gone: &Gone<'_>,
    ) -> Response {
        let parent = match self.origin_of(cli, true).await {
            Ok(p) => p,
            Err(b) => return self.refuse_broken(cli, "get", Some(name), b),
        };
        let parent: &Peer = &parent;
        if self.state.is_admin_hash(&parent.hash) {
            return self.refuse(
                parent,
                "get",
                &[name],
                Decision::Forbidden("keychain-auth get was run by keychain-auth itself".into()),
            );
        }
        if parent.interpreter && parent.injection.is_none() {
            let why = parent.no_script.as_deref().unwrap_or("runs no script file");
            let msg = format!(
                "keychain-auth get was run by {}, a script interpreter; {why}. {} Put the command in a script file and run that (for example `bash ./fetch-token.sh`): the script is identified as interpreter + script path + script hash and can be approved",
                parent.path,
                policy::WHOLE_INTERPRETER,
            );
            return self.refuse(parent, "get", &[name], Decision::Denied(msg));
        }
        if let Some(OutputBinding::Elsewhere(why)) = &parent.output {
            let msg = format!(
                "keychain-auth get was run by {}, but {why}. It writes the value only into a pipe that the program that ran it reads, for example `token=$(keychain-auth get NAME)`",
                describe(parent)
            );
            return self.refuse(parent, "get", &[name], Decision::Denied(msg));
        }
        let mut answer = self.get(parent, name, wait_ms, gone).await;
        if let (Response::Error(b), Some(OutputBinding::Inheritable(_))) =
            (&mut answer, &parent.output)
        {
            if b.code == ErrorCode::NotApproved {
                b.message.push_str(" It holds the output of keychain-auth get without close-on-exec, as shells do: approve it with --allow-unbound-get for keychain-auth get to serve it (docs/threat-model.md says what that allows).");
            }
        }
        answer
    }
}
