//! Script identities hold only when nothing but the script decides what runs, and the
//! script is the file its interpreter runs. Played by an ordinary user whose approved
//! scripts read `demo/token` through `keychain-auth get`; in every attack, other code
//! runs in the approved script's interpreter and tries the same, writing what it gets
//! to a leak file:
//!
//! - environment and options that load code first (`PYTHONPATH`, `BASH_ENV`, an exported
//!   bash function, `SHELLOPTS`+`PS4`, `PERL5OPT`, `perl -M`, `NODE_OPTIONS`, `node -r`,
//!   `python3 -i`), and startup files that need no option at all (Python's
//!   `usercustomize.py` and `.pth` files in the user site);
//! - script paths that name one file to the interpreter and another to the daemon: a
//!   path through `/proc`, a symbolic link or the file swapped after it was read, a
//!   working directory changed after it was read, another mount namespace.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout, Home};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const PYTHON: &str = "/usr/bin/python3";
const VALUE: &str = "the-scripts-own-token";

/// Writes `content` to `path` as the home's user (so that user owns it).
fn user_file(h: &Home, path: &Path, content: &str) {
    let mut c = h.command(Path::new("/bin/sh"));
    c.args([
        "-c",
        "mkdir -p \"$(dirname \"$1\")\" && cat > \"$1\" && chmod 755 \"$1\"",
        "sh",
    ])
    .arg(path)
    .stdin(Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), content.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    keychain_auth_e2e::settle();
}

fn user_sh(h: &Home, script: &str) {
    let o = h
        .command(Path::new("/bin/sh"))
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{script}: {}", stderr(&o));
    keychain_auth_e2e::settle();
}

/// Writes a file as the test (root) and lets the change settle.
fn write(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    keychain_auth_e2e::settle();
}

fn run(_h: &Home, cmd: &mut Command) -> Output {
    keychain_auth_e2e::run_retrying(cmd.stdin(Stdio::null()))
}

fn ka() -> String {
    bin("keychain-auth").display().to_string()
}

use keychain_auth_e2e::approve_hash;

