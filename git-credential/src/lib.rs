//! # git-credential-keychain-auth
//!
//! A git credential helper that keeps git's passwords behind keychain-auth: git asks
//! this helper, the helper asks the keychain-auth daemon, and the daemon answers only
//! because the user approved this exact helper binary (by hash) for `git/*`.
//!
//! - [`credential`]: git's `key=value` credential protocol.
//! - [`naming`]: the secret name of a credential, `git/<protocol>/<host>[/<path>]/<username>`.
//! - [`stored`]: the value kept under that name: the password, and beside it the
//!   expiry and OAuth refresh token git asks a helper to keep.
//! - [`actions`]: `get`, `store` and `erase` against the daemon.

#![forbid(unsafe_code)]

pub mod actions;
pub mod credential;
pub mod naming;
pub mod stored;
