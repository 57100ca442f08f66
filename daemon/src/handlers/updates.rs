//! Updates of approved tools. A program that is not approved, at the path of an approved
//! tool (for a script: the script at its path) is an update of it: its refusal, pending
//! entry and notification say so, show old -> new and offer Keep access (`upgrade`). A
//! tool approved with `--follow` is re-pinned by itself when the update's provenance
//! proves it ([`crate::provenance`]); the re-pin is audited old -> new with the evidence
//! and announced on the desktop (a notification without buttons).

use super::{error, Daemon};
use crate::audit::{self, Entry, Event};
use crate::config::Config;
use crate::naming::short_hash;
use crate::peer::signing::Facts;
use crate::peer::Peer;
use crate::provenance;
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, Follow, FollowKind, Response, UpdateOf};

/// The path a person knows a peer by: its script's, if it is one.
fn program_path(peer: &Peer) -> &str {
    peer.script
        .as_ref()
        .map_or(peer.path.as_str(), |s| s.path.as_str())
}

/// The approved tool that a program with this hash at this path is an update of: one
/// approved for the same path with another hash (terminal sessions are not files).
pub fn update_of(c: &Config, hash: &str, path: &str) -> Option<UpdateOf> {
    if c.tool(hash).is_some() {
        return None;
    }
    c.tools
        .iter()
        .find(|t| !t.terminal_session && t.path == path && t.hash != hash)
        .map(|t| UpdateOf {
            hash: t.hash.clone(),
            label: t.label.clone(),
            path: t.path.clone(),
        })
}

/// The approved tool that follows its provenance which a program with this hash at this
/// path may be an update of, with its rule. `None` at once for an approved or denied hash:
/// this is all an approved program's request pays (`docs/benchmarks.md`).
pub fn follow_candidate(
    c: &Config,
    hash: &str,
    path: &str,
) -> Option<(keychain_auth_sdk::protocol::Tool, Follow)> {
    if c.tool(hash).is_some() || c.is_denied(hash) {
        return None;
    }
    let t = c
        .tools
        .iter()
        .find(|t| !t.terminal_session && t.path == path && t.hash != hash)?;
    Some((t.clone(), t.follow.clone()?))
}

/// How an update is offered to a person: old -> new and the command that keeps access.
pub fn keep_access_advice(u: &UpdateOf, new_hash: &str) -> String {
    format!(
        "it is an update of the approved tool {} ({} -> {}); keep its access with: keychain-auth upgrade {}",
        u.label,
        short_hash(&u.hash),
        short_hash(new_hash),
        crate::naming::shell_quote(&u.path)
    )
}

