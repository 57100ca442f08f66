//! The desktop notifiers, as [`super::approver::Approver`]s: what every notifier reports
//! to the daemon ([`Event`]), and one notifier per OS, chosen with `#[cfg]` and exported as
//! `Desktop`: `freedesktop` (Linux, the session bus) and `macos` (UserNotifications).
//! The text they show is [`super::prompt_text`]; following their events is
//! `super::follower`; how often they are asked is [`super::limiter`].

use super::approver::{Answer, Approver};
use super::prompt_text::Elsewhere;
use keychain_auth_sdk::protocol::PendingEntry;

#[cfg(target_os = "linux")]
pub mod freedesktop;
#[cfg(target_os = "linux")]
pub use freedesktop::Desktop;
#[cfg(target_os = "macos")]
pub mod macos;
#[cfg(target_os = "macos")]
pub use macos::Desktop;

/// The buttons of a notification about a binary that can be approved, as (key, label):
/// approve always, for an hour, until logout, once, or deny.
pub const APPROVE_ACTIONS: [(&str, &str); 5] = [
    ("approve", "Approve"),
    ("hour", "For 1 hour"),
    ("logout", "Until logout"),
    ("once", "Allow once"),
    ("deny", "Deny"),
];

/// The buttons of a notification about an update of an approved tool: keep the tool's
/// access (re-pin it), serve this request once, or deny the new binary.
pub const UPDATE_ACTIONS: [(&str, &str); 3] = [
    ("keep", "Keep access"),
    ("once", "Allow once"),
    ("deny", "Deny"),
];

/// The buttons of a notification about this pending binary (key, label).
pub fn actions_for(entry: &PendingEntry) -> &'static [(&'static str, &'static str)] {
    if entry.update_of.is_some() {
        &UPDATE_ACTIONS
    } else if super::prompt_text::approvable(entry) {
        &APPROVE_ACTIONS
    } else {
        &[("deny", "Deny")]
    }
}

/// What a notifier's worker is asked to show.
#[derive(Debug, Clone)]
pub enum Job {
    /// A pending binary, with buttons.
    Ask(Box<PendingEntry>),
    /// Take the notification about this hash off the screen.
    Withdraw(String),
    /// Something to tell, without buttons.
    Announce {
        /// The title.
        title: String,
        /// The text.
        body: String,
    },
}

/// What pressing the button with this key answers; `None` for any other key.
pub fn answer_of(key: &str) -> Option<Answer> {
    use keychain_auth_sdk::protocol::Lasts;
    Some(match key {
        "approve" => Answer::Approve(Lasts::Always),
        "hour" => Answer::Approve(Lasts::Seconds(3600)),
        "logout" => Answer::Approve(Lasts::UntilLogout),
        "once" => Answer::AllowOnce,
        "keep" => Answer::KeepAccess,
        "deny" => Answer::Deny,
        _ => return None,
    })
}

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

/// Where a notifier's worker takes pending binaries from: a channel of its own kind.
pub trait Jobs: Send + Sync + std::fmt::Debug {
    /// Hands a job to the worker (dropped when the worker is gone).
    fn send(&self, job: Job);
}

#[cfg(target_os = "linux")]
impl Jobs for tokio::sync::mpsc::UnboundedSender<Job> {
    fn send(&self, job: Job) {
        let _ = tokio::sync::mpsc::UnboundedSender::send(self, job);
    }
}

#[cfg(target_os = "macos")]
impl Jobs for std::sync::mpsc::Sender<Job> {
    fn send(&self, job: Job) {
        let _ = std::sync::mpsc::Sender::send(self, job);
    }
}

/// A notifier as the daemon sees it: an [`Approver`] that hands each pending binary to
/// its worker. Cheap to call: the work happens on the
/// worker's own task or thread. Each OS's `Desktop` is one of these.
#[derive(Debug)]
pub struct Notifier<J: Jobs> {
    jobs: J,
    elsewhere: Elsewhere,
}

impl<J: Jobs> Approver for Notifier<J> {
    fn pending_added(&self, entry: &PendingEntry) {
        self.jobs.send(Job::Ask(Box::new(entry.clone())));
    }

    fn where_asked(&self) -> Option<&'static str> {
        Some(self.elsewhere.where_asked())
    }

    fn withdraw(&self, hash: &str) {
        self.jobs.send(Job::Withdraw(hash.to_string()));
    }

    fn announce(&self, title: &str, body: &str) {
        self.jobs.send(Job::Announce {
            title: title.into(),
            body: body.into(),
        });
    }
}
