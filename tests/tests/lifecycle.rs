//! Starting and stopping the real daemon: background start, status, a second start, stop,
//! a stale socket after `kill -9`, unsafe directories, a corrupt config, and approvals
//! that survive a kill. Also the keyutils store, for real.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;

#[test]
fn start_status_second_start_stop() {
    let h = Home::new();
    let o = h.ka(&["status"]);
    assert_eq!(o.status.code(), Some(3), "not running yet: {}", stdout(&o));
    let o = h.ka(&["start", "--store", "secret-service"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("started"), "{}", stdout(&o));
    // start returns only once the socket accepts connections
    let o = h.ka(&["status"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("store:    secret-service"),
        "{}",
        stdout(&o)
    );
    // socket 0600 in a 0700 directory
    let sock = h.path("agent.sock");
    assert_eq!(std::fs::metadata(&sock).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&h.dir).unwrap().mode() & 0o777, 0o700);
    // a second start does not steal the socket
    let o = h.ka(&["start"]);
    assert!(
        stdout(&o).contains("already running"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = h.ka(&["start", "--foreground"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already running"), "{}", stderr(&o));
    assert!(h.ka(&["status"]).status.success());
    let o = h.ka(&["stop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.ka(&["status"]).status.code(), Some(3));
    assert!(!sock.exists(), "socket removed on stop");

    // A daemon.log grown past 1 MiB becomes daemon.log.1 at the next start.
    let log = h.path("daemon.log");
    let old = vec![b'x'; 1024 * 1024 + 1];
    std::fs::write(&log, &old).unwrap();
    let o = h.ka(&["start", "--store", "keyutils"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(h.path("daemon.log.1")).unwrap(), old);
    assert!(std::fs::metadata(&log).unwrap().len() < 1024 * 1024);
    assert!(h.ka(&["stop"]).status.success());
    // A small one is kept and appended to.
    let o = h.ka(&["start", "--store", "keyutils"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(h.path("daemon.log.1")).unwrap(), old);
    assert!(h.ka(&["stop"]).status.success());
}

#[test]
fn stale_socket_is_replaced_and_approvals_survive_kill_9() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h.ka_stdin(&["set", "k/one"], b"v1").status.success());
    let client = bin("ka-test-client");
    assert_eq!(h.client(&["get", "k/one"])["code"], "not_approved");
    let hash = sha256_file(&client);
    assert!(
        h.ka(&["approve", &hash]).status.success(),
        "default scope: the name it asked for"
    );
    h.kill_daemon();
    assert!(
        h.path("agent.sock").exists(),
        "kill -9 leaves the socket behind"
    );
    h.start(&["--store", "secret-service"]);
    let r = h.client(&["get", "k/one"]);
    assert_eq!(r["value"], "v1", "{r}");
    let list: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["scopes"], serde_json::json!(["k/one"]));
    let v = h.ka(&["audit", "verify"]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
}

#[test]
fn unsafe_socket_directories_are_refused() {
    // A symlinked home
    let h = Home::new();
    let link = h.dir.parent().unwrap().join("link");
    std::os::unix::fs::symlink(&h.dir, &link).unwrap();
    let o = Command::new(bin("keychain-auth"))
        .args(["start", "--foreground"])
        .env("KEYCHAIN_AUTH_HOME", &link)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("symbolic link"), "{}", stderr(&o));

    // A directory others can write to
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = h.ka(&["start", "--foreground"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("writable by group or others"),
        "{}",
        stderr(&o)
    );
    std::fs::set_permissions(&h.dir, std::fs::Permissions::from_mode(0o700)).unwrap();

    // A planted regular file where the socket goes
    std::fs::write(h.path("agent.sock"), b"not a socket").unwrap();
    let o = h.ka(&["start", "--foreground"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a socket"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(h.path("agent.sock")).unwrap(),
        b"not a socket"
    );
}

#[test]
fn corrupt_files_stop_the_daemon_and_are_left_untouched() {
    for (file, junk) in [
        (
            "config.json",
            &b"{\"version\":1, \"tools\": [ {\"hash\": "[..],
        ),
        ("config.json", b"{\"version\":1,\"tols\":[]}"),
        ("pending.json", b"\xff\xfe garbage"),
        (
            "audit.log",
            b"{\"seq\":1,\"time\":\"x\",\"event\":\"daemon\"",
        ),
    ] {
        let h = Home::new();
        std::fs::write(h.path(file), junk).unwrap();
        let o = h.ka(&["start", "--foreground", "--store", "secret-service"]);
        assert!(!o.status.success(), "{file}");
        let err = stderr(&o);
        assert!(
            err.contains(&h.path(file).display().to_string()),
            "{file}: {err}"
        );
        assert_eq!(
            std::fs::read(h.path(file)).unwrap(),
            junk,
            "{file} untouched"
        );
        assert!(!h.path("agent.sock").exists());
        // background start reports the same error
        let o = h.ka(&["start", "--store", "secret-service"]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains(&h.path(file).display().to_string()),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn keyutils_store_for_real() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    let o = h.ka(&["status"]);
    assert!(stdout(&o).contains("store:    keyutils"), "{}", stdout(&o));
    assert!(h
        .ka_stdin(&["set", "ku/token"], b"kernel-held")
        .status
        .success());
    // The key is in the kernel's user keyring under <namespace>:<name>.
    let desc = format!("{}:ku/token", h.namespace);
    let id = Command::new("keyctl")
        .args(["search", "@u", "user", &desc])
        .output()
        .unwrap();
    assert!(id.status.success(), "{}", stderr(&id));
    let id = stdout(&id).trim().to_string();
    let val = Command::new("keyctl").args(["pipe", &id]).output().unwrap();
    assert_eq!(stdout(&val), "kernel-held");

    let client = bin("ka-test-client");
    assert_eq!(h.client(&["get", "ku/token"])["code"], "not_approved");
    assert!(h
        .ka(&["approve", &sha256_file(&client), "--scope", "ku/*"])
        .status
        .success());
    assert_eq!(h.client(&["get", "ku/token"])["value"], "kernel-held");
    assert_eq!(
        h.client(&["list"])["names"],
        serde_json::json!(["ku/token"])
    );
    // Changed or removed behind the daemon's back: served fresh, never a stale value.
    let upd = Command::new("keyctl")
        .args(["update", &id, "changed-outside"])
        .output()
        .unwrap();
    assert!(upd.status.success(), "{}", stderr(&upd));
    assert_eq!(h.client(&["get", "ku/token"])["value"], "changed-outside");
    let inv = Command::new("keyctl")
        .args(["invalidate", &id])
        .output()
        .unwrap();
    assert!(inv.status.success(), "{}", stderr(&inv));
    let r = h.client(&["get", "ku/token"]);
    assert_eq!(r["code"], "not_found", "{r}");
    assert!(h
        .ka_stdin(&["set", "ku/token"], b"kernel-held")
        .status
        .success());
    assert!(h.ka(&["delete", "ku/token"]).status.success());
    assert_eq!(h.client(&["get", "ku/token"])["code"], "not_found");
}

#[test]
fn audit_tampering_is_named_by_line() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    for i in 0..4 {
        assert!(h
            .ka_stdin(&["set", &format!("a/{i}")], b"v")
            .status
            .success());
    }
    let path = h.path("audit.log");
    let orig = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = orig.lines().collect();
    assert!(lines.len() >= 5);

    let edited = orig.replacen("a/2", "a/9", 1);
    std::fs::write(&path, &edited).unwrap();
    let o = h.ka(&["audit", "verify"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 5"), "{}", stderr(&o));

    // the last line removed while the daemon runs: the daemon knows where its chain ends
    let mut cut = lines[..lines.len() - 1].join("\n");
    cut.push('\n');
    std::fs::write(&path, &cut).unwrap();
    let o = h.ka(&["audit", "verify"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("removed from the end"),
        "{}",
        stderr(&o)
    );

    std::fs::write(&path, &orig).unwrap();
    let o = h.ka(&["audit", "verify"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let o = h.ka(&["audit", "-n", "3"]);
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
}

/// `kill -9` at 100 random moments while approvals, scope changes and audit writes are
/// under way: afterwards the daemon starts (every file parses), every approval the CLI
/// was told succeeded is in config.json, and the audit chain verifies.
#[test]
fn kill_9_storm_loses_no_acknowledged_approval() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut h = Home::new();
    let mut seed: u64 = u64::from(std::process::id()) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut counter = 0u32;
    for round in 0..100 {
        h.start(&["--store", "keyutils"]);
        let stop = Arc::new(AtomicBool::new(false));
        let storm = {
            let (stop, acked) = (stop.clone(), acknowledged.clone());
            let dir = h.dir.clone();
            let start = counter;
            std::thread::spawn(move || {
                let ka = bin("keychain-auth");
                let mut i = start;
                let run = |args: &[&str], stdin: Option<&[u8]>| {
                    let mut cmd = Command::new(&ka);
                    cmd.args(args).env("KEYCHAIN_AUTH_HOME", &dir);
                    cmd.stdin(std::process::Stdio::piped())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped());
                    let mut child = cmd.spawn().unwrap();
                    if let Some(input) = stdin {
                        use std::io::Write;
                        let _ = child.stdin.take().unwrap().write_all(input);
                    }
                    drop(child.stdin.take());
                    child.wait().unwrap().success()
                };
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let tool = dir.join(format!("tool-{i}"));
                    std::fs::write(&tool, format!("tool number {i}")).unwrap();
                    let path = tool.to_str().unwrap().to_string();
                    if run(&["register", &path, "--scope", &format!("s{i}/*")], None) {
                        acked.lock().unwrap().push(sha256_file(&tool));
                        // a scope change and an audited write on top
                        let hash = sha256_file(&tool);
                        run(
                            &[
                                "approve",
                                &hash,
                                "--scope",
                                &format!("s{i}/*"),
                                "--scope",
                                "shared/*",
                            ],
                            None,
                        );
                    }
                    run(&["set", &format!("storm/{i}")], Some(b"value"));
                }
                i
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20 + next() % 180));
        h.kill_daemon();
        stop.store(true, Ordering::SeqCst);
        counter = storm.join().unwrap();
        assert!(round < 100);
    }
    h.start(&["--store", "keyutils"]);
    let o = h.ka(&["list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let present: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["hash"].as_str().unwrap().to_string())
        .collect();
    let acked = acknowledged.lock().unwrap();
    assert!(
        acked.len() >= 20,
        "the storm made progress: {} approvals",
        acked.len()
    );
    for hash in acked.iter() {
        assert!(
            present.contains(hash),
            "acknowledged approval {hash} survived"
        );
    }
    let pending: serde_json::Value = serde_json::from_slice(
        &std::fs::read(h.path("pending.json"))
            .unwrap_or_else(|_| b"{\"version\":1,\"pending\":[]}".to_vec()),
    )
    .unwrap();
    assert!(pending["pending"].is_array());
    let v = h.ka(&["audit", "verify"]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
}

/// The Secret Service store keeps the item it found for a name (one D-Bus call per warm
/// `get`), never its value: a value changed, an item deleted or re-created by another
/// program behind the daemon's back is served fresh, or `not_found`, never stale.
#[test]
fn secret_service_items_changed_behind_the_daemons_back_are_never_served_stale() {
    let (h, attrs) = secret_service_home(Home::new(), "ss");
    let attrs = attrs.each_ref().map(String::as_str);
    // Replaced by another program (secret-tool store replaces the item's secret).
    let mut store = vec!["store", "--label", "outside"];
    store.extend_from_slice(&attrs);
    secret_tool(&store, b"changed-outside");
    assert_eq!(h.client(&["get", "ss/token"])["value"], "changed-outside");
    // Deleted, then re-created as a new item.
    let mut clear = vec!["clear"];
    clear.extend_from_slice(&attrs);
    secret_tool(&clear, b"");
    assert_eq!(h.client(&["get", "ss/token"])["code"], "not_found");
    secret_tool(&store, b"re-created");
    assert_eq!(h.client(&["get", "ss/token"])["value"], "re-created");
    // And through keychain-auth itself.
    assert!(h
        .ka_stdin(&["set", "ss/token"], b"via-cli")
        .status
        .success());
    assert_eq!(h.client(&["get", "ss/token"])["value"], "via-cli");
    assert!(h.ka(&["delete", "ss/token"]).status.success());
    assert_eq!(h.client(&["get", "ss/token"])["code"], "not_found");
}

/// Starts `h`'s daemon on the Secret Service with `<prefix>/token` = `first`, registers
/// the test client for `<prefix>/*`, and reads the value twice. Returns the home and the
/// item's attributes for `secret-tool`.
fn secret_service_home(mut h: Home, prefix: &str) -> (Home, [String; 4]) {
    h.start(&["--store", "secret-service"]);
    let name = format!("{prefix}/token");
    assert!(h.ka_stdin(&["set", &name], b"first").status.success());
    let client = bin("ka-test-client");
    assert!(h
        .ka(&[
            "register",
            client.to_str().unwrap(),
            "--scope",
            &format!("{prefix}/*")
        ])
        .status
        .success());
    assert_eq!(h.client(&["get", &name])["value"], "first");
    assert_eq!(h.client(&["get", &name])["value"], "first");
    let attrs = [
        "service".into(),
        h.namespace.clone(),
        "account".into(),
        name,
    ];
    (h, attrs)
}

/// Runs `secret-tool` (another program using the same Secret Service), which must succeed.
fn secret_tool(args: &[&str], stdin: &[u8]) {
    let mut c = Command::new("secret-tool")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A home whose config.json turns the value cache on.
fn home_with_value_cache(ms: u64) -> Home {
    let h = Home::new();
    h.write_config(&format!("\"value_cache_ms\":{ms}"));
    h
}

/// Asks until the client reads `want` (a change the store announces reaches the cache a
/// moment after the program that made it exits); panics after 20 s, a third of the TTL
/// the test sets, so the value cannot merely have expired.
fn eventually_reads(h: &Home, name: &str, want: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let r = h.client(&["get", name]);
        if r["value"] == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {r}, not {want:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// With `value_cache_ms` set, a value read from the store is served again from memory,
/// but never one keychain-auth changed, never one the Secret Service announced changed,
/// and never past a decision: the policy runs before the cache on every request.
#[test]
fn the_value_cache_never_serves_what_changed_or_what_is_no_longer_allowed() {
    // Secret Service: a 60 s cache, and changes made by another program.
    let (h, attrs) = secret_service_home(home_with_value_cache(60_000), "vc");
    let attrs = attrs.each_ref().map(String::as_str);
    let client = bin("ka-test-client");
    let mut store = vec!["store", "--label", "outside"];
    store.extend_from_slice(&attrs);
    secret_tool(&store, b"changed-outside");
    eventually_reads(&h, "vc/token", "changed-outside");
    // Through keychain-auth: seen by the very next read.
    assert!(h
        .ka_stdin(&["set", "vc/token"], b"via-cli")
        .status
        .success());
    assert_eq!(h.client(&["get", "vc/token"])["value"], "via-cli");
    // Every read is still decided and audited: revoking the tool refuses the cached value.
    // A read's line follows its answer: count once the log stops growing.
    let gets = |h: &Home| {
        let count = || {
            h.audit_lines()
                .iter()
                .filter(|l| l["op"] == "get" && l["decision"] == "allow")
                .count()
        };
        let mut last = count();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let now = count();
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let before = gets(&h);
    assert_eq!(h.client(&["get", "vc/token"])["value"], "via-cli");
    // Its line follows the answer: wait for it, then check no other line came.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while gets(&h) < before + 1 && std::time::Instant::now() < deadline {}
    assert_eq!(gets(&h), before + 1, "a cached read is audited");
    assert!(h.ka(&["revoke", &sha256_file(&client)]).status.success());
    assert_eq!(h.client(&["get", "vc/token"])["code"], "not_approved");
    assert!(h
        .ka(&["register", client.to_str().unwrap(), "--scope", "vc/*"])
        .status
        .success());
    assert!(h.ka(&["delete", "vc/token"]).status.success());
    assert_eq!(h.client(&["get", "vc/token"])["code"], "not_found");
    drop(h);

    // keyutils announces nothing: a change made behind the daemon's back is served from
    // the cache until the value expires, then read fresh.
    let mut h = home_with_value_cache(10_000);
    h.start(&["--store", "keyutils"]);
    assert!(h
        .ka_stdin(&["set", "vc/key"], b"kernel-held")
        .status
        .success());
    assert!(h
        .ka(&["register", client.to_str().unwrap(), "--scope", "vc/*"])
        .status
        .success());
    assert_eq!(h.client(&["get", "vc/key"])["value"], "kernel-held");
    let desc = format!("{}:vc/key", h.namespace);
    let id = Command::new("keyctl")
        .args(["search", "@u", "user", &desc])
        .output()
        .unwrap();
    assert!(id.status.success(), "{}", stderr(&id));
    let upd = Command::new("keyctl")
        .args(["update", stdout(&id).trim(), "changed-outside"])
        .output()
        .unwrap();
    assert!(upd.status.success(), "{}", stderr(&upd));
    assert_eq!(
        h.client(&["get", "vc/key"])["value"],
        "kernel-held",
        "served from the cache"
    );
    std::thread::sleep(std::time::Duration::from_millis(10_500));
    assert_eq!(h.client(&["get", "vc/key"])["value"], "changed-outside");
}

/// Splits a systemd command line as `service install` writes it (every word quoted).
fn systemd_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut quoted, mut chars) =
        (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', _) => {
                if quoted {
                    words.push(std::mem::take(&mut cur));
                }
                quoted = !quoted;
            }
            ('\\', true) => cur.push(chars.next().unwrap()),
            ('%' | '$', true) if chars.peek() == Some(&c) => {
                chars.next();
                cur.push(c);
            }
            (_, true) => cur.push(c),
            _ => {}
        }
    }
    words
}

/// `service install --no-start` writes a systemd user unit whose command line, run as
/// systemd would run it, starts this daemon on this home; `service print` shows the same
/// file; without a user systemd, `install` says how to start it and fails nothing;
/// `uninstall` removes the file.
#[test]
fn service_install_writes_a_systemd_unit_that_starts_this_daemon() {
    let h = Home::new();
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config");
    // No user service manager is reachable from here (a bus that does not exist), so
    // the test never touches a real systemd user session on a developer's machine.
    let ka = |args: &[&str]| {
        h.command(&bin("keychain-auth"))
            .args(args)
            .env("HOME", tmp.path())
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_RUNTIME_DIR", tmp.path().join("run"))
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                format!("unix:path={}", tmp.path().join("no-bus").display()),
            )
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap()
    };
    let o = ka(&["service", "install", "--no-start"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unit_path = config.join("systemd/user/keychain-auth.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(stdout(&o).contains(unit_path.to_str().unwrap()));
    let printed = ka(&["service", "print"]);
    assert!(
        stdout(&printed).contains(&unit),
        "print shows the installed file"
    );

    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let words = systemd_words(exec);
    let exe = std::fs::canonicalize(bin("keychain-auth")).unwrap();
    assert_eq!(words[0], exe.to_str().unwrap());
    assert_eq!(&words[1..], ["start", "--foreground"]);
    let env = unit
        .lines()
        .find_map(|l| l.strip_prefix("Environment="))
        .map(systemd_words)
        .unwrap();
    assert_eq!(
        env,
        [format!("KEYCHAIN_AUTH_HOME={}", h.dir.display())],
        "the daemon keeps this home"
    );
    // Run the unit's command the way systemd would: it serves this home.
    let (key, value) = env[0].split_once('=').unwrap();
    let mut daemon = Command::new(&words[0])
        .args(&words[1..])
        .env_clear()
        .env(key, value)
        .env("PATH", "/usr/bin:/bin")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut served = false;
    for _ in 0..200 {
        if h.ka(&["status"]).status.success() {
            served = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(served, "the unit's command started a daemon on this home");
    assert!(h.ka(&["stop"]).status.success());
    let _ = daemon.wait();

    // Installing and starting without a user systemd: the file is written, the person is
    // told how to start it, and a daemon running now is left running.
    let started = h.ka(&["start", "--store", "keyutils"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let o = ka(&["service", "install"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("cannot be reached"), "{}", stdout(&o));
    assert!(stdout(&o).contains("systemctl --user"), "{}", stdout(&o));
    assert!(
        h.ka(&["status"]).status.success(),
        "the running daemon was left alone"
    );
    let _ = h.ka(&["stop"]);
    let o = ka(&["service", "uninstall"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!unit_path.exists());
    assert!(stdout(&ka(&["service", "uninstall"])).contains("no service was installed"));
}
