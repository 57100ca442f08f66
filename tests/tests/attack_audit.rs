//! Audit history cannot be removed without a trace, and no client can force the log to
//! rotate: deleting a rotated file by hand fails `audit verify` (retention's own
//! deletions are recorded in the chain), and a flood of refused requests from a binary
//! at a very long path is counted into summary lines instead of each being written.
//! Played by an ordinary user against the real daemon.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use std::path::PathBuf;

/// Writes config.json with small audit files, as the home's user.
fn small_audit_files(h: &Home, max_bytes: u64, keep: usize) {
    h.write_config(&format!(
        "\"audit_max_bytes\":{max_bytes},\"audit_keep\":{keep}"
    ));
}

fn rotated(h: &Home, k: usize) -> PathBuf {
    h.path(&format!("audit.log.{k}"))
}

#[test]
fn a_rotated_audit_file_deleted_by_hand_fails_verification() {
    let mut h = Home::ordinary();
    small_audit_files(&h, 4096, 2);
    h.start(&["--store", "keyutils"]);
    for i in 0..80 {
        // One name written again and again: one key, many audited writes.
        let o = h.ka_stdin(&["set", "audit/x"], format!("v{i}").as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(rotated(&h, 1).exists() && rotated(&h, 2).exists());
    assert!(!rotated(&h, 3).exists(), "only two rotated files are kept");
    let ok = h.ka(&["audit", "verify"]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    // Retention said in the chain what it removed.
    let all: String = [rotated(&h, 2), rotated(&h, 1), h.path("audit.log")]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(all.contains("\"removed\":[{"), "{all}");

    let backup: Vec<(PathBuf, Vec<u8>)> = [rotated(&h, 2), rotated(&h, 1)]
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let restore = |b: &[(PathBuf, Vec<u8>)]| {
        for (p, bytes) in b {
            std::fs::write(p, bytes).unwrap();
        }
    };
    for doomed in [
        vec![rotated(&h, 2)],
        vec![rotated(&h, 1)],
        vec![rotated(&h, 1), rotated(&h, 2)],
    ] {
        for d in &doomed {
            std::fs::remove_file(d).unwrap();
        }
        let o = h.ka(&["audit", "verify"]);
        assert!(
            !o.status.success(),
            "deleting {doomed:?} went unnoticed: {}",
            stdout(&o)
        );
        assert!(stderr(&o).contains("FAILED"), "{}", stderr(&o));
        restore(&backup);
    }
    let o = h.ka(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A copy of the test client at a path of about 3,000 characters.
fn client_at_a_long_path(h: &Home) -> PathBuf {
    let mut dir = h.dir.clone();
    for i in 0..12 {
        dir = dir.join(format!("{i:02}{}", "d".repeat(240)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    let dst = dir.join("tool");
    let ok = std::process::Command::new("cp")
        .arg(bin("ka-test-client"))
        .arg(&dst)
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(dst.as_os_str().len() > 2900);
    dst
}

#[test]
fn a_flood_of_refusals_from_a_long_path_cannot_force_a_rotation() {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let tool = client_at_a_long_path(&h);
    let before = std::fs::metadata(h.path("audit.log")).unwrap().len();
    let r = h.client_at(&tool, &["get-many", "flood/x", "4", "1000"]);
    assert_eq!(r["served"], 0, "{r}");
    assert_eq!(r["failed"], 4000, "{r}");
    // `status` (as `audit verify` does) makes the daemon write what it counted so far.
    assert!(h.ka(&["status"]).status.success());
    let hash = sha256_file(&tool);
    let lines: Vec<serde_json::Value> = h
        .audit_lines()
        .into_iter()
        .filter(|l| l["hash"] == hash.as_str())
        .collect();
    assert!(
        (1..=4).contains(&lines.len()),
        "{} lines for 4000 refusals",
        lines.len()
    );
    let counted: u64 = lines
        .iter()
        .filter_map(|l| {
            let r = l["reason"].as_str()?;
            let at = r.find(" more times")?;
            r[..at].rsplit(" ").next()?.parse::<u64>().ok()
        })
        .sum();
    assert_eq!(
        counted + 1,
        4000,
        "every refusal is accounted for: {lines:?}"
    );
    for l in &lines {
        assert!(
            l["path"].as_str().unwrap().len() <= 256,
            "long paths are cut"
        );
    }
    let grown = std::fs::metadata(h.path("audit.log")).unwrap().len() - before;
    assert!(grown < 16 * 1024, "the log grew by {grown} bytes");
    assert!(!rotated(&h, 1).exists(), "no rotation was forced");
    let o = h.ka(&["audit", "verify"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
