//! Everyday use, through the real CLI and daemon:
//!
//! - a script registered by path (`keychain-auth register ./deploy.sh`) is pinned as the
//!   identity it has when run by its `#!` line (interpreter + script path + script hash),
//!   so it is served on its first run, and refused once edited; what cannot be known
//!   ahead (`env -S`, a relative interpreter, a program that is no interpreter, Python
//!   startup files that would be pinned, a script without `#!`) is refused saying why
//!   and what to do instead;
//! - a hash a person gives (`approve`, `deny`, `undeny`, `revoke`) may be a unique
//!   prefix of at least 12 hex digits, with or without `sha256:`, in either case.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

fn ka() -> String {
    bin("keychain-auth").display().to_string()
}

/// Writes an executable script as the home's user (so that user owns it and its
/// directory), and returns its canonical path.
fn script(h: &Home, name: &str, text: &str) -> PathBuf {
    let p = h.path(name);
    let mut c = h.command(Path::new("/bin/sh"));
    c.args([
        "-c",
        "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\" && chmod 755 \"$1\"",
        "sh",
    ])
    .arg(&p)
    .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    keychain_auth_e2e::settle();
    std::fs::canonicalize(p).unwrap()
}

/// Runs a script by its path, as a person would (the kernel reads its `#!` line).
fn run(h: &Home, program: &Path) -> Output {
    keychain_auth_e2e::run_retrying(
        h.command(program)
            // Python would write its compiled-module cache beside the script on the first
            // run, changing the directory the daemon checks (see the threat model).
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null()),
    )
}

fn tools(h: &Home) -> Value {
    serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap()
}

fn register(h: &Home, path: &Path, scope: &str, extra: &[&str]) -> Output {
    let mut args = vec!["register", path.to_str().unwrap(), "--scope", scope];
    args.extend_from_slice(extra);
    h.ka(&args)
}

#[test]
fn a_shell_script_registered_by_path_is_served_on_its_first_run() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h
        .ka_stdin(&["set", "sh/token"], b"for-the-script")
        .status
        .success());
    let fetch =
        |shebang: &str| format!("{shebang}\nprintf '[%s]' \"$('{}' get sh/token)\"\n", ka());
    for (name, shebang) in [
        ("bin/fetch.sh", "#!/bin/bash"),
        // env finds bash on the daemon's PATH, as it does on the test's.
        ("bin/env-fetch", "#!/usr/bin/env bash"),
        ("bin/sh-fetch", "#!/bin/sh -e"),
    ] {
        let s = script(&h, name, &fetch(shebang));
        // A shell holds `$(…)` without close-on-exec: --allow-unbound-get (cli_get.rs).
        let o = register(&h, &s, "sh/*", &["--allow-unbound-get"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert!(stdout(&o).contains("script: run by"), "{}", stdout(&o));
        // Served on its very first run: nothing asked, nothing queued.
        let first = run(&h, &s);
        assert_eq!(
            stdout(&first),
            "[for-the-script]",
            "{name}: {}",
            stderr(&first)
        );
    }
    assert_eq!(h.ka(&["list-pending", "--json"]).stdout, b"[]\n");
    let t = tools(&h);
    let fetch_sh = h.path("bin/fetch.sh");
    let fetch_sh = std::fs::canonicalize(fetch_sh).unwrap();
    let tool = t
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"] == fetch_sh.to_str().unwrap())
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(tool["label"], "fetch.sh");
    assert_eq!(tool["script"]["path"], fetch_sh.to_str().unwrap());
    assert_eq!(
        tool["script"]["hash"],
        sha256_file(&fetch_sh).as_str(),
        "{tool}"
    );
    assert_eq!(
        tool["script"]["interpreter_hash"],
        sha256_file(Path::new("/bin/bash")).as_str()
    );
    // The tool is the script identity, not the file's own hash.
    assert_ne!(tool["hash"], sha256_file(&fetch_sh).as_str());

    // Edited: another identity, refused.
    script(
        &h,
        "bin/fetch.sh",
        &format!("{}# edited\n", fetch("#!/bin/bash")),
    );
    let o = run(&h, &fetch_sh);
    assert_eq!(stdout(&o), "[]");
    assert!(stderr(&o).contains("not_approved"), "{}", stderr(&o));
}

/// Copies the stdlib-only Python client beside a script.
fn install_module(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python/keychain_auth.py");
    std::fs::copy(src, dir.join("keychain_auth.py")).unwrap();
}

/// A Python script that prints `py/token` through keychain_auth.py, or the error's code.
const PY_GET: &str = concat!(
    "#!/usr/bin/python3\n",
    "import keychain_auth\n",
    "try:\n",
    "    with keychain_auth.connect('get.py') as ka:\n",
    "        print('value=' + ka.get('py/token'))\n",
    "except keychain_auth.KeychainAuthError as e:\n",
    "    print('error=' + str(e.code))\n",
);

#[test]
fn a_python_script_registered_by_path_is_served_on_its_first_run() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h
        .ka_stdin(&["set", "py/token"], b"from-python")
        .status
        .success());
    let s = script(&h, "py/get.py", PY_GET);
    install_module(s.parent().unwrap());
    let o = register(&h, &s, "py/*", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = run(&h, &s);
    assert_eq!(
        stdout(&first).trim(),
        "value=from-python",
        "{}",
        stderr(&first)
    );
    assert_eq!(h.ka(&["list-pending", "--json"]).stdout, b"[]\n");
    let t = tools(&h);
    assert_eq!(t[0]["script"]["path"], s.to_str().unwrap(), "{t}");
    assert_eq!(
        t[0]["script"]["interpreter"],
        std::fs::canonicalize("/usr/bin/python3")
            .unwrap()
            .to_str()
            .unwrap()
    );

    // Edited: another identity, refused.
    script(&h, "py/get.py", &format!("{PY_GET}# edited\n"));
    let o = run(&h, &s);
    assert_eq!(stdout(&o).trim(), "error=not_approved", "{}", stderr(&o));
}

