//! # keychain-auth-sdk
//!
//! The wire protocol of keychain-auth and a small blocking client for it. This crate is the
//! one place the protocol is defined: the daemon depends on it, and so should every tool
//! written in Rust. It uses only `std`, `serde`, `serde_json` and `libc` (for the
//! kernel's word on who listens on the socket).
//!
//! ## Layout
//! - [`protocol`]: the request and response types, error codes and name rules.
//! - [`frame`]: the framing (4-byte big-endian length, then one JSON object, at most 64 KiB).
//! - [`paths`]: where the daemon puts its socket and files, computed the same way everywhere.
//! - [`client`]: a blocking client that opens the socket close-on-exec and says hello.
//! - [`exit`]: the exit statuses the CLI and the git helper share, one per refusal.
//! - [`verify`]: what a client checks before it sends anything (the socket's directory
//!   is the user's own; the listener runs as the user).
//! - [`secret`]: a string wrapper that zeroes its bytes on drop and never prints itself.
//!
//! ## Reading a secret
//!
//! ```no_run
//! use keychain_auth_sdk::{Client, ErrorCode};
//!
//! // The socket is found as the daemon places it (KEYCHAIN_AUTH_SOCKET and
//! // KEYCHAIN_AUTH_HOME are honoured) and opened close-on-exec.
//! let mut client = Client::connect("my-tool")?;
//! match client.get("api/github") {
//!     Ok(token) => println!("{} bytes", token.len()), // use token.expose()
//!     Err(e) if e.code() == Some(ErrorCode::NotApproved) => {
//!         eprintln!("run: keychain-auth approve {}", e.hash().unwrap_or_default());
//!     }
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `get_wait` sends the same request with `wait_ms`: an unapproved tool is answered the
//! moment the user approves it. `examples/get.rs` and `examples/whoami.rs` are complete
//! programs.
//!
//! ## The wire format
//!
//! Every frame is a 4-byte big-endian length and one JSON object
//! (docs/protocol.md has the whole protocol):
//!
//! ```
//! use keychain_auth_sdk::{frame, Request};
//!
//! let req = Request::Get { name: "api/github".into(), wait_ms: None };
//! let bytes = frame::encode(&req)?;
//! assert_eq!(&bytes[..4], &[0, 0, 0, 34]);
//! assert_eq!(&bytes[4..], br#"{"type":"get","name":"api/github"}"#);
//! let back: Request = frame::decode(&bytes[4..])?;
//! assert_eq!(back, req);
//! # Ok::<(), keychain_auth_sdk::frame::FrameError>(())
//! ```

#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod exit;
pub mod frame;
pub mod paths;
pub mod protocol;
pub mod secret;
pub mod verify;

pub use client::{Client, ClientError};
pub use protocol::{ErrorCode, Request, Response, PROTOCOL_VERSION};
pub use secret::Secret;
