//! The audit chain's verifier: [`verify`] reads the rotated files oldest first, then the
//! current one, and names the first line that was edited, removed, reordered or cut
//! (and history missing with no `rotate` line to account for it); [`verify_with`] also
//! checks the chain reaches the running daemon's last line. It only reads.

use super::entry::{line_hash, Record, GENESIS};
use super::log::{rotated, MAX_ROTATED};
use std::path::{Path, PathBuf};

/// The first problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The file holding the bad line.
    pub file: PathBuf,
    /// 1-based line number within that file.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: {}",
            self.file.display(),
            self.line,
            self.reason
        )
    }
}

/// What [`verify`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Files read, oldest first.
    pub files: Vec<PathBuf>,
    /// Lines checked.
    pub lines: usize,
    /// Sequence of the last line (0 for an empty log).
    pub last_seq: u64,
    /// Hash of the last line ([`GENESIS`] for an empty log).
    pub head: String,
}

/// Checks the whole chain: rotated files oldest first, then the current file.
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyFailure> {
    verify_with(path, None)
}

/// [`verify`], also checking that the chain reaches `anchor` (the sequence and hash of
/// the last line the running daemon wrote), which finds lines cut from the end.
pub fn verify_with(
    path: &Path,
    anchor: Option<(u64, String)>,
) -> Result<VerifyReport, VerifyFailure> {
    let mut files: Vec<PathBuf> = (1..=MAX_ROTATED)
        .map(|k| rotated(path, k))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut report = VerifyReport {
        files: Vec::new(),
        lines: 0,
        last_seq: 0,
        head: GENESIS.to_string(),
    };
    let mut first = true;
    let mut last_file: Option<(PathBuf, usize)> = None;
    // Where the oldest line left continues a chain whose earlier part is gone: the file,
    // and the (sequence, hash) of the line that must have come before.
    let mut missing_before: Option<(PathBuf, u64, String)> = None;
    // Every file retention said it removed: (last sequence, last hash).
    let mut removed: std::collections::HashSet<(u64, String)> = Default::default();
    for file in files {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(VerifyFailure {
                    file,
                    line: 0,
                    reason: format!("cannot read: {e}"),
                })
            }
        };
        let fail = |line: usize, reason: String| VerifyFailure {
            file: file.clone(),
            line,
            reason,
        };
        if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
            let n = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
            return Err(fail(n, "the line is incomplete (no newline)".into()));
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        let body_lines = if body.is_empty() {
            Vec::new()
        } else {
            body.split(|&b| b == b'\n').collect()
        };
        for (i, line) in body_lines.into_iter().enumerate() {
            if line.is_empty() {
                return Err(fail(i + 1, "empty line".into()));
            }
            let n = i + 1;
            let rec: Record = serde_json::from_slice(line)
                .map_err(|e| fail(n, format!("not a valid audit record ({e})")))?;
            if first {
                if rec.seq == 1 {
                    if rec.prev != GENESIS {
                        return Err(fail(n, "the first line does not start the chain".into()));
                    }
                } else if rec.entry.event != "rotate" {
                    return Err(fail(
                        n,
                        format!(
                            "the log starts at sequence {} but earlier lines are missing",
                            rec.seq
                        ),
                    ));
                } else {
                    missing_before = Some((file.clone(), rec.seq - 1, rec.prev.clone()));
                }
                first = false;
            } else {
                if rec.seq != report.last_seq + 1 {
                    return Err(fail(
                        n,
                        format!(
                            "sequence {} follows {}: lines were removed or reordered",
                            rec.seq, report.last_seq
                        ),
                    ));
                }
                if rec.prev != report.head {
                    return Err(fail(
                        n,
                        "its prev hash does not match the line before it: that line was edited, or lines were removed or reordered".into(),
                    ));
                }
            }
            if let Some(rot) = &rec.entry.rotation {
                for span in &rot.removed {
                    removed.insert((span.last_seq, span.last_hash.clone()));
                }
            }
            report.last_seq = rec.seq;
            report.head = line_hash(line);
            if let Some((seq, head)) = &anchor {
                if rec.seq == *seq && report.head != *head {
                    return Err(fail(
                        n,
                        "this line differs from the one the daemon wrote".into(),
                    ));
                }
            }
            report.lines += 1;
        }
        report.files.push(file.clone());
        last_file = Some((file, report.lines));
    }
    if let Some((file, seq, hash)) = missing_before {
        if !removed.contains(&(seq, hash)) {
            return Err(VerifyFailure {
                file,
                line: 1,
                reason: format!(
                    "the history up to sequence {seq} is missing, and no rotate line says retention removed it: a rotated audit file was deleted"
                ),
            });
        }
    }
    if let Some((seq, _)) = anchor {
        if report.last_seq < seq {
            let (file, _) = last_file.unwrap_or((path.to_path_buf(), 0));
            let n = std::fs::read(&file)
                .map(|b| b.iter().filter(|&&c| c == b'\n').count())
                .unwrap_or(0);
            return Err(VerifyFailure {
                file,
                line: n + 1,
                reason: format!(
                    "the log ends at sequence {} but the daemon has written up to {seq}: lines were removed from the end",
                    report.last_seq
                ),
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::fixtures::{lines, rewrite, write_log};
    use crate::audit::Log;

    #[test]
    fn edits_removals_reorders_and_truncation_are_found() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("audit.log");
        write_log(&p, 6);
        let orig = lines(&p);

        let mut edited = orig.clone();
        edited[2] = edited[2].replace("s2", "s9");
        rewrite(&p, &edited);
        assert_eq!(verify(&p).expect_err("edit").line, 4);

        let mut removed = orig.clone();
        removed.remove(3);
        rewrite(&p, &removed);
        assert_eq!(verify(&p).expect_err("removal").line, 4);

        let mut reordered = orig.clone();
        reordered.swap(1, 2);
        rewrite(&p, &reordered);
        assert_eq!(verify(&p).expect_err("reorder").line, 2);

        let mut first_gone = orig.clone();
        first_gone.remove(0);
        rewrite(&p, &first_gone);
        assert_eq!(verify(&p).expect_err("head removed").line, 1);

        let mut s = orig.join("\n");
        s.push('\n');
        std::fs::write(&p, &s[..s.len() - 10]).expect("truncate");
        assert_eq!(verify(&p).expect_err("torn").line, 6);
        assert!(Log::open(&p).is_err(), "a torn log is not continued");
        assert_eq!(
            std::fs::read(&p).expect("read").len(),
            s.len() - 10,
            "left untouched"
        );

        rewrite(&p, &orig);
        assert!(verify(&p).is_ok());
    }
}