#[test]
fn scripts_whose_identity_when_run_cannot_be_known_are_refused_saying_what_to_do() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    for (name, text, why) in [
        (
            "split",
            "#!/usr/bin/env -S bash -e\necho hi\n",
            "env options",
        ),
        ("relative", "#!bash\necho hi\n", "relative path"),
        (
            "not-found",
            "#!/usr/bin/env no-such-interpreter-here\necho hi\n",
            "not found on the daemon's PATH",
        ),
        (
            "missing",
            "#!/nonexistent/bash\necho hi\n",
            "cannot be found",
        ),
        (
            "tailed",
            "#!/usr/bin/tail -n +2\nhello\n",
            "does not know as a script interpreter",
        ),
        (
            "interactive.py",
            "#!/usr/bin/python3 -i\nprint(1)\n",
            "-i reads more code",
        ),
        (
            "plain.sh",
            "echo no shebang here\n",
            "script without a #! line",
        ),
    ] {
        let s = script(&h, name, text);
        let o = register(&h, &s, "*", &[]);
        assert!(!o.status.success(), "{name} was registered");
        let err = stderr(&o);
        assert!(err.contains(why), "{name}: {err}");
        assert!(
            err.contains("keychain-auth approve HASH"),
            "{name} says what to do instead: {err}"
        );
    }
    // A script whose interpreter is itself a script (a version manager's shim).
    let shim = script(
        &h,
        "shims/python3",
        "#!/bin/sh\nexec /usr/bin/python3 \"$@\"\n",
    );
    let s = script(
        &h,
        "shimmed.py",
        &format!("#!{}\nprint(1)\n", shim.display()),
    );
    let err = stderr(&register(&h, &s, "*", &[]));
    assert!(err.contains("itself a script"), "{err}");
    // The shim itself is named as an interpreter: never registered, as a script or not.
    let err = stderr(&register(&h, &shim, "*", &[]));
    assert!(err.contains("is a script interpreter"), "{err}");
    assert_eq!(tools(&h), serde_json::json!([]));
    // A plain binary is still registered by its own hash.
    let tool = h.client_copy("plain-tool", b"x");
    let o = register(&h, &tool, "*", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tools(&h)[0]["hash"], sha256_file(&tool).as_str());
}

