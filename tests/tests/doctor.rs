//! `keychain-auth doctor` against the real daemon (running, stopped, behind a socket
//! directory of the wrong mode), `--json` on the listing commands, and the exit statuses
//! the CLI and the git helper share: 3 daemon not running, 4 not approved, 5 denied, 6 out
//! of scope, 7 not found, 2 usage.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn doctor_json(h: &Home) -> (Value, i32) {
    let o = h.ka(&["doctor", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is JSON ({e}): {}", stdout(&o)));
    (v, o.status.code().unwrap())
}

fn check<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} check in {v}"))
}

#[test]
fn doctor_names_each_check_and_fails_only_on_a_problem() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    let (v, code) = doctor_json(&h);
    for id in [
        "daemon",
        "version",
        "socket-dir",
        "store",
        "keyutils-quota",
        "presence",
        "notifications",
        "tray",
        "git",
        "ptrace",
    ] {
        let c = check(&v, id);
        let status = c["status"].as_str().unwrap();
        assert!(
            ["ok", "info", "warning", "problem"].contains(&status),
            "{c}"
        );
        if status == "warning" || status == "problem" {
            assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
        }
    }
    assert_eq!(check(&v, "daemon")["status"], "ok", "{v}");
    let version = check(&v, "version");
    assert_eq!(version["status"], "ok", "{v}");
    assert!(
        version["summary"]
            .as_str()
            .unwrap()
            .contains(concat!("keychain-auth/", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    assert_eq!(check(&v, "store")["status"], "ok", "{v}");
    assert_eq!(check(&v, "socket-dir")["status"], "ok", "{v}");
    // The tests' config turns presence off: a warning, with the way back.
    assert_eq!(check(&v, "presence")["status"], "warning", "{v}");
    let problems = v["problems"].as_u64().unwrap();
    assert_eq!(code, i32::from(problems > 0), "{v}");
    assert_eq!(v["ok"], problems == 0);

    // For a person: one line a check, the fix under it, the same exit status.
    let o = h.ka(&["doctor"]);
    assert_eq!(o.status.code().unwrap(), code);
    let text = stdout(&o);
    assert!(
        text.lines().any(|l| l.starts_with("ok       daemon")),
        "{text}"
    );
    // The way back depends on the machine: with polkit's action installed, turn it on;
    // without, install the action first (as root).
    let fix = check(&v, "presence")["fix"].as_str().unwrap().to_string();
    assert!(
        fix == "keychain-auth presence required" || fix.contains("presence install"),
        "{fix}"
    );
    assert!(text.contains(&format!("fix: {fix}")), "{text}");
}

#[test]
fn doctor_without_a_daemon_is_a_problem_fixed_by_start() {
    let h = Home::new();
    let (v, code) = doctor_json(&h);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false);
    let d = check(&v, "daemon");
    assert_eq!(d["status"], "problem", "{d}");
    assert!(
        d["fix"]
            .as_str()
            .unwrap()
            .starts_with("keychain-auth start"),
        "{d}"
    );
    assert_eq!(check(&v, "version")["status"], "info");
    let o = h.ka(&["doctor"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("fix: keychain-auth start"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn doctor_names_a_socket_directory_of_the_wrong_mode_and_the_chmod() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (v, code) = doctor_json(&h);
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(code, 1, "{v}");
    let s = check(&v, "socket-dir");
    assert_eq!(s["status"], "problem", "{s}");
    assert!(s["summary"].as_str().unwrap().contains("0755"), "{s}");
    assert!(
        s["fix"]
            .as_str()
            .unwrap()
            .ends_with(&format!("chmod 700 {}", h.dir.display())),
        "{s}"
    );
    // The CLI would not talk to the daemon behind it either.
    assert_eq!(check(&v, "daemon")["status"], "problem", "{v}");
    // Fixed as it says: nothing to report there any more.
    let (v, _) = doctor_json(&h);
    assert_eq!(check(&v, "socket-dir")["status"], "ok", "{v}");
    assert_eq!(check(&v, "daemon")["status"], "ok", "{v}");
}

#[test]
fn names_list_and_list_pending_print_json_alone_on_stdout() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h.ka_stdin(&["set", "j/one"], b"1").status.success());
    assert!(h.ka_stdin(&["set", "j/two"], b"2").status.success());
    let o = h.ka(&["names", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(names.contains(&"j/one".to_string()) && names.contains(&"j/two".to_string()));
    for args in [
        &["list", "--json"][..],
        &["list", "--denied", "--json"],
        &["list-pending", "--json"],
        &["status", "--json"],
    ] {
        let o = h.ka(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?} is JSON ({e}): {}", stdout(&o)));
        assert!(v.is_array() || v.is_object(), "{args:?}: {v}");
    }
    // The audit log's lines, raw: one JSON object a line.
    let o = h.ka(&["audit", "--json", "-n", "5"]);
    for l in stdout(&o).lines() {
        let _: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
}

fn script(h: &Home, name: &str) -> PathBuf {
    let p = h.path(name);
    std::fs::write(
        &p,
        format!(
            "#!/bin/bash\nvalue=$('{}' get \"$1\")\necho \"rc=$?\"\n",
            bin("keychain-auth").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// The exit status of `keychain-auth get NAME` in the script, and what it said.
fn get_status(h: &Home, script: &Path, name: &str) -> (String, String) {
    let o = keychain_auth_e2e::run_retrying(h.command(script).arg(name).stdin(Stdio::null()));
    let out = stdout(&o);
    let rc = out
        .lines()
        .find_map(|l| l.strip_prefix("rc="))
        .unwrap_or_else(|| panic!("no rc in {out:?}"))
        .to_string();
    (rc, stderr(&o))
}

/// The hash after `keychain-auth approve ` in a refusal.
fn approve_hash(err: &str) -> String {
    let at = err.find("keychain-auth approve sha256:").expect(err) + "keychain-auth approve ".len();
    err[at..at + 71].to_string()
}

#[test]
fn the_cli_exits_with_a_status_for_each_refusal() {
    let mut h = Home::new();
    // Down: 3, for every command that needs the daemon.
    for args in [&["status"][..], &["names"], &["get", "x/y"], &["list"]] {
        assert_eq!(h.ka(args).status.code(), Some(3), "{args:?}");
    }
    // A usage error is clap's 2.
    assert_eq!(h.ka(&["no-such-command"]).status.code(), Some(2));

    h.start(&["--store", "secret-service"]);
    assert!(h.ka_stdin(&["set", "sh/token"], b"v").status.success());
    let fetch = script(&h, "fetch.sh");
    let (rc, err) = get_status(&h, &fetch, "sh/token");
    assert_eq!(rc, "4", "not approved: {err}");
    let hash = approve_hash(&err);
    let o = h.ka(&[
        "approve",
        &hash,
        "--scope",
        "other/*",
        "--allow-unbound-get",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rc, err) = get_status(&h, &fetch, "sh/token");
    assert_eq!(rc, "6", "out of scope: {err}");
    let (rc, err) = get_status(&h, &fetch, "other/missing");
    assert_eq!(rc, "7", "not found: {err}");

    let other = script(&h, "other.sh");
    let (rc, err) = get_status(&h, &other, "sh/token");
    assert_eq!(rc, "4", "{err}");
    let o = h.ka(&["deny", &approve_hash(&err)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (rc, err) = get_status(&h, &other, "sh/token");
    assert_eq!(rc, "5", "denied: {err}");

    // Not found: 7, for a secret, a tool, a hash.
    let o = h.ka(&["delete", "no/such/name"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let o = h.ka(&["revoke", "no-such-tool"]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let o = h.ka(&["undeny", &format!("sha256:{}", "ab".repeat(32))]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    // Any other error is 1.
    let o = h.ka(&["get", "/bad"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// Runs the built helper directly (not through git) for this home.
fn helper(h: &Home, args: &[&str], input: &[u8]) -> Output {
    keychain_auth_e2e::run_git_helper(&h.dir, args, input)
}

#[test]
fn the_git_helper_exits_with_the_same_statuses() {
    let mut h = Home::new();
    let ask = b"protocol=https\nhost=example.com\nusername=alice\n\n";
    let o = helper(&h, &["get"], ask);
    assert_eq!(o.status.code(), Some(3), "down: {}", stderr(&o));
    assert_eq!(helper(&h, &["--bogus", "get"], b"").status.code(), Some(2));

    h.start(&["--store", "secret-service"]);
    // The helper serves who ran it: this test binary, not approved yet.
    let o = helper(&h, &["get"], ask);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let me = sha256_file(&std::env::current_exe().unwrap());
    let o = h.ka(&["approve", &me, "--scope", "other/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = helper(&h, &["get"], ask);
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));

    // Within its scopes, a credential that is not stored is no failure: git asks on.
    let o = h.ka(&["approve", &me, "--add-scope", "git/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = helper(&h, &["get"], ask);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());

    let o = h.ka(&["revoke", &me]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.ka(&["deny", &me]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = helper(&h, &["get"], ask);
    assert_eq!(o.status.code(), Some(5), "denied: {}", stderr(&o));
}
