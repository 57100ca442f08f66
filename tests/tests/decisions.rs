//! Decisions a person can see and undo, through the real CLI and daemon: editing an
//! approved tool's scopes (`approve --add-scope/--remove-scope`, each approve saying
//! what changed), the out-of-scope refusal's advice, the denied binaries and scripts
//! (`list --denied`), lifting a deny (`undeny`, or `approve` of the denied hash), and
//! `revoke` of a denied hash. Hostile edits are refused with config.json untouched.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn home() -> Home {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    h
}

fn set(h: &Home, name: &str, value: &[u8]) {
    let o = h.ka_stdin(&["set", name], value);
    assert!(o.status.success(), "set {name}: {}", stderr(&o));
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o)
}

fn value(h: &Home, program: &Path, name: &str) -> serde_json::Value {
    h.client_at(program, &["get", name])
}

/// A bash script that prints `[value of NAME]` it reads through `keychain-auth get`.
fn script(h: &Home, file: &str, name: &str) -> PathBuf {
    let p = h.path(file);
    std::fs::write(
        &p,
        format!(
            "#!/bin/bash\nprintf '[%s]' \"$('{}' get {name})\"\n",
            bin("keychain-auth").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    keychain_auth_e2e::settle();
    p
}

fn run(h: &Home, program: &Path) -> Output {
    keychain_auth_e2e::run_retrying(h.command(program).stdin(Stdio::null()))
}

use keychain_auth_e2e::approve_hash;

#[test]
fn adding_and_removing_scopes_keep_the_others_and_say_what_changed() {
    let h = home();
    let client = bin("ka-test-client");
    let hash = sha256_file(&client);
    h.approve_client(&client, "git/alice", b"git-value", "git/*");
    set(&h, "api/key", b"api-value");
    assert_eq!(value(&h, &client, "api/key")["code"], "out_of_scope");

    let out = ok(&h.ka(&["approve", &hash, "--add-scope", "api/*"]));
    assert!(out.contains("scopes: git/* → git/*, api/*"), "{out}");
    assert_eq!(value(&h, &client, "git/alice")["value"], "git-value");
    assert_eq!(value(&h, &client, "api/key")["value"], "api-value");
    let approve = h
        .audit_lines()
        .into_iter()
        .rfind(|l| l["event"] == "approve")
        .unwrap();
    assert_eq!(approve["old_scopes"], serde_json::json!(["git/*"]));
    assert_eq!(approve["scopes"], serde_json::json!(["git/*", "api/*"]));
    assert_eq!(approve["old_access"], "read");
    assert_eq!(approve["access"], "read");

    let out = ok(&h.ka(&["approve", &hash, "--remove-scope", "git/*"]));
    assert!(out.contains("scopes: git/*, api/* → api/*"), "{out}");
    assert_eq!(value(&h, &client, "git/alice")["code"], "out_of_scope");
    assert_eq!(value(&h, &client, "api/key")["value"], "api-value");

    let out = ok(&h.ka(&["approve", &hash, "--access", "read-write"]));
    assert!(out.contains("access: read → read-write"), "{out}");
    assert!(!out.contains("scopes: api/* →"), "scopes kept: {out}");
    let out = ok(&h.ka(&["approve", &hash, "--scope", "git/*"]));
    assert!(
        out.contains("scopes: api/* → git/* (replaced by --scope"),
        "a replacement says so: {out}"
    );
    let out = ok(&h.ka(&["approve", &hash]));
    assert!(out.contains("unchanged"), "{out}");
    // The lines with scopes and access before and after keep the chain whole.
    ok(&h.ka(&["audit", "verify"]));
}

#[test]
fn the_out_of_scope_refusal_advises_add_scope_and_following_it_works() {
    let h = home();
    let client = bin("ka-test-client");
    let hash = sha256_file(&client);
    h.approve_client(&client, "demo/token", b"demo-value", "demo/*");
    let name = "ci/a*b";
    set(&h, name, b"ci-value");
    let r = value(&h, &client, name);
    assert_eq!(r["code"], "out_of_scope");
    let message = r["message"].as_str().unwrap();
    let advice = format!("keychain-auth approve {hash} --add-scope 'ci/a\\*b'");
    assert!(message.contains(&advice), "{message}");
    // Run what it says (the words between the quotes, as a shell would pass them).
    let pattern = message.rsplit("--add-scope '").next().unwrap();
    let pattern = pattern.strip_suffix('\'').unwrap();
    let out = ok(&h.ka(&["approve", &hash, "--add-scope", pattern]));
    assert!(out.contains("scopes: demo/* → demo/*, ci/a\\*b"), "{out}");
    assert_eq!(value(&h, &client, name)["value"], "ci-value");
    assert_eq!(value(&h, &client, "demo/token")["value"], "demo-value");
    // Exactly that name: the `*` in it is no glob.
    set(&h, "ci/aXb", b"x");
    assert_eq!(value(&h, &client, "ci/aXb")["code"], "out_of_scope");
}

#[test]
fn list_denied_shows_a_denied_binary_and_a_denied_script_as_the_script() {
    let h = home();
    set(&h, "sh/token", b"for-the-script");
    let client = h.client_copy("denied-client", b"\0denied");
    let binary = sha256_file(&client);
    assert_eq!(value(&h, &client, "sh/token")["code"], "not_approved");
    ok(&h.ka(&["deny", &binary]));
    let fetch = script(&h, "fetch.sh", "sh/token");
    let o = run(&h, &fetch);
    let script_hash = approve_hash(&stderr(&o));
    ok(&h.ka(&["deny", &script_hash]));
    assert!(stderr(&run(&h, &fetch)).contains("denied"));

    let fetch_path = std::fs::canonicalize(&fetch).unwrap().display().to_string();
    let out = ok(&h.ka(&["list", "--denied"]));
    assert!(out.contains(&binary), "{out}");
    assert!(
        out.contains(&format!("path:     {}", client.display())),
        "{out}"
    );
    assert!(out.contains(&script_hash), "{out}");
    assert!(
        out.contains(&format!("script:   {fetch_path} run by")) && out.contains("bash"),
        "the script, as the script: {out}"
    );
    assert!(!out.contains("path:     /usr/bin/bash"), "{out}");
    assert!(
        out.contains(&format!("keychain-auth undeny {binary}")),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(&h.ka(&["list", "--denied", "--json"]))).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json[0]["hash"], binary.as_str());
    assert_eq!(json[1]["hash"], script_hash.as_str());
    assert_eq!(json[1]["path"], fetch_path.as_str());
    assert_eq!(json[1]["script"]["path"], fetch_path.as_str());
    assert!(json[1]["script"]["interpreter"]
        .as_str()
        .unwrap()
        .ends_with("bash"));
    // `list` itself still lists approved tools.
    assert!(ok(&h.ka(&["list"])).contains("no tools are approved"));
}

#[test]
fn undeny_and_approve_lift_a_deny_and_revoke_explains_one() {
    let h = home();
    set(&h, "sh/token", b"for-the-script");
    let client = h.client_copy("undenied-client", b"\0undeny");
    let binary = sha256_file(&client);
    assert_eq!(value(&h, &client, "sh/token")["code"], "not_approved");
    ok(&h.ka(&["deny", &binary]));
    assert_eq!(value(&h, &client, "sh/token")["code"], "denied");

    // Revoke of a denied hash: it is not approved, and how to lift the deny.
    let o = h.ka(&["revoke", &binary]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("is denied, not approved")
            && err.contains(&format!("keychain-auth undeny {binary}")),
        "{err}"
    );

    // Undeny: it is asked about again, queued as pending.
    ok(&h.ka(&["undeny", &binary]));
    assert!(ok(&h.ka(&["list", "--denied"])).contains("no binary is denied"));
    let r = value(&h, &client, "sh/token");
    assert_eq!(r["code"], "not_approved", "{r}");
    assert_eq!(r["pending"], true);
    assert!(ok(&h.ka(&["list-pending"])).contains(&binary));
    let undeny = h
        .audit_lines()
        .into_iter()
        .rfind(|l| l["event"] == "undeny")
        .unwrap();
    assert_eq!(undeny["hash"], binary.as_str());
    let o = h.ka(&["undeny", &binary]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not denied"), "{}", stderr(&o));

    // Denied again, not pending: approve of the hash approves it (the path its deny
    // rule recorded), and it is served.
    ok(&h.ka(&["deny", &binary]));
    let out = ok(&h.ka(&["approve", &binary, "--scope", "sh/*"]));
    assert!(out.contains("deny lifted"), "{out}");
    assert_eq!(value(&h, &client, "sh/token")["value"], "for-the-script");

    // A denied script is approved as the script, and served.
    let fetch = script(&h, "fetch.sh", "sh/token");
    let script_hash = approve_hash(&stderr(&run(&h, &fetch)));
    ok(&h.ka(&["deny", &script_hash]));
    assert_eq!(stdout(&run(&h, &fetch)), "[]");
    let out = ok(&h.ka(&[
        "approve",
        &script_hash,
        "--scope",
        "sh/*",
        "--allow-unbound-get",
    ]));
    assert!(out.contains("deny lifted"), "{out}");
    let fetch_path = std::fs::canonicalize(&fetch).unwrap().display().to_string();
    assert!(out.contains(&format!("path:   {fetch_path}")), "{out}");
    assert!(out.contains("script: run by"), "{out}");
    assert_eq!(stdout(&run(&h, &fetch)), "[for-the-script]");
    // Every line written (approve, deny, undeny) keeps the chain whole.
    ok(&h.ka(&["audit", "verify"]));
}

#[test]
fn hostile_scope_edits_are_refused_clearly_and_leave_config_untouched() {
    let h = home();
    let client = bin("ka-test-client");
    let hash = sha256_file(&client);
    h.approve_client(&client, "git/alice", b"v", "git/*");
    let pending_client = h.client_copy("pending-client", b"\0pending");
    let pending = sha256_file(&pending_client);
    assert_eq!(
        value(&h, &pending_client, "git/alice")["code"],
        "not_approved"
    );
    let config = h.path("config.json");
    let before = std::fs::read(&config).unwrap();
    let cases: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["approve", &hash, "--add-scope", "git/\\"],
            &["--add-scope", "not a scope pattern"],
        ),
        (
            vec!["approve", &hash, "--add-scope", "a\u{7}b"],
            &["control character"],
        ),
        (
            vec!["approve", &hash, "--scope", "x/*", "--add-scope", "y/*"],
            &["one or the other"],
        ),
        (
            vec!["approve", &hash, "--remove-scope", "nope/*"],
            &["has no scope \"nope/*\"", "'git/*'"],
        ),
        (
            vec!["approve", &hash, "--remove-scope", "git/*"],
            &["keychain-auth revoke"],
        ),
        (
            vec!["approve", &pending, "--add-scope", "git/*"],
            &["is not approved", "--scope"],
        ),
    ];
    for (args, says) in cases {
        let o = h.ka(&args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded: {}", stdout(&o));
        for s in says {
            assert!(err.contains(s), "{args:?}: {s:?} not in {err}");
        }
        assert_eq!(
            std::fs::read(&config).unwrap(),
            before,
            "{args:?} changed config.json"
        );
    }
    // Still served exactly as before; the pending one still pending.
    assert_eq!(value(&h, &client, "git/alice")["value"], "v");
    assert!(ok(&h.ka(&["list-pending"])).contains(&pending));
}
