//! What the threat model says stays true about ptrace, checked on this machine: a
//! program that starts a tool as its child can open the child's memory for writing
//! without attaching (its `TracerPid` stays 0) unless Yama's `ptrace_scope` is 2 or more,
//! and `keychain-auth status` tells the user which case the machine is in (every value of
//! `ptrace_scope`, and its absence, are unit-tested in `daemon/src/ptrace.rs`). Played by
//! an ordinary user.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{stderr, stdout, Home};
use std::path::Path;

/// The machine's `kernel.yama.ptrace_scope`, `None` without Yama.
fn scope() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .map(|s| s.trim().parse().unwrap())
}

#[test]
fn status_says_what_a_parent_can_do_to_an_approved_tool_here() {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let o = h.ka(&["status"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = stdout(&o)
        .lines()
        .find(|l| l.trim_start().starts_with("ptrace:"))
        .unwrap_or_else(|| panic!("no ptrace line: {}", stdout(&o)))
        .to_string();
    match scope() {
        None => assert!(line.contains("no Yama"), "{line}"),
        Some(n) => assert!(line.contains(&format!("ptrace_scope {n}")), "{line}"),
    }
    if scope().is_none_or(|n| n < 2) {
        assert!(line.contains("write its memory"), "{line}");
    }
}

#[test]
fn a_parent_can_write_its_childs_memory_unless_ptrace_scope_is_2_or_more() {
    let h = Home::ordinary();
    // The parent starts a child (any program: an approved tool in the attack), opens
    // /proc/<child>/mem for writing and reads the child's TracerPid.
    let parent = r#"
import os, subprocess
child = subprocess.Popen(["/bin/sleep", "30"])
try:
    fd = os.open("/proc/%d/mem" % child.pid, os.O_RDWR)
    os.close(fd)
    opened = "opened"
except OSError as e:
    opened = "refused:%d" % e.errno
tracer = [l.split()[1] for l in open("/proc/%d/status" % child.pid) if l.startswith("TracerPid:")][0]
child.kill()
print(opened, "tracer=" + tracer)
"#;
    let o = h
        .command(Path::new("/usr/bin/python3"))
        .args(["-c", parent])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("tracer=0"), "nothing attached: {out}");
    if scope().is_none_or(|n| n < 2) {
        assert!(
            out.starts_with("opened"),
            "the parent could write its child's memory: {out}"
        );
    } else {
        assert!(out.starts_with("refused"), "{out}");
    }
}
