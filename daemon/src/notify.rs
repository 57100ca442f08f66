//! Desktop notifications as an [`Approver`] (freedesktop notifications over the session
//! bus, Linux): a new binary raises a notification with **Approve**, **Allow once** and
//! **Deny**; the person's click comes back as an `ActionInvoked` signal.
//!
//! Any process on the session bus can emit a signal that looks like `ActionInvoked`, so a
//! click is believed only when the signal's sender is, at that moment, the owner of
//! `org.freedesktop.Notifications`; anything else is reported as forged and ignored. A
//! notification that is dismissed or expires approves nothing. One notification per hash
//! is shown at a time; how often the desktop is asked at all is bounded by the daemon's
//! prompt limiter before [`Approver::pending_added`] is called.

use crate::approver::{AdminAction, Answer, Approver};
use futures_lite::StreamExt;
use keychain_auth_sdk::protocol::PendingEntry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// What the notifier reports to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A notification was shown.
    Shown {
        /// The binary's hash.
        hash: String,
        /// The notification server's id for it.
        id: u32,
    },
    /// The person answered.
    Answer {
        /// The binary's hash.
        hash: String,
        /// What they chose.
        choice: Answer,
    },
    /// An `ActionInvoked` came from a bus connection that does not own the notification
    /// service: ignored.
    Forged {
        /// The sender's unique bus name.
        sender: String,
        /// The action key it claimed.
        action: String,
    },
    /// Notifications cannot be shown (no session bus or no notification server).
    Unavailable(String),
}

/// Where else the person can answer, besides the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// Only the CLI (`keychain-auth start --notify`).
    Cli,
    /// The tray menu of the app hosting the daemon (and the CLI).
    Tray,
}

/// The desktop approver. Cheap to call: work happens on its own task.
#[derive(Debug)]
pub struct Desktop {
    jobs: UnboundedSender<PendingEntry>,
    elsewhere: Elsewhere,
}

impl Desktop {
    /// Starts the notifier on the current tokio runtime; its reports arrive on the
    /// returned receiver.
    pub fn start(elsewhere: Elsewhere) -> (Desktop, UnboundedReceiver<Event>) {
        let (jobs, job_rx) = unbounded_channel();
        let (events, event_rx) = unbounded_channel();
        tokio::spawn(async move {
            if let Err(e) = run(job_rx, events.clone(), elsewhere).await {
                let _ = events.send(Event::Unavailable(e.to_string()));
            }
        });
        (Desktop { jobs, elsewhere }, event_rx)
    }
}

impl Approver for Desktop {
    fn pending_added(&self, entry: &PendingEntry) {
        let _ = self.jobs.send(entry.clone());
    }

    fn confirm(&self, _action: AdminAction<'_>) -> bool {
        true
    }

    fn where_asked(&self) -> Option<&'static str> {
        Some(match self.elsewhere {
            Elsewhere::Cli => "or answer the notification on your desktop",
            Elsewhere::Tray => {
                "or answer the notification on your desktop, or use the keychain-auth tray menu"
            }
        })
    }
}

/// Whether the notification offers Approve: a bare script interpreter is never approved.
fn approvable(entry: &PendingEntry) -> bool {
    !(entry.interpreter && entry.script.is_none())
}

/// The text of a notification for a pending binary.
pub fn body(entry: &PendingEntry, has_actions: bool, elsewhere: Elsewhere) -> String {
    let short = entry.hash.get(..19).unwrap_or(&entry.hash);
    let who = match &entry.script {
        Some(s) => format!(
            "the script {} run by {} (a script's identity is advisory)",
            s.path, s.interpreter
        ),
        None => entry.path.clone(),
    };
    let names = if entry.names.is_empty() {
        "(no name yet)".to_string()
    } else {
        entry.names.join(", ")
    };
    let mut text = format!("{who}\n{short}…\nasks for: {names}");
    if !approvable(entry) {
        text.push_str("\nA script interpreter cannot be approved as a whole (every command run in it could read the secret): run the command from a script file.");
        return text;
    }
    if !entry.requested_scopes.is_empty() {
        text.push_str(&format!(
            "\napproving grants: {}",
            entry.requested_scopes.join(", ")
        ));
    }
    if !has_actions {
        text.push_str(&match elsewhere {
            Elsewhere::Cli => format!(
                "\nThis desktop's notifications have no buttons: run keychain-auth approve {}",
                entry.hash
            ),
            Elsewhere::Tray => format!(
                "\nThis desktop's notifications have no buttons: use the keychain-auth tray menu (Waiting for approval), or run keychain-auth approve {}",
                entry.hash
            ),
        });
    }
    text
}

