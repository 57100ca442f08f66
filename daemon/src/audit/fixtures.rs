//! Test fixtures shared by the audit log's unit tests: an entry, a log of `n` lines, and
//! reading and rewriting a file's lines (to tamper with it). Compiled for tests only.

use super::{Entry, Log};
use std::path::Path;

pub(super) fn entry(event: &str, name: &str) -> Entry {
    Entry {
        event: event.into(),
        decision: "allow".into(),
        reason: "test".into(),
        names: vec![name.into()],
        ..Entry::default()
    }
}

pub(super) fn write_log(path: &Path, n: usize) {
    let mut log = Log::open(path).expect("open");
    for i in 0..n {
        log.append(
            entry("access", &format!("s{i}")),
            "2026-11-27T00:00:00Z",
            false,
        )
        .expect("append");
    }
}

pub(super) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_string)
        .collect()
}

pub(super) fn rewrite(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).expect("write");
}
