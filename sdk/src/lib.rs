//! # keychain-auth-sdk
//!
//! The wire protocol of keychain-auth and a small blocking client for it. This crate is the
//! one place the protocol is defined: the daemon depends on it, and so should every tool
//! written in Rust. It uses only `std`, `serde` and `serde_json`.
//!
//! ## Layout
//! - [`protocol`]: the request and response types, error codes and name rules.
//! - [`frame`]: the framing (4-byte big-endian length, then one JSON object, at most 64 KiB).
//! - [`paths`]: where the daemon puts its socket and files, computed the same way everywhere.
//! - [`client`]: a blocking client that opens the socket close-on-exec and says hello.
//! - [`secret`]: a string wrapper that zeroes its bytes on drop and never prints itself.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod frame;
pub mod paths;
pub mod protocol;
pub mod secret;

pub use client::{Client, ClientError};
pub use protocol::{ErrorCode, Request, Response, PROTOCOL_VERSION};
pub use secret::Secret;
