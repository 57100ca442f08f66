//! The desktop notifiers, as [`super::approver::Approver`]s: what every notifier reports
//! to the daemon ([`Event`]), and one notifier per OS, chosen with `#[cfg]` and exported as
//! `Desktop`: `freedesktop` (Linux, the session bus) and `macos` (UserNotifications).
//! The text they show is [`super::prompt_text`]; following their events is
//! `super::follower`; how often they are asked is [`super::limiter`].

use super::approver::Answer;

#[cfg(target_os = "linux")]
pub mod freedesktop;
#[cfg(target_os = "linux")]
pub use freedesktop::Desktop;
#[cfg(target_os = "macos")]
pub mod macos;
#[cfg(target_os = "macos")]
pub use macos::Desktop;

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
