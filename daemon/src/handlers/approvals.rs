//! Requests that change what is approved: approve (a pending hash), register (a binary
//! by path), deny, revoke, scope edits, and a person's answers on the desktop (Approve,
//! Allow once, Deny); re-pinning after an update is [`super::upgrade`]. Each is saved
//! durably before it is acknowledged and audited with who decided ([`Actor`]).

use super::changes::{approved_scopes, changes, note_replaced, ScopeEdit};
use super::{error, Actor, Daemon};
use crate::audit::{Decision, Event};
use crate::config::DenyRule;
use crate::desktop::approver::Answer;
use crate::naming::base_name;
use crate::policy;
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{
    Access, Deputy, ErrorCode, Hash, Lasts, PendingEntry, PinnedFile, Response, ScriptIdentity,
    Tool,
};

/// What an approval pins.
struct Pin {
    hash: String,
    path: String,
    script: Option<ScriptIdentity>,
    scopes: Vec<String>,
    access: Option<Access>,
    label: Option<String>,
    event: Event,
    /// macOS code-signing facts seen when it was pending.
    macos: Option<serde_json::Value>,
    /// See `Tool::unbound_get`.
    unbound_get: bool,
    /// See `Tool::libraries`.
    libraries: Vec<PinnedFile>,
    /// See `Tool::terminal_session`.
    terminal_session: bool,
    /// See `Tool::only_through`.
    only_through: Option<Deputy>,
    /// See `Tool::chain`.
    chain: Option<String>,
    /// See `Tool::expires_at`.
    expires_at: Option<String>,
    /// See `Tool::until_logout`.
    until_logout: bool,
    /// See `Tool::follow`.
    follow: Option<keychain_auth_sdk::protocol::Follow>,
}

/// What an `approve` or `register` grants, as asked.
#[derive(Debug, Default)]
pub struct Grant {
    /// Glob patterns over names; empty: what it asked for (approve), or none.
    pub scopes: Vec<String>,
    /// `read` or `read-write`.
    pub access: Option<Access>,
    /// Display name.
    pub label: Option<String>,
    /// See `Tool::unbound_get`; absent keeps what an approved tool had.
    pub unbound_get: Option<bool>,
    /// See `Tool::only_through`; absent keeps what an approved tool had.
    pub only_through: Option<Deputy>,
    /// How long it lasts; absent keeps what an approved tool had (approve), else always.
    pub lasts: Option<Lasts>,
    /// Patterns added to an approved tool's scopes, the others kept (approve only).
    pub add_scopes: Vec<String>,
    /// Patterns taken off an approved tool's scopes (approve only).
    pub remove_scopes: Vec<String>,
    /// Follow the tool's updates proven by this provenance; absent keeps what an
    /// approved tool had.
    pub follow: Option<keychain_auth_sdk::protocol::FollowKind>,
    /// Approve an update of an approved tool as a tool of its own.
    pub as_new: bool,
}

/// The answer to an approve of a hash denied before it ever asked: what it is (its
/// path) is unknown, so it cannot be approved by hash.
fn denied_unseen(hash: &str) -> Response {
    error(
        ErrorCode::NotFound,
        format!("{hash} is denied, but it was denied before it ever asked, so what it is is unknown: lift the deny with `keychain-auth undeny {hash}` (it is then asked about when it next asks), or approve the file by path with `keychain-auth register PATH --scope 'PATTERN'`"),
    )
}

