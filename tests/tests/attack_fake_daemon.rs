//! A program listening on the socket in the daemon's place. Every client (the CLI, the
//! Rust SDK, the Python SDK, the git helper) checks the socket's directory and the
//! listener's uid before it sends anything, so another user's listener gets nothing;
//! the CLI also checks the listener's executable where the kernel shows it, and on
//! Linux never sends a `set` value over the socket, so a program of the same user that
//! hides itself (non-dumpable, as the daemon is) learns a name but not a value. Without
//! `XDG_RUNTIME_DIR` the socket is in the user's state directory, never at a
//! predictable path under /tmp. The victim is an ordinary user; the other user is the
//! test's own (root) where the tests run as root.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout, Home};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";

fn fake_daemon_script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/fake-daemon.py"
    ))
}

/// A listener started with `cmd` (the fake daemon), killed when dropped.
struct Fake {
    child: Child,
    log: PathBuf,
}

impl Fake {
    fn start(mut cmd: Command, log: &Path) -> Fake {
        let child = cmd.stdin(Stdio::null()).spawn().unwrap();
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "the fake daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Fake {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Everything clients sent it, one frame a line.
    fn received(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_sdk_client(h: &Home) -> PathBuf {
    let p = h.path("sdk-client.py");
    std::fs::write(
        &p,
        format!(
            "import sys\nsys.path.insert(0, {:?})\nimport keychain_auth\ntry:\n    keychain_auth.connect('fake-test').get('demo/x')\n    print('talked')\nexcept keychain_auth.KeychainAuthError as e:\n    print(type(e).__name__, e)\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk/python")
        ),
    )
    .unwrap();
    p
}

/// Runs every client against the socket at `sock` (as the victim: the CLI with its
/// files in that directory, the others told the socket) and returns their outputs.
fn every_client_tries(h: &Home, sock: &Path) -> Vec<String> {
    let env = |c: &mut Command| {
        c.env("KEYCHAIN_AUTH_SOCKET", sock)
            .env("KEYCHAIN_AUTH_HOME", sock.parent().unwrap());
    };
    let mut outs = Vec::new();
    let mut set = h.command(&bin("keychain-auth"));
    set.args(["set", "demo/x"]);
    env(&mut set);
    let mut child = set
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"TYPED-SECRET-VALUE")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "set went ahead: {}", stdout(&o));
    outs.push(stderr(&o));
    for args in [
        &["list"][..],
        &["approve", &format!("sha256:{}", "a".repeat(64))],
    ] {
        let mut c = h.command(&bin("keychain-auth"));
        c.args(args);
        env(&mut c);
        let o = c.output().unwrap();
        assert!(!o.status.success(), "{args:?} went ahead: {}", stdout(&o));
        outs.push(stderr(&o));
    }
    let mut c = h.command(&bin("ka-test-client"));
    c.args(["get", "demo/x"]);
    env(&mut c);
    let o = c.output().unwrap();
    outs.push(format!("{}{}", stdout(&o), stderr(&o)));
    let mut c = h.command(Path::new(PYTHON));
    c.arg(python_sdk_client(h));
    env(&mut c);
    let o = c.output().unwrap();
    outs.push(stdout(&o));
    let mut c = h.command(&bin("git-credential-keychain-auth"));
    c.arg("get");
    env(&mut c);
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"protocol=https\nhost=example.com\n\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    outs.push(stderr(&o));
    outs
}

#[test]
fn another_users_listener_gets_nothing_from_any_client() {
    let h = Home::ordinary();
    if h.uid() == unsafe_geteuid() {
        eprintln!(
            "SKIP another_users_listener_gets_nothing_from_any_client: needs root (a second user)"
        );
        return;
    }
    // The other user (this test process) made a directory the victim can reach and
    // listens there, as on a shared /tmp.
    let squat = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(squat.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = squat.path().join("agent.sock");
    let log = squat.path().join("received");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(fake_daemon_script()).arg(&sock).arg(&log);
    let fake = Fake::start(cmd, &log);
    let outs = every_client_tries(&h, &sock);
    assert_eq!(
        fake.received(),
        "",
        "a client sent something to another user"
    );
    for o in &outs {
        assert!(
            o.contains("belongs to uid") || o.contains("Untrusted") || o.contains("refusing"),
            "{o}"
        );
    }
}

fn unsafe_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[test]
fn a_same_user_listener_in_the_daemons_place_never_gets_a_set_value() {
    let h = Home::ordinary();
    let sock = h.path("agent.sock");
    let log = h.path("received");
    let mut cmd = h.command(Path::new(PYTHON));
    cmd.arg(fake_daemon_script()).arg(&sock).arg(&log);
    let fake = Fake::start(cmd, &log);
    // `start` does not take it for a running daemon.
    let o = h.ka(&["start"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("not keychain-auth"), "{}", stderr(&o));
    // The CLI sees it is not keychain-auth before it sends anything.
    for args in [&["list"][..], &["status"]] {
        let o = h.ka(args);
        assert!(!o.status.success(), "{args:?}: {}", stdout(&o));
        assert!(stderr(&o).contains("not keychain-auth"), "{}", stderr(&o));
    }
    let o = h.ka_stdin(&["set", "demo/x"], b"TYPED-SECRET-VALUE");
    assert!(!o.status.success());
    assert_eq!(
        fake.received(),
        "",
        "the CLI sent something to a fake daemon"
    );
    drop(fake);
    let _ = std::fs::remove_file(&sock);

    // One that hides its executable as the daemon does: the CLI cannot tell it from the
    // daemon, but the value never crosses the socket.
    let log = h.path("received-hidden");
    let mut cmd = h.command(Path::new(PYTHON));
    cmd.arg(fake_daemon_script())
        .arg(&sock)
        .arg(&log)
        .arg("undumpable");
    let fake = Fake::start(cmd, &log);
    let o = h.ka_stdin(&["set", "demo/x"], b"TYPED-SECRET-VALUE");
    let got = fake.received();
    assert!(
        !got.contains("TYPED-SECRET-VALUE"),
        "the value reached it: {got}"
    );
    assert!(
        got.contains("\"stored\"") && got.contains("demo/x"),
        "{got} {}",
        stderr(&o)
    );
    drop(fake);
}

#[test]
fn without_xdg_runtime_dir_the_socket_is_in_the_users_state_directory() {
    let h = Home::ordinary();
    let run = |args: &[&str]| {
        let mut c = h.command(&bin("keychain-auth"));
        c.env_remove("KEYCHAIN_AUTH_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", &h.dir)
            .args(args);
        keychain_auth_e2e::run_retrying(&mut c)
    };
    let o = run(&["start", "--store", "keyutils"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = h.dir.join(".local/state/keychain-auth/agent.sock");
    assert!(
        stdout(&o).contains(&want.display().to_string()),
        "{}",
        stdout(&o)
    );
    assert!(
        !stdout(&o).contains("/tmp/keychain-auth-"),
        "{}",
        stdout(&o)
    );
    let status = run(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(run(&["stop"]).status.success());
}
