//! Everything that asks a person, on the desktop, about binaries waiting for approval:
//! the [`approver::Approver`] seam and its headless form, the prompt [`limiter`], the
//! text of prompts ([`prompt_text`]), the freedesktop and macOS [`notify`]ers, the tray
//! [`menu`] model, and the event follower that applies answers to the daemon.
//!
//! Not here: what an answer does (`crate::handlers`, whose `host` part the app
//! calls), the native tray and window (the `src-tauri` app), and starting the daemon
//! (`crate::lifecycle`, which calls into this module's follower).

pub mod approver;
pub(crate) mod follower;
pub mod limiter;
pub mod menu;
pub mod notify;
pub mod prompt_text;
