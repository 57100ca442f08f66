//! The core flow of the original description, with the real daemon, the real Secret
//! Service, the real CLI and real client binaries: store, turn away, queue, approve by
//! hash, serve; scopes; a changed binary; deny, revoke, register, upgrade.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use std::process::Command;

#[test]
fn unknown_tool_is_queued_approved_by_hash_then_served() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    let name = "git/https/example.com/alice";
    let o = h.ka_stdin(&["set", name], b"s3cret-value");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = h.ka_stdin(&["set", "aws/prod/key"], b"aws-value");
    assert!(o.status.success(), "{}", stderr(&o));

    // The value lives in the real Secret Service under service=<namespace>, account=<name>.
    let found = Command::new("secret-tool")
        .args(["lookup", "service", &h.namespace, "account", name])
        .output()
        .unwrap();
    assert_eq!(stdout(&found), "s3cret-value");

    // Unknown binary: turned away with its exact sha256 and queued.
    let client = bin("ka-test-client");
    let r = h.client(&["get", name]);
    assert_eq!(r["type"], "error");
    assert_eq!(r["code"], "not_approved");
    assert_eq!(r["pending"], true);
    let hash = sha256_file(&client);
    assert_eq!(r["hash"], hash.as_str());
    let sha256sum = Command::new("sha256sum").arg(&client).output().unwrap();
    assert_eq!(format!("sha256:{}", &stdout(&sha256sum)[..64]), hash);
    assert!(r["message"]
        .as_str()
        .unwrap()
        .contains(&format!("keychain-auth approve {hash}")));

    let pending = h.ka(&["list-pending", "--json"]);
    let p: serde_json::Value = serde_json::from_slice(&pending.stdout).unwrap();
    assert_eq!(p[0]["hash"], hash.as_str());
    assert_eq!(p[0]["names"][0], name);
    assert_eq!(p[0]["path"], client.to_str().unwrap());
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.path("pending.json")).unwrap()).unwrap();
    assert_eq!(file["pending"][0]["hash"], hash.as_str());

    // Approve by hash with a scope; the same binary is now served.
    let o = h.ka(&["approve", &hash, "--scope", "git/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r = h.client(&["get", name]);
    assert_eq!(
        r,
        serde_json::json!({"type":"secret","name":name,"value":"s3cret-value"})
    );
    assert_eq!(h.ka(&["list-pending", "--json"]).stdout, b"[]\n");

    // It sees nothing outside its scope, not even whether a name exists.
    let r = h.client(&["get", "aws/prod/key"]);
    assert_eq!(r["code"], "out_of_scope");
    let r = h.client(&["get", "aws/does-not-exist"]);
    assert_eq!(r["code"], "out_of_scope");
    let r = h.client(&["list"]);
    assert_eq!(r["names"], serde_json::json!([name]));
    let r = h.client(&["get", "git/missing"]);
    assert_eq!(r["code"], "not_found");
    let r = h.client(&["whoami"]);
    assert_eq!(r["status"], "approved");
    assert_eq!(r["scopes"], serde_json::json!(["git/*"]));
    // Read access only: writes are refused.
    let r = h.client(&["set", "git/x", "v"]);
    assert_eq!(r["code"], "forbidden");

    // One byte appended: a new, unapproved hash.
    let changed = h.client_copy("ka-test-client-changed", b"\0");
    let r = h.client_at(&changed, &["get", name]);
    assert_eq!(r["code"], "not_approved");
    assert_eq!(r["hash"], sha256_file(&changed).as_str());
    assert_ne!(r["hash"], hash.as_str());

    // The audit log recorded all of it and never a value.
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(!log.contains("s3cret-value") && !log.contains("aws-value"));
    let events: Vec<_> = h.audit_lines();
    assert!(events
        .iter()
        .any(|e| e["event"] == "approve" && e["hash"] == hash.as_str()));
    assert!(events
        .iter()
        .any(|e| e["event"] == "access" && e["decision"] == "allow" && e["op"] == "get"));
    let v = h.ka(&["audit", "verify"]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
}

/// Reads answered at the same time share audit writes; none may be missing, out of
/// order or outside the chain, and `audit verify` (which asks the daemon for its last
/// line) passes right after them.
#[test]
fn every_read_of_a_busy_daemon_is_audited_in_one_chain() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    let client = bin("ka-test-client");
    h.approve_client(&client, "busy/token", b"busy-value", "busy/*");
    let before = h.audit_lines().len();
    let r = h.client(&["get-many", "busy/token", "8", "250"]);
    assert_eq!(r["served"], 2000, "{r}");
    let v = h.ka(&["audit", "verify"]);
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let lines = h.audit_lines();
    let served = lines[before..]
        .iter()
        .filter(|e| e["event"] == "access" && e["op"] == "get" && e["decision"] == "allow")
        .count();
    assert_eq!(served, 2000);
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps or reordering"
    );
    assert!(!std::fs::read_to_string(h.path("audit.log"))
        .unwrap()
        .contains("busy-value"));
}

