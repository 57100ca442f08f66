//! # keychain-auth
//!
//! The daemon and CLI of keychain-auth: one small trusted program in front of the OS
//! keychain that answers a tool only if the user approved that exact binary, by SHA-256,
//! for that secret.
//!
//! ## Layout
//! - [`server`]: `run(listener, state, shutdown)`, the accept loop, a connection's framing
//!   and timeouts, the handshake; [`capacity`]: how many connections, and how many
//!   requests waiting for a decision, the daemon takes on at once.
//! - [`handlers`]: what each request does (decide, store, pending, audit), by family,
//!   with the pause and admin gates in one place; what a hosting app may call.
//! - [`state`]: everything the daemon knows, with config and pending as sub-stores;
//!   [`recorder`]: how requests write the audit log (deferred, batched, counted).
//! - [`policy`]: pure decisions; [`scope`]: glob matching of secret names.
//! - [`peer`]: who is connecting, from the kernel (Linux: `SO_PEERPIDFD`).
//! - [`digest`]: SHA-256 of executables with a file-identity cache.
//! - [`config`]: config.json and pending.json; [`pending`]: the bounded queue.
//! - [`audit`]: the hash-chained audit log: entries, the writer (rotation, retention),
//!   the verifier, reading back (tail, history search) and refusals that repeat, counted
//!   instead of each written ([`audit::repeats`]).
//! - [`store`]: Secret Service, keyutils (and an in-memory store for unit tests).
//! - [`desktop`]: asking a person: the `Approver` seam and its headless form, the prompt
//!   limiter, the text of prompts, the freedesktop and macOS notifiers, the tray menu as
//!   data, and the follower of notification answers.
//! - [`dirs`], [`atomic`], [`hardening`], [`clock`], [`lock`]: private directories,
//!   atomic writes, process hardening, time, locks that outlive a panicking holder;
//!   [`naming`]: how things are named to a person (short hashes, base names).
//! - [`cli`]: the `keychain-auth` command line, and [`daemon_check`]: what it checks
//!   about the daemon; [`lifecycle`]: starting and stopping;
//!   [`service`]: starting at login (systemd user unit, LaunchAgent).

#![deny(missing_docs)]

pub mod atomic;
pub mod audit;
pub mod capacity;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon_check;
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
pub mod ptrace;
pub mod recorder;
pub mod scope;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
