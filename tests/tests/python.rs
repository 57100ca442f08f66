//! The stdlib-only Python client (sdk/python/keychain_auth.py) against the real daemon,
//! and with it the identity of a script run by an interpreter: interpreter hash +
//! script path + script hash, never the interpreter alone.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{sha256_file, stderr, stdout, Home};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The real python3 executable (not a version manager's shim script).
fn python() -> PathBuf {
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    std::fs::canonicalize(stdout(&o).trim()).unwrap()
}

/// Copies the module and the example client into `dir`.
fn install_client(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/python");
    for f in ["keychain_auth.py", "example.py"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    std::fs::canonicalize(dir.join("example.py")).unwrap()
}

/// Runs `python3 <script> <args>` from `cwd` and parses its one JSON line.
fn run(h: &Home, cwd: &Path, script: &str, args: &[&str]) -> Value {
    let o = h
        .command(&python())
        .current_dir(cwd)
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(stdout(&o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

/// The identity the daemon must compute for a script (docs/protocol.md, 9.3).
fn script_identity(script: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"keychain-auth script v1\0");
    h.update(sha256_file(&python()).as_bytes());
    h.update(b"\0");
    h.update(script.to_string_lossy().as_bytes());
    h.update(b"\0");
    h.update(sha256_file(script).as_bytes());
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[test]
fn a_python_script_is_identified_approved_and_served_as_itself() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    assert!(h
        .ka_stdin(&["set", "py/token"], b"from-python")
        .status
        .success());
    let dir = h.path("py");
    let script = install_client(&dir);
    let path = script.to_str().unwrap();
    let want = script_identity(&script);

    // Identified as the script, not as python3.
    let me = run(&h, &dir, path, &["whoami"]);
    assert_eq!(me["hash"], want.as_str(), "{me}");
    assert_eq!(me["status"], "unknown", "{me}");
    assert_eq!(me["script"]["path"], path);
    assert_eq!(me["script"]["hash"], sha256_file(&script).as_str());
    assert_eq!(
        me["script"]["interpreter_hash"],
        sha256_file(&python()).as_str()
    );

    let r = run(&h, &dir, path, &["get", "py/token"]);
    assert_eq!(r["error"], "not_approved", "{r}");
    assert_eq!(r["class"], "NotApproved");
    assert_eq!(r["hash"], want.as_str());
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(
        pending.contains(&format!("script:    {path} run by")),
        "{pending}"
    );
    let o = h.ka(&[
        "approve",
        &want,
        "--scope",
        "py/*",
        "--access",
        "read-write",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tools = stdout(&h.ka(&["list"]));
    assert!(
        tools.contains("example.py"),
        "labelled by the script: {tools}"
    );

    // Served by its absolute path. By a relative one it is refused: Python does not keep
    // its script open, so the directory it read it from may not be its cwd by now.
    assert_eq!(
        run(&h, &dir, path, &["get", "py/token"])["value"],
        "from-python"
    );
    for relative in ["example.py", "./example.py"] {
        let r = run(&h, &dir, relative, &["get", "py/token"]);
        assert_eq!(r["error"], "denied", "{r}");
        assert!(r.to_string().contains("relative path"), "{r}");
    }
    // The rest of the client's API, within its scope.
    assert_eq!(run(&h, &dir, path, &["set", "py/new", "v2"])["ok"], true);
    let names = run(&h, &dir, path, &["list"]);
    assert_eq!(names["names"], serde_json::json!(["py/new", "py/token"]));
    assert_eq!(run(&h, &dir, path, &["delete", "py/new"])["ok"], true);
    let r = run(&h, &dir, path, &["get", "other/x"]);
    assert_eq!(r["error"], "out_of_scope", "{r}");
    let r = run(&h, &dir, path, &["get", "py/missing"]);
    assert_eq!(r["class"], "NotFound", "{r}");
    // The socket is close-on-exec: a child started while connected does not hold it.
    let r = run(&h, &dir, path, &["inherit"]);
    assert_eq!(r["child_has_fd"], false, "{r}");
    assert_eq!(r["inheritable"], false, "{r}");

    // The same script at another path is another identity.
    let other = install_client(&h.path("elsewhere"));
    let r = run(&h, &dir, other.to_str().unwrap(), &["get", "py/token"]);
    assert_eq!(r["error"], "not_approved", "{r}");

    // An edited script is another identity until `upgrade` re-pins it.
    let mut text = std::fs::read_to_string(&script).unwrap();
    text.push_str("# edited\n");
    std::fs::write(&script, text).unwrap();
    let r = run(&h, &dir, path, &["get", "py/token"]);
    assert_eq!(r["error"], "not_approved", "{r}");
    let o = h.ka(&["upgrade", path]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        run(&h, &dir, path, &["get", "py/token"])["value"],
        "from-python"
    );
    let tools: Value = serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(tools[0]["hash"], script_identity(&script).as_str());
    assert_eq!(tools[0]["script"]["hash"], sha256_file(&script).as_str());

    // Code that is not in a file is never approvable.
    let inline = h
        .command(&python())
        .current_dir(&dir)
        .args([
            "-c",
            "import sys; sys.path.insert(0, '.'); import keychain_auth as k\n\
             try:\n    k.connect('inline').get('py/token')\n\
             except k.KeychainAuthError as e:\n    print(e.code, e.message)",
        ])
        .output()
        .unwrap();
    let text = stdout(&inline);
    assert!(text.starts_with("denied "), "{text}{}", stderr(&inline));
    assert!(text.contains("code given with -c"), "{text}");
    assert!(!text.contains("from-python"));

    // A waiting get is answered the moment the user approves.
    let third = install_client(&h.path("third"));
    let third_id = script_identity(&third);
    let waiter = {
        let mut cmd = h.command(&python());
        cmd.arg(&third).args(["get-wait", "py/token", "30"]);
        std::thread::spawn(move || cmd.output().unwrap())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !stdout(&h.ka(&["list-pending"])).contains(&third_id) {
        assert!(std::time::Instant::now() < deadline, "never queued");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(h
        .ka(&["approve", &third_id, "--scope", "py/token"])
        .status
        .success());
    let out = waiter.join().unwrap();
    let v: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(v["value"], "from-python", "{v}");
}

#[test]
fn the_python_client_reports_a_stopped_daemon_clearly() {
    let h = Home::new();
    let script = install_client(&h.path("py"));
    let r = run(&h, &h.dir, script.to_str().unwrap(), &["get", "x"]);
    assert_eq!(r["error"], "not_running", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("keychain-auth start"),
        "{r}"
    );
}