/// Runs `cmd` once (refused, not approved), approves what it asked as, and checks that it
/// is then served.
fn approve(h: &Home, cmd: &mut dyn FnMut() -> Command, extra: &[&str]) {
    let o = run(h, &mut cmd());
    let hash = approve_hash(&stderr(&o));
    let mut args = vec!["approve", hash.as_str(), "--scope", "demo/*"];
    args.extend_from_slice(extra);
    let a = h.ka(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    let o = run(h, &mut cmd());
    assert!(
        stdout(&o).contains(VALUE),
        "served once approved: {} {}",
        stdout(&o),
        stderr(&o)
    );
}

fn home() -> Home {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    assert!(h
        .ka_stdin(&["set", "demo/token"], VALUE.as_bytes())
        .status
        .success());
    h
}

/// Python code that prints `demo/token` through `keychain-auth get`.
fn python_fetch(leak: Option<&Path>) -> String {
    let out = match leak {
        Some(l) => format!(
            "open({:?}, 'w').write(r.stdout.decode() + r.stderr.decode())",
            l.display().to_string()
        ),
        None => "sys.stdout.write(r.stdout.decode()); sys.stderr.write(r.stderr.decode())".into(),
    };
    format!(
        "import subprocess, sys\nr = subprocess.run([{:?}, 'get', 'demo/token'], capture_output=True)\n{out}\n",
        ka()
    )
}

fn leaked(leak: &Path) -> bool {
    std::fs::read_to_string(leak)
        .unwrap_or_default()
        .contains(VALUE)
}

fn python_version() -> String {
    let o = Command::new(PYTHON)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .unwrap();
    stdout(&o).trim().to_string()
}

#[test]
fn python_code_loaded_before_the_script_is_refused() {
    let h = home();
    let script = h.path("approved.py");
    write(&script, &python_fetch(None));
    let py = |h: &Home| {
        let mut c = h.command(Path::new(PYTHON));
        c.arg(&script);
        c
    };
    approve(&h, &mut || py(&h), &[]);
    let leak = h.path("leak");
    let evil = h.path("evil");
    user_file(
        &h,
        &evil.join("sitecustomize.py"),
        &python_fetch(Some(&leak)),
    );
    user_file(&h, &evil.join("steal.py"), &python_fetch(Some(&leak)));
    // Through the environment or an option.
    for (what, var, value, arg) in [
        ("PYTHONPATH", "PYTHONPATH", evil.display().to_string(), None),
        (
            "PYTHONWARNINGS",
            "PYTHONPATH_",
            String::new(),
            Some("-Wignore::steal.X"),
        ),
        ("-i", "X_", String::new(), Some("-i")),
    ] {
        let _ = std::fs::remove_file(&leak);
        let mut c = h.command(Path::new(PYTHON));
        if let Some(a) = arg {
            c.arg(a);
        }
        c.arg(&script).env(var, &value);
        if what == "PYTHONWARNINGS" {
            c.env("PYTHONPATH_", "")
                .env("PYTHONWARNINGS", "ignore::steal.X");
        }
        let o = keychain_auth_e2e::run_retrying(c.stdin(Stdio::piped()));
        assert!(!leaked(&leak), "{what}: the injected code read the secret");
        assert!(!stdout(&o).contains(VALUE), "{what}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("no script identity applies"),
            "{what}: {}",
            stderr(&o)
        );
    }
    // Startup files read with no option at all: usercustomize.py and a .pth file in the
    // user site. They become part of the identity, which is then not the approved one.
    let site = h.path(&format!(
        ".local/lib/python{}/site-packages",
        python_version()
    ));
    // A module's first run compiles it into __pycache__ as the interpreter starts: that
    // run is refused for the change, the next one for the identity.
    for (name, content, expected) in [
        (
            "usercustomize.py".to_string(),
            python_fetch(Some(&leak)),
            &["changed after", "not approved"][..],
        ),
        (
            "zz-steal.pth".to_string(),
            format!(
                "import os; exec(open({:?}).read())\n",
                evil.join("steal.py").display().to_string()
            ),
            &["not approved"][..],
        ),
    ] {
        user_file(&h, &site.join(&name), &content);
        for e in expected {
            let _ = std::fs::remove_file(&leak);
            let o = run(&h, &mut py(&h));
            assert!(!leaked(&leak), "{name}: the startup code read the secret");
            assert!(!stdout(&o).contains(VALUE), "{name}: {}", stdout(&o));
            assert!(stderr(&o).contains(e), "{name}: {}", stderr(&o));
            keychain_auth_e2e::settle();
        }
        std::fs::remove_file(site.join(&name)).unwrap();
        keychain_auth_e2e::settle();
    }
    // Without them, the approved script is served again.
    assert!(stdout(&run(&h, &mut py(&h))).contains(VALUE));
}

fn bash_script(h: &Home, name: &str, body: &str) -> PathBuf {
    let p = h.path(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    keychain_auth_e2e::settle();
    p
}

#[test]
fn shell_perl_and_node_code_loaded_before_the_script_is_refused() {
    let h = home();
    let leak = h.path("leak");
    let steal_sh = h.path("steal.sh");
    user_file(
        &h,
        &steal_sh,
        &format!(
            "printf %s \"$('{}' get demo/token)\" > '{}'\n",
            ka(),
            leak.display()
        ),
    );
    let approved = bash_script(
        &h,
        "approved.sh",
        &format!("v=$('{}' get demo/token)\nprintf %s \"$v\"", ka()),
    );
    approve(&h, &mut || h.command(&approved), &["--allow-unbound-get"]);
    let steal_fn = format!(
        "() {{ command printf %s \"$('{}' get demo/token)\" > '{}'; }}",
        ka(),
        leak.display()
    );
    for (what, env) in [
        (
            "BASH_ENV",
            vec![("BASH_ENV", steal_sh.display().to_string())],
        ),
        (
            "exported function",
            vec![("BASH_FUNC_printf%%", steal_fn.clone())],
        ),
        (
            "SHELLOPTS+PS4",
            vec![
                ("SHELLOPTS", "xtrace".to_string()),
                ("PS4", format!("$(. '{}')", steal_sh.display())),
            ],
        ),
    ] {
        let _ = std::fs::remove_file(&leak);
        let mut c = h.command(&approved);
        for (k, v) in &env {
            c.env(k, v);
        }
        let o = run(&h, &mut c);
        assert!(!leaked(&leak), "{what}: the injected code read the secret");
        assert!(!stdout(&o).contains(VALUE), "{what}: {}", stdout(&o));
    }
    let _ = std::fs::remove_file(&leak);
    let o = run(
        &h,
        h.command(Path::new("/bin/bash"))
            .args(["-x"])
            .arg(&approved)
            .env("PS4", format!("$(. '{}')", steal_sh.display())),
    );
    assert!(
        !leaked(&leak) && !stdout(&o).contains(VALUE),
        "bash -x with PS4"
    );

    // perl: -M and PERL5OPT load a module first.
    let lib = h.path("perllib");
    user_file(
        &h,
        &lib.join("Steal.pm"),
        &format!(
            "package Steal; open(my $p, '-|', '{}', 'get', 'demo/token'); my $v = join('', <$p>); open(my $f, '>', '{}'); print $f $v; 1;\n",
            ka(),
            leak.display()
        ),
    );
    let pl = h.path("approved.pl");
    // The list form of a pipe open runs the CLI without a shell in between.
    write(
        &pl,
        &format!(
            "open(my $p, '-|', '{}', 'get', 'demo/token') or die; print <$p>;\n",
            ka()
        ),
    );
    let perl = |h: &Home| {
        let mut c = h.command(Path::new("/usr/bin/perl"));
        c.arg(&pl);
        c
    };
    approve(&h, &mut || perl(&h), &[]);
    for (what, args, env) in [
        (
            "PERL5OPT",
            vec![],
            vec![
                ("PERL5OPT", "-MSteal".to_string()),
                ("PERL5LIB", lib.display().to_string()),
            ],
        ),
        (
            "-M",
            vec![format!("-I{}", lib.display()), "-MSteal".into()],
            vec![],
        ),
    ] {
        let _ = std::fs::remove_file(&leak);
        let mut c = h.command(Path::new("/usr/bin/perl"));
        c.args(&args).arg(&pl);
        for (k, v) in &env {
            c.env(k, v);
        }
        let o = run(&h, &mut c);
        assert!(
            !leaked(&leak),
            "{what}: the injected module read the secret"
        );
        assert!(!stdout(&o).contains(VALUE), "{what}: {}", stdout(&o));
    }

    // node, where it is installed: NODE_OPTIONS and --require preload a module.
    let node = Path::new("/usr/bin/node");
    if !node.exists() {
        eprintln!("SKIP the node part: /usr/bin/node is not installed");
        return;
    }
    let steal_js = h.path("steal.js");
    user_file(
        &h,
        &steal_js,
        &format!(
            "require('fs').writeFileSync({:?}, require('child_process').execFileSync({:?}, ['get', 'demo/token']).toString());\n",
            leak.display().to_string(),
            ka()
        ),
    );
    let js = h.path("approved.js");
    write(
        &js,
        &format!(
            "process.stdout.write(require('child_process').execFileSync({:?}, ['get', 'demo/token']).toString());\n",
            ka()
        ),
    );
    let nodejs = |h: &Home| {
        let mut c = h.command(node);
        c.arg(&js);
        c
    };
    approve(&h, &mut || nodejs(&h), &[]);
    for (what, args, env) in [
        (
            "NODE_OPTIONS",
            vec![],
            vec![("NODE_OPTIONS", format!("--require {}", steal_js.display()))],
        ),
        (
            "--require",
            vec!["--require".to_string(), steal_js.display().to_string()],
            vec![],
        ),
    ] {
        let _ = std::fs::remove_file(&leak);
        let mut c = h.command(node);
        c.args(&args).arg(&js);
        for (k, v) in &env {
            c.env(k, v);
        }
        let o = run(&h, &mut c);
        assert!(
            !leaked(&leak),
            "{what}: the preloaded module read the secret"
        );
        assert!(!stdout(&o).contains(VALUE), "{what}: {}", stdout(&o));
    }
}

/// Python code that asks for `demo/token` on its own connection to `socket` (so no
/// client-side check of the socket stands between it and the daemon) and writes the
/// daemon's answer to `leak`.
fn python_raw_get(socket: &Path, leak: &Path) -> String {
    format!(
        "import json, socket, struct\n\
         s = socket.socket(socket.AF_UNIX); s.connect({sock:?})\n\
         def ask(m):\n\
         \x20   b = json.dumps(m).encode(); s.sendall(struct.pack('>I', len(b)) + b)\n\
         \x20   n = struct.unpack('>I', s.recv(4))[0]; d = b''\n\
         \x20   while len(d) < n: d += s.recv(n - len(d))\n\
         \x20   return d.decode()\n\
         out = ask({{'type': 'hello', 'protocol': 1}}) + ask({{'type': 'get', 'name': 'demo/token'}})\n\
         open({leak:?}, 'w').write(out)\n",
        sock = socket.display().to_string(),
        leak = leak.display().to_string()
    )
}

/// An evil script that waits `delay` (while the attacker swaps files), then reads the
/// secret through `keychain-auth get` into the leak file.
fn delayed_thief(leak: &Path) -> String {
    format!("import time\ntime.sleep(0.4)\n{}", python_fetch(Some(leak)))
}

#[test]
fn a_script_path_that_names_another_file_to_the_daemon_is_refused() {
    // The daemon runs in the approved script's directory (for the /proc/self/cwd case).
    let mut h = Home::ordinary();
    let mut daemon = h.command(&bin("keychain-auth"));
    daemon
        .args(["start", "--foreground", "--store", "keyutils"])
        .current_dir(&h.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    h.adopt_daemon(daemon.spawn().unwrap());
    assert!(h
        .ka_stdin(&["set", "demo/token"], VALUE.as_bytes())
        .status
        .success());
    let approved = h.path("approved.py");
    write(&approved, &python_fetch(None));
    approve(
        &h,
        &mut || {
            let mut c = h.command(Path::new(PYTHON));
            c.arg(&approved);
            c
        },
        &[],
    );
    let leak = h.path("leak");
    let evil_dir = h.path("evil");
    user_file(
        &h,
        &evil_dir.join("approved.py"),
        &python_fetch(Some(&leak)),
    );

    // A path through /proc: the interpreter's own cwd, the daemon's cwd.
    let _ = std::fs::remove_file(&leak);
    let o = run(
        &h,
        h.command(Path::new(PYTHON))
            .arg("/proc/self/cwd/approved.py")
            .current_dir(&evil_dir),
    );
    assert!(!leaked(&leak), "/proc/self/cwd: {}", stderr(&o));

    // A symbolic link swapped after the interpreter read the file it named, at delays
    // from soon after it read it (Python reads its script about 10 ms after it starts
    // here) to surely after. A swap within ~10 ms of the start is the window the threat
    // model admits (the kernel reports start times to 10 ms), so none is tried closer.
    let link = h.path("link.py");
    let thief = h.path("thief.py");
    user_file(&h, &thief, &delayed_thief(&leak));
    for delay_ms in [25, 30, 40, 60, 150] {
        user_sh(
            &h,
            &format!("ln -sfn '{}' '{}'", thief.display(), link.display()),
        );
        let _ = std::fs::remove_file(&leak);
        let child = h
            .command(Path::new(PYTHON))
            .arg(&link)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        user_sh(
            &h,
            &format!(
                "ln -sfn '{}' '{}.new' && mv -T '{}.new' '{}'",
                approved.display(),
                link.display(),
                link.display(),
                link.display()
            ),
        );
        let o = child.wait_with_output().unwrap();
        assert!(
            !leaked(&leak),
            "symlink swap after {delay_ms} ms: {}",
            stderr(&o)
        );
    }

    // The approved file itself moved aside for the thief, and back once it was read.
    let aside = h.path("approved.real");
    user_sh(
        &h,
        &format!(
            "cp '{}' '{}' && mv '{}' '{}'",
            approved.display(),
            aside.display(),
            approved.display(),
            h.path("approved.orig").display()
        ),
    );
    user_sh(
        &h,
        &format!("cp '{}' '{}'", thief.display(), approved.display()),
    );
    let _ = std::fs::remove_file(&leak);
    let child = h
        .command(Path::new(PYTHON))
        .arg(&approved)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    user_sh(
        &h,
        &format!("mv '{}' '{}'", aside.display(), approved.display()),
    );
    let o = child.wait_with_output().unwrap();
    assert!(!leaked(&leak), "rename swap: {}", stderr(&o));

    // A working directory changed after the script was read: Python (relative path)…
    user_file(
        &h,
        &evil_dir.join("approved.py"),
        &format!(
            "import os\nos.chdir({:?})\n{}",
            h.dir.display().to_string(),
            python_fetch(Some(&leak))
        ),
    );
    let _ = std::fs::remove_file(&leak);
    let o = run(
        &h,
        h.command(Path::new(PYTHON))
            .arg("approved.py")
            .current_dir(&evil_dir),
    );
    assert!(!leaked(&leak), "cwd change (python): {}", stderr(&o));
    let said = std::fs::read_to_string(&leak).unwrap_or_default();
    assert!(said.contains("relative path"), "{said}");
    // …and bash, which keeps its script open: the file it runs is not the one named.
    let sh = bash_script(
        &h,
        "approved.sh",
        &format!("v=$('{}' get demo/token)\nprintf %s \"$v\"", ka()),
    );
    approve(&h, &mut || h.command(&sh), &["--allow-unbound-get"]);
    user_file(
        &h,
        &evil_dir.join("approved.sh"),
        &format!(
            "cd '{}'\nprintf %s \"$('{}' get demo/token)\" > '{}'\n",
            h.dir.display(),
            ka(),
            leak.display()
        ),
    );
    let _ = std::fs::remove_file(&leak);
    let o = run(
        &h,
        h.command(Path::new("/bin/bash"))
            .arg("approved.sh")
            .current_dir(&evil_dir),
    );
    assert!(!leaked(&leak), "cwd change (bash): {}", stderr(&o));
    assert!(stderr(&o).contains("does not have"), "{}", stderr(&o));

    // Another mount namespace (a user namespace needs no privilege), where the approved
    // path names the thief.
    let unshare = Command::new("unshare").args(["-rm", "true"]).status();
    if unshare.is_ok_and(|s| s.success()) {
        // Inside, the CLI's own checks of the socket refuse (the home's owner maps to
        // nobody), so the thief talks to the daemon itself.
        let socket = walkdir_socket(&h.dir);
        user_file(
            &h,
            &evil_dir.join("approved.py"),
            &python_raw_get(&socket, &leak),
        );
        let _ = std::fs::remove_file(&leak);
        let o = run(
            &h,
            h.command(Path::new("unshare")).args([
                "-rm",
                "sh",
                "-c",
                &format!(
                    "mount --bind '{}' '{}' && exec {PYTHON} '{}'",
                    evil_dir.join("approved.py").display(),
                    approved.display(),
                    approved.display()
                ),
            ]),
        );
        assert!(!leaked(&leak), "mount namespace: {}", stderr(&o));
        let said = std::fs::read_to_string(&leak).unwrap_or_default();
        assert!(
            said.contains("another mount namespace"),
            "{said} {}",
            stderr(&o)
        );
    } else {
        eprintln!("SKIP the mount namespace case: unprivileged user namespaces are off here");
    }
    // The approved script, run as it should be, is still served.
    let o = run(&h, h.command(Path::new(PYTHON)).arg(&approved));
    assert!(stdout(&o).contains(VALUE), "{}", stderr(&o));
}

/// The daemon's socket somewhere under `dir`.
fn walkdir_socket(dir: &Path) -> PathBuf {
    let o = Command::new("find")
        .arg(dir)
        .args(["-type", "s"])
        .output()
        .unwrap();
    let found = stdout(&o);
    PathBuf::from(
        found
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no socket under {}", dir.display())),
    )
}

/// Python code for a module that shadows `subprocess`: it reads the secret through the
/// real one (into `leak`), optionally removes itself, and hands the real module on so
/// that the script it was imported by goes on as usual.
fn shadowing_subprocess(leak: &Path, remove_itself: bool) -> String {
    let remove = if remove_itself {
        "import os\nos.unlink(__file__)\n"
    } else {
        ""
    };
    format!(
        "import sys\n{remove}here = sys.path.pop(0)\ndel sys.modules['subprocess']\nimport subprocess as real\nr = real.run([{ka:?}, 'get', 'demo/token'], capture_output=True)\nopen({leak:?}, 'w').write(r.stdout.decode() + r.stderr.decode())\nsys.modules['subprocess'] = real\nsys.path.insert(0, here)\n",
        ka = ka(),
        leak = leak.display().to_string()
    )
}

#[test]
fn modules_beside_a_python_script_that_shadow_the_standard_library_are_refused() {
    let h = home();
    let app = h.path("app");
    user_sh(&h, &format!("mkdir -p '{}'", app.display()));
    // The script imports a module of its own from its directory.
    user_file(&h, &app.join("helper.py"), "GREETING = 'hi'\n");
    let script = app.join("approved.py");
    user_file(
        &h,
        &script,
        &format!("import helper\n{}", python_fetch(None)),
    );
    let py = |h: &Home| {
        let mut c = h.command(Path::new(PYTHON));
        c.arg(&script);
        c
    };
    // The first run compiles helper.py into __pycache__, a change while it runs (so it is
    // refused, to be run again); from then on the directory is settled.
    let o = run(&h, &mut py(&h));
    assert!(!stdout(&o).contains(VALUE), "{}", stderr(&o));
    keychain_auth_e2e::settle();
    approve(&h, &mut || py(&h), &[]);

    let leak = h.path("leak");
    // A module beside the script that shadows the standard library's `subprocess`.
    user_file(
        &h,
        &app.join("subprocess.py"),
        &shadowing_subprocess(&leak, false),
    );
    // Its first run compiles it into __pycache__ as it starts: refused for that change;
    // the next run finds it settled, and part of an identity nobody approved.
    for expected in ["changed after", "not approved"] {
        let _ = std::fs::remove_file(&leak);
        let o = run(&h, &mut py(&h));
        assert!(
            !stdout(&o).contains(VALUE),
            "shadowing module: {}",
            stdout(&o)
        );
        assert!(!leaked(&leak), "the shadowing module read the secret");
        let said = std::fs::read_to_string(&leak).unwrap_or_default();
        assert!(said.contains(expected), "{said}");
        keychain_auth_e2e::settle();
    }
    assert!(
        stdout(&h.ka(&["list-pending"])).contains("subprocess.py"),
        "the pending entry names the module"
    );
    // The same, removing itself once it ran: the directory changed while it ran.
    user_file(
        &h,
        &app.join("subprocess.py"),
        &shadowing_subprocess(&leak, true),
    );
    let _ = std::fs::remove_file(&leak);
    let o = run(&h, &mut py(&h));
    assert!(
        !app.join("subprocess.py").exists(),
        "it ran (and removed itself)"
    );
    assert!(
        !leaked(&leak),
        "the self-removing shadowing module read the secret"
    );
    let said = std::fs::read_to_string(&leak).unwrap_or_default();
    assert!(said.contains("changed after"), "{said} {}", stderr(&o));
    keychain_auth_e2e::settle();
    // A package of a standard name (json/__init__.py) shadows as well.
    user_file(&h, &app.join("json/__init__.py"), "GREETING = 'json'\n");
    let o = run(&h, &mut py(&h));
    assert!(
        !stdout(&o).contains(VALUE),
        "shadowing package: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("not approved"), "{}", stderr(&o));
    user_sh(&h, &format!("rm -r '{}'", app.join("json").display()));
    // Without them, the approved script is served again.
    assert!(stdout(&run(&h, &mut py(&h))).contains(VALUE));
}

/// Python code, run as the user, that writes a compiled form of `source` holding the code
/// of the file `code` instead, with the header (source size and time) that makes Python
/// run it in place of the source.
fn forge_compiled(source: &Path, code: &Path) -> String {
    format!(
        "import os, importlib.util\nfrom importlib._bootstrap_external import _code_to_timestamp_pyc\nsrc = {src:?}\nst = os.stat(src)\ncode = compile(open({code:?}).read(), src, 'exec')\nopen(importlib.util.cache_from_source(src), 'wb').write(_code_to_timestamp_pyc(code, int(st.st_mtime), st.st_size))\n",
        src = source.display().to_string(),
        code = code.display().to_string()
    )
}

#[test]
fn a_forged_compiled_form_of_an_approved_startup_file_is_refused() {
    let h = home();
    let script = h.path("approved.py");
    write(&script, &python_fetch(None));
    let site = h.path(&format!(
        ".local/lib/python{}/site-packages",
        python_version()
    ));
    // The user's own usercustomize.py, approved with the script.
    let custom = site.join("usercustomize.py");
    user_file(&h, &custom, "GREETING = 'hi'\n");
    let py = |h: &Home| {
        let mut c = h.command(Path::new(PYTHON));
        c.arg(&script);
        c
    };
    // Its first run compiles usercustomize.py into __pycache__ (refused for that change).
    let o = run(&h, &mut py(&h));
    assert!(stderr(&o).contains("changed after"), "{}", stderr(&o));
    keychain_auth_e2e::settle();
    approve(&h, &mut || py(&h), &[]);
    let leak = h.path("leak");
    let evil = h.path("evil.py");
    let forge = h.path("forge.py");
    user_file(&h, &forge, &forge_compiled(&custom, &evil));
    let compiled = site.join(format!(
        "__pycache__/usercustomize.cpython-{}.pyc",
        python_version().replace('.', "")
    ));
    let saved = h.path("approved.pyc");
    user_sh(
        &h,
        &format!("cp '{}' '{}'", compiled.display(), saved.display()),
    );
    for (what, remove) in [("kept", ""), ("removing itself", "os.unlink(__cached__)\n")] {
        user_file(
            &h,
            &evil,
            &format!("import os\n{remove}{}", python_fetch(Some(&leak))),
        );
        let o = run(&h, h.command(Path::new(PYTHON)).arg(&forge));
        assert!(o.status.success(), "forge: {}", stderr(&o));
        keychain_auth_e2e::settle();
        let _ = std::fs::remove_file(&leak);
        let o = run(&h, &mut py(&h));
        let said = std::fs::read_to_string(&leak).unwrap_or_default();
        assert!(!said.is_empty(), "{what}: the forged compiled form ran");
        assert!(
            !leaked(&leak),
            "{what}: the forged compiled form read the secret"
        );
        assert!(!stdout(&o).contains(VALUE), "{what}: {}", stdout(&o));
        assert!(
            said.contains("not approved") || said.contains("changed after"),
            "{what}: {said}"
        );
        keychain_auth_e2e::settle();
    }
    // With the approved compiled form back, it is the approved identity again.
    user_sh(
        &h,
        &format!("cp '{}' '{}'", saved.display(), compiled.display()),
    );
    assert!(stdout(&run(&h, &mut py(&h))).contains(VALUE));
}

#[test]
fn python_startup_code_that_removes_itself_is_refused() {
    let h = home();
    let app = h.path("app");
    user_sh(&h, &format!("mkdir -p '{}'", app.display()));
    let script = app.join("approved.py");
    user_file(&h, &script, &python_fetch(None));
    let site = h.path(&format!(
        ".local/lib/python{}/site-packages",
        python_version()
    ));
    user_sh(&h, &format!("mkdir -p '{}'", site.display()));
    let py = |h: &Home| {
        let mut c = h.command(Path::new(PYTHON));
        c.arg(&script);
        c
    };
    approve(&h, &mut || py(&h), &[]);
    let leak = h.path("leak");
    let steal = h.path("steal.py");
    for (name, line) in [
        (
            "zz-steal.pth",
            format!(
                "import os; os.unlink({:?}); exec(open({:?}).read())\n",
                site.join("zz-steal.pth").display().to_string(),
                steal.display().to_string()
            ),
        ),
        (
            "usercustomize.py",
            format!(
                "import os\nos.unlink(__file__)\nexec(open({:?}).read())\n",
                steal.display().to_string()
            ),
        ),
    ] {
        user_file(&h, &steal, &python_fetch(Some(&leak)));
        user_file(&h, &site.join(name), &line);
        let _ = std::fs::remove_file(&leak);
        let o = run(&h, &mut py(&h));
        assert!(!site.join(name).exists(), "{name} ran (and removed itself)");
        assert!(
            !leaked(&leak),
            "{name}: the self-removing startup code read the secret"
        );
        assert!(!stdout(&o).contains(VALUE), "{name}: {}", stdout(&o));
        let said = std::fs::read_to_string(&leak).unwrap_or_default();
        assert!(said.contains("changed after"), "{name}: {said}");
        keychain_auth_e2e::settle();
    }
    // Once settled again, the approved script is served.
    assert!(stdout(&run(&h, &mut py(&h))).contains(VALUE));
}

#[test]
fn an_interpreter_the_user_can_change_identifies_no_script() {
    let h = home();
    let app = h.path("app");
    user_sh(&h, &format!("mkdir -p '{}'", app.display()));
    let script = app.join("approved.py");
    user_file(&h, &script, &python_fetch(None));
    approve(
        &h,
        &mut || {
            let mut c = h.command(Path::new(PYTHON));
            c.arg(&script);
            c
        },
        &[],
    );
    // The user's own copy of the interpreter (as pyenv, conda or uv install one), whose
    // standard library could be the user's too.
    let own = h.path("bin/python3");
    user_sh(
        &h,
        &format!(
            "mkdir -p '{}' && cp {PYTHON} '{}'",
            h.path("bin").display(),
            own.display()
        ),
    );
    let o = run(&h, h.command(&own).arg(&script));
    assert!(!stdout(&o).contains(VALUE), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("installed where you can change it"),
        "{}",
        stderr(&o)
    );
}
