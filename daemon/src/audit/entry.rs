//! What one audit line holds: the [`Entry`] a caller records, the [`Record`] it becomes
//! once [`Log::append`](super::Log::append) adds its sequence, time and `prev` hash, and
//! what a `rotate` line says about the files ([`Rotation`], [`Span`]). Also the borrowed
//! form a line is written from, and the hash that chains lines. Writing, rotating and
//! verifying the file live in `log.rs` and `verify.rs`, not here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller records; [`Log::append`] adds seq, time and prev.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `access`, `approve`, `deny`, `revoke`, `upgrade`, `register`, `daemon`, `rotate`,
    /// `notification`.
    pub event: String,
    /// `allow`, `deny`, `not_approved`, `out_of_scope`, `forbidden`, `not_found`, `error`, `ok`.
    pub decision: String,
    /// Why, for a person.
    pub reason: String,
    /// Peer process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// Peer user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// Peer executable path (or the path a change is about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Hash the decision is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// For upgrades: the hash replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_hash: Option<String>,
    /// Request type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// Secret names involved (names only, never values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Scopes set by an approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// How the request reached the daemon when the peer did not ask itself
    /// (`keychain-auth get` asking for its parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For `rotate` lines: what was rotated and what retention removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// What a `rotate` line records about the log's files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// The file this one continues (the first line of a new file after a rotation): the
    /// previous line, whose hash is this line's `prev`, is the last line of that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
    /// Rotated files that retention deletes at this rotation, oldest first (written
    /// before they are deleted). History before the oldest file that is left is
    /// accounted for only by such a record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<Span>,
}

/// The lines one deleted audit file held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// Sequence of its first line, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seq: Option<u64>,
    /// Sequence of its last line.
    pub last_seq: u64,
    /// Hex SHA-256 of its last line: the `prev` of the line that followed it.
    pub last_hash: String,
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// 1 for the first line ever written; +1 per line, across rotations.
    pub seq: u64,
    /// RFC 3339 UTC time.
    pub time: String,
    /// The recorded facts.
    #[serde(flatten)]
    pub entry: Entry,
    /// Hex SHA-256 of the previous line (without its newline); [`GENESIS`] for the first.
    pub prev: String,
}

/// A [`Record`] as it is written: the same JSON, field for field, rendered from borrowed
/// parts and without `flatten` (which goes through serde's slower map path).
#[derive(Serialize)]
pub(super) struct Line<'a> {
    seq: u64,
    time: &'a str,
    event: &'a str,
    decision: &'a str,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    names: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<&'a Rotation>,
    prev: &'a str,
}

impl<'a> Line<'a> {
    pub(super) fn new(seq: u64, time: &'a str, entry: &'a Entry, prev: &'a str) -> Line<'a> {
        // Destructured, so a field added to Entry cannot be left out here.
        let Entry {
            event,
            decision,
            reason,
            pid,
            uid,
            path,
            hash,
            old_hash,
            op,
            names,
            scopes,
            via,
            rotation,
        } = entry;
        Line {
            seq,
            time,
            event,
            decision,
            reason,
            pid: *pid,
            uid: *uid,
            path: path.as_deref(),
            hash: hash.as_deref(),
            old_hash: old_hash.as_deref(),
            op: op.as_deref(),
            names,
            scopes,
            via: via.as_deref(),
            rotation: rotation.as_ref(),
            prev,
        }
    }
}

/// Hex SHA-256 of one line (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::fixtures::entry;

    #[test]
    fn values_are_not_a_field() {
        let json = serde_json::to_string(&entry("access", "n")).expect("json");
        assert!(!json.contains("value"));
    }

    #[test]
    fn lines_are_written_exactly_as_records_serialize() {
        let full = Entry {
            event: "access".into(),
            decision: "allow".into(),
            reason: "a \"quoted\" reason\nwith a newline, \u{1} and ünïcode".into(),
            pid: Some(-1),
            uid: Some(u32::MAX),
            path: Some("/usr/bin/tool".into()),
            hash: Some("sha256:ab".into()),
            old_hash: Some("sha256:cd".into()),
            op: Some("get".into()),
            names: vec!["a/b".into(), "c".into()],
            scopes: vec!["a/*".into()],
            via: Some("keychain-auth get".into()),
            rotation: Some(Rotation {
                continues: Some("audit.log.1".into()),
                removed: vec![Span {
                    first_seq: Some(1),
                    last_seq: 9,
                    last_hash: GENESIS.into(),
                }],
            }),
        };
        for e in [Entry::default(), entry("approve", "n"), full] {
            let rec = Record {
                seq: 7,
                time: "2026-11-27T00:00:00.123Z".into(),
                entry: e.clone(),
                prev: GENESIS.into(),
            };
            let want = serde_json::to_vec(&rec).expect("record");
            let got = serde_json::to_vec(&Line::new(7, &rec.time, &e, GENESIS)).expect("line");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
