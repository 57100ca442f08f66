//! What each request does, once the server has framed it and re-checked the peer: ask
//! [`crate::policy::decide`], then read or write the store, the pending queue and the
//! config, and write the audit line. Admin changes are saved (atomically, durably) before
//! they are acknowledged, so an approval a client saw survives `kill -9`.

use crate::audit::Entry;
use crate::config::{Config, DenyRule, PendingFile, FILE_VERSION};
use crate::desktop::approver::{AdminAction, Answer};
use crate::peer::{is_interpreter, Peer};
use crate::pending::{Recorded, Sighting};
use crate::policy::{self, Decision, Op, PeerFacts};
use crate::server::{access_entry, error, server_name, Gone, State};
use keychain_auth_sdk::protocol::{
    validate_hash, validate_name, Access, ErrorBody, ErrorCode, Identity, Request, Response,
    Status, Tool, MAX_WAIT_MS,
};
use std::sync::Arc;
use std::time::Duration;

impl State {
    fn facts<'a>(&self, peer: &'a Peer) -> PeerFacts<'a> {
        PeerFacts {
            hash: &peer.hash,
            interpreter: peer.interpreter,
            no_script: peer.no_script.as_deref(),
            injection: peer.injection.as_deref(),
            admin: peer.injection.is_none()
                && peer.libraries.is_empty()
                && self.admin_hashes.contains(&peer.hash),
            unbound: match peer.output {
                Some(crate::peer::OutputBinding::Inheritable(fd)) => Some(fd),
                _ => None,
            },
            libraries: &peer.libraries,
        }
    }

    fn audit_access(&self, peer: &Peer, op: &str, names: &[&str], decision: &str, reason: &str) {
        let e = Entry {
            decision: decision.into(),
            reason: reason.into(),
            names: names.iter().map(|s| s.to_string()).collect(),
            ..access_entry(peer, Some(op))
        };
        if decision != "allow" {
            return self.audit_refusal(e);
        }
        if matches!(op, "get" | "list") {
            // Reads are the hot path: their line may follow the answer (see DEFERRED).
            self.audit(e, false);
        } else {
            self.write_audit(e, false);
        }
    }

    /// Answers one request from an identified peer.
    pub async fn handle(self: &Arc<Self>, peer: &Peer, req: Request) -> Response {
        self.handle_with(peer, req, &Gone::never()).await
    }

    /// [`State::handle`] for a request whose wait (`wait_ms`) ends when `gone` does:
    /// its client hung up.
    pub(crate) async fn handle_with(
        self: &Arc<Self>,
        peer: &Peer,
        req: Request,
        gone: &Gone<'_>,
    ) -> Response {
        let op_name = req.kind();
        if self.is_paused() {
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
            let config = self.config();
            match policy::decide(self.facts(peer), Op::Admin, &config, &self.clock.rfc3339()) {
                Decision::Allow => return self.admin(Actor::Cli(peer), req, gone).await,
                d => return self.refuse(peer, op_name, &[], d),
            }
        }
        match req {
            Request::Whoami {} => Response::Identity(self.identity(peer)),
            Request::Get { name, wait_ms } => self.get(peer, &name, wait_ms, gone).await,
            Request::Set { name, value } => {
                if let Err(e) = validate_name(&name) {
                    return error(ErrorCode::BadRequest, e.to_string());
                }
                if let Some(r) = self.gate(peer, Op::Set(&name), "set", &name) {
                    return r;
                }
                match self.store.set(&name, &value).await {
                    Ok(()) => {
                        self.audit_access(peer, "set", &[&name], "allow", "stored");
                        Response::Ok
                    }
                    Err(e) => self.store_error(peer, "set", &name, e),
                }
            }
            Request::Delete { name } => {
                if let Err(e) = validate_name(&name) {
                    return error(ErrorCode::BadRequest, e.to_string());
                }
                if let Some(r) = self.gate(peer, Op::Delete(&name), "delete", &name) {
                    return r;
                }
                match self.store.delete(&name).await {
                    Ok(true) => {
                        self.audit_access(peer, "delete", &[&name], "allow", "deleted");
                        Response::Ok
                    }
                    Ok(false) => {
                        self.audit_access(peer, "delete", &[&name], "not_found", "no such secret");
                        error(ErrorCode::NotFound, format!("no secret named {name:?}"))
                    }
                    Err(e) => self.store_error(peer, "delete", &name, e),
                }
            }
            Request::List { offset } => self.list(peer, offset).await,
            Request::Hello { .. } => error(ErrorCode::BadRequest, "hello was already sent"),
            _ => error(ErrorCode::BadRequest, "unexpected request"),
        }
    }

    /// The answer to a `get` that asked to wait when no room to wait is left (its binary,
    /// or the daemon, has as many requests waiting as allowed): queued and refused at
    /// once, as without `wait_ms`.
    fn refuse_crowded(&self, peer: &Peer, name: &str) -> Response {
        let mut r = self.refuse(peer, "get", &[name], Decision::NotApproved);
        if let Response::Error(b) = &mut r {
            b.message.push_str(&format!(
                " (not held: as many requests of this program, or of all programs, are already waiting as allowed: {} per program, {} in all)",
                crate::waits::PER_BINARY,
                self.waits.limit()
            ));
        }
        r
    }

    /// The answer to a secret request while keychain-auth is paused: refused and
    /// audited; nothing is queued or shown on the desktop.
    fn paused_refusal(&self, peer: &Peer, op: &str, name: Option<&str>) -> Response {
        let names: Vec<&str> = name.into_iter().collect();
        self.audit_access(peer, op, &names, "deny", "keychain-auth is paused");
        error(
            ErrorCode::Denied,
            "keychain-auth is paused: every secret request is refused until it is resumed (tray menu: Pause)",
        )
    }

    /// Decides; returns the refusal to send, or `None` to go ahead.
    fn gate(&self, peer: &Peer, op: Op<'_>, op_name: &str, name: &str) -> Option<Response> {
        let config = self.config();
        match policy::decide(self.facts(peer), op, &config, &self.clock.rfc3339()) {
            Decision::Allow => None,
            d => Some(self.refuse(peer, op_name, &[name], d)),
        }
    }

    fn refuse(&self, peer: &Peer, op: &str, names: &[&str], d: Decision) -> Response {
        let names: Vec<&str> = names.iter().copied().filter(|n| !n.is_empty()).collect();
        match d {
            Decision::Allow => Response::Ok,
            Decision::NotApproved => {
                self.queue_pending(peer, names.first().copied());
                self.audit_access(
                    peer,
                    op,
                    &names,
                    "not_approved",
                    "binary not approved; queued as pending",
                );
                // What approving grants by default: the scopes its hello asked for, else
                // the names it asked for; suggest a scope only in the second case.
                let asked_scopes = peer.wants.get().is_some_and(|w| !w.scopes.is_empty());
                let scope_hint = names
                    .first()
                    .filter(|_| !asked_scopes)
                    .map(|n| format!(" --scope '{}'", crate::scope::literal(n)))
                    .unwrap_or_default();
                Response::Error(ErrorBody {
                    code: ErrorCode::NotApproved,
                    message: format!(
                        "{} ({}) is not approved. It is waiting for your decision; approve it with: keychain-auth approve {}{scope_hint}{}",
                        describe(peer),
                        peer.hash,
                        peer.hash,
                        self.approver
                            .where_asked()
                            .map(|w| format!(" ({w})"))
                            .unwrap_or_default()
                    ),
                    hash: Some(peer.hash.clone()),
                    pending: Some(true),
                })
            }
            Decision::UnapprovedLibraries(paths) => {
                self.queue_pending(peer, names.first().copied());
                self.audit_access(
                    peer,
                    op,
                    &names,
                    "not_approved",
                    &format!(
                        "approved, but it runs code from files you can change that its approval does not name: {}",
                        paths.join(", ")
                    ),
                );
                Response::Error(ErrorBody {
                    code: ErrorCode::NotApproved,
                    message: format!(
                        "{} ({}) is approved, but it now runs code from files you can change that its approval does not name: {}. If you put them there, approve it again with: keychain-auth approve {}",
                        describe(peer),
                        peer.hash,
                        paths.join(", "),
                        peer.hash
                    ),
                    hash: Some(peer.hash.clone()),
                    pending: Some(true),
                })
            }
            Decision::Denied(reason) => {
                self.audit_access(peer, op, &names, "deny", &reason);
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
                    "out_of_scope",
                    "name outside the tool's scopes",
                );
                error(
                    ErrorCode::OutOfScope,
                    format!(
                        "{} is outside the scopes approved for this tool; widen them with keychain-auth approve {} --scope ...",
                        names.first().map(|n| format!("{n:?}")).unwrap_or_default(),
                        peer.hash
                    ),
                )
            }
            Decision::Forbidden(reason) => {
                self.audit_access(peer, op, &names, "forbidden", &reason);
                error(ErrorCode::Forbidden, reason)
            }
        }
    }

    fn store_error(
        &self,
        peer: &Peer,
        op: &str,
        name: &str,
        e: crate::store::StoreError,
    ) -> Response {
        self.audit_access(peer, op, &[name], "error", &e.to_string());
        error(ErrorCode::StoreUnavailable, e.to_string())
    }

    fn queue_pending(&self, peer: &Peer, name: Option<&str>) {
        let now = self.clock.rfc3339();
        let (recorded, entry) = {
            let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let r = q.record(&Sighting {
                hash: &peer.hash,
                path: &peer.path,
                name,
                interpreter: peer.interpreter,
                wants: peer.wants.get(),
                script: peer.script.as_ref(),
                signing: peer.signing.as_ref(),
                libraries: &peer.libraries,
                now: &now,
            });
            (r, q.get(&peer.hash).cloned())
        };
        self.save_pending();
        self.touched();
        if matches!(recorded, Recorded::New | Recorded::NewName) {
            let allowed = self
                .prompts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .allow(&peer.hash, std::time::Instant::now());
            if let Some(entry) = entry.filter(|_| allowed) {
                self.approver.pending_added(&entry);
            }
        }
    }

    fn identity(&self, peer: &Peer) -> Identity {
        let config = self.config();
        let facts = self.facts(peer);
        let tool = config.tool(&peer.hash);
        let status = if facts.admin {
            "admin"
        } else if config.is_denied(&peer.hash) {
            "denied"
        } else if peer.interpreter {
            "interpreter"
        } else if tool.is_some() {
            "approved"
        } else if self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer.hash)
            .is_some()
        {
            "pending"
        } else {
            "unknown"
        };
        Identity {
            hash: peer.hash.clone(),
            path: peer.path.clone(),
            status: status.into(),
            scopes: tool.map(|t| t.scopes.clone()).unwrap_or_default(),
            access: tool.map(|t| t.access),
            label: tool.map(|t| t.label.clone()),
            pid: peer.pid,
            script: peer.script.clone(),
        }
    }

    async fn get(
        self: &Arc<Self>,
        peer: &Peer,
        name: &str,
        wait_ms: Option<u64>,
        gone: &Gone<'_>,
    ) -> Response {
        if let Err(e) = validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(wait_ms.unwrap_or(0).min(MAX_WAIT_MS));
        // Room to wait, taken with the first wait and held until this request ends.
        let mut slot: Option<crate::waits::Slot> = None;
        let mut first = true;
        loop {
            if self.is_paused() {
                return self.paused_refusal(peer, "get", Some(name));
            }
            let config = self.config();
            let mut d = policy::decide(
                self.facts(peer),
                Op::Get(name),
                &config,
                &self.clock.rfc3339(),
            );
            let once = d == Decision::NotApproved && self.take_once(&peer.hash);
            if once {
                d = Decision::Allow;
            }
            if d == Decision::NotApproved && tokio::time::Instant::now() < deadline && first {
                slot = self.waits.take(&peer.hash);
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
                        "not_approved",
                        "binary not approved; waiting for a decision",
                    );
                    first = false;
                }
                // Lines about a request that waits join the log before the wait.
                self.flush_deferred();
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = tokio::time::sleep_until(deadline) => continue,
                    _ = gone.wait() => {
                        return error(
                            ErrorCode::BadRequest,
                            "the client hung up, or sent another request, while this one waited for a decision",
                        );
                    }
                }
                // The process may have changed while it waited.
                if let Err(e) = peer.recheck() {
                    self.audit_access(peer, "get", &[name], "deny", &e.to_string());
                    return error(ErrorCode::Denied, e.to_string());
                }
                continue;
            }
            if d != Decision::Allow {
                return self.refuse(peer, "get", &[name], d);
            }
            return match self.store.get(name).await {
                Ok(Some(value)) => {
                    let why = if once {
                        "served once (Allow once on the desktop)"
                    } else {
                        "served"
                    };
                    self.audit_access(peer, "get", &[name], "allow", why);
                    Response::Secret {
                        name: name.to_string(),
                        value,
                    }
                }
                Ok(None) => {
                    self.audit_access(peer, "get", &[name], "not_found", "no such secret");
                    error(ErrorCode::NotFound, format!("no secret named {name:?}"))
                }
                Err(e) => self.store_error(peer, "get", name, e),
            };
        }
    }

    async fn list(&self, peer: &Peer, offset: Option<u64>) -> Response {
        let config = self.config();
        let facts = self.facts(peer);
        match policy::decide(facts, Op::List, &config, &self.clock.rfc3339()) {
            Decision::Allow => {}
            d => return self.refuse(peer, "list", &[], d),
        }
        let all = match self.store.list().await {
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
            "allow",
            &format!("{} names", names.len()),
        );
        Response::Names { names, next }
    }

    /// Applies a config change: computes it from the current config, saves it durably,
    /// then publishes it. Returns what `change` returned.
    pub(crate) async fn change_config<T>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, Refusal>,
    ) -> Result<T, Response> {
        let _guard = self.config_write.lock().await;
        let mut next = (*self.config()).clone();
        let out = change(&mut next).map_err(|Refusal(code, msg)| error(code, msg))?;
        if let Err(e) = next.validate() {
            return Err(error(ErrorCode::BadRequest, e));
        }
        if let Err(e) = next.save(&self.paths.config) {
            return Err(error(ErrorCode::StoreUnavailable, e.to_string()));
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        self.changes.send_modify(|g| *g += 1);
        self.touched();
        Ok(out)
    }

    fn drop_pending(&self, hash: &str) -> Option<keychain_auth_sdk::protocol::PendingEntry> {
        let removed = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
        if removed.is_some() {
            self.save_pending();
            self.touched();
        }
        removed
    }

    /// The pending binaries, most recently seen last.
    pub(crate) fn pending_entries(&self) -> Vec<keychain_auth_sdk::protocol::PendingEntry> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries()
            .to_vec()
    }

    /// Writes pending.json. Saves take turns and each writes the queue as it is when its
    /// turn comes, so the file always ends with the newest queue, whichever of several
    /// requests saved last.
    fn save_pending(&self) {
        let _turn = self.pending_save.lock().unwrap_or_else(|p| p.into_inner());
        let file = PendingFile {
            version: FILE_VERSION,
            pending: self.pending_entries(),
        };
        if let Err(e) = file.save(&self.paths.pending) {
            tracing::error!("{e}");
        }
    }

    /// An admin audit line: the CLI's pid and uid when the CLI asked, else where the
    /// person decided (`notification`, `tray`, `window`).
    fn admin_entry(&self, by: Actor<'_>, event: &str, reason: String) -> Entry {
        let peer = by.peer();
        Entry {
            event: event.into(),
            decision: "ok".into(),
            reason,
            pid: peer.map(|p| p.pid),
            uid: peer.map(|p| p.uid),
            via: peer.is_none().then(|| by.via().to_string()),
            ..Entry::default()
        }
    }

    /// Answers an admin request from the CLI (already verified) or from the hosting app
    /// in-process.
    pub(crate) async fn admin(
        self: &Arc<Self>,
        by: Actor<'_>,
        req: Request,
        gone: &Gone<'_>,
    ) -> Response {
        let now = self.clock.rfc3339();
        match req {
            Request::Approve {
                hash,
                scopes,
                access,
                label,
                unbound_get,
            } => {
                if let Err(e) = validate_hash(&hash) {
                    return error(ErrorCode::BadRequest, e);
                }
                let entry = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&hash)
                    .cloned();
                let existing = self.config().tool(&hash).cloned();
                let path = match (&entry, &existing) {
                    (Some(e), _) => e.path.clone(),
                    (None, Some(t)) => t.path.clone(),
                    (None, None) => {
                        return error(
                            ErrorCode::NotFound,
                            format!("no pending binary has hash {hash}; see `keychain-auth list-pending`, or approve a binary by path with `keychain-auth register PATH --scope ...`"),
                        )
                    }
                };
                // A script run by an interpreter is approved as that script; the bare
                // interpreter never is.
                let script = entry
                    .as_ref()
                    .and_then(|e| e.script.clone())
                    .or_else(|| existing.as_ref().and_then(|t| t.script.clone()));
                let path = script.as_ref().map_or(path, |s| s.path.clone());
                if script.is_none()
                    && (entry.as_ref().is_some_and(|e| e.interpreter) || is_interpreter(&path))
                {
                    return error(
                        ErrorCode::Forbidden,
                        format!("{path} is a script interpreter; approving it would approve every script it runs"),
                    );
                }
                // Re-approving keeps what the tool had unless told otherwise; a new
                // tool gets what its hello asked for, else the names it asked for.
                let access = access
                    .or(existing.as_ref().map(|t| t.access))
                    .or(entry.as_ref().and_then(|e| e.requested_access));
                let label = label.or(existing.as_ref().map(|t| t.label.clone()));
                let unbound_get = unbound_get
                    .or(existing.as_ref().map(|t| t.unbound_get))
                    .unwrap_or(false);
                let scopes = if scopes.is_empty() {
                    existing
                        .as_ref()
                        .map(|t| t.scopes.clone())
                        .filter(|s| !s.is_empty())
                        .or_else(|| entry.as_ref().map(crate::pending::grants))
                        .unwrap_or_default()
                } else {
                    scopes
                };
                self.pin(
                    by,
                    Pin {
                        hash: hash.clone(),
                        path,
                        script,
                        scopes,
                        access,
                        label,
                        now,
                        via: by.via(),
                        event: "approve",
                        macos: entry
                            .as_ref()
                            .and_then(|e| e.macos.clone())
                            .or_else(|| existing.as_ref().and_then(|t| t.macos.clone())),
                        unbound_get,
                        libraries: pinned_libraries(existing.as_ref(), entry.as_ref()),
                    },
                )
                .await
            }
            Request::Register {
                path,
                scopes,
                access,
                label,
                unbound_get,
            } => {
                let (canonical, hash) = match self.hash_path(&path).await {
                    Ok(x) => x,
                    Err(r) => return r,
                };
                if is_interpreter(&canonical) {
                    return error(
                        ErrorCode::Forbidden,
                        format!("{canonical} is a script interpreter; approving it would approve every script it runs"),
                    );
                }
                self.pin(
                    by,
                    Pin {
                        hash,
                        path: canonical,
                        script: None,
                        scopes,
                        access,
                        label,
                        now,
                        via: by.via(),
                        event: "register",
                        macos: None,
                        unbound_get: unbound_get.unwrap_or(false),
                        libraries: Vec::new(),
                    },
                )
                .await
            }
            Request::Deny { hash } => {
                if let Err(e) = validate_hash(&hash) {
                    return error(ErrorCode::BadRequest, e);
                }
                self.deny(by, hash, now).await
            }
            Request::Revoke { tool } => {
                let t = tool.clone();
                let res = self
                    .change_config(move |c| {
                        let matches: Vec<usize> = c
                            .tools
                            .iter()
                            .enumerate()
                            .filter(|(_, x)| x.hash == t || x.label == t)
                            .map(|(i, _)| i)
                            .collect();
                        match matches.as_slice() {
                            [i] => Ok(c.tools.remove(*i)),
                            [] => Err(Refusal(ErrorCode::NotFound, format!("no approved tool has hash or label {t:?}; see `keychain-auth list`"))),
                            _ => Err(Refusal(ErrorCode::BadRequest, format!("several tools are labelled {t:?}; revoke by hash"))),
                        }
                    })
                    .await;
                match res {
                    Ok(removed) => {
                        let mut e =
                            self.admin_entry(by, "revoke", format!("revoked {}", removed.label));
                        e.hash = Some(removed.hash);
                        e.path = Some(removed.path);
                        e.scopes = removed.scopes;
                        self.audit(e, true);
                        Response::Ok
                    }
                    Err(r) => r,
                }
            }
            Request::Upgrade { path } => self.upgrade(by, &path, now).await,
            Request::Stored { name } => {
                if let Err(e) = validate_name(&name) {
                    return error(ErrorCode::BadRequest, e.to_string());
                }
                self.store.changed_elsewhere(&name);
                match by.peer() {
                    Some(cli) => self.audit_access(
                        cli,
                        "set",
                        &[&name],
                        "allow",
                        "stored (the keychain-auth CLI wrote the value to the store itself)",
                    ),
                    None => return error(ErrorCode::BadRequest, "stored needs a calling CLI"),
                }
                self.touched();
                Response::Ok
            }
            Request::GetForParent { name, wait_ms } => match by.peer() {
                Some(cli) => self.get_for_parent(cli, &name, wait_ms, gone).await,
                None => error(ErrorCode::BadRequest, "get_for_parent needs a calling CLI"),
            },
            Request::ListTools { offset } => {
                let (tools, next) = page(&self.config().tools, offset);
                Response::Tools { tools, next }
            }
            Request::ListPending { offset } => {
                let all = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entries()
                    .to_vec();
                let (pending, next) = page(&all, offset);
                Response::Pending { pending, next }
            }
            Request::Names { offset } => match self.store.list().await {
                Ok(all) => {
                    let (names, next) = page(&all, offset);
                    Response::Names { names, next }
                }
                Err(e) => error(ErrorCode::StoreUnavailable, e.to_string()),
            },
            Request::Status {} => {
                // The file must reach the line reported: `audit verify` checks it does.
                let (seq, head) = self.flush_audit();
                Response::Status(Status {
                    server: server_name(),
                    pid: std::process::id(),
                    store: self.store.kind().into(),
                    socket: self.paths.socket.display().to_string(),
                    tools: self.config().tools.len(),
                    pending: self
                        .pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entries()
                        .len(),
                    audit_seq: seq,
                    audit_head: head,
                    ptrace_scope: Some(crate::ptrace::Scope::read().wire()),
                })
            }
            Request::Shutdown {} => Response::Ok,
            _ => error(ErrorCode::BadRequest, "not an admin request"),
        }
    }

    /// Records a deny rule for a hash (and drops any approval and pending entry for it).
    async fn deny(&self, by: Actor<'_>, hash: String, now: String) -> Response {
        let pending_path = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&hash)
            .map(|e| e.path.clone());
        let h = hash.clone();
        let res = self
            .change_config(move |c| {
                let path = pending_path
                    .or_else(|| c.tool(&h).map(|t| t.path.clone()))
                    .unwrap_or_default();
                c.tools.retain(|t| t.hash != h);
                if !c.is_denied(&h) {
                    c.denied.push(DenyRule {
                        hash: h.clone(),
                        path: path.clone(),
                        at: now,
                    });
                }
                Ok(path)
            })
            .await;
        match res {
            Ok(path) => {
                self.drop_pending(&hash);
                let mut e = self.admin_entry(by, "deny", "denied by the user".into());
                e.hash = Some(hash);
                e.path = Some(path);
                self.audit(e, true);
                Response::Ok
            }
            Err(r) => r,
        }
    }

    /// A decision made on the desktop: approve a pending binary with what it asked for
    /// (the scopes of its hello, else the names it asked for), or deny it.
    /// `via` says where: `notification`, `tray` or `window`.
    pub async fn decide_on_desktop(
        &self,
        via: &'static str,
        hash: &str,
        answer: Answer,
    ) -> Response {
        let by = Actor::Desktop(via);
        let now = self.clock.rfc3339();
        match answer {
            Answer::Deny => return self.deny(by, hash.to_string(), now).await,
            Answer::AllowOnce => {
                self.once
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(hash.to_string(), std::time::Instant::now());
                self.changes.send_modify(|n| *n += 1);
                return Response::Ok;
            }
            Answer::Approve => {}
        }
        let entry = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .cloned();
        let Some(entry) = entry else {
            return error(ErrorCode::NotFound, format!("{hash} is no longer pending"));
        };
        if entry.interpreter {
            return error(
                ErrorCode::Forbidden,
                "a script interpreter is never approved as a whole binary",
            );
        }
        let scopes = crate::pending::grants(&entry);
        let path = entry
            .script
            .as_ref()
            .map_or_else(|| entry.path.clone(), |s| s.path.clone());
        self.pin(
            by,
            Pin {
                hash: hash.to_string(),
                path,
                script: entry.script.clone(),
                scopes,
                access: entry.requested_access,
                label: None,
                now,
                via,
                event: "approve",
                macos: entry.macos.clone(),
                unbound_get: self.config().tool(hash).is_some_and(|t| t.unbound_get),
                libraries: pinned_libraries(self.config().tool(hash), Some(&entry)),
            },
        )
        .await
    }

    /// Consumes an "Allow once" for a hash, if one was given in the last two minutes.
    fn take_once(&self, hash: &str) -> bool {
        let mut once = self.once.lock().unwrap_or_else(|p| p.into_inner());
        once.retain(|_, at| at.elapsed() < Duration::from_secs(120));
        once.remove(hash).is_some()
    }

    /// Writes what the desktop notifier reports to the audit log.
    /// Ignored (forged) clicks are refusals: a flood of them is counted, not each
    /// written (see [`crate::repeats`]).
    pub fn note_desktop(&self, reason: String, decision: &str, hash: Option<String>) {
        let e = Entry {
            event: "notification".into(),
            decision: decision.into(),
            reason,
            hash,
            ..Entry::default()
        };
        if decision == "deny" {
            self.audit_refusal(e);
        } else {
            self.audit(e, false);
        }
    }

    /// `keychain-auth get`: the CLI (already verified by hash) asks for the process that
    /// started it. That parent is identified with the same recipe as a connecting peer
    /// (pidfd, /proc, hash, tamper signals, script identity) and the request is decided,
    /// queued and audited as the parent's own `get`.
    async fn get_for_parent(
        self: &Arc<Self>,
        cli: &Peer,
        name: &str,
        wait_ms: Option<u64>,
        gone: &Gone<'_>,
    ) -> Response {
        let seed = match cli.parent() {
            Ok(s) => s,
            Err(e) => {
                return error(
                    ErrorCode::Denied,
                    format!("cannot identify the program that ran keychain-auth get: {e}"),
                )
            }
        };
        let st = self.clone();
        let parent = match tokio::task::spawn_blocking(move || seed.identify(&st.cache, true)).await
        {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                return error(
                    ErrorCode::Denied,
                    format!("cannot identify the program that ran keychain-auth get: {e}"),
                )
            }
            Err(e) => return error(ErrorCode::Denied, format!("identification failed: {e}")),
        };
        let parent = Peer {
            via: Some(format!("keychain-auth get (pid {})", cli.pid)),
            ..parent
        };
        if self.admin_hashes.contains(&parent.hash) {
            return self.refuse(
                &parent,
                "get",
                &[name],
                Decision::Forbidden("keychain-auth get was run by keychain-auth itself".into()),
            );
        }
        if parent.interpreter && parent.injection.is_none() {
            let why = parent.no_script.as_deref().unwrap_or("runs no script file");
            let msg = format!(
                "keychain-auth get was run by {}, a script interpreter; {why}. An interpreter is never approved as a whole (every command run in it could then read the secret). Put the command in a script file and run that (for example `bash ./fetch-token.sh`): the script is identified as interpreter + script path + script hash and can be approved",
                parent.path
            );
            return self.refuse(&parent, "get", &[name], Decision::Denied(msg));
        }
        if let Some(crate::peer::OutputBinding::Elsewhere(why)) = &parent.output {
            let msg = format!(
                "keychain-auth get was run by {}, but {why}. It writes the value only into a pipe that the program that ran it reads, for example `token=$(keychain-auth get NAME)`",
                describe(&parent)
            );
            return self.refuse(&parent, "get", &[name], Decision::Denied(msg));
        }
        let mut answer = self.get(&parent, name, wait_ms, gone).await;
        if let (Response::Error(b), Some(crate::peer::OutputBinding::Inheritable(_))) =
            (&mut answer, &parent.output)
        {
            if b.code == ErrorCode::NotApproved {
                b.message.push_str(" It holds the output of keychain-auth get without close-on-exec, as shells do: approve it with --allow-unbound-get for keychain-auth get to serve it (docs/threat-model.md says what that allows).");
            }
        }
        answer
    }

    async fn hash_path(self: &Arc<Self>, path: &str) -> Result<(String, String), Response> {
        let p = std::path::PathBuf::from(path);
        if !p.is_absolute() {
            return Err(error(
                ErrorCode::BadRequest,
                format!("{path:?} is not an absolute path"),
            ));
        }
        let st = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let canonical = std::fs::canonicalize(&p)?;
            let f = std::fs::File::open(&canonical)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let (hash, _) = st.cache.hash_file(&f)?;
            Ok((canonical.display().to_string(), hash))
        })
        .await;
        match res {
            Ok(Ok(x)) => Ok(x),
            Ok(Err(e)) => Err(error(
                ErrorCode::BadRequest,
                format!("cannot hash {path}: {e}"),
            )),
            Err(e) => Err(error(
                ErrorCode::StoreUnavailable,
                format!("hashing failed: {e}"),
            )),
        }
    }

    async fn pin(&self, by: Actor<'_>, p: Pin) -> Response {
        if p.scopes.is_empty() {
            return error(
                ErrorCode::BadRequest,
                "no scope given and the binary asked for no secret name; pass --scope 'PATTERN'",
            );
        }
        for s in &p.scopes {
            if let Err(e) = crate::scope::validate(s) {
                return error(ErrorCode::BadRequest, e);
            }
        }
        if !self.approver.confirm(AdminAction::Approve(&p.hash)) {
            return error(ErrorCode::Denied, "the approval was not confirmed");
        }
        let label = p
            .label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| {
                let base = p.path.strip_suffix(" (deleted)").unwrap_or(&p.path);
                base.rsplit('/').next().unwrap_or(base).to_string()
            });
        let tool = Tool {
            hash: p.hash.clone(),
            label,
            path: p.path.clone(),
            scopes: p.scopes.clone(),
            access: p.access.unwrap_or(Access::Read),
            approved_at: p.now.clone(),
            approved_via: p.via.into(),
            expires_at: None,
            script: p.script.clone(),
            parent: None,
            macos: p.macos.clone(),
            unbound_get: p.unbound_get,
            libraries: p.libraries.clone(),
        };
        let t = tool.clone();
        let res = self
            .change_config(move |c| {
                c.denied.retain(|d| d.hash != t.hash);
                match c.tools.iter_mut().find(|x| x.hash == t.hash) {
                    Some(slot) => *slot = t,
                    None => c.tools.push(t),
                }
                Ok(())
            })
            .await;
        if let Err(r) = res {
            return r;
        }
        self.drop_pending(&p.hash);
        let mut e = self.admin_entry(
            by,
            p.event,
            format!("approved {} ({})", tool.label, tool.access),
        );
        e.hash = Some(tool.hash.clone());
        e.path = Some(tool.path.clone());
        e.scopes = tool.scopes.clone();
        self.audit(e, true);
        Response::Tool {
            tool,
            previous_hash: None,
        }
    }

    async fn upgrade(self: &Arc<Self>, by: Actor<'_>, path: &str, now: String) -> Response {
        let (canonical, hash) = match self.hash_path(path).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !self.approver.confirm(AdminAction::Upgrade(&hash)) {
            return error(ErrorCode::Denied, "the upgrade was not confirmed");
        }
        // A script tool is re-pinned to its script's new contents and to its interpreter
        // as it is now (an updated python3 changes every script identity it runs).
        // Its pinned startup files are re-pinned to their contents as they are now.
        let (interpreter, startup) = self
            .config()
            .tools
            .iter()
            .find(|t| t.path == canonical || t.path == path)
            .and_then(|t| t.script.as_ref())
            .map(|s| (Some(s.interpreter.clone()), s.startup.clone()))
            .unwrap_or_default();
        let interpreter_hash = match interpreter {
            Some(i) => match self.hash_path(&i).await {
                Ok((_, h)) => Some(h),
                Err(r) => return r,
            },
            None => None,
        };
        let mut startup_now = Vec::with_capacity(startup.len());
        for f in startup {
            if !std::path::Path::new(&f.path).exists() {
                // Gone since: no longer read at startup.
                continue;
            }
            match self.hash_path(&f.path).await {
                Ok((_, hash)) => {
                    startup_now.push(keychain_auth_sdk::protocol::PinnedFile { path: f.path, hash })
                }
                Err(r) => return r,
            }
        }
        let (given, canon, file_hash) = (path.to_string(), canonical.clone(), hash.clone());
        let res = self
            .change_config(move |c| {
                let i = c
                    .tools
                    .iter()
                    .position(|t| t.path == canon || t.path == given)
                    .ok_or_else(|| {
                        Refusal(
                            ErrorCode::NotFound,
                            format!("no approved tool has path {given}; approve it first with `keychain-auth register {given} --scope ...`"),
                        )
                    })?;
                let old = c.tools[i].hash.clone();
                let mut script = c.tools[i].script.clone();
                let new_hash = match (&mut script, &interpreter_hash) {
                    (Some(s), Some(ih)) => {
                        s.hash = file_hash.clone();
                        s.path = canon.clone();
                        s.interpreter_hash = ih.clone();
                        s.startup = startup_now.clone();
                        crate::peer::script_identity_hash(s)
                    }
                    _ => file_hash.clone(),
                };
                if old == new_hash {
                    return Ok((c.tools[i].clone(), old));
                }
                if c.tools.iter().any(|t| t.hash == new_hash) {
                    return Err(Refusal(
                        ErrorCode::BadRequest,
                        format!("{new_hash} is already approved as another tool; revoke one of them first"),
                    ));
                }
                c.tools[i].hash = new_hash.clone();
                c.tools[i].path = canon.clone();
                c.tools[i].script = script;
                c.tools[i].approved_at = now;
                c.denied.retain(|d| d.hash != new_hash);
                Ok((c.tools[i].clone(), old))
            })
            .await;
        match res {
            Ok((tool, old)) => {
                if old != tool.hash {
                    self.drop_pending(&tool.hash);
                    let mut e = self.admin_entry(
                        by,
                        "upgrade",
                        format!("re-pinned {}: {old} -> {}", tool.label, tool.hash),
                    );
                    e.hash = Some(tool.hash.clone());
                    e.old_hash = Some(old.clone());
                    e.path = Some(tool.path.clone());
                    e.scopes = tool.scopes.clone();
                    self.audit(e, true);
                }
                Response::Tool {
                    tool,
                    previous_hash: Some(old),
                }
            }
            Err(r) => r,
        }
    }
}

