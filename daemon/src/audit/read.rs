//! Reading the audit log back for a person: the last lines of the current file
//! ([`tail`], for `keychain-auth audit` and the menu), and the window's full history,
//! the rotated files too, with search and filters (tool, secret, decision, time).
//! Reading never changes the log; lines that do not parse are skipped here
//! (`keychain-auth audit verify` is what names them).

use super::entry::Record;
use super::log::{rotated, MAX_ROTATED};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// At most this many records are returned for one query (newest first).
pub const MAX_RESULTS: usize = 1000;

/// What the person filters by; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    /// Free text: matched, case-insensitively, against the reason, path, hash, names and
    /// event.
    pub text: String,
    /// A tool: its hash (`sha256:…`, a prefix is enough) or part of its path.
    pub tool: String,
    /// Part of a secret name the line is about.
    pub secret: String,
    /// Exact decision: `allow`, `deny`, `not_approved`, `out_of_scope`, `ok`, …
    pub decision: String,
    /// RFC 3339 time: lines at or after it.
    pub since: String,
    /// RFC 3339 time: lines at or before it.
    pub until: String,
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    hay.to_lowercase().contains(needle_lower)
}

/// Whether one record passes every filter of `q`.
pub fn matches(r: &Record, q: &Query) -> bool {
    let e = &r.entry;
    let text = q.text.trim().to_lowercase();
    if !text.is_empty() {
        let hit = contains_ci(&e.reason, &text)
            || contains_ci(&e.event, &text)
            || contains_ci(&e.decision, &text)
            || e.path.as_deref().is_some_and(|p| contains_ci(p, &text))
            || e.hash.as_deref().is_some_and(|h| contains_ci(h, &text))
            || e.via.as_deref().is_some_and(|v| contains_ci(v, &text))
            || e.names.iter().any(|n| contains_ci(n, &text))
            || e.scopes.iter().any(|s| contains_ci(s, &text))
            || e.old_scopes.iter().any(|s| contains_ci(s, &text));
        if !hit {
            return false;
        }
    }
    let tool = q.tool.trim().to_lowercase();
    if !tool.is_empty() {
        let hit = if tool.starts_with("sha256:") {
            e.hash.as_deref().is_some_and(|h| h.starts_with(&tool))
                || e.old_hash.as_deref().is_some_and(|h| h.starts_with(&tool))
        } else {
            e.path.as_deref().is_some_and(|p| contains_ci(p, &tool))
        };
        if !hit {
            return false;
        }
    }
    let secret = q.secret.trim().to_lowercase();
    if !secret.is_empty() && !e.names.iter().any(|n| contains_ci(n, &secret)) {
        return false;
    }
    let decision = q.decision.trim();
    if !decision.is_empty() && e.decision != decision {
        return false;
    }
    // RFC 3339 UTC times as the daemon writes them compare correctly as strings; a
    // shorter bound ("2026-11-27") compares by its prefix.
    let since = q.since.trim();
    if !since.is_empty() && r.time.as_str() < since {
        return false;
    }
    let until = q.until.trim();
    if !until.is_empty() && r.time.get(..until.len()).unwrap_or(&r.time) > until {
        return false;
    }
    true
}

/// The records of `lines` (oldest first) that match, newest first, at most `limit`.
pub fn filter<'a>(
    records: impl DoubleEndedIterator<Item = &'a Record>,
    q: &Query,
    limit: usize,
) -> Vec<Record> {
    records
        .rev()
        .filter(|r| matches(r, q))
        .take(limit)
        .cloned()
        .collect()
}