#[test]
fn default_namespace_is_found_by_secret_tool() {
    let mut h = Home::with_namespace("keychain-auth");
    h.start(&[]);
    let name = format!("e2e/default-ns-{}", std::process::id());
    assert!(h
        .ka_stdin(&["set", &name], b"visible-to-secret-tool")
        .status
        .success());
    let found = Command::new("secret-tool")
        .args(["lookup", "service", "keychain-auth", "account", &name])
        .output()
        .unwrap();
    assert_eq!(stdout(&found), "visible-to-secret-tool");
    let names = h.ka(&["names"]);
    assert!(stdout(&names).lines().any(|l| l == name));
    assert!(h.ka(&["delete", &name]).status.success());
    let found = Command::new("secret-tool")
        .args(["lookup", "service", "keychain-auth", "account", &name])
        .output()
        .unwrap();
    assert!(!found.status.success(), "deleted from the Secret Service");
}

#[test]
fn deny_revoke_register_and_upgrade() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h.ka_stdin(&["set", "tok/a"], b"value-a").status.success());

    // register before it ever connects
    let tool = h.client_copy("tool", b"");
    let o = h.ka(&[
        "register",
        tool.to_str().unwrap(),
        "--scope",
        "tok/*",
        "--access",
        "read-write",
        "--label",
        "my-tool",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(h.client_at(&tool, &["get", "tok/a"])["value"], "value-a");
    assert_eq!(h.client_at(&tool, &["set", "tok/b", "vb"])["type"], "ok");
    assert_eq!(h.client_at(&tool, &["get", "tok/b"])["value"], "vb");
    let old_hash = sha256_file(&tool);

    // the tool is updated: its hash changes, so it loses access until `upgrade`
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("printf 'v2' >> \"$0\"")
        .arg(&tool)
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let new_hash = sha256_file(&tool);
    assert_eq!(
        h.client_at(&tool, &["get", "tok/a"])["code"],
        "not_approved"
    );
    let o = h.ka(&["upgrade", tool.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&old_hash) && stdout(&o).contains(&new_hash),
        "{}",
        stdout(&o)
    );
    assert_eq!(h.client_at(&tool, &["get", "tok/a"])["value"], "value-a");
    let list: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["label"], "my-tool");
    assert_eq!(list[0]["hash"], new_hash.as_str());
    assert_eq!(list[0]["scopes"], serde_json::json!(["tok/*"]));
    assert_eq!(list[0]["access"], "read-write");
    let up = h
        .audit_lines()
        .into_iter()
        .find(|e| e["event"] == "upgrade")
        .expect("upgrade audited");
    assert_eq!(up["old_hash"], old_hash.as_str());
    assert_eq!(up["hash"], new_hash.as_str());

    // re-approving to widen the scopes keeps label and access
    let o = h.ka(&[
        "approve", &new_hash, "--scope", "tok/*", "--scope", "more/*",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list[0]["label"], "my-tool");
    assert_eq!(list[0]["access"], "read-write");
    assert_eq!(list[0]["scopes"], serde_json::json!(["tok/*", "more/*"]));

    // revoke by label: back to not approved
    assert!(h.ka(&["revoke", "my-tool"]).status.success());
    assert_eq!(
        h.client_at(&tool, &["get", "tok/a"])["code"],
        "not_approved"
    );

    // deny: refused with `denied`, and no longer queued
    assert!(h.ka(&["deny", &new_hash]).status.success());
    let r = h.client_at(&tool, &["get", "tok/a"]);
    assert_eq!(r["code"], "denied");
    assert_eq!(h.ka(&["list-pending", "--json"]).stdout, b"[]\n");
    assert!(h.audit_lines().iter().any(|e| e["event"] == "deny"));

    // approving a hash nobody asked with is refused with a hint
    let o = h.ka(&[
        "approve",
        &format!("sha256:{}", "0".repeat(64)),
        "--scope",
        "x",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("register"), "{}", stderr(&o));
}

#[test]
fn interpreters_are_never_approved_as_whole_binaries() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let o = h.ka(&["register", sh.to_str().unwrap(), "--scope", "*"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("interpreter"), "{}", stderr(&o));
}

#[test]
fn admin_requests_only_from_the_cli() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    for req in [
        r#"{"type":"list_tools"}"#,
        r#"{"type":"shutdown"}"#,
        r#"{"type":"names"}"#,
        r#"{"type":"register","path":"/bin/true","scopes":["*"]}"#,
    ] {
        let r = h.client(&["raw", req]);
        assert_eq!(r["code"], "forbidden", "{req}: {r}");
    }
    assert!(h.ka(&["status"]).status.success(), "still running");
    // Refused admin requests do not queue the caller.
    let r = h.client(&["whoami"]);
    assert_eq!(r["status"], "unknown");
}

#[test]
fn a_waiting_get_is_answered_the_moment_the_user_approves() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h
        .ka_stdin(&["set", "wait/token"], b"worth-the-wait")
        .status
        .success());
    let client = h.client_copy("waiting-client", b"w");
    let waiting = h
        .command(&client)
        .args(["get", "wait/token", "60000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The request is queued as pending while it waits.
    let hash = sha256_file(&client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let p: serde_json::Value =
            serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
        if p.as_array()
            .unwrap()
            .iter()
            .any(|e| e["hash"] == hash.as_str())
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never queued");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let started = std::time::Instant::now();
    assert!(h.ka(&["approve", &hash]).status.success());
    let out = waiting.wait_with_output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["value"], "worth-the-wait", "{r}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "answered on approval, not at the end of the wait"
    );

    // A wait that ends without a decision is refused, never approved.
    let other = h.client_copy("impatient-client", b"i");
    let r = h.client_at(&other, &["get", "wait/token", "300"]);
    assert_eq!(r["code"], "not_approved");
}

#[test]
fn secret_values_never_reach_logs_even_at_trace_level() {
    for store in ["secret-service", "keyutils"] {
        let mut h = Home::new();
        let value = format!("v4lue-that-must-not-leak-{store}");
        let stderr_path = h.path("daemon-stderr.log");
        let child = h
            .command(&bin("keychain-auth"))
            .args(["start", "--foreground", "--store", store])
            .env("RUST_LOG", "trace")
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        h.adopt_daemon(child);
        assert!(h
            .ka_stdin(&["set", "leak/check"], value.as_bytes())
            .status
            .success());
        let client = bin("ka-test-client");
        assert_eq!(h.client(&["get", "leak/check"])["code"], "not_approved");
        assert!(h.ka(&["approve", &sha256_file(&client)]).status.success());
        let r = h.client(&["get", "leak/check"]);
        assert_eq!(r["value"], value.as_str());
        let r = h.client(&["get", "leak/other"]);
        assert_eq!(r["code"], "out_of_scope");
        let cli_out = h.ka(&["audit", "--json", "-n", "100"]);
        h.kill_daemon();
        let mut everything = stdout(&cli_out) + &stderr(&cli_out);
        for entry in std::fs::read_dir(&h.dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_file() {
                everything.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            }
        }
        assert!(
            everything.contains("leak/check"),
            "the logs were read ({store})"
        );
        assert!(
            !everything.contains(&value),
            "a secret value reached a file or log ({store})"
        );
    }
}

/// `approve --for`: served until its time, then refused and removed by the daemon on
/// its own, with an `expire` line; `--for logout` ends when the daemon stops; `list`
/// shows how long each lasts; asking for status moves nothing.
#[test]
fn time_boxed_approvals_run_out_and_are_audited() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    assert!(h.ka_stdin(&["set", "tb/a"], b"boxed").status.success());
    let brief = h.client_copy("brief", b"brief");
    let session = h.client_copy("session", b"session");
    for t in [&brief, &session] {
        assert_eq!(h.client_at(t, &["get", "tb/a"])["code"], "not_approved");
    }
    let o = h.ka(&[
        "approve",
        &sha256_file(&brief),
        "--scope",
        "tb/*",
        "--for",
        "3s",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("lasts:  until "), "{}", stdout(&o));
    let o = h.ka(&[
        "approve",
        &sha256_file(&session),
        "--scope",
        "tb/*",
        "--for",
        "logout",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("lasts:  until logout"),
        "{}",
        stdout(&o)
    );
    let o = h.ka(&["approve", &sha256_file(&session), "--for", "soon"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not a duration"), "{}", stderr(&o));
    assert_eq!(h.client_at(&brief, &["get", "tb/a"])["value"], "boxed");
    let before: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    let expires = before
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "brief")
        .unwrap()["expires_at"]
        .clone();
    assert!(expires.is_string());
    assert!(h.ka(&["status"]).status.success());
    // The daemon removes it when its time is up, nobody asking.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !h.audit_lines().iter().any(|l| l["event"] == "expire") {
        assert!(std::time::Instant::now() < deadline, "no expire line");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let line = h
        .audit_lines()
        .into_iter()
        .find(|l| l["event"] == "expire")
        .unwrap();
    assert_eq!(line["hash"], sha256_file(&brief).as_str());
    assert!(line["reason"]
        .as_str()
        .unwrap()
        .contains(&format!("expired at {}", expires.as_str().unwrap())));
    assert_eq!(
        h.client_at(&brief, &["get", "tb/a"])["code"],
        "not_approved"
    );
    assert_eq!(h.client_at(&session, &["get", "tb/a"])["value"], "boxed");
    // The session ends with the daemon.
    assert!(h.ka(&["stop"]).status.success());
    h.kill_daemon();
    h.start(&["--store", "keyutils"]);
    assert_eq!(
        h.client_at(&session, &["get", "tb/a"])["code"],
        "not_approved"
    );
    let list: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));
    assert!(
        h.audit_lines()
            .iter()
            .any(|l| l["event"] == "expire"
                && l["reason"].as_str().unwrap().contains("session ended"))
    );
    assert!(h.ka(&["audit", "verify"]).status.success());
}
