//! `upgrade`: a tool was updated in place, and is re-pinned to what is at its path now
//! (for a script tool, its script, its interpreter and its startup files as they are
//! now), keeping its scopes and access. Saved durably, audited old -> new.

use super::{Actor, Daemon};
use crate::audit::Event;
use crate::config::Config;
use crate::naming::short_hash;
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, PinnedFile, Response, Tool};

impl Daemon {
    /// `upgrade`: re-pins the tool at a path to what is there now (only if that is
    /// `expect`, when given: Keep access of a pending update re-pins what the person saw).
    pub(super) async fn upgrade(
        &self,
        by: Actor<'_>,
        path: &str,
        expect: Option<&str>,
    ) -> Response {
        let now = self.state.clock().rfc3339();
        let (canonical, hash) = match self.hash_path(path).await {
            Ok(x) => x,
            Err(r) => return r,
        };
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
        let found = Found {
            given: path.to_string(),
            canonical,
            file_hash: hash,
            interpreter_hash,
            startup: startup_now,
            now,
            via: by.via(),
        };
        // Decided against the config as it is, proven, then applied only if the config
        // still gives the same re-pin.
        let (proposed, old) = match repin(&self.state.config(), &found) {
            Ok(x) => x,
            Err(r) => return r.into(),
        };
        if let Some(want) = expect.filter(|w| *w != proposed.hash) {
            return super::error(
                ErrorCode::BadRequest,
                format!(
                    "{} changed again since it asked: it is now {}, not {want}; nothing changed. Run it again, or keychain-auth upgrade {} to pin it as it is now",
                    proposed.path,
                    proposed.hash,
                    crate::naming::shell_quote(&proposed.path)
                ),
            );
        }
        let presence = if old != proposed.hash {
            let change = super::proof::describe(
                &format!("re-pin to its file as it is now (was {})", short_hash(&old)),
                &proposed,
            );
            match self
                .prove(
                    by,
                    Event::Upgrade,
                    (&proposed.hash, &proposed.path),
                    &change,
                )
                .await
            {
                Ok(p) => Some(p),
                Err(r) => return r,
            }
        } else {
            None
        };
        let res = self
            .change_config(move |c| {
                let (tool, old) = repin(c, &found)?;
                if tool.hash != proposed.hash || tool.scopes != proposed.scopes {
                    return Err(Refusal(
                        ErrorCode::Denied,
                        "the tool's approval changed while its upgrade was being confirmed; nothing changed, run the upgrade again".into(),
                    ));
                }
                if let Some(slot) = c.tools.iter_mut().find(|t| t.hash == old) {
                    *slot = tool.clone();
                }
                c.denied.retain(|d| d.hash != tool.hash);
                Ok((tool, old))
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
                    // Scopes and access before -> after: a re-pin keeps both.
                    e.scopes = tool.scopes.clone();
                    e.old_scopes = tool.scopes.clone();
                    e.access = Some(tool.access.to_string());
                    e.old_access = Some(tool.access.to_string());
                    e.presence = presence.map(str::to_string);
                    self.state.audit().record(e, true);
                }
                Response::Tool {
                    tool: Box::new(tool),
                    previous_hash: Some(old),
                    changes: Vec::new(),
                }
            }
            Err(r) => r,
        }
    }
}

/// What was found at an upgraded tool's path.
struct Found {
    given: String,
    canonical: String,
    file_hash: String,
    interpreter_hash: Option<String>,
    startup: Vec<PinnedFile>,
    now: String,
    /// Where the re-pin was decided (`Actor::via`).
    via: &'static str,
}

/// The tool at the path, re-pinned to what was found there, and its old hash (equal to
/// the new one when nothing changed).
fn repin(c: &Config, f: &Found) -> Result<(Tool, String), Refusal> {
    let t = c
        .tools
        .iter()
        .find(|t| t.path == f.canonical || t.path == f.given)
        .ok_or_else(|| {
            Refusal(
                ErrorCode::NotFound,
                format!(
                    "no approved tool has path {}; approve it first with `keychain-auth register {} --scope ...`",
                    f.given, f.given
                ),
            )
        })?;
    let old = t.hash.clone();
    let mut script = t.script.clone();
    let new_hash = match (&mut script, &f.interpreter_hash) {
        (Some(s), Some(ih)) => {
            s.hash = f.file_hash.clone();
            s.path = f.canonical.clone();
            s.interpreter_hash = ih.clone();
            s.startup = f.startup.clone();
            crate::peer::script_identity_hash(s)
        }
        _ => f.file_hash.clone(),
    };
    // A terminal session's identity is derived from its program's.
    let new_hash = if t.terminal_session {
        crate::peer::chain::terminal_identity_hash(&new_hash)
    } else {
        new_hash
    };
    if old == new_hash {
        return Ok((t.clone(), old));
    }
    if c.tools.iter().any(|x| x.hash == new_hash) {
        return Err(Refusal(
            ErrorCode::BadRequest,
            format!("{new_hash} is already approved as another tool; revoke one of them first"),
        ));
    }
    let mut tool = t.clone();
    tool.hash = new_hash;
    tool.path = f.canonical.clone();
    tool.script = script;
    tool.upgraded_at = Some(f.now.clone());
    tool.upgraded_via = Some(f.via.to_string());
    Ok((tool, old))
}
