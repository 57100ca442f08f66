//! Code injected into an approved program through the environment is refused for what
//! it is, mapped code from a file the user can change, whatever variable brought it in:
//! a trojan libc found through `LD_LIBRARY_PATH` (a real copy, so the tool works), and
//! the same file deleted once mapped. A tool that really runs libraries from the user's
//! home is approved with them, pinned by hash. A library the daemon found to be root's
//! alone, and remembers so, is judged again once it changes or another file takes its
//! path. Played by an ordinary user.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{stderr, stdout, Home};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

const VALUE: &str = "not-for-injected-code";

/// The libc this test process maps (the approved client maps the same one).
fn system_libc() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains("/libc.so.6") || l.contains("/libc-"))
        .expect("this process maps libc");
    PathBuf::from(&line[line.find('/').unwrap()..])
}

/// A directory of the home's user holding a copy of libc, made by that user.
fn trojan_dir(h: &Home, name: &str) -> PathBuf {
    let dir = h.path(name);
    let o = h
        .command(Path::new("/bin/sh"))
        .args(["-c", "mkdir -p \"$1\" && cp \"$2\" \"$1/libc.so.6\"", "sh"])
        .arg(&dir)
        .arg(system_libc())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

fn get_with(h: &Home, tool: &Path, env: &[(&str, &Path)]) -> Value {
    let mut c = h.command(tool);
    c.args(["get", "demo/token"]);
    for (k, v) in env {
        c.env(k, v);
    }
    let o = keychain_auth_e2e::run_retrying(&mut c);
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("no answer: {} {}", stdout(&o), stderr(&o)))
}

fn approved_home() -> (Home, PathBuf) {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let tool = h.client_copy("tool", b"injection");
    h.approve_client(&tool, "demo/token", VALUE.as_bytes(), "demo/*");
    assert_eq!(h.client_at(&tool, &["get", "demo/token"])["value"], VALUE);
    (h, tool)
}

#[test]
fn a_library_injected_through_the_environment_is_refused() {
    let (h, tool) = approved_home();
    let trojan = trojan_dir(&h, "trojan");
    let r = get_with(&h, &tool, &[("LD_LIBRARY_PATH", &trojan)]);
    assert!(!r.to_string().contains(VALUE), "{r}");
    assert_eq!(r["code"], "not_approved", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("trojan/libc.so.6") && msg.contains("files you can change"),
        "{msg}"
    );
    // It is named where a person decides.
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(pending.contains("trojan/libc.so.6"), "{pending}");

    // The trojan deleted once it is mapped (the daemon stopped meanwhile): unverifiable.
    let pid = h.daemon_pid() as i32;
    // SAFETY: kill sends a signal; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let child = h
        .command(&tool)
        .args(["get", "demo/token"])
        .env("LD_LIBRARY_PATH", &trojan)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Give it time to map its libraries and connect.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(trojan.join("libc.so.6")).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let o = child.wait_with_output().unwrap();
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!r.to_string().contains(VALUE), "{r}");
    assert_eq!(r["code"], "denied", "{r}");
    assert!(r["message"].as_str().unwrap().contains("deleted"), "{r}");

    // Without the trojan it is served as before.
    assert_eq!(h.client_at(&tool, &["get", "demo/token"])["value"], VALUE);
}

#[test]
fn a_tool_running_libraries_from_the_users_home_is_approved_with_them_pinned() {
    let (h, tool) = approved_home();
    let libs = trojan_dir(&h, "lib");
    // As a tool installed under $HOME with its own libraries: it asks again, naming them.
    let r = get_with(&h, &tool, &[("LD_LIBRARY_PATH", &libs)]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let hash = r["hash"].as_str().unwrap().to_string();
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("pinned: "), "{}", stdout(&o));
    assert_eq!(
        get_with(&h, &tool, &[("LD_LIBRARY_PATH", &libs)])["value"],
        VALUE
    );
    assert_eq!(h.client_at(&tool, &["get", "demo/token"])["value"], VALUE);
    // The library changes (an update, or a trojan in its place): asked about again.
    let o = h
        .command(Path::new("/bin/sh"))
        .args(["-c", "printf x >> \"$1\"", "sh"])
        .arg(libs.join("libc.so.6"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let r = get_with(&h, &tool, &[("LD_LIBRARY_PATH", &libs)]);
    assert_eq!(r["code"], "not_approved", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("is approved, but"),
        "{r}"
    );
    assert!(h.ka(&["approve", &hash]).status.success());
    assert_eq!(
        get_with(&h, &tool, &[("LD_LIBRARY_PATH", &libs)])["value"],
        VALUE
    );
}

#[test]
fn a_remembered_system_library_is_judged_again_once_it_changes_or_is_replaced() {
    let Some((uid, gid)) = keychain_auth_e2e::other_user() else {
        eprintln!("skipped: making a library that is root's alone needs the tests to run as root");
        return;
    };
    let (h, tool) = approved_home();
    // Root's copy of libc, in a directory of root's inside the user's home: the daemon
    // finds it root's alone and remembers it.
    use std::os::unix::fs::PermissionsExt;
    let dir = h.path("rootlib");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let lib = dir.join("libc.so.6");
    std::fs::copy(system_libc(), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    for _ in 0..3 {
        assert_eq!(
            get_with(&h, &tool, &[("LD_LIBRARY_PATH", &dir)])["value"],
            VALUE
        );
    }
    // Root lets the user write it (its change time moves), and the user does.
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o666)).unwrap();
    let appended = h
        .command(Path::new("/bin/sh"))
        .args(["-c", "printf x >> \"$1\"", "sh"])
        .arg(&lib)
        .output()
        .unwrap();
    assert!(appended.status.success(), "{}", stderr(&appended));
    let r = get_with(&h, &tool, &[("LD_LIBRARY_PATH", &dir)]);
    assert_eq!(r["code"], "not_approved", "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("rootlib/libc.so.6"),
        "{r}"
    );
    // Root's again, unchanged for a while: served, and remembered again.
    std::fs::copy(system_libc(), &lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        get_with(&h, &tool, &[("LD_LIBRARY_PATH", &dir)])["value"],
        VALUE
    );
    // The user moves root's directory aside (the home is the user's) and puts a copy of
    // their own at the same path: a new inode, judged afresh, the user's.
    let swapped = h
        .command(Path::new("/bin/sh"))
        .args([
            "-c",
            "mv \"$1\" \"$1.old\" && mkdir \"$1\" && cp \"$2\" \"$1/libc.so.6\"",
            "sh",
        ])
        .arg(&dir)
        .arg(system_libc())
        .output()
        .unwrap();
    assert!(swapped.status.success(), "{}", stderr(&swapped));
    let meta = std::fs::metadata(&lib).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta)
        ),
        (uid, gid)
    );
    let r = get_with(&h, &tool, &[("LD_LIBRARY_PATH", &dir)]);
    assert_eq!(r["code"], "not_approved", "{r}");
}