#[test]
fn a_python_script_whose_startup_files_would_be_pinned_is_refused_then_approved_once_run() {
    // An ordinary user: root's startup files are never pinned.
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    assert!(h
        .ka_stdin(&["set", "py/token"], b"from-python")
        .status
        .success());
    let s = script(&h, "proj/get.py", PY_GET);
    install_module(s.parent().unwrap());
    keychain_auth_e2e::settle();
    // Beside the script, shadowing the standard library's calendar: Python runs it in
    // place of the real one, so it would be pinned into the script's identity.
    script(&h, "proj/calendar.py", "# not the standard library\n");
    let o = register(&h, &s, "py/*", &[]);
    assert!(!o.status.success(), "registered with a startup file");
    let err = stderr(&o);
    assert!(
        err.contains("calendar.py") && err.contains("keychain-auth approve HASH"),
        "{err}"
    );
    assert_eq!(tools(&h), serde_json::json!([]));
    // What it says to do works: run it once, approve what it asked as.
    let o = run(&h, &s);
    assert_eq!(stdout(&o).trim(), "error=not_approved", "{}", stderr(&o));
    let pending: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    let hash = pending[0]["hash"].as_str().unwrap().to_string();
    let o = h.ka(&["approve", &hash, "--scope", "py/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&run(&h, &s)).trim(), "value=from-python");
}

/// pending.json with two made-up binaries whose hashes share their first 12 digits.
fn twins(h: &Home) -> (String, String) {
    let a = format!("sha256:abcdef012345{}", "a".repeat(52));
    let b = format!("sha256:abcdef012345{}", "b".repeat(52));
    let entry = |hash: &str, path: &str| {
        serde_json::json!({
            "hash": hash, "path": path, "first_seen": "2025-01-01T00:00:00Z",
            "last_seen": "2025-01-01T00:00:00Z", "attempts": 1, "names": ["t/x"],
        })
    };
    let file = serde_json::json!({
        "version": 1,
        "pending": [entry(&a, "/opt/twin-a"), entry(&b, "/opt/twin-b")],
    });
    std::fs::write(h.path("pending.json"), file.to_string()).unwrap();
    (a, b)
}

#[test]
fn a_hash_may_be_given_by_a_unique_prefix_of_at_least_12_digits() {
    let mut h = Home::new();
    let (twin_a, twin_b) = twins(&h);
    h.start(&["--store", "secret-service"]);
    let tool = h.client_copy("prefixed", b"p");
    assert!(h
        .ka_stdin(&["set", "p/token"], b"by-prefix")
        .status
        .success());
    let r = h.client_at(&tool, &["get", "p/token"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let hash = sha256_file(&tool);
    let digits = &hash["sha256:".len()..];

    // Approved by its first 12 digits, without sha256: and in upper case.
    let o = h.ka(&["approve", &digits[..12].to_uppercase(), "--scope", "p/*"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains(&hash), "{}", stdout(&o));
    assert_eq!(
        h.client_at(&tool, &["get", "p/token"])["value"],
        "by-prefix"
    );

    // A prefix two hashes start with is refused, listing both.
    let o = h.ka(&["approve", "sha256:abcdef012345", "--scope", "t/*"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    for s in [&twin_a, &twin_b, "/opt/twin-a", "/opt/twin-b"] {
        assert!(err.contains(s), "{s}: {err}");
    }
    // Too short, not a hash, or matching nothing: refused, saying so.
    let err = stderr(&h.ka(&["deny", "sha256:abcdef01234"]));
    assert!(err.contains("too short"), "{err}");
    let err = stderr(&h.ka(&["deny", "sha256:abcdef01234z"]));
    assert!(err.contains("not a hash"), "{err}");
    let err = stderr(&h.ka(&["approve", "0123456789abcdef", "--scope", "t/*"]));
    assert!(
        err.contains("no pending, approved or denied binary"),
        "{err}"
    );

    // Denied by a prefix that names one of the twins.
    let o = h.ka(&["deny", "ABCDEF012345A"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: Value =
        serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap();
    assert_eq!(config["denied"][0]["hash"], twin_a.as_str(), "{config}");
    let pending: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending[0]["hash"], twin_b.as_str());
    // Lifted by a prefix too.
    let o = h.ka(&["undeny", &twin_a[..20]]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config: Value =
        serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap();
    assert!(
        config["denied"].as_array().is_none_or(Vec::is_empty),
        "{config}"
    );

    // Revoked by a prefix with sha256:; a label still works for revoke.
    let o = h.ka(&["revoke", &hash[..19]]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        h.client_at(&tool, &["get", "p/token"])["code"],
        "not_approved"
    );
    let o = h.ka(&["approve", &hash.to_uppercase(), "--scope", "p/*"]);
    assert!(
        o.status.success(),
        "the whole hash in upper case: {}",
        stderr(&o)
    );
    let o = h.ka(&["revoke", "prefixed"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tools(&h), serde_json::json!([]));
}
