//! `upgrade`: a tool was updated in place, and is re-pinned to what is at its path now
//! (for a script tool, its script, its interpreter and its startup files as they are
//! now), keeping its scopes and access. Saved durably, audited old -> new.

use super::{error, Actor, Daemon};
use crate::audit::Event;
use crate::desktop::approver::AdminAction;
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, PinnedFile, Response};

impl Daemon {
    /// `upgrade`: re-pins the tool at a path to what is there now.
    pub(super) async fn upgrade(&self, by: Actor<'_>, path: &str) -> Response {
        let now = self.state.clock().rfc3339();
        let (canonical, hash) = match self.hash_path(path).await {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !self.state.approver().confirm(AdminAction::Upgrade(&hash)) {
            return error(ErrorCode::Denied, "the upgrade was not confirmed");
        }
        // A script tool is re-pinned to its script's new contents and to its interpreter
        // as it is now (an updated python3 changes every script identity it runs).
        // Its pinned startup files are re-pinned to their contents as they are now.
        let (interpreter, startup) = self
            .state
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
                Ok((_, hash)) => startup_now.push(PinnedFile { path: f.path, hash }),
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
                // A terminal session's identity is derived from its program's.
                let new_hash = if c.tools[i].terminal_session {
                    crate::peer::chain::terminal_identity_hash(&new_hash)
                } else {
                    new_hash
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
                        Event::Upgrade,
                        format!("re-pinned {}: {old} -> {}", tool.label, tool.hash),
                    );
                    e.hash = Some(tool.hash.clone());
                    e.old_hash = Some(old.clone());
                    e.path = Some(tool.path.clone());
                    e.scopes = tool.scopes.clone();
                    self.state.audit().record(e, true);
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