/// The libraries an approval pins: those it had, and those seen since (its pending
/// entry), each hash once.
fn pinned_libraries(had: Option<&Tool>, seen: Option<&PendingEntry>) -> Vec<PinnedFile> {
    let mut out: Vec<PinnedFile> = Vec::new();
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

impl Daemon {
    /// `approve`: a pending hash (or an approved one, re-approved) with scopes and access.
    pub(super) async fn approve(&self, by: Actor<'_>, hash: String, grant: Grant) -> Response {
        let hash = match Hash::parse(&hash) {
            Ok(h) => String::from(h),
            Err(e) => return error(ErrorCode::BadRequest, e),
        };
        let entry = self.state.pending().get(&hash);
        let existing = self.state.config().tool(&hash).cloned();
        // A denied binary is not queued: approving it takes what its deny rule recorded.
        let denied = self.state.config().deny_rule(&hash).cloned();
        let path = match (&entry, &existing) {
            (Some(e), _) => e.path.clone(),
            (None, Some(t)) => t.path.clone(),
            (None, None) if denied.as_ref().is_some_and(|d| !d.path.is_empty()) => {
                denied.as_ref().map_or_else(String::new, |d| d.path.clone())
            }
            (None, None) if denied.is_some() => return denied_unseen(&hash),
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
            .or_else(|| existing.as_ref().and_then(|t| t.script.clone()))
            .or_else(|| denied.as_ref().and_then(|d| d.script.clone()));
        let path = script.as_ref().map_or(path, |s| s.path.clone());
        let flagged = entry.as_ref().is_some_and(|e| e.interpreter);
        if let Err(why) = policy::approvable(&path, script.is_some(), flagged) {
            return error(ErrorCode::Forbidden, why);
        }
        if existing.is_none() && !grant.as_new {
            if let Some(u) = super::updates::update_of(&self.state.config(), &hash, &path) {
                return error(
                    ErrorCode::BadRequest,
                    format!(
                        "{hash} is not a new program: {}. Approving it would add a second tool with only what you name now, and leave the old approval in place. To approve it as a tool of its own anyway: keychain-auth approve {hash} --as-new",
                        super::updates::keep_access_advice(&u, &hash)
                    ),
                );
            }
        }
        let follow = match grant.follow {
            Some(kind) => {
                let facts = entry
                    .as_ref()
                    .and_then(crate::peer::signing::Facts::from_entry);
                match self
                    .follow_rule(kind, &path, &hash, script.is_some(), facts)
                    .await
                {
                    Ok(f) => Some(f),
                    Err(r) => return r,
                }
            }
            None => existing.as_ref().and_then(|t| t.follow.clone()),
        };
        // Re-approving keeps what the tool had unless told otherwise; a new
        // tool gets what its hello asked for, else the names it asked for.
        let access = grant
            .access
            .or(existing.as_ref().map(|t| t.access))
            .or(entry.as_ref().and_then(|e| e.requested_access));
        let label = grant.label.or(existing.as_ref().map(|t| t.label.clone()));
        let unbound_get = grant
            .unbound_get
            .or(existing.as_ref().map(|t| t.unbound_get))
            .unwrap_or(false);
        let (expires_at, until_logout) = match grant.lasts {
            Some(l) => match super::expiry::lifetime(l, self.state.clock().now()) {
                Ok(x) => x,
                Err(r) => return r.into(),
            },
            None => existing
                .as_ref()
                .map(|t| (t.expires_at.clone(), t.until_logout))
                .unwrap_or((None, false)),
        };
        let replaces = !grant.scopes.is_empty();
        let scopes = match approved_scopes(
            &hash,
            existing.as_ref(),
            entry.as_ref(),
            denied.is_some(),
            ScopeEdit {
                set: grant.scopes,
                add: grant.add_scopes,
                remove: grant.remove_scopes,
            },
        ) {
            Ok(s) => s,
            Err(r) => return r.into(),
        };
        let r = self
            .pin(
                by,
                Pin {
                    hash: hash.clone(),
                    path,
                    script,
                    scopes,
                    access,
                    label,
                    event: Event::Approve,
                    macos: entry
                        .as_ref()
                        .and_then(|e| e.macos.clone())
                        .or_else(|| existing.as_ref().and_then(|t| t.macos.clone())),
                    unbound_get,
                    libraries: pinned_libraries(existing.as_ref(), entry.as_ref()),
                    terminal_session: entry.as_ref().is_some_and(|e| e.terminal.is_some())
                        || existing.as_ref().is_some_and(|t| t.terminal_session),
                    only_through: grant
                        .only_through
                        .or(existing.as_ref().and_then(|t| t.only_through)),
                    chain: entry
                        .as_ref()
                        .and_then(|e| e.chain.clone())
                        .or_else(|| existing.as_ref().and_then(|t| t.chain.clone())),
                    expires_at,
                    until_logout,
                    follow,
                },
            )
            .await;
        note_replaced(r, replaces, existing.as_ref())
    }

    /// `register`: a binary by path, hashed now (a `#!` script as the script it runs as).
    pub(super) async fn register(&self, by: Actor<'_>, path: &str, grant: Grant) -> Response {
        let (canonical, hash) = match self.hash_path(path).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        if let Err(why) = policy::approvable(&canonical, false, false) {
            return error(ErrorCode::Forbidden, why);
        }
        let (canonical, hash, script) = match self.as_run(canonical, hash).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        let follow = match grant.follow {
            Some(kind) => match self
                .follow_rule(kind, &canonical, &hash, script.is_some(), None)
                .await
            {
                Ok(f) => Some(f),
                Err(r) => return r,
            },
            None => None,
        };
        let (expires_at, until_logout) = match super::expiry::lifetime(
            grant.lasts.unwrap_or(Lasts::Always),
            self.state.clock().now(),
        ) {
            Ok(x) => x,
            Err(r) => return r.into(),
        };
        self.pin(
            by,
            Pin {
                hash,
                path: canonical,
                script,
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                event: Event::Register,
                macos: None,
                unbound_get: grant.unbound_get.unwrap_or(false),
                libraries: Vec::new(),
                terminal_session: false,
                only_through: grant.only_through,
                chain: None,
                expires_at,
                until_logout,
                follow,
            },
        )
        .await
    }

    /// `deny`: a hash, by the CLI or on the desktop.
    pub(super) async fn deny_hash(&self, by: Actor<'_>, hash: String) -> Response {
        match Hash::parse(&hash) {
            Ok(h) => self.deny(by, h.into()).await,
            Err(e) => error(ErrorCode::BadRequest, e),
        }
    }

    /// Records a deny rule for a hash (and drops any approval and pending entry for it).
    async fn deny(&self, by: Actor<'_>, hash: String) -> Response {
        let now = self.state.clock().rfc3339();
        // A script is denied as the script (its path, and what runs it), not as its
        // interpreter.
        let pending = self.state.pending().get(&hash).map(|e| {
            (
                e.script.as_ref().map_or(e.path.clone(), |s| s.path.clone()),
                e.script,
            )
        });
        let h = hash.clone();
        let res = self
            .change_config(move |c| {
                let (path, script) = pending
                    .or_else(|| c.tool(&h).map(|t| (t.path.clone(), t.script.clone())))
                    .unwrap_or_default();
                c.tools.retain(|t| t.hash != h);
                if !c.is_denied(&h) {
                    c.denied.push(DenyRule {
                        hash: h.clone(),
                        path: path.clone(),
                        at: now,
                        script,
                    });
                }
                Ok(path)
            })
            .await;
        match res {
            Ok(path) => {
                self.drop_pending(&hash);
                let mut e = self.admin_entry(by, Event::Deny, "denied by the user".into());
                e.hash = Some(hash);
                e.path = Some(path);
                self.state.audit().record(e, true);
                Response::Ok
            }
            Err(r) => r,
        }
    }

    /// `revoke`: a tool, by hash or label.
    pub(super) async fn revoke(&self, by: Actor<'_>, tool: String) -> Response {
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
                    [] if c.is_denied(&t) => Err(Refusal(
                        ErrorCode::NotFound,
                        format!(
                            "{t} is denied, not approved: there is nothing to revoke. To lift the deny, run `keychain-auth undeny {t}` (it is asked about again when it next asks) or approve it with `keychain-auth approve {t} --scope 'PATTERN'`; see `keychain-auth list --denied`"
                        ),
                    )),
                    [] => Err(Refusal(
                        ErrorCode::NotFound,
                        format!(
                            "no approved tool has hash or label {t:?}; see `keychain-auth list`"
                        ),
                    )),
                    _ => Err(Refusal(
                        ErrorCode::BadRequest,
                        format!("several tools are labelled {t:?}; revoke by hash"),
                    )),
                }
            })
            .await;
        match res {
            Ok(removed) => {
                let mut e =
                    self.admin_entry(by, Event::Revoke, format!("revoked {}", removed.label));
                e.hash = Some(removed.hash);
                e.path = Some(removed.path);
                e.scopes = removed.scopes;
                self.state.audit().record(e, true);
                Response::Ok
            }
            Err(r) => r,
        }
    }

    /// A decision made on the desktop (`by` is where: notification, tray or window):
    /// approve a pending binary with what it asked for (the scopes of its hello, else
    /// the names it asked for), allow its waiting request once, or deny it.
    pub async fn decide_on_desktop(&self, by: Actor<'_>, hash: &str, answer: Answer) -> Response {
        let lasts = match answer {
            Answer::Deny => return self.deny_hash(by, hash.to_string()).await,
            Answer::AllowOnce => {
                // Serving an unapproved program even once widens: proven like an approval.
                let Some(entry) = self.state.pending().get(hash) else {
                    return error(ErrorCode::NotFound, format!("{hash} is no longer pending"));
                };
                let change = crate::presence::Change::new(format!(
                    "keychain-auth: let {} ({}) read {} once, without approving it",
                    entry.script.as_ref().map_or(&entry.path, |s| &s.path),
                    crate::naming::short_hash(hash),
                    entry.names.join(", ")
                ));
                if let Err(r) = self
                    .prove(by, Event::Approve, (hash, &entry.path), &change)
                    .await
                {
                    return r;
                }
                self.state.pending().allow_once(hash);
                self.state.approver().withdraw(hash);
                self.state.configs().wake();
                return Response::Ok;
            }
            Answer::KeepAccess => {
                let Some(u) = self.state.pending().get(hash).and_then(|e| e.update_of) else {
                    return error(
                        ErrorCode::NotFound,
                        format!("{hash} is no longer pending as an update of an approved tool"),
                    );
                };
                return self.upgrade(by, &u.path, Some(hash)).await;
            }
            Answer::Approve(lasts) => lasts,
        };
        let (expires_at, until_logout) =
            match super::expiry::lifetime(lasts, self.state.clock().now()) {
                Ok(x) => x,
                Err(r) => return r.into(),
            };
        let Some(entry) = self.state.pending().get(hash) else {
            return error(ErrorCode::NotFound, format!("{hash} is no longer pending"));
        };
        let path = entry
            .script
            .as_ref()
            .map_or_else(|| entry.path.clone(), |s| s.path.clone());
        if let Err(why) = policy::approvable(&path, entry.script.is_some(), entry.interpreter) {
            return error(ErrorCode::Forbidden, why);
        }
        if let Some(u) = &entry.update_of {
            return error(
                ErrorCode::BadRequest,
                format!(
                    "{}: press Keep access, or approve it as a tool of its own with keychain-auth approve {hash} --as-new",
                    super::updates::keep_access_advice(u, hash)
                ),
            );
        }
        let scopes = crate::pending::grants(&entry);
        let config = self.state.config();
        self.pin(
            by,
            Pin {
                hash: hash.to_string(),
                path,
                script: entry.script.clone(),
                scopes,
                access: entry.requested_access,
                label: None,
                event: Event::Approve,
                macos: entry.macos.clone(),
                unbound_get: config.tool(hash).is_some_and(|t| t.unbound_get),
                libraries: pinned_libraries(config.tool(hash), Some(&entry)),
                terminal_session: entry.terminal.is_some(),
                only_through: config.tool(hash).and_then(|t| t.only_through),
                chain: entry.chain.clone(),
                expires_at,
                until_logout,
                follow: config.tool(hash).and_then(|t| t.follow.clone()),
            },
        )
        .await
    }

    /// Replaces an approved tool's scopes (empty is allowed: the tool stays approved and
    /// reads nothing). Audited with old and new scopes.
    pub async fn set_scopes(&self, by: Actor<'_>, hash: &str, scopes: Vec<String>) -> Response {
        for s in &scopes {
            if let Err(e) = crate::scope::validate(s) {
                return error(ErrorCode::BadRequest, e);
            }
        }
        let presence = match self.state.config().tool(hash).cloned() {
            Some(had) => {
                let mut proposed = had.clone();
                proposed.scopes = scopes.clone();
                if super::proof::widens(Some(&had), &proposed) {
                    let change = super::proof::describe("widen the scopes of", &proposed);
                    match self
                        .prove(by, Event::Scopes, (&had.hash, &had.path), &change)
                        .await
                    {
                        Ok(p) => Some(p),
                        Err(r) => return r,
                    }
                } else {
                    None
                }
            }
            None => None,
        };
        let h = hash.to_string();
        let new = scopes.clone();
        let res = self
            .change_config(move |c| {
                let t = c.tools.iter_mut().find(|t| t.hash == h).ok_or_else(|| {
                    Refusal(
                        ErrorCode::NotFound,
                        format!("no approved tool has hash {h}"),
                    )
                })?;
                let old = std::mem::replace(&mut t.scopes, new);
                Ok((t.clone(), old))
            })
            .await;
        match res {
            Ok((tool, old)) => {
                self.state.audit().write(
                    crate::audit::Entry {
                        event: Event::Scopes.into(),
                        decision: Decision::Ok.into(),
                        reason: format!(
                            "scopes of {}: [{}] -> [{}]",
                            tool.label,
                            old.join(", "),
                            tool.scopes.join(", ")
                        ),
                        hash: Some(tool.hash.clone()),
                        path: Some(tool.path.clone()),
                        scopes: tool.scopes.clone(),
                        old_scopes: old,
                        access: Some(tool.access.to_string()),
                        old_access: Some(tool.access.to_string()),
                        via: Some(by.via().into()),
                        presence: presence.map(str::to_string),
                        ..crate::audit::Entry::default()
                    },
                    true,
                );
                Response::Tool {
                    tool: Box::new(tool),
                    previous_hash: None,
                    changes: Vec::new(),
                }
            }
            Err(r) => r,
        }
    }

    pub(super) fn drop_pending(&self, hash: &str) {
        if self.state.pending().remove(hash).is_some() {
            self.state.touched();
        }
        // Decided here: a notification about it elsewhere would ask again for nothing.
        self.state.approver().withdraw(hash);
    }

    /// The canonical path of a file given by absolute path, and its hash.
    pub(super) async fn hash_path(&self, path: &str) -> Result<(String, String), Response> {
        let p = std::path::PathBuf::from(path);
        if !p.is_absolute() {
            return Err(error(
                ErrorCode::BadRequest,
                format!("{path:?} is not an absolute path"),
            ));
        }
        let st = self.state.clone();
        let res = tokio::task::spawn_blocking(move || {
            let canonical = std::fs::canonicalize(&p)?;
            let f = std::fs::File::open(&canonical)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            let (hash, _) = st.cache().hash_file(&f)?;
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

    /// What `register` pins a file as (its canonical path and hash): a `#!` script as the
    /// identity it will have when run ([`crate::peer::shebang`]), else by its own hash.
    async fn as_run(
        &self,
        canonical: String,
        hash: String,
    ) -> Result<(String, String, Option<ScriptIdentity>), Response> {
        use crate::peer::shebang::{when_run, WhenRun};
        let st = self.state.clone();
        let path = canonical.clone();
        let res =
            tokio::task::spawn_blocking(move || when_run(std::path::Path::new(&path), st.cache()))
                .await;
        match res {
            Ok(Ok(WhenRun::Binary)) => Ok((canonical, hash, None)),
            Ok(Ok(WhenRun::Script(s))) => {
                let id = crate::peer::script_identity_hash(&s);
                Ok((s.path.clone(), id, Some(s)))
            }
            Ok(Err(why)) => Err(error(ErrorCode::BadRequest, why)),
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
        let label = p
            .label
            .clone()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| base_name(&p.path).to_string());
        let tool = Tool {
            hash: p.hash.clone(),
            label,
            path: p.path.clone(),
            scopes: p.scopes.clone(),
            access: p.access.unwrap_or(Access::Read),
            approved_at: self.state.clock().rfc3339(),
            approved_via: by.via().into(),
            upgraded_at: None,
            upgraded_via: None,
            expires_at: p.expires_at.clone(),
            until_logout: p.until_logout,
            script: p.script.clone(),
            parent: None,
            macos: p.macos.clone(),
            unbound_get: p.unbound_get,
            libraries: p.libraries.clone(),
            terminal_session: p.terminal_session,
            only_through: p.only_through,
            chain: p.chain.clone(),
            follow: p.follow.clone(),
        };
        let config = self.state.config();
        let had = config.tool(&tool.hash);
        let lifts_deny = config.is_denied(&tool.hash);
        let presence = if super::proof::widens(had, &tool) || lifts_deny {
            let verb = match (had, lifts_deny) {
                (_, true) => "lift the deny of and approve",
                (Some(_), _) => "widen the approval of",
                (None, _) => "approve",
            };
            let change = super::proof::describe(verb, &tool);
            match self
                .prove(by, p.event, (&tool.hash, &tool.path), &change)
                .await
            {
                Ok(proof) => Some(proof),
                Err(r) => return r,
            }
        } else {
            None
        };
        let had_before = had.cloned();
        drop(config);
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
        let changes = changes(had_before.as_ref(), &tool, lifts_deny);
        let mut reason = format!("approved {} ({})", tool.label, tool.access);
        if !changes.is_empty() {
            reason.push_str(&format!("; {}", changes.join("; ")));
        }
        let mut e = self.admin_entry(by, p.event, reason);
        e.hash = Some(tool.hash.clone());
        e.path = Some(tool.path.clone());
        e.scopes = tool.scopes.clone();
        e.access = Some(tool.access.to_string());
        if let Some(had) = &had_before {
            e.old_scopes = had.scopes.clone();
            e.old_access = Some(had.access.to_string());
        }
        e.presence = presence.map(str::to_string);
        self.state.audit().record(e, true);
        Response::Tool {
            tool: Box::new(tool),
            previous_hash: None,
            changes,
        }
    }
}
