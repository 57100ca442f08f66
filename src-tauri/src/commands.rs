//! The Tauri commands the window calls. Each is thin: it calls the daemon in-process and
//! turns an error response into its message. Every change is audited by the daemon with
//! `via: "window"`.

use crate::Hosted;
use keychain_auth::audit::{Query, Record};
use keychain_auth::desktop::approver::Answer;
use keychain_auth::handlers::{Actor, Snapshot};
use keychain_auth_sdk::protocol::{Request, Response};
use tauri::State;

type Reply = Result<(), String>;

fn done(r: Response) -> Reply {
    match r {
        Response::Error(e) => Err(e.message),
        _ => Ok(()),
    }
}

/// Everything the window shows but the history.
#[tauri::command]
pub async fn snapshot(st: State<'_, Hosted>) -> Result<Snapshot, String> {
    Ok(st
        .daemon
        .snapshot(keychain_auth::desktop::menu::MAX_RECENT)
        .await)
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
