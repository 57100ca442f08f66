//! # keychain-auth
//!
//! The daemon and CLI of keychain-auth: one small trusted program in front of the OS
//! keychain that answers a tool only if the user approved that exact binary, by SHA-256,
//! for that secret.
//!
//! ## Layout
//! A request's path, top-down (docs/architecture.md draws it): [`server`] →
//! [`handlers`] → [`policy`], [`store`], [`state`], [`audit`]; nothing calls back up.
//! - [`server`]: `run(listener, state, shutdown)`, the accept loop, a connection's framing
//!   and timeouts, the handshake; [`capacity`]: how many connections, and how many
//!   requests waiting for a decision, the daemon takes on at once.
//! - [`handlers`]: what each request does, one file per family, with the pause and admin
//!   gates in one place, the refusal texts, and what a hosting app may call.
//! - [`state`]: everything the daemon knows, with config and pending as sub-stores.
//! - [`policy`]: pure decisions; [`scope`]: glob matching of secret names.
//! - [`peer`]: who is connecting, from the kernel: the OS-neutral steps (`peer/identify.rs`,
//!   `peer/script/`: what an interpreter runs), then per OS `peer/linux/` (`SO_PEERPIDFD`,
//!   `/proc`, sock_diag) and `peer/macos/` (the audit token); [`ptrace`]: what the
//!   machine's ptrace policy lets a program do to another; [`digest`]: SHA-256 of
//!   executables with a file-identity cache.
//! - [`config`]: the formats of config.json and pending.json, read strictly;
//!   [`pending`]: the bounded queue of binaries waiting for a decision.
//! - [`audit`]: the hash-chained audit log: entries, append and rotation, the verifier,
//!   reading back (tail, history search), refusals that repeat counted, and how requests
//!   write lines (deferred, batched).
//! - [`store`]: Secret Service, keyutils, the macOS keychain (and an in-memory store for
//!   unit tests).
//! - [`desktop`]: asking a person: the `Approver` seam and its headless form, the prompt
//!   limiter, the text of prompts, the freedesktop and macOS notifiers, the tray menu as
//!   data, and the follower of notification answers.
//! - [`presence`]: proof that the person at the machine made a widening decision
//!   (polkit on Linux, LocalAuthentication on macOS).
//! - [`cli`]: the `keychain-auth` command line, and [`daemon_check`]: what it checks
//!   about the daemon; [`lifecycle`]: starting and stopping; [`service`]: starting at
//!   login (systemd user unit, LaunchAgent).
//! - [`dirs`], [`atomic`], [`hardening`], [`clock`], [`lock`]: private directories,
//!   atomic writes, process hardening, time, locks that outlive a panicking holder;
//!   [`naming`]: how things are named to a person (short hashes, base names).

#![deny(missing_docs)]

pub mod atomic;
pub mod audit;
pub mod capacity;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon_check;
pub mod deputies;
pub mod desktop;
pub mod digest;
pub mod dirs;
#[cfg(test)]
mod fixtures;
pub mod handlers;
pub mod hardening;
pub mod lifecycle;
pub mod lock;
pub mod naming;
pub mod peer;
pub mod pending;
pub mod policy;
pub mod presence;
pub mod provenance;
pub mod ptrace;
pub mod scope;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
