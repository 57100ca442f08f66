//! The Tauri commands the window calls. Each is thin: it calls the daemon in-process and
//! turns an error response into its message. Every change is audited by the daemon with
//! `via: "window"`.

use crate::Hosted;
use keychain_auth::audit::{Query, Record};
use keychain_auth::desktop::approver::Answer;
use keychain_auth::handlers::{Actor, Snapshot};
use keychain_auth_sdk::protocol::{Request, Response, Tool};
use std::collections::BTreeMap;
use tauri::State;

type Reply = Result<(), String>;

fn done(r: Response) -> Reply {
    match r {
        Response::Error(e) => Err(e.message),
        _ => Ok(()),
    }
}

/// Everything the window shows but the history: the daemon's snapshot, and how each
/// tool's box for each secret name is drawn.
#[derive(serde::Serialize)]
pub struct WindowSnapshot {
    #[serde(flatten)]
    snapshot: Snapshot,
    /// By tool hash, by secret name.
    boxes: BTreeMap<String, BTreeMap<String, NameBox>>,
}

/// A tool's box for one secret name, by the tray menu's rule: ticked when an exact
/// scope or a pattern covers the name; greyed (not toggled) when only a pattern does,
/// since removing it means editing the pattern.
#[derive(serde::Serialize)]
struct NameBox {
    /// The exact scope naming it (`*`, `?` and `\` escaped), added or removed by the box.
    literal: String,
    /// The tool has that exact scope.
    exact: bool,
    /// A pattern of the tool that covers the name too.
    pattern: Option<String>,
}

fn boxes(tool: &Tool, names: &[String]) -> BTreeMap<String, NameBox> {
    use keychain_auth::scope;
    names
        .iter()
        .map(|n| {
            let literal = scope::literal(n);
            let exact = tool.scopes.contains(&literal);
            let pattern = tool
                .scopes
                .iter()
                .find(|s| **s != literal && scope::matches(s, n))
                .cloned();
            (
                n.clone(),
                NameBox {
                    literal,
                    exact,
                    pattern,
                },
            )
        })
        .collect()
}

/// Everything the window shows but the history.
#[tauri::command]
pub async fn snapshot(st: State<'_, Hosted>) -> Result<WindowSnapshot, String> {
    let snapshot = st
        .daemon
        .snapshot(keychain_auth::desktop::menu::MAX_RECENT)
        .await;
    let boxes = snapshot
        .tools
        .iter()
        .map(|t| (t.hash.clone(), boxes(t, &snapshot.names)))
        .collect();
    Ok(WindowSnapshot { snapshot, boxes })
}

/// The audit history, filtered, newest first.
#[tauri::command]
pub fn history(st: State<'_, Hosted>, query: Query) -> Result<Vec<Record>, String> {
    st.daemon.history(&query).map_err(|e| e.to_string())
}

/// Approves a pending binary with what it asked for: always, or for `lasts` (`hour`,
/// `logout`).
#[tauri::command]
pub async fn approve(st: State<'_, Hosted>, hash: String, lasts: Option<String>) -> Reply {
    use keychain_auth_sdk::protocol::Lasts;
    let lasts = match lasts.as_deref() {
        None | Some("always") => Lasts::Always,
        Some("hour") => Lasts::Seconds(3600),
        Some("logout") => Lasts::UntilLogout,
        Some(other) => {
            return Err(format!(
                "an approval lasts always, an hour or until logout, not {other:?}"
            ))
        }
    };
    done(
        st.daemon
            .answer(Actor::Window, &hash, Answer::Approve(lasts))
            .await,
    )
}

/// Serves a pending binary's waiting request once.
#[tauri::command]
pub async fn allow_once(st: State<'_, Hosted>, hash: String) -> Reply {
    done(
        st.daemon
            .answer(Actor::Window, &hash, Answer::AllowOnce)
            .await,
    )
}

/// Denies a binary (pending or approved): it is refused and not asked about again.
#[tauri::command]
pub async fn deny(st: State<'_, Hosted>, hash: String) -> Reply {
    done(st.daemon.answer(Actor::Window, &hash, Answer::Deny).await)
}

/// Lifts a deny: the binary is asked about again when it next asks (proven, like an
/// approval).
#[tauri::command]
pub async fn undeny(st: State<'_, Hosted>, hash: String) -> Reply {
    done(
        st.daemon
            .admin_local(Actor::Window, Request::Undeny { hash })
            .await,
    )
}

/// Removes an approved tool.
#[tauri::command]
pub async fn revoke(st: State<'_, Hosted>, hash: String) -> Reply {
    done(
        st.daemon
            .admin_local(Actor::Window, Request::Revoke { tool: hash })
            .await,
    )
}

/// Re-pins the tool approved for `path` to the file's current hash.
#[tauri::command]
pub async fn upgrade(st: State<'_, Hosted>, path: String) -> Reply {
    done(
        st.daemon
            .admin_local(Actor::Window, Request::Upgrade { path, expect: None })
            .await,
    )
}

/// Keeps the access of the approved tool a pending binary is an update of: re-pins the
/// tool to exactly this binary.
#[tauri::command]
pub async fn keep_access(st: State<'_, Hosted>, hash: String) -> Reply {
    done(
        st.daemon
            .answer(Actor::Window, &hash, Answer::KeepAccess)
            .await,
    )
}

/// Replaces a tool's scopes.
#[tauri::command]
pub async fn set_scopes(st: State<'_, Hosted>, hash: String, scopes: Vec<String>) -> Reply {
    done(st.daemon.set_scopes(Actor::Window, &hash, scopes).await)
}

/// Pauses or resumes.
#[tauri::command]
pub async fn set_paused(st: State<'_, Hosted>, paused: bool) -> Reply {
    done(st.daemon.set_paused(Actor::Window, paused).await)
}
