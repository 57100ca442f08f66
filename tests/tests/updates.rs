//! The moment the product exists for: an approved tool was updated. A new binary (or an
//! edited script) at an approved tool's path is recognised as an update of it: its
//! refusal, `list-pending` and the notification say so, old -> new, and offer Keep
//! access (`upgrade`), which keeps its scopes and access; `approve` of it does not add a
//! second tool. A tool approved with `--follow package` is re-pinned by itself when dpkg
//! installed the update (a real `.deb`, built and installed with `dpkg`), audited and
//! announced; the same file changed by hand is refused.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::desktop::{notification_id, wait_until, Desktop};
use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The tests with a desktop take turns: they share the session bus, where one
/// notification server answers.
static DESKTOP: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn config(h: &Home) -> Value {
    serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap()
}

/// Approves `tool` for `git/*` and `api/*`, read-write, with both secrets stored.
fn approved_tool(h: &Home, tool: &Path) -> String {
    h.approve_client(tool, "git/a", b"git-value", "git/*");
    assert!(h.ka_stdin(&["set", "api/x"], b"api-value").status.success());
    let hash = sha256_file(tool);
    let o = h.ka(&[
        "approve",
        &hash,
        "--scope",
        "git/*",
        "--scope",
        "api/*",
        "--access",
        "read-write",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.client_at(tool, &["get", "api/x"])["value"], "api-value");
    hash
}

#[test]
fn an_updated_binary_is_offered_keep_access_and_upgrade_keeps_scopes_and_access() {
    let mut h = Home::new();
    h.start(&[]);
    let tool = h.client_copy("tool", b"version 1");
    let old = approved_tool(&h, &tool);

    // The tool is updated in place.
    let tool = h.client_copy("tool", b"version 2");
    let new = sha256_file(&tool);
    assert_ne!(old, new);
    let r = h.client_at(&tool, &["get", "api/x"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let m = r["message"].as_str().unwrap();
    assert!(m.contains("an update of the approved tool tool"), "{m}");
    assert!(
        m.contains(&old[..19]) && m.contains(&new[..19]),
        "old -> new: {m}"
    );
    assert!(
        m.contains(&format!("keychain-auth upgrade {}", tool.display())),
        "{m}"
    );
    assert!(
        !m.contains("keychain-auth approve"),
        "no advice to approve: {m}"
    );

    // list-pending links it to the approval it updates.
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(pending.contains("update of: tool"), "{pending}");
    assert!(pending.contains("keychain-auth upgrade"), "{pending}");
    let json: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["update_of"]["hash"], old.as_str(), "{json}");

    // `approve` of it (no terminal to ask in) says to upgrade, and adds nothing.
    let before = std::fs::read(h.path("config.json")).unwrap();
    let o = h.ka(&["approve", &new, "--scope", "git/https/github.com/alice"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("keychain-auth upgrade"), "{err}");
    assert!(err.contains("--as-new"), "{err}");
    assert_eq!(
        std::fs::read(h.path("config.json")).unwrap(),
        before,
        "nothing changed"
    );

    // Keep access: upgrade re-pins it with its scopes and access.
    let o = h.ka(&["upgrade", tool.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.client_at(&tool, &["get", "api/x"])["value"], "api-value");
    assert_eq!(h.client_at(&tool, &["get", "git/a"])["value"], "git-value");
    let c = config(&h);
    assert_eq!(c["tools"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(c["tools"][0]["hash"], new.as_str());
    assert_eq!(c["tools"][0]["access"], "read-write");
    assert_eq!(
        c["tools"][0]["scopes"],
        serde_json::json!(["git/*", "api/*"])
    );
    let pending: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    assert_eq!(pending, serde_json::json!([]), "no longer pending");
    let line = h
        .audit_lines()
        .into_iter()
        .find(|l| l["event"] == "upgrade")
        .unwrap();
    assert_eq!(
        (&line["old_access"], &line["access"]),
        (
            &serde_json::json!("read-write"),
            &serde_json::json!("read-write")
        ),
        "{line}"
    );
    assert_eq!(line["old_scopes"], serde_json::json!(["git/*", "api/*"]));

    // --as-new is the deliberate second tool.
    let copy = h.client_copy("tool", b"version 3");
    let third = sha256_file(&copy);
    assert_eq!(
        h.client_at(&copy, &["get", "git/a"])["code"],
        "not_approved"
    );
    let o = h.ka(&["approve", &third, "--as-new", "--scope", "git/a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(config(&h)["tools"].as_array().unwrap().len(), 2);
}

#[test]
fn an_edited_script_is_an_update_of_the_approved_script() {
    let mut h = Home::new();
    h.start(&[]);
    assert!(h
        .ka_stdin(&["set", "sh/token"], b"scripted")
        .status
        .success());
    let script = h.path("fetch.sh");
    let write = |extra: &str| {
        std::fs::write(
            &script,
            format!(
                "#!/bin/bash\n# {extra}\nv=$('{}' get sh/token); printf '[%s]' \"$v\"\n",
                bin("keychain-auth").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    };
    let run = |s: &PathBuf| keychain_auth_e2e::run_retrying(h.command(s).stdin(Stdio::null()));
    write("one");
    let o = run(&script);
    let err = stderr(&o);
    let hash = keychain_auth_e2e::approve_hash(&err);
    assert!(h
        .ka(&["approve", &hash, "--allow-unbound-get"])
        .status
        .success());
    assert_eq!(stdout(&run(&script)), "[scripted]");

    write("two");
    let o = run(&script);
    assert_eq!(stdout(&o), "[]");
    let err = stderr(&o);
    assert!(
        err.contains("an update of the approved tool fetch.sh"),
        "{err}"
    );
    assert!(err.contains("keychain-auth upgrade"), "{err}");
    let o = h.ka(&["upgrade", script.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&run(&script)),
        "[scripted]",
        "the script keeps its access"
    );
}

#[test]
fn keep_access_on_the_notification_re_pins_exactly_what_asked() {
    let _turn = DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    h.start(&["--store", "keyutils", "--notify"]);
    let tool = h.client_copy("tool", b"v1");
    assert!(h.ka_stdin(&["set", "n/secret"], b"kept").status.success());
    h.approve_client(&tool, "n/secret", b"kept", "n/*");
    let tool = h.client_copy("tool", b"v2");
    let new = sha256_file(&tool);
    let waiting = keychain_auth_e2e::desktop::asks_with_wait(&h, &tool);
    wait_until("the notification", || notification_id(&h, &new).is_some());
    desktop.choose("keep access");
    let r = waiting.join().unwrap();
    assert_eq!(r["value"], "kept", "{r}");
    let shown = desktop.close_all_and_read();
    assert!(
        shown.contains("tool was updated: keep its access?"),
        "{shown}"
    );
    assert!(
        shown.contains("an update of the approved tool tool"),
        "{shown}"
    );
    let c = config(&h);
    assert_eq!(c["tools"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(
        c["tools"][0]["hash"],
        new.as_str(),
        "{:#?}",
        h.audit_lines()
    );
    assert_eq!(c["tools"][0]["scopes"], serde_json::json!(["n/*"]));
    assert!(h.audit_lines().iter().any(|l| l["event"] == "upgrade"
        && l["hash"] == new.as_str()
        && l["via"] == "notification"));
}

/// A package `ka-follow-e2e` of `version` holding `/usr/bin/ka-follow-e2e`: a copy of
/// the test client with `extra` appended. Built with dpkg-deb in `dir`.
fn build_deb(dir: &Path, version: &str, extra: &[u8]) -> PathBuf {
    let root = dir.join(format!("pkg-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let exe = root.join("usr/bin/ka-follow-e2e");
    let mut bytes = std::fs::read(bin("ka-test-client")).unwrap();
    bytes.extend_from_slice(extra);
    std::fs::write(&exe, bytes).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: ka-follow-e2e\nVersion: {version}\nArchitecture: all\nMaintainer: keychain-auth tests <tests@keychain-auth.invalid>\nDescription: a tool whose updates keychain-auth follows\n"
        ),
    )
    .unwrap();
    let deb = dir.join(format!("ka-follow-e2e_{version}.deb"));
    let o = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(o.status.success(), "dpkg-deb: {}", stderr(&o));
    deb
}

fn dpkg_install(deb: &Path) {
    let o = Command::new("dpkg").arg("-i").arg(deb).output().unwrap();
    assert!(o.status.success(), "dpkg -i: {}", stderr(&o));
}

/// Removes the test package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "ka-follow-e2e"])
            .output();
    }
}

#[test]
fn a_tool_that_follows_its_package_keeps_access_across_dpkg_upgrades_only() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("installing a package needs root: run the tests as root (scripts/test does)");
    }
    let _turn = DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let _purge = Purge;
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    h.start(&["--store", "keyutils", "--notify"]);
    assert!(h
        .ka_stdin(&["set", "pkg/token"], b"packaged")
        .status
        .success());
    dpkg_install(&build_deb(&h.dir, "1.0", b"release one"));
    let exe = PathBuf::from("/usr/bin/ka-follow-e2e");
    let v1 = sha256_file(&exe);

    // A file no package installed cannot follow by package.
    let loose = h.client_copy("loose", b"x");
    assert_eq!(
        h.client_at(&loose, &["get", "pkg/token"])["code"],
        "not_approved"
    );
    let o = h.ka(&["approve", &sha256_file(&loose), "--follow", "package"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("belongs to no package"),
        "{}",
        stderr(&o)
    );

    assert_eq!(
        h.client_at(&exe, &["get", "pkg/token"])["code"],
        "not_approved"
    );
    let o = h.ka(&["approve", &v1, "--scope", "pkg/*", "--follow", "package"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        config(&h)["tools"][0]["follow"],
        serde_json::json!({"by": "package", "package": "ka-follow-e2e"})
    );
    assert_eq!(
        h.client_at(&exe, &["get", "pkg/token"])["value"],
        "packaged"
    );

    // dpkg installs version 2: served at once, nothing pending, audited with evidence.
    dpkg_install(&build_deb(&h.dir, "2.0", b"release two"));
    let v2 = sha256_file(&exe);
    assert_ne!(v1, v2);
    let r = h.client_at(&exe, &["get", "pkg/token"]);
    assert_eq!(r["value"], "packaged", "{r}");
    let c = config(&h);
    assert_eq!(c["tools"][0]["hash"], v2.as_str());
    let pending: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    assert!(
        !pending
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["hash"] == v2.as_str()),
        "{pending}"
    );
    let lines = h.audit_lines();
    let repin = lines
        .iter()
        .find(|l| l["event"] == "upgrade")
        .expect("the re-pin is audited");
    assert_eq!(repin["old_hash"], v1.as_str());
    assert_eq!(repin["hash"], v2.as_str());
    assert_eq!(repin["via"], "follow package");
    assert_eq!(repin["old_scopes"], serde_json::json!(["pkg/*"]));
    assert_eq!(repin["scopes"], serde_json::json!(["pkg/*"]));
    let reason = repin["reason"].as_str().unwrap();
    assert!(
        reason.contains("installed by the package ka-follow-e2e 2.0"),
        "{reason}"
    );
    assert!(!lines
        .iter()
        .any(|l| l["decision"] == "not_approved" && l["hash"] == v2.as_str()));
    // Announced: a notification without buttons.
    wait_until("the announcement", || {
        desktop
            .close_all_and_read()
            .contains("ka-follow-e2e was updated")
    });

    // The same file changed by hand afterwards (root could; dpkg's digest no longer
    // matches): refused, offered as an update to confirm.
    let mut changed = std::fs::read(&exe).unwrap();
    changed.extend_from_slice(b"patched by hand");
    let tmp = h.path("patched");
    std::fs::write(&tmp, changed).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = Command::new("cp").arg(&tmp).arg(&exe).output().unwrap();
    assert!(o.status.success());
    let r = h.client_at(&exe, &["get", "pkg/token"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("an update of the approved tool"),
        "{r}"
    );
    assert_eq!(config(&h)["tools"][0]["hash"], v2.as_str(), "not re-pinned");
}

#[test]
fn a_notification_decided_elsewhere_or_whose_wait_ended_is_withdrawn_and_a_stale_press_says_so() {
    let _turn = DESKTOP.lock().unwrap_or_else(|e| e.into_inner());
    let mut h = Home::new();
    // One pending entry at most: a second binary evicts the first, whose notification
    // then stays on screen, stale.
    h.write_config(r#""pending_limit":1"#);
    let desktop = Desktop::start(&h.path("desktop"));
    h.start(&["--store", "keyutils", "--notify"]);
    assert!(h.ka_stdin(&["set", "n/secret"], b"v").status.success());

    // Decided in the CLI while it waits: its notification leaves the screen.
    let tool = h.client_copy("decided", b"1");
    let hash = sha256_file(&tool);
    let waiting = keychain_auth_e2e::desktop::asks_with_wait(&h, &tool);
    wait_until("the notification", || notification_id(&h, &hash).is_some());
    wait_until("it on screen", || desktop.displayed() == Some(1));
    assert!(h.ka(&["approve", &hash]).status.success());
    assert_eq!(waiting.join().unwrap()["value"], "v");
    wait_until("it withdrawn", || desktop.displayed() == Some(0));

    // Its wait ends undecided: withdrawn too (the entry stays in list-pending).
    let tool = h.client_copy("waited", b"2");
    let hash = sha256_file(&tool);
    let mut cmd = h.command(&tool);
    cmd.args(["get", "n/secret", "1500"]);
    let o = keychain_auth_e2e::run_retrying(&mut cmd);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["code"], "not_approved", "{r}");
    assert!(notification_id(&h, &hash).is_some());
    wait_until("it withdrawn after the wait", || {
        desktop.displayed() == Some(0)
    });
    assert!(stdout(&h.ka(&["list-pending"])).contains(&hash));

    // A press on a notification whose entry is gone changes nothing, and says so.
    let stale = h.client_copy("stale", b"3");
    let stale_hash = sha256_file(&stale);
    assert_eq!(
        h.client_at(&stale, &["get", "n/secret"])["code"],
        "not_approved"
    );
    wait_until("the stale one", || {
        notification_id(&h, &stale_hash).is_some()
    });
    let evicting = h.client_copy("evicting", b"4");
    assert_eq!(
        h.client_at(&evicting, &["get", "n/secret"])["code"],
        "not_approved"
    );
    wait_until("both on screen", || desktop.displayed() == Some(2));
    // dunst's menu lists "#Approve (stale wants a secret) [id,approve]".
    desktop.choose("approve (stale");
    wait_until("the stale press answered", || {
        h.daemon_stderr().contains("is no longer pending")
    });
    // Closing the notifications only once the press reached the daemon: a close
    // before dunst ran the menu's choice would take the press away.
    wait_until("the announcement", || {
        desktop
            .close_all_and_read()
            .contains("keychain-auth: nothing changed")
    });
    let c = config(&h);
    assert!(
        !c["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == stale_hash.as_str()),
        "{c}"
    );
}
