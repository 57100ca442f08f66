//! What one audit line holds: the [`Entry`] a caller records, the [`Record`] it becomes
//! once [`Log::append`](super::Log::append) adds its sequence, time and `prev` hash,
//! what a `rotate` line says about the files ([`Rotation`], [`Span`]), and the words its
//! `event` and `decision` take ([`Event`], [`Decision`]). Also the borrowed form a line
//! is written from, and the hash that chains lines. Writing, rotating and verifying the
//! file live in `log.rs` and `verify.rs`, not here.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `prev` of the very first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a caller records; [`Log::append`] adds seq, time and prev.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// `access`, `approve`, `deny`, `revoke`, `upgrade`, `register`, `daemon`, `rotate`,
    /// `notification`, `scopes`, `undeny` (the words of [`Event`]).
    pub event: String,
    /// `allow`, `deny`, `not_approved`, `out_of_scope`, `forbidden`, `not_found`, `error`, `ok`
    /// (the words of [`Decision`]).
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
    /// For an approve or scope edit of a tool that was approved: its scopes before (the
    /// change is `old_scopes` → `scopes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_scopes: Vec<String>,
    /// Access set by an approval (`read`, `read-write`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<String>,
    /// For an approve or scope edit of a tool that was approved: its access before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_access: Option<String>,
    /// How the request reached the daemon when the peer did not ask itself
    /// (`keychain-auth get` asking for its parent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// For `rotate` lines: what was rotated and what retention removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
    /// For widening decisions: how the person's presence was proven (`polkit`,
    /// `local-auth`), or `none` (presence off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<String>,
}

impl Entry {
    /// A line about `event` that ended in `decision`, for `reason`; the caller fills in
    /// the rest (`..Entry::new(…)`).
    pub fn new(event: Event, decision: Decision, reason: impl Into<String>) -> Entry {
        Entry {
            event: event.as_str().into(),
            decision: decision.as_str().into(),
            reason: reason.into(),
            ..Entry::default()
        }
    }
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
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    old_scopes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    access: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_access: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<&'a Rotation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    presence: Option<&'a str>,
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
            old_scopes,
            access,
            old_access,
            via,
            rotation,
            presence,
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
            old_scopes,
            access: access.as_deref(),
            old_access: old_access.as_deref(),
            via: via.as_deref(),
            rotation: rotation.as_ref(),
            presence: presence.as_deref(),
            prev,
        }
    }
}

/// Hex SHA-256 of one line (without its newline).
pub fn line_hash(line: &[u8]) -> String {
    hex::encode(Sha256::digest(line))
}

/// Declares one closed set of words an audit line uses: the enum, `ALL`, `as_str`,
/// `Display`, `FromStr` and serde, all from one table, so they cannot disagree.
macro_rules! audit_words {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The word as the log writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_string()
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<$name, UnknownWord> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownWord {
                        what: $what,
                        word: s.to_string(),
                    }),
                }
            }
        }
    };
}

// Every line the daemon writes is built from these ([`Entry::new`]); `Entry`'s fields stay
// strings so that a log written by any version (a word this one does not know) still
// reads, verifies and continues.
audit_words! {
    /// What an audit line is about: its `event`.
    Event("event") {
        /// A request for secrets (get, list, set, delete), served or refused.
        Access => "access",
        /// A binary approved.
        Approve => "approve",
        /// A pending binary denied.
        Deny => "deny",
        /// A deny rule lifted (`keychain-auth undeny`, the window's Undeny).
        Undeny => "undeny",
        /// An approval withdrawn.
        Revoke => "revoke",
        /// An approved binary re-pinned to a new hash.
        Upgrade => "upgrade",
        /// A binary approved by its path before it asked (`keychain-auth register`).
        Register => "register",
        /// The daemon started, stopped, paused or resumed.
        Daemon => "daemon",
        /// The log was rotated (or a new file continues a rotated one).
        Rotate => "rotate",
        /// A desktop notification was shown, answered by a forger, or is unavailable.
        Notification => "notification",
        /// An approved binary's scopes were edited.
        Scopes => "scopes",
        /// A setting of the daemon changed (`presence`).
        Settings => "settings",
        /// An approval ran out (`approve --for`).
        Expire => "expire",
    }
}

audit_words! {
    /// How a request or change ended: an audit line's `decision`.
    Decision("decision") {
        /// Served.
        Allow => "allow",
        /// Refused.
        Deny => "deny",
        /// Refused: the binary is not approved (it is queued as pending).
        NotApproved => "not_approved",
        /// Refused: the secret is outside the binary's scopes.
        OutOfScope => "out_of_scope",
        /// Refused for a reason no approval changes (the reason says which).
        Forbidden => "forbidden",
        /// No such secret.
        NotFound => "not_found",
        /// The request failed.
        Error => "error",
        /// An admin change or daemon event that went through.
        Ok => "ok",
    }
}

/// A word that is not one of an audit field's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not an audit {what}")]
pub struct UnknownWord {
    /// Which field: `event` or `decision`.
    pub what: &'static str,
    /// The word given.
    pub word: String,
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
            old_scopes: vec!["b".into()],
            access: Some("read-write".into()),
            old_access: Some("read".into()),
            via: Some("keychain-auth get".into()),
            rotation: Some(Rotation {
                continues: Some("audit.log.1".into()),
                removed: vec![Span {
                    first_seq: Some(1),
                    last_seq: 9,
                    last_hash: GENESIS.into(),
                }],
            }),
            presence: Some("polkit".into()),
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

    #[test]
    fn every_event_and_decision_word_round_trips() {
        fn round_trip<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::fmt::Display + std::str::FromStr,
            T: Serialize + for<'de> Deserialize<'de>,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            let mut seen = std::collections::HashSet::new();
            for v in all {
                let word = v.to_string();
                assert!(seen.insert(word.clone()), "{word} is listed twice");
                assert_eq!(word.parse::<T>().expect("parses"), *v);
                let json = serde_json::to_string(v).expect("json");
                assert_eq!(json, format!("\"{word}\""));
                assert_eq!(serde_json::from_str::<T>(&json).expect("from json"), *v);
            }
        }
        round_trip(Event::ALL);
        round_trip(Decision::ALL);
    }

    #[test]
    fn the_words_the_daemon_writes_are_all_known() {
        for w in [
            "access",
            "approve",
            "deny",
            "revoke",
            "upgrade",
            "register",
            "daemon",
            "rotate",
            "notification",
            "scopes",
            "settings",
            "expire",
            "undeny",
        ] {
            assert_eq!(w.parse::<Event>().expect("event").as_str(), w);
        }
        for w in [
            "allow",
            "deny",
            "not_approved",
            "out_of_scope",
            "forbidden",
            "not_found",
            "error",
            "ok",
        ] {
            assert_eq!(w.parse::<Decision>().expect("decision").as_str(), w);
        }
        assert_eq!(Event::ALL.len(), 13);
        assert_eq!(Decision::ALL.len(), 8);
    }

    #[test]
    fn an_unknown_word_is_refused_and_named() {
        let e = "Allow".parse::<Decision>().expect_err("case matters");
        assert_eq!(
            e,
            UnknownWord {
                what: "decision",
                word: "Allow".into()
            }
        );
        assert_eq!(e.to_string(), "\"Allow\" is not an audit decision");
        assert!("".parse::<Event>().is_err());
        assert!(serde_json::from_str::<Event>("\"pause\"").is_err());
    }
}