/// Bytes of items one page may carry: the rest of the 64 KiB frame is left for the
/// envelope, so any list fits in frames however long it grows.
const PAGE_BUDGET: usize = 48 * 1024;

/// The items from `offset` on that fit in one page, and the offset of the next page.
/// A page always holds at least one item (items are bounded well below a frame).
fn page<T: Clone + serde::Serialize>(items: &[T], offset: Option<u64>) -> (Vec<T>, Option<u64>) {
    let start = (offset.unwrap_or(0) as usize).min(items.len());
    let mut used = 0;
    let mut out = Vec::new();
    for item in &items[start..] {
        let size = serde_json::to_vec(item)
            .map(|v| v.len() + 1)
            .unwrap_or(usize::MAX);
        if !out.is_empty() && used + size > PAGE_BUDGET {
            break;
        }
        used = used.saturating_add(size);
        out.push(item.clone());
    }
    let end = start + out.len();
    let next = (end < items.len()).then_some(end as u64);
    (out, next)
}

/// Why a config change was refused (kept small; turned into an error response).
pub(crate) struct Refusal(pub(crate) ErrorCode, pub(crate) String);

/// How a peer is named to a person: its executable, or for a script the script and
/// what runs it.
fn describe(peer: &Peer) -> String {
    match &peer.script {
        Some(s) => format!("the script {} (run by {})", s.path, s.interpreter),
        None => peer.path.clone(),
    }
}

