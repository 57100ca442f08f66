//! Wires the desktop into a daemon started in this process: [`approver`] picks the
//! notifier (or [`Headless`]) when the daemon starts, and [`follow`] applies what the
//! person chose on a notification and audits what the notifier saw. Starting and
//! stopping the daemon itself is `crate::lifecycle`; the notifiers are [`super::notify`].

use super::approver::{Approver, Headless};
use crate::audit::Decision;
use crate::handlers::{Actor, Daemon};
use std::sync::Arc;

/// Events from the desktop notifier, when notifications are on.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub(crate) type DesktopEvents = tokio::sync::mpsc::UnboundedReceiver<super::notify::Event>;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) type DesktopEvents = ();

/// The approver: desktop notifications when asked for (Linux), else headless.
pub(crate) fn approver(notify: bool, in_tray: bool) -> (Arc<dyn Approver>, Option<DesktopEvents>) {
    #[cfg(any(target_os = "linux", target_os = "macos"))]
    if notify {
        let elsewhere = if in_tray {
            super::prompt_text::Elsewhere::Tray
        } else {
            super::prompt_text::Elsewhere::Cli
        };
        let (desktop, events) = super::notify::Desktop::start(elsewhere);
        return (Arc::new(desktop), Some(events));
    }
    if notify {
        let _ = in_tray;
        tracing::warn!("desktop notifications are not available on this system; use the CLI");
    }
    (Arc::new(Headless), None)
}

/// Applies what the person chose on a notification, and audits what the notifier saw.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub(crate) async fn follow(daemon: Daemon, mut events: DesktopEvents) {
    use super::notify::Event;
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Shown { hash, id } => {
                daemon.note_desktop(format!("asked on the desktop (notification {id})"), Decision::Ok, Some(hash))
            }
            Event::Answer { hash, choice } => {
                let resp = daemon.answer(Actor::Notification, &hash, choice).await;
                if let keychain_auth_sdk::Response::Error(e) = resp {
                    tracing::warn!("notification answer for {hash} not applied: {}", e.message);
                    // A press on a notification that was decided elsewhere (or whose
                    // request ended) changes nothing: say so where it was pressed.
                    daemon.state().approver().announce(
                        "keychain-auth: nothing changed",
                        &format!(
                            "{} ({}): {}",
                            crate::naming::short_hash(&hash),
                            choice_word(choice),
                            e.message
                        ),
                    );
                }
            }
            Event::Forged { sender, action } => daemon.note_desktop(
                format!("ignored an ActionInvoked {action:?} from {sender}, which does not own org.freedesktop.Notifications"),
                Decision::Deny,
                None,
            ),
            Event::Unavailable(why) => {
                tracing::warn!("desktop notifications unavailable: {why}");
                daemon.note_desktop(format!("notifications unavailable: {why}"), Decision::Error, None)
            }
        }
    }
}

/// How a notification's button is named in a message.
#[cfg(any(target_os = "linux", target_os = "macos"))]
fn choice_word(a: super::approver::Answer) -> &'static str {
    use super::approver::Answer;
    match a {
        Answer::Approve(_) => "Approve",
        Answer::AllowOnce => "Allow once",
        Answer::Deny => "Deny",
        Answer::KeepAccess => "Keep access",
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) async fn follow(_daemon: Daemon, _events: DesktopEvents) {}
