//! Desktop notifications as an [`Approver`](crate::desktop::approver::Approver) (freedesktop notifications over the session
//! bus, Linux): a new binary raises a notification with **Approve**, **Allow once** and
//! **Deny**; the person's click comes back as an `ActionInvoked` signal.
//!
//! Any process on the session bus can emit a signal that looks like `ActionInvoked`, so a
//! click is believed only when the signal's sender is, at that moment, the owner of
//! `org.freedesktop.Notifications`; anything else is reported as forged and ignored. A
//! notification that is dismissed or expires approves nothing. One notification per hash
//! is shown at a time; how often the desktop is asked at all is bounded by the daemon's
//! prompt limiter before [`Approver::pending_added`](crate::desktop::approver::Approver::pending_added) is called.

use super::{Event, Job, Notifier};
use crate::desktop::prompt_text::{body, summary, Elsewhere};
use futures_lite::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// The desktop approver (see [`Notifier`]).
pub type Desktop = Notifier<UnboundedSender<Job>>;

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
        (Notifier { jobs, elsewhere }, event_rx)
    }
}

async fn run(
    mut jobs: UnboundedReceiver<Job>,
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
                        let hash = crate::lock::lock(&shown).remove(&id);
                        let Some(choice) = super::answer_of(&action) else {
                            continue;
                        };
                        if let Some(hash) = hash {
                            let _ = events.send(Event::Answer { hash, choice });
                        }
                    }
                    "NotificationClosed" if sender == owner => {
                        if let Ok((id, _reason)) = msg.body().deserialize::<(u32, u32)>() {
                            crate::lock::lock(&shown).remove(&id);
                        }
                    }
                    _ => {}
                }
            }
        }
    };
    tokio::spawn(listener);

    while let Some(job) = jobs.recv().await {
        let entry = match job {
            Job::Ask(entry) => *entry,
            Job::Withdraw(hash) => {
                let ids: Vec<u32> = {
                    let mut shown = crate::lock::lock(&shown);
                    let ids: Vec<u32> = shown
                        .iter()
                        .filter(|(_, h)| **h == hash)
                        .map(|(id, _)| *id)
                        .collect();
                    for id in &ids {
                        shown.remove(id);
                    }
                    ids
                };
                for id in ids {
                    let closed: zbus::Result<()> = proxy.call("CloseNotification", &(id,)).await;
                    if let Err(e) = closed {
                        tracing::debug!("closing notification {id}: {e}");
                    }
                }
                continue;
            }
            Job::Announce { title, body } => {
                let hints: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
                let sent: zbus::Result<u32> = proxy
                    .call(
                        "Notify",
                        &(
                            "keychain-auth",
                            0u32,
                            "dialog-information",
                            title.as_str(),
                            body.as_str(),
                            Vec::<&str>::new(),
                            hints,
                            -1i32, // the server's default timeout: nothing to answer
                        ),
                    )
                    .await;
                if let Err(e) = sent {
                    let _ = events.send(Event::Unavailable(e.to_string()));
                }
                continue;
            }
        };
        let already = crate::lock::lock(&shown).values().any(|h| *h == entry.hash);
        if already {
            continue;
        }
        let actions: Vec<&str> = if has_actions {
            super::actions_for(&entry)
                .iter()
                .flat_map(|(key, label)| [*key, *label])
                .collect()
        } else {
            Vec::new()
        };
        let mut hints: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
        hints.insert("urgency", zbus::zvariant::Value::U8(2));
        let title = summary(&entry);
        let id: u32 = match proxy
            .call(
                "Notify",
                &(
                    "keychain-auth",
                    0u32,
                    "dialog-password",
                    title.as_str(),
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
        crate::lock::lock(&shown).insert(id, entry.hash.clone());
        let _ = events.send(Event::Shown {
            hash: entry.hash,
            id,
        });
    }
    Ok(())
}
