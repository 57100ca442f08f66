//! The one writer of the audit log: [`Log`] opens the file and finds where its chain
//! ends, appends lines (or queues several for one `write`: [`Log::queue`],
//! [`Log::flush`]), rotates the file when it passes its size limit (`audit.log.1`,
//! `.2`, …) and applies retention, recording first, in a synced `rotate` line, what the
//! files it deletes held. [`rotated`] is the one place a rotated file's name is made.
//! Checking the chain is `verify.rs`; reading it back for a person is `read.rs`.

use super::entry::{line_hash, Decision, Entry, Event, Line, Record, Rotation, Span, GENESIS};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Default size at which the log is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Rotated files kept.
pub const DEFAULT_KEEP: usize = 4;

/// An audit log could not be opened, written or verified.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// I/O on the file failed.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file's last line is damaged, so the chain cannot be continued.
    #[error("audit log {path} is damaged at line {line}: {reason}. It was left untouched; run `keychain-auth audit verify`, then move it aside to start a new log")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Lines [`Log::queue`] may hold before it writes them itself.
pub const MAX_QUEUED_LINES: usize = 64;
/// Bytes [`Log::queue`] may hold before it writes them itself.
const MAX_QUEUED_BYTES: usize = 32 * 1024;

/// The open, appendable log.
#[derive(Debug)]
pub struct Log {
    path: PathBuf,
    file: File,
    /// Bytes in the file, and queued for it.
    size: u64,
    seq: u64,
    head: String,
    /// Rendered lines not yet written, oldest first (see [`Log::queue`]).
    queued: Vec<u8>,
    queued_lines: usize,
    /// `seq` and `head` of the last line in the file, to continue from if writing the
    /// queued lines fails.
    written: (u64, String),
    max_bytes: u64,
    keep: usize,
}

/// The name of the `k`th rotated file of the log at `path` (`audit.log` → `audit.log.k`;
/// `.1` is the newest).
pub(super) fn rotated(path: &Path, k: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{k}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })
}

impl Log {
    /// Opens (or creates) the log and finds where its chain ends. A damaged last line
    /// stops here with [`AuditError::Damaged`]; the file is not modified.
    pub fn open(path: &Path) -> Result<Log, AuditError> {
        Log::open_with(path, DEFAULT_MAX_BYTES, DEFAULT_KEEP)
    }

    /// [`Log::open`] with a rotation size and the number of rotated files to keep.
    pub fn open_with(path: &Path, max_bytes: u64, keep: usize) -> Result<Log, AuditError> {
        let io = |source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        };
        // An empty current file right after a rotation continues the rotated file's chain.
        let mut state = (0, GENESIS.to_string());
        for candidate in [rotated(path, 1), path.to_path_buf()] {
            match std::fs::read(&candidate) {
                Ok(bytes) if !bytes.is_empty() => state = tail_state(&candidate, &bytes)?,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        let (seq, head) = state;
        let file = open_append(path)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Log {
            path: path.to_path_buf(),
            file,
            size,
            written: (seq, head.clone()),
            seq,
            head,
            queued: Vec::new(),
            queued_lines: 0,
            max_bytes,
            keep: keep.max(1),
        })
    }

