//! Identities bound to the program that holds the connection, or reads the output, now:
//!
//! - a process that writes `hello` and `get`, forks a reader that keeps the connection,
//!   and execs an approved binary before the daemon looks at it is not served: the
//!   approved image does not hold the connection (the exec closed it), or holds it only
//!   through a descriptor that is not close-on-exec (kept across the exec);
//! - a program that starts `keychain-auth get` with its output on a pipe the attacker
//!   reads, then execs an approved binary or `python3 approved.py`, is not served: the
//!   approved image does not hold the pipe's reading end, or holds it only through a
//!   descriptor kept across the exec.
//!
//! Each is tried deterministically (the daemon stopped with SIGSTOP while the attacker
//! sets up) and as a plain race, many times, by an ordinary user.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout, Home};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const VALUE: &str = "the-approved-tools-token";

/// Keeps a process stopped (SIGSTOP) until dropped (SIGCONT).
struct Stopped(i32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        // SAFETY: kill sends a signal; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
        Stopped(pid as i32)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// Waits until process `pid`'s command line contains `word` (it has exec'd).
fn wait_for_exec(pid: u32, word: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(word) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} never exec'd into {word}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// A daemon with `demo/token` stored and a copy of the test client approved for
/// `demo/*`.
fn home_with_an_approved_tool() -> (Home, PathBuf) {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let approved = h.client_copy("approved", b"approved");
    h.approve_client(&approved, "demo/token", VALUE.as_bytes(), "demo/*");
    assert_eq!(
        h.client_at(&approved, &["get", "demo/token"])["value"],
        VALUE
    );
    (h, approved)
}

/// Runs the exec-before-check attack once; returns every frame the reader received.
fn exec_before_check(
    h: &Home,
    attacker: &Path,
    approved: &Path,
    keep: bool,
    stop: bool,
) -> Vec<Value> {
    let mut args = vec![
        "exec-before-check".to_string(),
        approved.display().to_string(),
        "demo/token".into(),
    ];
    if keep {
        args.push("keep".into());
    }
    let stopped = stop.then(|| Stopped::new(h.daemon_pid()));
    let mut child = h
        .command(attacker)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if stopped.is_some() {
        wait_for_exec(child.id(), "hold");
    }
    drop(stopped);
    let mut frames = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["type"] == "done" {
            break;
        }
        frames.push(v);
    }
    kill(child);
    frames
}

#[test]
fn a_process_that_execs_before_the_daemon_looks_is_not_served() {
    let (h, approved) = home_with_an_approved_tool();
    let attacker = h.client_copy("attacker", b"attacker");
    for keep in [false, true] {
        let frames = exec_before_check(&h, &attacker, &approved, keep, true);
        let text = format!("{frames:?}");
        assert!(
            !text.contains(VALUE),
            "keep={keep}: served after exec: {text}"
        );
        // Refused for what it is: the new image does not hold the connection (or holds
        // it through a descriptor kept across the exec); or, when the daemon looked
        // before the exec, the exec itself.
        assert!(
            text.contains("does not hold its end")
                || text.contains("not close-on-exec")
                || text.contains("replaced its executable"),
            "keep={keep}: refused for what it is: {text}"
        );
    }
    let mut served = 0;
    let tries = 40;
    for i in 0..tries {
        let frames = exec_before_check(&h, &attacker, &approved, i % 2 == 1, false);
        served += usize::from(format!("{frames:?}").contains(VALUE));
    }
    println!("exec before identification: served {served} of {tries} plain races");
    assert_eq!(
        served, 0,
        "the plain race was won {served} times of {tries}"
    );
    // A client whose socket is not close-on-exec is refused for it, even an approved one.
    let r = h.client_at(&approved, &["no-cloexec", "get", "demo/token"]);
    assert_eq!(r["code"], "denied", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("SOCK_CLOEXEC"),
        "{r}"
    );
    // The approved tool itself is still served.
    assert_eq!(
        h.client_at(&approved, &["get", "demo/token"])["value"],
        VALUE
    );
}

