//! Deputies serve the program that asked, not whoever runs them. With the git helper
//! approved the old way (its own hash, for `git/*`) and a password stored, an ordinary
//! user's unapproved program gets nothing by running the helper directly, by running
//! `git credential fill`, by wrapping either in `sh -c`, `env`, `setsid` or `nohup`, by
//! having the helper adopted by init or a subreaper (double fork), by a pty with an
//! interactive shell in it, or by a chain of nested shells; and a program that changes
//! (exec) while its request waits is refused. Every refusal is audited with the chain;
//! broken chains are never queued. The positive side: the origin, once approved, is
//! served, and a terminal session (tmux) is an origin of its own.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout, Home};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const PYTHON: &str = "/usr/bin/python3";
const PASSWORD: &str = "ghp_the-users-real-token";
const NAME: &str = "git/https/github.com/alice";
const INPUT: &str = "protocol=https\nhost=github.com\nusername=alice\n\n";

/// A daemon on keyutils run by an ordinary user, the password stored, and the helper
/// approved by its own hash for `git/*` (what the docs said before caller chains).
fn home_with_the_helper_approved() -> Home {
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let o = h.ka_stdin(&["set", NAME], PASSWORD.as_bytes());
    assert!(o.status.success(), "set: {}", stderr(&o));
    let helper = bin("git-credential-keychain-auth");
    let o = h.ka(&[
        "register",
        helper.to_str().unwrap(),
        "--scope",
        "git/*",
        "--access",
        "read-write",
    ]);
    assert!(o.status.success(), "register the helper: {}", stderr(&o));
    h
}

/// PATH with the built binaries first.
fn path_env() -> String {
    format!(
        "{}:/usr/local/bin:/usr/bin:/bin",
        bin("keychain-auth").parent().unwrap().display()
    )
}

