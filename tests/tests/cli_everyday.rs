//! Everyday use of the CLI and the git helper, through the real binaries: `set` warns
//! about a value ending in a newline (and the helper says how to fix one), a waiting
//! `get` says at once what it waits for, `status` (and `--json`) says who hosts the
//! daemon, whether it notifies and whether it is paused, `pause` and `resume`, `start
//! --notify` against a daemon already running, a `KEYCHAIN_AUTH_HOME` with no daemon
//! while the default home has one, and the times on daemon.log's lines.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The value the Secret Service holds for a name of this home.
fn lookup(h: &Home, name: &str) -> Option<String> {
    let o = Command::new("secret-tool")
        .args(["lookup", "service", &h.namespace, "account", name])
        .output()
        .unwrap();
    o.status.success().then(|| stdout(&o))
}

use keychain_auth_e2e::bash_script as script;

/// Starts `program` with stdin `input` and stderr piped; its stderr lines arrive on the
/// receiver as they are written.
fn spawn_reading_stderr(mut cmd: Command, input: &[u8]) -> (Child, mpsc::Receiver<String>) {
    let mut child = loop {
        match cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => break r.unwrap(),
        }
    };
    let _ = child.stdin.take().unwrap().write_all(input);
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The first stderr line containing `needle`, within `limit`; panics with what came.
fn line_with(rx: &mpsc::Receiver<String>, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    panic!("no stderr line with {needle:?} within {limit:?}: {seen:?}");
}

/// Waits for a child and collects the rest of its output (stderr was taken).
fn finish(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

use keychain_auth_e2e::approve_hash;

#[test]
fn set_warns_about_a_trailing_newline_and_the_git_helper_says_how_to_fix_one() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    let name = "git/https/example.com/alice";

    // As `echo pw | keychain-auth set NAME` sends it: stored as given, with a warning.
    let o = h.ka_stdin(&["set", name], b"pw-with-newline\n");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ends in a newline"), "{err}");
    assert!(err.contains("stored as given"), "{err}");
    assert!(
        err.contains(&format!("printf '%s' 'VALUE' | keychain-auth set {name}")),
        "{err}"
    );
    assert_eq!(lookup(&h, name).as_deref(), Some("pw-with-newline\n"));
    // As printf sends it: no warning.
    let o = h.ka_stdin(&["set", "plain/token"], b"no-newline");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("newline"), "{}", stderr(&o));

    // The git helper, asked by this test program (the origin of its caller chain), waits
    // for a decision and says so at once, with the command that decides.
    let mut cmd = h.command(&bin("git-credential-keychain-auth"));
    cmd.args(["--wait", "30", "get"]);
    let started = Instant::now();
    let (child, rx) =
        spawn_reading_stderr(cmd, b"protocol=https\nhost=example.com\nusername=alice\n\n");
    let line = line_with(&rx, "waiting up to 30 s", Duration::from_secs(20));
    assert!(line.contains("your decision"), "{line}");
    let hash = approve_hash(&line);
    assert_eq!(hash, sha256_file(&std::env::current_exe().unwrap()));
    assert!(line.contains("keychain-auth list-pending"), "{line}");
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Approved, it reads the value, which git cannot take: the fix is named exactly.
    let o = finish(child, Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(!o.status.success());
    let rest: Vec<String> = rx.try_iter().collect();
    let err = rest.join("\n");
    assert!(err.contains("contains a newline"), "{err}");
    assert!(
        err.contains(&format!(
            "printf '%s' 'PASSWORD' | keychain-auth set {name}"
        )),
        "{err}"
    );
    assert!(
        !err.contains("pw-with-newline"),
        "no value in messages: {err}"
    );
}

#[test]
fn a_waiting_get_says_at_once_what_it_waits_for() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    assert!(h.ka_stdin(&["set", "w/token"], b"waited").status.success());
    let ka = bin("keychain-auth");
    let fetch = script(
        &h,
        "wait.sh",
        &format!(
            "v=$('{}' get --wait 40 w/token); printf %s \"$v\"",
            ka.display()
        ),
    );
    let started = Instant::now();
    let (child, rx) = spawn_reading_stderr(h.command(&fetch), b"");
    let line = line_with(&rx, "waiting up to 40 s", Duration::from_secs(20));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "said before the wait ends"
    );
    assert!(line.contains("your decision"), "{line}");
    assert!(line.contains("--scope 'w/token'"), "{line}");
    assert!(line.contains("keychain-auth list-pending"), "{line}");
    let hash = approve_hash(&line);
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(pending.contains(&hash), "{pending}");

    // Deciding ends the wait: denied, it is answered at once.
    assert!(h.ka(&["deny", &hash]).status.success());
    let o = finish(child, Duration::from_secs(20));
    assert!(started.elapsed() < Duration::from_secs(40));
    assert_eq!(stdout(&o), "");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.join("\n").contains("denied"), "{rest:?}");
}

