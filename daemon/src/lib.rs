//! # keychain-auth
//!
//! The daemon and CLI of keychain-auth: one small trusted program in front of the OS
//! keychain that answers a tool only if the user approved that exact binary, by SHA-256,
//! for that secret.
//!
//! ## Layout
//! - [`server`]: `run(listener, state, shutdown)`, the accept loop, framing and timeouts;
//!   [`waits`]: how many requests may wait for a decision at once.
//! - [`requests`]: what each request does (decide, store, pending, audit).
//! - [`policy`]: pure decisions; [`scope`]: glob matching of secret names.
//! - [`peer`]: who is connecting, from the kernel: the OS-neutral steps (`peer/identify.rs`,
//!   `peer/script/`: what an interpreter runs), then per OS `peer/linux/` (`SO_PEERPIDFD`,
//!   `/proc`, sock_diag) and `peer/macos/` (the audit token).
//! - [`digest`]: SHA-256 of executables with a file-identity cache.
//! - [`config`]: config.json and pending.json; [`pending`]: the bounded queue.
//! - [`audit`]: the hash-chained audit log and its verifier; [`repeats`]: refusals that
//!   repeat, counted instead of each written.
//! - [`store`]: Secret Service, keyutils (and an in-memory store for unit tests).
//! - [`approver`]: the seam through which approvals reach a person; [`ratelimit`]: how
//!   often it may be asked.
//! - [`dirs`], [`atomic`], [`hardening`], [`clock`]: private directories, atomic
//!   writes, process hardening, time.
//! - [`cli`]: the `keychain-auth` command line, and [`daemon_check`]: what it checks
//!   about the daemon; [`daemon`]: starting and stopping;
//!   [`service`]: starting at login (systemd user unit, LaunchAgent).
//! - [`host`]: what an app hosting the daemon in-process may call; [`menu`]: the tray
//!   menu as data; [`history`]: the audit history, searched and filtered.

#![deny(missing_docs)]

pub mod approver;
pub mod atomic;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod daemon_check;
pub mod digest;
pub mod dirs;
pub mod hardening;
pub mod history;
pub mod host;
pub mod menu;
#[cfg(target_os = "linux")]
pub mod notify;
#[cfg(target_os = "macos")]
#[path = "notify_macos.rs"]
pub mod notify;
pub mod peer;
pub mod pending;
pub mod policy;
pub mod prompt;
pub mod ptrace;
pub mod ratelimit;
pub mod repeats;
pub mod requests;
pub mod scope;
pub mod server;
pub mod service;
pub mod store;
pub mod waits;