async fn run(
    mut jobs: UnboundedReceiver<PendingEntry>,
    events: UnboundedSender<Event>,
    elsewhere: Elsewhere,
) -> zbus::Result<()> {
    let conn = zbus::Connection::session().await?;
    let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
    let proxy = zbus::Proxy::new(&conn, NOTIFICATIONS, PATH, NOTIFICATIONS).await?;
    let caps: Vec<String> = proxy.call("GetCapabilities", &()).await?;
    let has_actions = caps.iter().any(|c| c == "actions");
    // notification id -> hash, for the notifications on screen
    let shown: Arc<Mutex<HashMap<u32, String>>> = Arc::default();

    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(NOTIFICATIONS)?
        .path(PATH)?
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None).await?;
    let listener = {
        let (shown, events) = (shown.clone(), events.clone());
        async move {
            while let Some(Ok(msg)) = signals.next().await {
                let header = msg.header();
                let member = header.member().map(|m| m.to_string()).unwrap_or_default();
                let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
                let owner = dbus
                    .get_name_owner(NOTIFICATIONS.try_into().expect("a valid bus name"))
                    .await
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                match member.as_str() {
                    "ActionInvoked" => {
                        let Ok((id, action)) = msg.body().deserialize::<(u32, String)>() else {
                            continue;
                        };
                        if owner.is_empty() || sender != owner {
                            let _ = events.send(Event::Forged { sender, action });
                            continue;
                        }
                        let hash = shown.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        let choice = match action.as_str() {
                            "approve" => Answer::Approve,
                            "once" => Answer::AllowOnce,
                            "deny" => Answer::Deny,
                            _ => continue,
                        };
                        if let Some(hash) = hash {
                            let _ = events.send(Event::Answer { hash, choice });
                        }
                    }
                    "NotificationClosed" if sender == owner => {
                        if let Ok((id, _reason)) = msg.body().deserialize::<(u32, u32)>() {
                            shown.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    tokio::spawn(listener);

    while let Some(entry) = jobs.recv().await {
        let already = shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|h| *h == entry.hash);
        if already {
            continue;
        }
        let actions: Vec<&str> = if has_actions && approvable(&entry) {
            vec!["approve", "Approve", "once", "Allow once", "deny", "Deny"]
        } else if has_actions {
            vec!["deny", "Deny"]
        } else {
            Vec::new()
        };
        let mut hints: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        hints.insert("urgency", zbus::zvariant::Value::U8(2));
        let summary = format!(
            "{} wants a secret",
            entry
                .script
                .as_ref()
                .map_or(entry.path.as_str(), |s| s.path.as_str())
                .rsplit('/')
                .next()
                .unwrap_or("a program")
        );
        let id: u32 = match proxy
            .call(
                "Notify",
                &(
                    "keychain-auth",
                    0u32,
                    "dialog-password",
                    summary.as_str(),
                    body(&entry, has_actions, elsewhere).as_str(),
                    actions,
                    hints,
                    0i32, // stays until the person answers or dismisses it
                ),
            )
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let _ = events.send(Event::Unavailable(e.to_string()));
                continue;
            }
        };
        shown
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.hash.clone());
        let _ = events.send(Event::Shown {
            hash: entry.hash,
            id,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_binary_its_names_and_what_to_do_without_buttons() {
        let e = PendingEntry {
            hash: format!("sha256:{}", "ab".repeat(32)),
            path: "/usr/local/bin/tool".into(),
            first_seen: String::new(),
            last_seen: String::new(),
            attempts: 1,
            names: vec!["git/https/h/alice".into()],
            interpreter: false,
            requested_scopes: vec!["git/*".into()],
            requested_access: None,
            script: None,
            macos: None,
        };
        let b = body(&e, true, Elsewhere::Cli);
        assert!(b.contains("/usr/local/bin/tool"));
        assert!(b.contains("sha256:abababababab"));
        assert!(b.contains("git/https/h/alice"));
        assert!(b.contains("approving grants: git/*"));
        assert!(!b.contains("keychain-auth approve"));
        assert!(
            body(&e, false, Elsewhere::Cli).contains(&format!("keychain-auth approve {}", e.hash))
        );
        assert!(body(&e, false, Elsewhere::Tray).contains("tray menu"));
        assert!(!body(&e, true, Elsewhere::Tray).contains("tray menu"));
        let interp = PendingEntry {
            path: "/usr/bin/python3".into(),
            interpreter: true,
            ..e
        };
        assert!(!approvable(&interp));
        assert!(body(&interp, true, Elsewhere::Cli).contains("cannot be approved as a whole"));
    }
}