/// `status --json`, parsed.
fn status_json(h: &Home) -> Value {
    let o = h.ka(&["status", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

#[test]
fn status_shows_host_notifications_and_pause_which_the_cli_sets() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    let client = h.client_copy("client", b"");
    h.approve_client(&client, "p/token", b"served", "p/*");

    let o = h.ka(&["status"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("host:     keychain-auth start"), "{out}");
    assert!(out.contains("notify:   off"), "{out}");
    assert!(out.contains("start --notify"), "{out}");
    assert!(out.contains("paused:   no"), "{out}");
    let s = status_json(&h);
    assert_eq!(s["running"], true, "{s}");
    assert_eq!(s["host"], "cli", "{s}");
    assert_eq!(s["notifications"], false, "{s}");
    assert_eq!(s["paused"], false, "{s}");
    assert_eq!(s["store"], "keyutils", "{s}");
    assert!(s["presence"].as_str().unwrap().starts_with("off"), "{s}");
    assert_eq!(s["tools"], 1, "{s}");

    // `start --notify` changes nothing about a daemon that runs without: it says so.
    let o = h.ka(&["start", "--notify"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("already running"), "{out}");
    assert!(out.contains("--notify changes nothing"), "{out}");
    assert!(
        out.contains("`keychain-auth stop`, then `keychain-auth start --notify`"),
        "{out}"
    );
    let o = h.ka(&["start"]);
    assert!(!stdout(&o).contains("--notify"), "{}", stdout(&o));

    // Pause: every secret request refused, approved tools' too; audited as the CLI's.
    let o = h.ka(&["pause"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("keychain-auth resume"),
        "{}",
        stdout(&o)
    );
    let r = h.client_at(&client, &["get", "p/token"]);
    assert_eq!(r["code"], "denied", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("keychain-auth resume"),
        "{r}"
    );
    assert_eq!(status_json(&h)["paused"], true);
    assert!(stdout(&h.ka(&["status"])).contains("paused:   yes"));
    assert!(h.ka(&["pause"]).status.success(), "pausing twice is fine");

    // Resume: served again; the resume went through the proof (presence off here).
    let o = h.ka(&["resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = h.client_at(&client, &["get", "p/token"]);
    assert_eq!(r["value"], "served", "{r}");
    assert_eq!(status_json(&h)["paused"], false);

    let daemon: Vec<Value> = h
        .audit_lines()
        .into_iter()
        .filter(|l| l["event"] == "daemon" && !l["reason"].as_str().unwrap().starts_with("started"))
        .collect();
    let reasons: Vec<&str> = daemon
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["paused: every secret request is refused", "resumed"],
        "{daemon:?}"
    );
    assert!(daemon.iter().all(|l| l["via"] == "cli"), "{daemon:?}");
    assert!(daemon[0].get("presence").is_none(), "{daemon:?}");
    assert!(daemon[1]["presence"].is_string(), "{daemon:?}");
}

#[test]
fn status_says_notifications_are_on_for_a_daemon_started_with_notify() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils", "--notify"]);
    let s = status_json(&h);
    assert_eq!(s["notifications"], true, "{s}");
    assert_eq!(s["host"], "cli", "{s}");
    let out = stdout(&h.ka(&["status"]));
    assert!(out.contains("notify:   on"), "{out}");
    let o = h.ka(&["start", "--notify"]);
    assert!(!stdout(&o).contains("changes nothing"), "{}", stdout(&o));
}

/// A directory laid out as the default home (no `KEYCHAIN_AUTH_HOME`): `XDG_*` and
/// `HOME` all point at `root`, so every file is in `root/keychain-auth`.
struct DefaultHome {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    daemon: Option<Child>,
}

impl DefaultHome {
    fn new(namespace: &str) -> DefaultHome {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let dir = root.join("keychain-auth");
        std::fs::create_dir_all(&dir).unwrap();
        for d in [&root, &dir] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
        }
        std::fs::write(
            dir.join("config.json"),
            format!(
                "{{\"version\":1,\"namespace\":\"{namespace}-default\",\"presence\":\"off\"}}\n"
            ),
        )
        .unwrap();
        DefaultHome {
            _tmp: tmp,
            root,
            daemon: None,
        }
    }

    /// `cmd` with the default home's environment.
    fn env(&self, cmd: &mut Command) {
        for v in [
            "HOME",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_STATE_HOME",
        ] {
            cmd.env(v, &self.root);
        }
    }

    fn socket(&self) -> PathBuf {
        self.root.join("keychain-auth/agent.sock")
    }

    fn start(&mut self) {
        let mut cmd = Command::new(bin("keychain-auth"));
        self.env(&mut cmd);
        cmd.args(["start", "--foreground", "--store", "keyutils"])
            .env_remove("KEYCHAIN_AUTH_HOME")
            .env_remove("KEYCHAIN_AUTH_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.daemon = Some(cmd.spawn().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < deadline,
                "the default home's daemon started"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for DefaultHome {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The CLI with `KEYCHAIN_AUTH_HOME` set to `h` and the default home's environment.
fn ka_in(h: &Home, default: &DefaultHome, args: &[&str]) -> Output {
    let mut cmd = h.command(&bin("keychain-auth"));
    default.env(&mut cmd);
    keychain_auth_e2e::run_retrying(cmd.args(args).stdin(Stdio::null()))
}

#[test]
fn a_home_with_no_daemon_names_the_default_home_that_has_one() {
    let h = Home::new();
    let mut default = DefaultHome::new(&h.namespace);
    // Nothing runs anywhere: only "not running", no word of another home.
    let o = ka_in(&h, &default, &["list"]);
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("default home"), "{}", stderr(&o));

    default.start();
    let home = format!("KEYCHAIN_AUTH_HOME={}", h.dir.display());
    let o = ka_in(&h, &default, &["list"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains(&format!("no daemon for {home}")), "{err}");
    assert!(
        err.contains("one runs for the default home")
            && err.contains(&default.socket().display().to_string()),
        "{err}"
    );
    let o = ka_in(&h, &default, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains(&format!("no daemon for {home}")),
        "{}",
        stderr(&o)
    );

    // Starting one for this home is a choice: it starts, with a note.
    let o = ka_in(&h, &default, &["start", "--store", "keyutils"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("keychain-auth started"),
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains(&format!("starting a daemon for {home}")),
        "{err}"
    );
    assert!(err.contains("already runs for the default home"), "{err}");
    // Now both run: no note.
    let o = ka_in(&h, &default, &["list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("default home"), "{}", stderr(&o));
    assert!(ka_in(&h, &default, &["stop"]).status.success());
}

/// Whether a line starts with an RFC 3339 UTC time (`2025-01-31T12:00:00.123456Z`).
fn starts_with_time(line: &str) -> bool {
    let t = line.split(' ').next().unwrap_or("");
    let b = t.as_bytes();
    b.len() >= 20
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && t.ends_with('Z')
}

#[test]
fn daemon_log_lines_carry_their_time() {
    let h = Home::new();
    let mut cmd = h.command(&bin("keychain-auth"));
    cmd.args(["start", "--store", "keyutils"])
        .env("RUST_LOG", "info");
    let o = keychain_auth_e2e::run_retrying(&mut cmd);
    assert!(o.status.success(), "{}", stderr(&o));
    // `start` shows the daemon's warnings to a person without the times.
    let out = stdout(&o);
    assert!(out.contains("keychain-auth: WARNING:"), "{out}");
    assert!(out.lines().all(|l| !starts_with_time(l)), "{out}");
    assert!(h.ka(&["stop"]).status.success());
    let log = std::fs::read_to_string(h.path("daemon.log")).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("WARNING"))
            && lines.iter().any(|l| l.contains("listening on")),
        "{log}"
    );
    for l in &lines {
        assert!(starts_with_time(l), "no time on {l:?}");
    }
    assert!(
        !log.contains('\u{1b}'),
        "no terminal colours in a file: {log:?}"
    );
}