/// Writes a file into the home, readable by its user.
fn write(h: &Home, name: &str, text: &str) -> PathBuf {
    let p = h.path(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// Runs `program args` as the home's user with the git environment, `input` on stdin.
fn run(h: &Home, program: &Path, args: &[&str], input: &str) -> Output {
    let mut c = h.command(program);
    c.args(args)
        .env("PATH", path_env())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// An unapproved Python script of the attacker that runs `cmd` (a shell command line or
/// an argv) and prints what it got back.
fn attacker(h: &Home, name: &str, argv: &[&str]) -> PathBuf {
    let list = argv
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        h,
        name,
        &format!(
            "import subprocess, sys\nr = subprocess.run([{list}], input=sys.stdin.buffer.read(), capture_output=True)\nsys.stdout.buffer.write(r.stdout)\nsys.stderr.buffer.write(r.stderr)\n"
        ),
    )
}

fn audit_with(h: &Home, needle: &str) -> Vec<Value> {
    // The lines of reads reach the file when the daemon is next idle; `status` makes it
    // write them first.
    let _ = h.ka(&["status"]);
    h.audit_lines()
        .into_iter()
        .filter(|l| l.to_string().contains(needle))
        .collect()
}

#[test]
fn an_unapproved_program_gets_nothing_through_the_approved_helper() {
    let h = home_with_the_helper_approved();
    let helper = bin("git-credential-keychain-auth");
    let helper = helper.to_str().unwrap();
    let bash_code = format!("{helper} get; true");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("direct.py", vec![helper, "get"]),
        (
            "fill.py",
            vec![
                "git",
                "-c",
                "credential.helper=keychain-auth",
                "credential",
                "fill",
            ],
        ),
        (
            "shc.py",
            vec![
                "sh",
                "-c",
                "git -c credential.helper=keychain-auth credential fill; true",
            ],
        ),
        ("env.py", vec!["env", "A=1", helper, "get"]),
        ("setsid.py", vec!["setsid", helper, "get"]),
        ("nohup.py", vec!["nohup", helper, "get"]),
        ("bashc.py", vec!["bash", "-c", &bash_code]),
    ];
    for (name, argv) in &cases {
        let script = attacker(&h, name, argv);
        let o = run(&h, Path::new(PYTHON), &[script.to_str().unwrap()], INPUT);
        let out = stdout(&o);
        assert!(
            !out.contains(PASSWORD),
            "{name}: the attacker read the password: {out}"
        );
        let lines = audit_with(&h, script.to_str().unwrap());
        assert!(
            lines.iter().any(|l| l["decision"] == "not_approved"
                && l["via"].as_str().is_some_and(|v| v.contains("→"))),
            "{name}: the refusal is audited for the script, with its chain: {lines:?} / {}",
            stderr(&o)
        );
    }
    let pending = stdout(&h.ka(&["list-pending"]));
    for (name, _) in &cases {
        assert!(
            pending.contains(name),
            "{name} is queued as itself: {pending}"
        );
    }
    assert!(pending.contains("asked via: "), "{pending}");
    // The old approval of the helper is said to no longer serve whoever runs it.
    let o = run(
        &h,
        Path::new(PYTHON),
        &[h.path("direct.py").to_str().unwrap()],
        INPUT,
    );
    assert!(
        stderr(&o).contains("no longer serves whoever runs it"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_origin_once_approved_is_served_through_git_and_the_helper() {
    let h = home_with_the_helper_approved();
    // One script: through git by default, through keychain-auth get with `get`.
    let script = write(
        &h,
        "sync.py",
        &format!(
            "import subprocess, sys\nif sys.argv[1:] == ['get']:\n    r = subprocess.run([{:?}, 'get', {NAME:?}], capture_output=True)\nelse:\n    r = subprocess.run(['git', '-c', 'credential.helper=keychain-auth', 'credential', 'fill'], input=sys.stdin.buffer.read(), capture_output=True)\nsys.stdout.buffer.write(r.stdout)\nsys.stderr.buffer.write(r.stderr)\n",
            bin("keychain-auth").display().to_string()
        ),
    );
    let o = run(&h, Path::new(PYTHON), &[script.to_str().unwrap()], INPUT);
    assert!(!stdout(&o).contains(PASSWORD));
    let err = stderr(&o);
    let hash = err
        .split("keychain-auth approve ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("the refusal names the approve command: {err}"))
        .to_string();
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&h, Path::new(PYTHON), &[script.to_str().unwrap()], INPUT);
    assert!(
        stdout(&o).contains(&format!("password={PASSWORD}")),
        "the approved origin is served: {} {}",
        stdout(&o),
        stderr(&o)
    );
    let served = audit_with(&h, "sync.py");
    assert!(
        served.iter().any(|l| l["decision"] == "allow"
            && l["via"].as_str().is_some_and(
                |v| v.contains("sync.py → git") && v.ends_with("git-credential-keychain-auth")
            )),
        "{served:?}"
    );
    // Approved only through git: the same script asking through keychain-auth get is
    // refused.
    let o = h.ka(&["approve", &hash, "--only-through", "git"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("only through: git"), "{}", stdout(&o));
    let o = run(&h, Path::new(PYTHON), &[script.to_str().unwrap()], INPUT);
    assert!(stdout(&o).contains(&format!("password={PASSWORD}")));
    let o = run(
        &h,
        Path::new(PYTHON),
        &[script.to_str().unwrap(), "get"],
        "",
    );
    assert!(!stdout(&o).contains(PASSWORD), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("approved only through git, and this request came through get"),
        "{}",
        stderr(&o)
    );
    // Another program running the same git command is still refused.
    let other = attacker(
        &h,
        "other.py",
        &[
            "git",
            "-c",
            "credential.helper=keychain-auth",
            "credential",
            "fill",
        ],
    );
    let o = run(&h, Path::new(PYTHON), &[other.to_str().unwrap()], INPUT);
    assert!(!stdout(&o).contains(PASSWORD), "{}", stdout(&o));
}

/// Waits until `path` exists (up to 20 s).
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_helper_adopted_by_init_or_a_subreaper_is_refused_and_not_queued() {
    let h = home_with_the_helper_approved();
    let helper = bin("git-credential-keychain-auth");
    let input = write(&h, "input", INPUT);
    // Double fork: the helper's parent exits at once, so the helper is adopted (by init,
    // or by the nearest subreaper); it starts reading its input only a moment later.
    let plain = format!(
        "(sleep 0.5; exec {} get < {} > {}/plain.out 2> {}/plain.err) & exit 0",
        helper.display(),
        input.display(),
        h.dir.display(),
        h.dir.display()
    );
    let o = run(&h, Path::new("/bin/sh"), &["-c", &plain], "");
    assert!(o.status.success());
    // The same under a subreaper of the attacker's, which adopts the helper.
    let reaper = write(
        &h,
        "reaper.py",
        &format!(
            "import ctypes, os, subprocess, time\nctypes.CDLL(None).prctl(36, 1, 0, 0, 0)\nsubprocess.run(['/bin/sh', '-c', {:?}])\ntime.sleep(3)\n",
            plain.replace("plain.", "reaped.")
        ),
    );
    let o = run(&h, Path::new(PYTHON), &[reaper.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    for which in ["plain", "reaped"] {
        let out = h.path(&format!("{which}.out"));
        let err = h.path(&format!("{which}.err"));
        wait_for_file(&err);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&err).unwrap_or_default().is_empty() {
            assert!(
                Instant::now() < deadline,
                "{which}: the helper never finished"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        assert!(!got.contains(PASSWORD), "{which}: served an orphan: {got}");
        let why = std::fs::read_to_string(&err).unwrap();
        assert!(
            why.contains("orphaned") || why.contains("holds none of its standard"),
            "{which}: refused as a broken chain: {why}"
        );
    }
    // A program of another user between: here the ordinary user's `sh -c` was started
    // by this test, which runs as root (when the tests run as root).
    if keychain_auth_e2e::other_user().is_some() {
        let o = run(
            &h,
            Path::new("/bin/sh"),
            &["-c", &format!("{} get; true", helper.display())],
            INPUT,
        );
        assert!(!stdout(&o).contains(PASSWORD));
        assert!(stderr(&o).contains("runs as uid 0"), "{}", stderr(&o));
    }
    let broken: Vec<Value> = audit_with(&h, "caller chain broken");
    assert!(broken.len() >= 2, "both audited: {broken:?}");
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(
        !pending.contains("reaper.py") && !pending.contains("init"),
        "a broken chain is never queued: {pending}"
    );
}

#[test]
fn a_chain_of_many_nested_shells_is_refused_without_walking_it_all() {
    let h = home_with_the_helper_approved();
    let helper = bin("git-credential-keychain-auth");
    // 200 shells, each running inline code that runs the next shell (and then `true`,
    // so none can exec the next): the code passes itself on as `$0`.
    let code = format!(
        "if [ \"$1\" -gt 0 ]; then sh -c \"$0\" \"$0\" $(($1 - 1)); true; else {} get; fi",
        helper.display()
    );
    let o = run(
        &h,
        Path::new("/bin/sh"),
        &["-c", &code, &code, "200"],
        INPUT,
    );
    assert!(!stdout(&o).contains(PASSWORD));
    assert!(
        stderr(&o).contains("more than 32 programs"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_script_that_runs_an_interactive_shell_in_its_own_pty_is_that_script() {
    let h = home_with_the_helper_approved();
    let input = write(&h, "input", INPUT);
    let out = h.path("pty.out");
    let script = write(
        &h,
        "ptyshell.py",
        &format!(
            "import os, pty, time\npid, fd = pty.fork()\nif pid == 0:\n    os.execv('/bin/bash', ['bash', '--norc', '--noprofile', '-i'])\nos.write(fd, b'git -c credential.helper=keychain-auth credential fill < {} > {} 2>&1; exit\\n')\nend = time.time() + 20\nwhile time.time() < end:\n    try:\n        if not os.read(fd, 4096):\n            break\n    except OSError:\n        break\nos.waitpid(pid, 0)\n",
            input.display(),
            out.display()
        ),
    );
    let o = run(&h, Path::new(PYTHON), &[script.to_str().unwrap()], "");
    assert!(o.status.success(), "{}", stderr(&o));
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(!got.contains(PASSWORD), "served through a pty: {got}");
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(
        pending.contains("a terminal session of python3") && pending.contains("ptyshell.py"),
        "the terminal session is the script's: {pending} / {got}"
    );
}

/// The script starts the helper with a wait, then `then` (Python) while its request
/// waits; once that has happened it is approved. Returns the helper's output.
fn approve_after(h: &Home, name: &str, then: &str) -> String {
    let helper = bin("git-credential-keychain-auth");
    let out = h.path(&format!("{name}.out"));
    let script = write(
        h,
        &format!("{name}.py"),
        &format!(
            "import os, subprocess, time\nf = open({:?}, 'wb')\np = subprocess.Popen([{:?}, '--wait', '30', 'get'], stdin=subprocess.PIPE, stdout=f, stderr=subprocess.STDOUT)\np.stdin.write({:?}.encode()); p.stdin.close()\ntime.sleep(1.5)\n{then}\n",
            out.display().to_string(),
            helper.display().to_string(),
            INPUT
        ),
    );
    let mut child = h
        .command(Path::new(PYTHON))
        .arg(&script)
        .env("PATH", path_env())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let hash = loop {
        let pending = stdout(&h.ka(&["list-pending"]));
        if let Some(line) = pending
            .lines()
            .zip(pending.lines().skip(2))
            .find(|(_, via)| via.contains(&format!("{name}.py")))
        {
            break line.0.trim().to_string();
        }
        assert!(Instant::now() < deadline, "never queued: {pending}");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(1500));
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    let deadline = Instant::now() + Duration::from_secs(20);
    // The helper says at once that it waits; its answer is the next whole line.
    while !std::fs::read_to_string(&out)
        .unwrap_or_default()
        .split_inclusive('\n')
        .any(|l| l.ends_with('\n') && !l.contains(": waiting up to "))
    {
        assert!(Instant::now() < deadline, "the helper never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn a_program_that_changes_or_exits_while_its_request_waits_is_refused() {
    let h = home_with_the_helper_approved();
    // It becomes another program (exec).
    let got = approve_after(&h, "exec", "os.execv('/bin/sleep', ['sleep', '8'])");
    assert!(!got.contains(PASSWORD), "served after the exec: {got}");
    assert!(
        audit_with(&h, "replaced its executable")
            .iter()
            .any(|l| l["decision"] == "deny"),
        "{got}"
    );
    // It becomes git itself, a program that passes requests on: still not the program
    // that was identified, so refused.
    let got = approve_after(
        &h,
        "togit",
        "os.execv('/usr/bin/git', ['git', '-c', 'alias.w=!sleep 8', 'w'])",
    );
    assert!(
        !got.contains(PASSWORD),
        "served after the exec into git: {got}"
    );
    assert!(
        audit_with(&h, "replaced its executable")
            .iter()
            .any(|l| l["decision"] == "deny" && l.to_string().contains("togit.py")),
        "{got}"
    );
    // It exits: the helper is orphaned, and the origin's pid may go to anyone; the
    // origin is pinned by its pidfd, so nothing that took the pid is served.
    let got = approve_after(&h, "exits", "os._exit(0)");
    assert!(
        !got.contains(PASSWORD),
        "served after the origin exited: {got}"
    );
    assert!(
        audit_with(&h, "exited")
            .iter()
            .any(|l| l["decision"] == "deny" && l.to_string().contains("exits.py")),
        "{got}"
    );
}