/// Who makes an admin change.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Actor<'a> {
    /// The keychain-auth CLI, verified by hash.
    Cli(&'a Peer),
    /// A person on the desktop: `notification`, `tray` or `window`.
    Desktop(&'static str),
}

impl Actor<'_> {
    fn peer(&self) -> Option<&Peer> {
        match self {
            Actor::Cli(p) => Some(p),
            Actor::Desktop(_) => None,
        }
    }

    fn via(&self) -> &'static str {
        match self {
            Actor::Cli(_) => "cli",
            Actor::Desktop(v) => v,
        }
    }
}

struct Pin {
    hash: String,
    path: String,
    script: Option<keychain_auth_sdk::protocol::ScriptIdentity>,
    scopes: Vec<String>,
    access: Option<Access>,
    label: Option<String>,
    now: String,
    via: &'static str,
    event: &'static str,
    /// macOS code-signing facts seen when it was pending.
    macos: Option<serde_json::Value>,
    /// See `Tool::unbound_get`.
    unbound_get: bool,
    /// See `Tool::libraries`.
    libraries: Vec<keychain_auth_sdk::protocol::PinnedFile>,
}

/// The libraries an approval pins: those it had, and those seen since (its pending
/// entry), each hash once.
fn pinned_libraries(
    had: Option<&Tool>,
    seen: Option<&keychain_auth_sdk::protocol::PendingEntry>,
) -> Vec<keychain_auth_sdk::protocol::PinnedFile> {
    let mut out: Vec<keychain_auth_sdk::protocol::PinnedFile> = Vec::new();
    for l in had
        .into_iter()
        .flat_map(|t| t.libraries.iter())
        .chain(seen.into_iter().flat_map(|e| e.libraries.iter()))
    {
        if !out.iter().any(|o| o.hash == l.hash) {
            out.push(l.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{page, PAGE_BUDGET};

    #[test]
    fn pages_cover_everything_once_and_stay_under_budget() {
        let items: Vec<String> = (0..5000)
            .map(|i| format!("name/{i:05}/{}", "x".repeat(i % 300)))
            .collect();
        let mut seen = Vec::new();
        let mut offset = None;
        let mut pages = 0;
        loop {
            let (chunk, next) = page(&items, offset);
            assert!(!chunk.is_empty());
            assert!(serde_json::to_vec(&chunk).expect("json").len() <= PAGE_BUDGET + 2);
            seen.extend(chunk);
            pages += 1;
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
        assert!(pages > 1);
        let (rest, next) = page(&items, Some(1_000_000));
        assert!(
            rest.is_empty() && next.is_none(),
            "an offset past the end is an empty last page"
        );
    }
}
