//! `keychain-auth get NAME` from shell scripts: the daemon verifies the CLI by hash, then
//! decides for the CLI's parent process, identified by the same kernel-verified recipe
//! (a script run by bash is interpreter + script path + script hash). A bare shell and
//! `bash -c` are never approvable.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout, Home};
use std::path::Path;
use std::process::{Output, Stdio};

use keychain_auth_e2e::bash_script as script;

fn run(h: &Home, program: &Path, args: &[&str]) -> Output {
    keychain_auth_e2e::run_retrying(h.command(program).args(args).stdin(Stdio::null()))
}

use keychain_auth_e2e::approve_hash;

#[test]
fn a_script_is_served_only_once_approved_as_itself() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h
        .ka_stdin(&["set", "sh/token"], b"for-the-script")
        .status
        .success());
    let ka = bin("keychain-auth");
    let fetch = script(
        &h,
        "fetch.sh",
        &format!("printf '[%s]' \"$('{}' get sh/token)\"", ka.display()),
    );

    // Unknown: refused with the exact approve command, queued as the script.
    let o = run(&h, &fetch, &[]);
    assert_eq!(stdout(&o), "[]", "no value before approval");
    let err = stderr(&o);
    assert!(
        err.contains("the script") && err.contains("fetch.sh"),
        "{err}"
    );
    let hash = approve_hash(&err);
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(
        pending.contains(&hash) && pending.contains("fetch.sh run by"),
        "{pending}"
    );
    // A shell holds `$(…)` without close-on-exec: served only with --allow-unbound-get.
    assert!(h
        .ka(&["approve", &hash, "--allow-unbound-get"])
        .status
        .success());

    // Approved: exactly the value on stdout, by absolute and relative path.
    assert_eq!(stdout(&run(&h, &fetch, &[])), "[for-the-script]");
    let o = keychain_auth_e2e::run_retrying(
        h.command(Path::new("bash"))
            .arg("./fetch.sh")
            .current_dir(&h.dir)
            .stdin(Stdio::null()),
    );
    assert_eq!(stdout(&o), "[for-the-script]", "{}", stderr(&o));
    // The audit log names the script and how the request came: its caller chain.
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(log.contains("fetch.sh → keychain-auth\""), "{log}");
    assert!(!log.contains("for-the-script"));

    // Another script, or this one edited, is not served.
    let other = script(
        &h,
        "other.sh",
        &format!(
            "set -e\nx=$('{}' get sh/token)\nprintf %s \"$x\"",
            ka.display()
        ),
    );
    let o = run(&h, &other, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not_approved"), "{}", stderr(&o));
    std::fs::write(
        &fetch,
        format!(
            "#!/bin/bash\n# edited\nprintf '[%s]' \"$('{}' get sh/token)\"\n",
            ka.display()
        ),
    )
    .unwrap();
    assert_eq!(stdout(&run(&h, &fetch, &[])), "[]");

    // bash -c is its author's code: the request is the program's that ran it (here
    // this test, not approved), named with the chain; bash itself is never approved.
    let o = run(
        &h,
        Path::new("bash"),
        &["-c", &format!("'{}' get sh/token; true", ka.display())],
    );
    let err = stderr(&o);
    assert!(stdout(&o).is_empty());
    assert!(
        err.contains("→ bash -c → keychain-auth asked") && err.contains("is not approved"),
        "{err}"
    );
    // An interactive shell reading commands from a pipe (not a terminal) is an
    // interpreter without a script: never approvable, and it says what to do instead.
    let mut child = h
        .command(Path::new("bash"))
        .arg("-i")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        format!("'{}' get sh/token\n", ka.display()).as_bytes(),
    )
    .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!stdout(&o).contains("for-the-script"));
    let err = stderr(&o);
    assert!(
        err.contains("interactive session") && err.contains("denied"),
        "{err}"
    );
}

#[test]
fn a_waiting_get_is_answered_when_the_script_is_approved() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    assert!(h.ka_stdin(&["set", "w/token"], b"waited").status.success());
    let ka = bin("keychain-auth");
    let fetch = script(
        &h,
        "wait.sh",
        &format!(
            "v=$('{}' get --wait 30 w/token); printf %s \"$v\"",
            ka.display()
        ),
    );
    let mut cmd = h.command(&fetch);
    cmd.stdin(Stdio::null());
    let waiter = std::thread::spawn(move || keychain_auth_e2e::run_retrying(&mut cmd));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let hash = loop {
        let list: serde_json::Value =
            serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
        if let Some(e) = list.as_array().unwrap().first() {
            break e["hash"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < deadline, "never queued");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(h
        .ka(&["approve", &hash, "--scope", "w/*", "--allow-unbound-get"])
        .status
        .success());
    let o = waiter.join().unwrap();
    assert_eq!(stdout(&o), "waited", "{}", stderr(&o));
}

#[test]
fn bad_names_and_a_stopped_daemon_get_clear_errors() {
    let h = Home::new();
    let ka = bin("keychain-auth");
    for (name, want) in [
        ("a/../b", "'..' segment"),
        ("/abs", "must not start with '/'"),
        ("tab\there", "control character"),
        (&*"n".repeat(1100), "limit is 1024"),
    ] {
        let o = run(&h, &ka, &["get", name]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(want), "{name:?}: {}", stderr(&o));
    }
    let o = run(&h, &ka, &["get", "fine/name"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not running") || stderr(&o).contains("keychain-auth start"),
        "{}",
        stderr(&o)
    );
}