/// An approved Python script that prints `demo/token` through `keychain-auth get`
/// (`fetch`) or just sleeps (`hold`).
fn approved_script(h: &Home) -> PathBuf {
    let p = h.path("approved.py");
    std::fs::write(
        &p,
        format!(
            "import subprocess, sys, time\nif sys.argv[1:] == ['fetch']:\n    r = subprocess.run([{:?}, 'get', 'demo/token'], capture_output=True)\n    sys.stdout.write(r.stdout.decode())\n    sys.stderr.write(r.stderr.decode())\nelse:\n    time.sleep(20)\n",
            bin("keychain-auth").display().to_string()
        ),
    )
    .unwrap();
    let o = keychain_auth_e2e::run_retrying(h.command(Path::new(PYTHON)).arg(&p).arg("fetch"));
    let err = stderr(&o);
    let at =
        err.find("keychain-auth approve sha256:").expect(&err) + "keychain-auth approve ".len();
    let hash = &err[at..at + 71];
    let o = h.ka(&["approve", hash, "--scope", "demo/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Run the ordinary way, from Python (whose pipes are close-on-exec), it is served.
    let o = keychain_auth_e2e::run_retrying(h.command(Path::new(PYTHON)).arg(&p).arg("fetch"));
    assert_eq!(stdout(&o), VALUE, "{}", stderr(&o));
    p
}

/// Runs the exec-after-fork attack once; returns what the attacker's reader got.
fn exec_after_fork(h: &Home, program: &[&str], keep: bool, stop: bool) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/clients/exec-after-fork.py");
    let mut cmd = h.command(Path::new(PYTHON));
    cmd.arg(script)
        .arg(bin("keychain-auth"))
        .arg("demo/token")
        .args(program);
    if keep {
        cmd.arg("--keep");
    }
    let stopped = stop.then(|| Stopped::new(h.daemon_pid()));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if stopped.is_some() {
        wait_for_exec(child.id(), program.last().unwrap());
    }
    drop(stopped);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    kill(child);
    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    v["read"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_parent_that_execs_after_starting_keychain_auth_get_is_not_served() {
    let (h, approved) = home_with_an_approved_tool();
    let script = approved_script(&h);
    let binary = approved.display().to_string();
    let py = script.display().to_string();
    let programs: [Vec<&str>; 2] = [vec![&binary, "hold", "20"], vec![PYTHON, &py, "hold"]];
    for program in &programs {
        for keep in [false, true] {
            let got = exec_after_fork(&h, program, keep, true);
            assert!(
                !got.contains(VALUE),
                "{program:?} keep={keep}: the attacker read {got:?}"
            );
        }
    }
    let mut leaked = 0;
    let tries = 20;
    for i in 0..tries {
        let got = exec_after_fork(&h, &programs[i % 2], i % 4 >= 2, false);
        leaked += usize::from(got.contains(VALUE));
    }
    println!("exec after fork: leaked {leaked} of {tries} plain races");
    assert_eq!(leaked, 0);
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(
        log.contains("not close-on-exec") && log.contains("does not read"),
        "the refusals are audited: {log}"
    );
}

fn bash_script(h: &Home, name: &str, body: &str) -> PathBuf {
    let p = h.path(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// What `keychain-auth get` vouches for, from a shell: bash holds `$(…)` without
/// close-on-exec, so a bash caller is served only when its approval allows that;
/// output that goes anywhere but a pipe the caller reads is never written.
#[test]
fn shell_callers_need_an_explicit_approval_and_the_value_goes_only_to_the_caller() {
    let (h, _) = home_with_an_approved_tool();
    let ka = bin("keychain-auth").display().to_string();
    let fetch = bash_script(
        &h,
        "fetch.sh",
        &format!("printf '[%s]' \"$('{ka}' get demo/token)\""),
    );
    let o = keychain_auth_e2e::run_retrying(h.command(&fetch).stdin(Stdio::null()));
    let err = stderr(&o);
    let at =
        err.find("keychain-auth approve sha256:").expect(&err) + "keychain-auth approve ".len();
    let hash = err[at..at + 71].to_string();
    assert!(err.contains("--allow-unbound-get"), "{err}");
    // Approved the ordinary way: still refused, and told why.
    assert!(h
        .ka(&["approve", &hash, "--scope", "demo/*"])
        .status
        .success());
    let o = keychain_auth_e2e::run_retrying(h.command(&fetch).stdin(Stdio::null()));
    assert_eq!(stdout(&o), "[]");
    assert!(stderr(&o).contains("not close-on-exec"), "{}", stderr(&o));
    // Approved with --allow-unbound-get: served.
    assert!(h
        .ka(&["approve", &hash, "--allow-unbound-get"])
        .status
        .success());
    let list = stdout(&h.ka(&["list"]));
    assert!(list.contains("--allow-unbound-get"), "{list}");
    let o = keychain_auth_e2e::run_retrying(h.command(&fetch).stdin(Stdio::null()));
    assert_eq!(stdout(&o), format!("[{VALUE}]"), "{}", stderr(&o));
    // And taken back.
    assert!(h
        .ka(&["approve", &hash, "--allow-unbound-get=false"])
        .status
        .success());
    let o = keychain_auth_e2e::run_retrying(h.command(&fetch).stdin(Stdio::null()));
    assert_eq!(stdout(&o), "[]");

    // Output to a file, to the script's own standard output, or to another program in
    // a pipeline goes elsewhere than the caller: never written.
    let out = h.path("out.txt");
    for (name, body) in [
        (
            "to-file.sh",
            format!("'{ka}' get demo/token > '{}'", out.display()),
        ),
        ("to-stdout.sh", format!("'{ka}' get demo/token")),
        ("to-pipeline.sh", format!("'{ka}' get demo/token | cat")),
    ] {
        let s = bash_script(&h, name, &body);
        let o = keychain_auth_e2e::run_retrying(h.command(&s).stdin(Stdio::null()));
        let err = stderr(&o);
        assert!(!stdout(&o).contains(VALUE), "{name}: {}", stdout(&o));
        assert!(
            err.contains("does not read") || err.contains("not a pipe"),
            "{name}: {err}"
        );
    }
    assert!(!std::fs::read_to_string(&out)
        .unwrap_or_default()
        .contains(VALUE));
}