/// Every record of the log at `path` and its rotated files (`.1` is the newest rotated
/// file), oldest first. Unparsable lines are skipped.
pub fn read_all(path: &Path, keep: usize) -> std::io::Result<Vec<Record>> {
    let mut files = Vec::new();
    for i in (1..=keep).rev() {
        files.push(rotated(path, i));
    }
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let bytes = match std::fs::read(&f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in bytes.split(|b| *b == b'\n') {
            if let Ok(r) = serde_json::from_slice::<Record>(line) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

/// The last `n` records of the current file, oldest first (for `keychain-auth audit`).
pub fn tail(path: &Path, n: usize) -> Result<Vec<(String, Option<Record>)>, std::io::Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let start = lines.len().saturating_sub(n);
    Ok(lines[start..]
        .iter()
        .map(|l| (l.to_string(), serde_json::from_str(l).ok()))
        .collect())
}

/// Runs a query over the log at `path` (and its rotated files).
pub fn search(path: &Path, q: &Query) -> std::io::Result<Vec<Record>> {
    let all = read_all(path, MAX_ROTATED)?;
    Ok(filter(all.iter(), q, MAX_RESULTS))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Entry, Log};

    fn rec(seq: u64, time: &str, e: Entry) -> Record {
        Record {
            seq,
            time: time.into(),
            entry: e,
            prev: String::new(),
        }
    }

    fn access(path: &str, hash: &str, name: &str, decision: &str) -> Entry {
        Entry {
            event: "access".into(),
            decision: decision.into(),
            reason: "served".into(),
            path: Some(path.into()),
            hash: Some(hash.into()),
            names: vec![name.into()],
            ..Entry::default()
        }
    }

    fn sample() -> Vec<Record> {
        vec![
            rec(
                1,
                "2026-11-26T10:00:00Z",
                access("/usr/bin/gh", "sha256:aaaa", "github/token", "allow"),
            ),
            rec(
                2,
                "2026-11-27T09:00:00Z",
                access("/opt/tool", "sha256:bbbb", "aws/key", "not_approved"),
            ),
            rec(
                3,
                "2026-11-27T10:00:00Z",
                access("/usr/bin/gh", "sha256:aaaa", "aws/key", "out_of_scope"),
            ),
        ]
    }

    fn seqs(q: &Query) -> Vec<u64> {
        filter(sample().iter(), q, 10)
            .iter()
            .map(|r| r.seq)
            .collect()
    }

    #[test]
    fn no_filter_gives_everything_newest_first() {
        assert_eq!(seqs(&Query::default()), vec![3, 2, 1]);
        assert_eq!(filter(sample().iter(), &Query::default(), 2).len(), 2);
    }

    #[test]
    fn each_filter_narrows_and_they_combine() {
        let q = |f: fn(&mut Query)| {
            let mut q = Query::default();
            f(&mut q);
            seqs(&q)
        };
        assert_eq!(q(|q| q.tool = "gh".into()), vec![3, 1]);
        assert_eq!(q(|q| q.tool = "SHA256:BBBB".into()), vec![2]);
        assert_eq!(q(|q| q.tool = "sha256:b".into()), vec![2]);
        assert_eq!(q(|q| q.secret = "aws".into()), vec![3, 2]);
        assert_eq!(q(|q| q.decision = "allow".into()), vec![1]);
        assert_eq!(q(|q| q.decision = "al".into()), Vec::<u64>::new());
        assert_eq!(q(|q| q.since = "2026-11-27".into()), vec![3, 2]);
        assert_eq!(q(|q| q.until = "2026-11-26".into()), vec![1]);
        assert_eq!(q(|q| q.until = "2026-11-27T09:00:00Z".into()), vec![2, 1]);
        assert_eq!(q(|q| q.text = "GITHUB".into()), vec![1]);
        assert_eq!(
            q(|q| {
                q.tool = "gh".into();
                q.secret = "aws".into();
            }),
            vec![3]
        );
    }

    #[test]
    fn reads_rotated_files_in_order_and_skips_damaged_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        // Small files so the log rotates.
        let mut log = Log::open_with(&path, 600, 4).expect("open");
        for i in 0..20 {
            log.append(
                access("/bin/t", "sha256:cc", &format!("s{i}"), "allow"),
                "2026-11-27T00:00:00Z",
                false,
            )
            .expect("append");
        }
        drop(log);
        assert!(dir.path().join("audit.log.1").exists(), "the log rotated");
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(b"{not json\n\xff\xfe\n");
        std::fs::write(&path, bytes).expect("write");
        let all = read_all(&path, 4).expect("read_all");
        let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, sorted, "oldest first across files");
        assert_eq!(
            *seqs.last().expect("records"),
            all.len() as u64 + seqs[0] - 1
        );
        let found = search(
            &path,
            &Query {
                secret: "s19".into(),
                ..Query::default()
            },
        )
        .expect("search");
        assert_eq!(found.len(), 1);
        assert!(read_all(&dir.path().join("none.log"), 4)
            .expect("missing is empty")
            .is_empty());
    }
}