    /// Sequence number of the last line written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Hash of the last line written.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Appends one line, with any queued before it. With `durable` the lines are fsynced
    /// before returning; otherwise they are handed to the kernel (they survive the daemon
    /// being killed, not a power cut).
    pub fn append(&mut self, entry: Entry, now: &str, durable: bool) -> Result<u64, AuditError> {
        self.render_line(&entry, now)?;
        self.flush()?;
        if durable {
            self.file.sync_data().map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(self.seq)
    }

    /// Adds one line to the chain and queues it for the next [`Log::flush`], so that
    /// lines of several requests reach the file in one `write`. Once
    /// [`MAX_QUEUED_LINES`] (or 32 KiB) are queued, they are written at once.
    pub fn queue(&mut self, entry: Entry, now: &str) -> Result<u64, AuditError> {
        self.render_line(&entry, now)?;
        if self.queued_lines >= MAX_QUEUED_LINES || self.queued.len() >= MAX_QUEUED_BYTES {
            self.flush()?;
        }
        Ok(self.seq)
    }

    /// Lines queued and not yet written.
    pub fn queued(&self) -> usize {
        self.queued_lines
    }

    /// Writes the queued lines in one `write(2)` on the `O_APPEND` file (a killed daemon
    /// leaves whole lines only). If that fails they are dropped, and the chain goes on
    /// from the last line in the file, so the file stays verifiable.
    pub fn flush(&mut self) -> Result<(), AuditError> {
        if self.queued.is_empty() {
            return Ok(());
        }
        let res = self.file.write_all(&self.queued);
        self.queued.clear();
        self.queued_lines = 0;
        match res {
            Ok(()) => {
                self.written = (self.seq, self.head.clone());
                Ok(())
            }
            Err(source) => {
                (self.seq, self.head) = self.written.clone();
                self.size = self.file.metadata().map(|m| m.len()).unwrap_or(self.size);
                Err(AuditError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// Renders `entry` as the next line of the chain into the queue, rotating first if
    /// the file is full.
    fn render_line(&mut self, entry: &Entry, now: &str) -> Result<(), AuditError> {
        if self.size >= self.max_bytes {
            self.rotate(now)?;
        }
        if self.size == 0 && self.seq > 0 {
            // A fresh file after rotation opens with a rotate record that continues the chain.
            let rot = Entry {
                event: Event::Rotate.into(),
                decision: Decision::Ok.into(),
                reason: format!("continues from {}", rotated(&self.path, 1).display()),
                rotation: Some(Rotation {
                    continues: Some(file_name(&rotated(&self.path, 1))),
                    removed: Vec::new(),
                }),
                ..Entry::default()
            };
            self.push_line(&rot, now)?;
        }
        self.push_line(entry, now)
    }

    fn push_line(&mut self, entry: &Entry, now: &str) -> Result<(), AuditError> {
        let start = self.queued.len();
        let line = Line::new(self.seq + 1, now, entry, &self.head);
        if let Err(e) = serde_json::to_writer(&mut self.queued, &line) {
            self.queued.truncate(start);
            return Err(AuditError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(e),
            });
        }
        self.head = line_hash(&self.queued[start..]);
        self.queued.push(b'\n');
        self.queued_lines += 1;
        self.size += (self.queued.len() - start) as u64;
        self.seq += 1;
        Ok(())
    }

    /// Moves the full file aside (`audit.log` → `.1` → `.2` …). Rotated files beyond
    /// `keep` are deleted, but only after a `rotate` line naming what they held has been
    /// written and synced, so their absence is always accounted for in the chain.
    fn rotate(&mut self, now: &str) -> Result<(), AuditError> {
        let path = self.path.clone();
        let io = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        // Files that will be beyond `keep` once everything moves up by one.
        let doomed: Vec<PathBuf> = (self.keep..=MAX_ROTATED)
            .map(|k| rotated(&self.path, k))
            .filter(|p| p.exists())
            .collect();
        let removed: Vec<Span> = doomed
            .iter()
            .map(|p| span_of(&self.path, p))
            .collect::<Result<_, _>>()?;
        let reason = if removed.is_empty() {
            format!(
                "{} is full and becomes {}",
                file_name(&self.path),
                file_name(&rotated(&self.path, 1))
            )
        } else {
            format!(
                "{} is full and becomes {}; {} rotated files are kept, so {} (sequences {}) {} removed",
                file_name(&self.path),
                file_name(&rotated(&self.path, 1)),
                self.keep,
                doomed.iter().map(|p| file_name(p)).collect::<Vec<_>>().join(", "),
                removed
                    .iter()
                    .map(|s| format!(
                        "{}–{}",
                        s.first_seq.map_or("?".into(), |f| f.to_string()),
                        s.last_seq
                    ))
                    .collect::<Vec<_>>()
                    .join(", "),
                if removed.len() == 1 { "is" } else { "are" }
            )
        };
        self.push_line(
            &Entry {
                event: Event::Rotate.into(),
                decision: Decision::Ok.into(),
                reason,
                rotation: Some(Rotation {
                    continues: None,
                    removed,
                }),
                ..Entry::default()
            },
            now,
        )?;
        self.flush()?;
        self.file.sync_all().map_err(io)?;
        for p in doomed.iter().rev() {
            std::fs::remove_file(p).map_err(io)?;
        }
        for k in (1..self.keep).rev() {
            let from = rotated(&self.path, k);
            if from.exists() {
                std::fs::rename(&from, rotated(&self.path, k + 1)).map_err(io)?;
            }
        }
        std::fs::rename(&self.path, rotated(&self.path, 1)).map_err(io)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Most rotated files looked at (`audit.log.1` … `audit.log.64`).
pub const MAX_ROTATED: usize = 64;

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The first line of a file (without its newline), reading no more than needed.
fn first_line(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{BufRead, BufReader, Read};
    let mut line = Vec::new();
    BufReader::new(File::open(path)?.take(1 << 20)).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(line)
}

/// What the rotated file `doomed` of the log at `path` holds: its first sequence, and
/// its last line's sequence and hash, read from the first line of the file that follows
/// it (whose `seq` and `prev` continue it).
fn span_of(path: &Path, doomed: &Path) -> Result<Span, AuditError> {
    let k: usize = file_name(doomed)
        .rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let next = if k > 1 {
        rotated(path, k - 1)
    } else {
        path.to_path_buf()
    };
    let damaged = |p: &Path, reason: String| AuditError::Damaged {
        path: p.to_path_buf(),
        line: 1,
        reason,
    };
    let follower = first_line(&next).map_err(|source| AuditError::Io {
        path: next.clone(),
        source,
    })?;
    let rec: Record = serde_json::from_slice(&follower)
        .map_err(|e| damaged(&next, format!("not a valid audit record ({e})")))?;
    let first_seq = first_line(doomed)
        .ok()
        .and_then(|l| serde_json::from_slice::<Record>(&l).ok())
        .map(|r| r.seq);
    Ok(Span {
        first_seq,
        last_seq: rec.seq.saturating_sub(1),
        last_hash: rec.prev,
    })
}

/// Reads the last line of an existing log: its seq and hash.
fn tail_state(path: &Path, bytes: &[u8]) -> Result<(u64, String), AuditError> {
    if bytes.is_empty() {
        return Ok((0, GENESIS.to_string()));
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let damaged = |line, reason: String| AuditError::Damaged {
        path: path.to_path_buf(),
        line,
        reason,
    };
    if bytes.last() != Some(&b'\n') {
        return Err(damaged(lines + 1, "the last line is incomplete".into()));
    }
    let body = &bytes[..bytes.len() - 1];
    let last = body.rsplit(|&b| b == b'\n').next().unwrap_or(body);
    let rec: Record = serde_json::from_slice(last)
        .map_err(|e| damaged(lines, format!("not a valid audit record ({e})")))?;
    Ok((rec.seq, line_hash(last)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::fixtures::{entry, lines, rewrite, write_log};
    use crate::audit::{verify, verify_with};

    #[test]
    fn chain_verifies_and_reopens() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        write_log(&p, 5);
        write_log(&p, 3);
        let r = verify(&p).expect("valid");
        assert_eq!(r.lines, 8);
        assert_eq!(r.last_seq, 8);
        let log = Log::open(&p).expect("open");
        assert_eq!(log.seq(), 8);
        assert_eq!(log.head(), r.head);
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        let mut log = Log::open_with(&p, 600, 3).expect("open");
        for i in 0..40 {
            log.append(
                entry("access", &format!("s{i}")),
                "2026-11-27T00:00:00Z",
                false,
            )
            .expect("append");
        }
        assert!(rotated(&p, 1).exists());
        assert!(!rotated(&p, 4).exists(), "only 3 rotated files are kept");
        let r = verify(&p).expect("chain continues across files");
        assert_eq!(r.last_seq, log.seq());
        // Tampering inside a rotated file is still found.
        let r1 = rotated(&p, 1);
        let mut l = lines(&r1);
        l.remove(1);
        rewrite(&r1, &l);
        assert_eq!(verify(&p).expect_err("removal").file, r1);
    }

    #[test]
    fn history_deleted_by_hand_fails_verification_and_retention_is_accounted_for() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        let mut log = Log::open_with(&p, 700, 2).expect("open");
        for i in 0..60 {
            log.append(
                entry("access", &format!("s{i}")),
                "2026-11-27T00:00:00Z",
                false,
            )
            .expect("append");
        }
        assert!(rotated(&p, 2).exists() && !rotated(&p, 3).exists());
        // Retention removed older files, and said so in the chain: the log verifies.
        let r = verify(&p).expect("retention is accounted for");
        assert!(r.files.len() == 3 && r.lines < 60, "{r:?}");
        let claims: Vec<Record> = std::fs::read_to_string(rotated(&p, 1))
            .expect("read")
            .lines()
            .chain(
                std::fs::read_to_string(&p)
                    .expect("read")
                    .lines()
                    .collect::<Vec<_>>(),
            )
            .map(|l| serde_json::from_str::<Record>(l).expect("record"))
            .filter(|r| {
                r.entry
                    .rotation
                    .as_ref()
                    .is_some_and(|x| !x.removed.is_empty())
            })
            .collect();
        assert!(
            !claims.is_empty(),
            "a rotate line names what retention removed"
        );

        let backup: Vec<(PathBuf, Vec<u8>)> = [rotated(&p, 2), rotated(&p, 1), p.clone()]
            .iter()
            .map(|f| (f.clone(), std::fs::read(f).expect("read")))
            .collect();
        let restore = || {
            for (f, b) in &backup {
                std::fs::write(f, b).expect("restore");
            }
        };
        // The oldest rotated file deleted: nothing says it was removed.
        std::fs::remove_file(rotated(&p, 2)).expect("rm");
        let e = verify(&p).expect_err("oldest file deleted");
        assert_eq!(e.file, rotated(&p, 1));
        assert!(e.reason.contains("history up to sequence"), "{e}");
        restore();
        // A file in the middle deleted: the chain breaks.
        std::fs::remove_file(rotated(&p, 1)).expect("rm");
        assert!(verify(&p).is_err());
        restore();
        // Every rotated file deleted.
        std::fs::remove_file(rotated(&p, 1)).expect("rm");
        std::fs::remove_file(rotated(&p, 2)).expect("rm");
        let e = verify(&p).expect_err("all rotated files deleted");
        assert_eq!(e.file, p);
        restore();
        verify(&p).expect("restored");
        // Reopened, the chain goes on and still verifies after more rotations.
        drop(log);
        let mut log = Log::open_with(&p, 700, 2).expect("reopen");
        for i in 0..20 {
            log.append(
                entry("access", &format!("t{i}")),
                "2026-11-27T00:00:01Z",
                true,
            )
            .expect("append");
        }
        verify_with(&p, Some((log.seq(), log.head().to_string()))).expect("chain");
        // Fewer files kept than exist: every extra one is removed and accounted for.
        drop(log);
        let mut log = Log::open_with(&p, 700, 1).expect("reopen");
        for i in 0..12 {
            log.append(
                entry("access", &format!("u{i}")),
                "2026-11-27T00:00:02Z",
                false,
            )
            .expect("append");
        }
        assert!(!rotated(&p, 2).exists());
        verify(&p).expect("keep lowered");
    }

    #[test]
    fn queued_lines_reach_the_file_together_on_flush() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        let mut log = Log::open(&p).expect("open");
        log.append(entry("approve", "first"), "2026-11-27T00:00:00Z", true)
            .expect("append");
        for i in 0..3 {
            log.queue(entry("access", &format!("q{i}")), "2026-11-27T00:00:00Z")
                .expect("queue");
        }
        assert_eq!(log.seq(), 4);
        assert_eq!(log.queued(), 3);
        assert_eq!(lines(&p).len(), 1, "queued lines are not written yet");
        log.flush().expect("flush");
        assert_eq!(log.queued(), 0);
        let r = verify_with(&p, Some((log.seq(), log.head().to_string()))).expect("chain");
        assert_eq!(r.lines, 4);
        // An appended line writes the queued ones before it, in order.
        log.queue(entry("access", "q3"), "2026-11-27T00:00:00Z")
            .expect("queue");
        log.append(entry("deny", "last"), "2026-11-27T00:00:00Z", false)
            .expect("append");
        let r = verify_with(&p, Some((log.seq(), log.head().to_string()))).expect("chain");
        assert_eq!((r.lines, r.last_seq), (6, 6));
        // A full queue writes itself.
        for i in 0..MAX_QUEUED_LINES {
            log.queue(entry("access", &format!("m{i}")), "2026-11-27T00:00:00Z")
                .expect("queue");
        }
        assert_eq!(log.queued(), 0);
        assert_eq!(lines(&p).len(), 6 + MAX_QUEUED_LINES);
        verify(&p).expect("chain");
    }

    #[test]
    fn a_batch_that_cannot_be_written_is_dropped_and_the_chain_goes_on_from_the_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        let mut log = Log::open(&p).expect("open");
        log.append(entry("approve", "kept"), "2026-11-27T00:00:00Z", false)
            .expect("append");
        let (seq, head) = (log.seq(), log.head().to_string());
        let good = std::mem::replace(&mut log.file, File::open(&p).expect("read-only"));
        log.queue(entry("access", "lost"), "2026-11-27T00:00:00Z")
            .expect("queue");
        assert!(
            log.flush().is_err(),
            "a read-only descriptor cannot be written"
        );
        assert_eq!((log.seq(), log.head()), (seq, head.as_str()));
        log.file = good;
        log.append(entry("access", "after"), "2026-11-27T00:00:00Z", false)
            .expect("append");
        let r = verify_with(&p, Some((log.seq(), log.head().to_string()))).expect("chain");
        assert_eq!((r.lines, r.last_seq), (2, 2));
        assert!(!std::fs::read_to_string(&p).expect("read").contains("lost"));
    }
}
