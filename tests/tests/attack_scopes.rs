//! A requested name must never become a pattern: a tool that asks for the name `demo/*`
//! and is approved with the defaults is granted that one name, not every name under
//! `demo/`, and `list-pending` shows exactly the pattern approving grants. Played by an
//! ordinary user against the real daemon and keyutils.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{sha256_file, stderr, stdout, Home};

#[test]
fn a_name_that_looks_like_a_pattern_is_granted_literally() {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    for (name, value) in [("demo/*", "the-star-itself"), ("demo/token", "not-granted")] {
        let o = h.ka_stdin(&["set", name], value.as_bytes());
        assert!(o.status.success(), "set {name}: {}", stderr(&o));
    }
    let tool = h.client_copy("tool", b"scopes");
    let r = h.client_at(&tool, &["get", "demo/*"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("--scope 'demo/\\*'"), "{msg}");

    // What approving grants is shown as the pattern it is.
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(pending.contains("asked for: demo/*"), "{pending}");
    assert!(pending.contains("grants:    demo/\\* (read)"), "{pending}");
    let json: serde_json::Value =
        serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    assert_eq!(json[0]["names"][0], "demo/*");

    let o = h.ka(&["approve", &sha256_file(&tool)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("scopes: demo/\\*"), "{}", stdout(&o));
    assert_eq!(
        h.client_at(&tool, &["get", "demo/*"])["value"],
        "the-star-itself"
    );
    let r = h.client_at(&tool, &["get", "demo/token"]);
    assert_eq!(r["code"], "out_of_scope", "{r}");
    assert!(!r.to_string().contains("not-granted"));
    // Nor does a list reveal the other name.
    let r = h.client_at(&tool, &["list"]);
    assert_eq!(r["names"], serde_json::json!(["demo/*"]), "{r}");

    // A `?` in a name is literal too.
    let o = h.ka_stdin(&["set", "q/a?"], b"question");
    assert!(o.status.success());
    let o = h.ka_stdin(&["set", "q/ab"], b"other");
    assert!(o.status.success());
    let other = h.client_copy("other-tool", b"question");
    assert_eq!(
        h.client_at(&other, &["get", "q/a?"])["code"],
        "not_approved"
    );
    assert!(h.ka(&["approve", &sha256_file(&other)]).status.success());
    assert_eq!(h.client_at(&other, &["get", "q/a?"])["value"], "question");
    assert_eq!(
        h.client_at(&other, &["get", "q/ab"])["code"],
        "out_of_scope"
    );
}