impl Daemon {
    /// The rule `approve --follow` records for the file at `path` that is approved as
    /// `hash`, or the refusal saying why its updates cannot be followed that way.
    pub(super) async fn follow_rule(
        &self,
        kind: FollowKind,
        path: &str,
        hash: &str,
        script: bool,
        facts: Option<Facts>,
    ) -> Result<Follow, Response> {
        if script {
            return Err(error(
                ErrorCode::BadRequest,
                "--follow is for executables: a script's identity covers its interpreter too, and is re-pinned with keychain-auth upgrade",
            ));
        }
        let (path, hash) = (path.to_string(), hash.to_string());
        let res = tokio::task::spawn_blocking(move || {
            let contents = provenance::contents_of(std::path::Path::new(&path))
                .map_err(|e| format!("cannot read {path}: {e}"))?;
            if contents.sha256 != hash {
                return Err(format!(
                    "{path} is no longer the file that asked ({hash}); run it again, then approve what it is now"
                ));
            }
            provenance::rule_for(kind, &provenance::Dpkg::system(), &path, &contents, facts.as_ref())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        res.map_err(|why| {
            error(
                ErrorCode::BadRequest,
                format!("cannot follow its updates: {why}"),
            )
        })
    }

    /// The approved tool a peer that is not approved is an update of.
    pub(super) fn update_of(&self, peer: &Peer) -> Option<UpdateOf> {
        if peer.terminal.is_some() {
            return None;
        }
        update_of(&self.state.config(), &peer.hash, program_path(peer))
    }

    /// Re-pins the tool a peer is an update of, when that tool follows a provenance and
    /// the peer's proves it. `Ok(true)`: re-pinned; `Err(why)`: it follows one and this
    /// update does not prove it (the refusal says why).
    pub(super) async fn follow_update(&self, peer: &Peer) -> Result<bool, String> {
        if peer.terminal.is_some() {
            return Ok(false);
        }
        let Some((tool, rule)) =
            follow_candidate(&self.state.config(), &peer.hash, program_path(peer))
        else {
            return Ok(false);
        };
        // Only a plain executable, running nothing a user can change, follows.
        if peer.script.is_some() || peer.interpreter {
            return Err("its updates are followed only for executables, not scripts".into());
        }
        if let Some(why) = &peer.injection {
            return Err(why.clone());
        }
        if !peer.libraries.is_empty() {
            return Err("it runs code from files you can change".into());
        }
        let evidence = match &rule {
            Follow::Package { package } => {
                let (package, path, hash) = (package.clone(), peer.path.clone(), peer.hash.clone());
                tokio::task::spawn_blocking(move || {
                    let contents = provenance::contents_of(std::path::Path::new(&path))
                        .map_err(|e| format!("cannot read {path}: {e}"))?;
                    // The running image and the file dpkg vouches for must be one.
                    if contents.sha256 != hash {
                        return Err(format!("{path} on disk is not the program that runs"));
                    }
                    provenance::Dpkg::system().proves(&package, &path, &contents)
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Follow::Signer {
                team_id,
                identifier,
            } => provenance::signer_proves(peer.signing.as_ref(), team_id, identifier),
        }?;
        let (old, new) = (tool.hash.clone(), peer.hash.clone());
        let (now, via) = (
            self.state.clock().rfc3339(),
            match rule {
                Follow::Package { .. } => "follow package",
                Follow::Signer { .. } => "follow signer",
            },
        );
        let res = self
            .change_config({
                let (old, new) = (old.clone(), new.clone());
                move |c| {
                    if c.tool(&new).is_some() {
                        return Err(Refusal(ErrorCode::BadRequest, "already approved".into()));
                    }
                    match c.tools.iter_mut().find(|t| t.hash == old) {
                        Some(t) => {
                            t.hash = new;
                            t.upgraded_at = Some(now);
                            t.upgraded_via = Some(via.into());
                            Ok(t.clone())
                        }
                        None => Err(Refusal(
                            ErrorCode::NotFound,
                            "the tool's approval changed meanwhile".into(),
                        )),
                    }
                }
            })
            .await;
        let Ok(now) = res else {
            // Approved or changed meanwhile: decide again with the config as it is.
            return Ok(true);
        };
        self.drop_pending(&new);
        let by = via;
        let e = Entry {
            event: Event::Upgrade.into(),
            decision: audit::Decision::Ok.into(),
            reason: format!(
                "re-pinned {} by itself: {old} -> {new}; {evidence}",
                now.label
            ),
            hash: Some(new.clone()),
            old_hash: Some(old.clone()),
            path: Some(now.path.clone()),
            scopes: now.scopes.clone(),
            old_scopes: now.scopes.clone(),
            access: Some(now.access.to_string()),
            old_access: Some(now.access.to_string()),
            via: Some(by.into()),
            ..Entry::default()
        };
        self.state.audit().record(e, true);
        tracing::info!(tool = %now.label, %old, %new, "re-pinned an update by its provenance");
        self.state.approver().announce(
            &format!("{} was updated", now.label),
            &format!(
                "{}\n{} -> {}\nIt keeps its access: {evidence}.",
                now.path,
                short_hash(&old),
                short_hash(&new)
            ),
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keychain_auth_sdk::protocol::Access;

    #[test]
    fn a_new_hash_at_an_approved_path_is_an_update_and_nothing_else_is() {
        let old = format!("sha256:{}", "a".repeat(64));
        let new = format!("sha256:{}", "b".repeat(64));
        let mut c = Config {
            tools: vec![crate::fixtures::tool(
                &old,
                "tool",
                "/h/tools/tool",
                &["git/*"],
                Access::ReadWrite,
            )],
            ..Config::default()
        };
        let u = update_of(&c, &new, "/h/tools/tool").expect("an update");
        assert_eq!((u.hash.as_str(), u.label.as_str()), (old.as_str(), "tool"));
        assert!(keep_access_advice(&u, &new).contains("keychain-auth upgrade /h/tools/tool"));
        assert_eq!(update_of(&c, &new, "/h/tools/other"), None, "another path");
        assert_eq!(
            update_of(&c, &old, "/h/tools/tool"),
            None,
            "the approved one"
        );
        c.tools[0].terminal_session = true;
        assert_eq!(
            update_of(&c, &new, "/h/tools/tool"),
            None,
            "a terminal session"
        );
    }
}
