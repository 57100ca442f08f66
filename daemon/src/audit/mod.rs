//! The audit log: one JSON line per decision and per admin change, never a secret value.
//! Each line carries `prev`, the SHA-256 of the line before it, so [`verify`] finds edited,
//! removed or reordered lines and names the first bad one. When the file passes its size
//! limit it is rotated (`audit.log.1`, `.2`, …): a `rotate` line first records, durably,
//! which old files retention removes and the sequences and last hash they held, and the
//! new file opens with a `rotate` line that continues the chain. So history that should
//! be there and is not (a rotated file deleted by hand) fails [`verify`]. The daemon is
//! the only writer; it may queue lines and write several in one `write` ([`Log::queue`],
//! [`Log::flush`]).
//!
//! What lives here, one file per concern, all reached as `crate::audit::…`:
//! - `entry.rs`: what a line holds ([`Entry`], [`Record`], [`Rotation`], [`Span`]), the
//!   words of its `event` and `decision` ([`Event`], [`Decision`]), the borrowed form it
//!   is written from, and the hash that chains lines;
//! - `log.rs`: [`Log`], appending, queueing, rotation and retention, and the one
//!   function that names a rotated file;
//! - `verify.rs`: the chain verifier ([`verify`], [`verify_with`]);
//! - `read.rs`: reading back for a person ([`tail`], [`search`] with a [`Query`],
//!   [`read_all`] over the rotated files);
//! - [`repeats`]: refusals that repeat, counted instead of each written;
//! - [`recorder`]: how requests write lines while they are answered ([`Recorder`]):
//!   admin changes durably before the answer, reads' lines after it, batched.
//!
//! What does not: deciding which lines to write (the request handlers).

mod entry;
#[cfg(test)]
mod fixtures;
mod log;
mod read;
pub mod recorder;
pub mod repeats;
mod verify;

pub use entry::{line_hash, Decision, Entry, Event, Record, Rotation, Span, UnknownWord, GENESIS};
pub use log::{AuditError, Log, DEFAULT_KEEP, DEFAULT_MAX_BYTES, MAX_QUEUED_LINES, MAX_ROTATED};
pub use read::{filter, matches, read_all, search, tail, Query, MAX_RESULTS};
pub use recorder::{audit_when_idle, holding_reads, runtime_thread_started, Recorder};
pub use verify::{verify, verify_with, VerifyFailure, VerifyReport};
