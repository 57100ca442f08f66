//! The git credential helper with the real `git`: `git credential fill / approve /
//! reject` through `credential.helper=keychain-auth`, and `git clone` over HTTP from a
//! real lighttpd running git-http-backend behind basic auth on 127.0.0.1, where the
//! password comes from keychain-auth (in the real Secret Service) and git never prompts.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A git with no user or system configuration, no terminal prompt, an askpass that
/// records being asked, and the built helper first on PATH.
struct Git {
    home: PathBuf,
    ka_home: PathBuf,
    asked: PathBuf,
}

impl Git {
    fn new(h: &Home) -> Git {
        let home = h.path("git-home");
        std::fs::create_dir_all(&home).unwrap();
        let asked = home.join("askpass-was-called");
        let askpass = home.join("askpass");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\necho \"$1\" >> '{}'\nexit 1\n", asked.display()),
        )
        .unwrap();
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        Git {
            home,
            ka_home: h.dir.clone(),
            asked,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("git");
        let path = format!(
            "{}:{}",
            bin("git-credential-keychain-auth")
                .parent()
                .unwrap()
                .display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.args(["-c", "credential.helper=keychain-auth"])
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", self.home.join("askpass"))
            .env("KEYCHAIN_AUTH_HOME", &self.ka_home);
        for v in ["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"] {
            if let Some(x) = std::env::var_os(v) {
                c.env(v, x);
            }
        }
        c
    }

    /// Another program, with git's environment and `credential.helper=keychain-auth`
    /// (tmux, a shell running a script).
    fn command_of(&self, program: &str) -> Command {
        let git = self.command(&[]);
        let mut c = Command::new(program);
        c.env_clear();
        for (k, v) in git.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        c.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "credential.helper")
            .env("GIT_CONFIG_VALUE_0", "keychain-auth");
        c
    }

    /// tmux on its own server socket, with git's environment.
    fn tmux(&self, socket: &str) -> Command {
        let mut c = self.command_of("tmux");
        c.args(["-L", socket]);
        c
    }

    /// `git credential <action>` with `input` on standard input.
    fn credential(&self, extra: &[&str], action: &str, input: &str) -> Output {
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(["credential", action]);
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Whether git ran its askpass (asked for a password) since the last call.
    fn was_asked(&self) -> bool {
        std::fs::remove_file(&self.asked).is_ok()
    }
}

fn lookup(h: &Home, name: &str) -> Option<String> {
    let o = Command::new("secret-tool")
        .args(["lookup", "service", &h.namespace, "account", name])
        .output()
        .unwrap();
    o.status.success().then(|| stdout(&o))
}

/// Starts the daemon on the Secret Service and approves, the way a user would, the
/// program that runs git here (this test binary: the origin of the helper's caller
/// chain), from the hash the first refusal printed, with the scope the helper asked for.
fn approved_helper(h: &mut Home, git: &Git) {
    h.start(&["--store", "secret-service"]);
    let hash = sha256_file(&std::env::current_exe().unwrap());
    let o = git.credential(
        &[],
        "fill",
        "protocol=https\nhost=example.com\nusername=alice\n\n",
    );
    assert!(!o.status.success(), "git cannot fill without a password");
    let err = stderr(&o);
    assert!(
        err.contains(&format!("keychain-auth approve {hash}")),
        "the refusal names the exact approve command: {err}"
    );
    let pending = stdout(&h.ka(&["list-pending"]));
    assert!(
        pending.contains("grants:    git/* (read-write)"),
        "{pending}"
    );
    assert!(pending.contains("read-write"), "{pending}");
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    let tools = stdout(&h.ka(&["list"]));
    assert!(
        tools.contains("git/*"),
        "approved for what it asked: {tools}"
    );
    assert!(
        git.was_asked(),
        "while not approved, git asked for the password itself"
    );
}

#[test]
fn git_credential_fill_approve_reject_through_the_helper() {
    let mut h = Home::new();
    let git = Git::new(&h);
    approved_helper(&mut h, &git);

    // approve = store, under git/<protocol>/<host>/<username> in the Secret Service
    let o = git.credential(
        &[],
        "approve",
        "protocol=https\nhost=example.com\nusername=alice\npassword=first-pw\n\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        lookup(&h, "git/https/example.com/alice").as_deref(),
        Some("first-pw")
    );

    // fill with and without the user name
    for input in [
        "protocol=https\nhost=example.com\nusername=alice\n\n",
        "protocol=https\nhost=example.com\nwwwauth[]=Basic realm=\"x\"\n\n",
    ] {
        let o = git.credential(&[], "fill", input);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("username=alice\n"), "{out}");
        assert!(out.contains("password=first-pw\n"), "{out}");
    }

    // reject with a password that is no longer the stored one leaves the stored one
    let o = git.credential(
        &[],
        "reject",
        "protocol=https\nhost=example.com\nusername=alice\npassword=stale\n\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        lookup(&h, "git/https/example.com/alice").as_deref(),
        Some("first-pw")
    );
    // reject with the stored password erases it; fill then has nothing
    let o = git.credential(
        &[],
        "reject",
        "protocol=https\nhost=example.com\nusername=alice\npassword=first-pw\n\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lookup(&h, "git/https/example.com/alice"), None);
    assert!(!git.was_asked());
    let o = git.credential(&[], "fill", "protocol=https\nhost=example.com\n\n");
    assert!(!o.status.success(), "nothing left to fill: {}", stdout(&o));
    assert!(git.was_asked());

    // with credential.useHttpPath the path is part of the name
    let o = git.credential(
        &["-c", "credential.useHttpPath=true"],
        "approve",
        "protocol=https\nhost=example.com:8443\npath=team/repo.git\nusername=bob\npassword=pw2\n\n",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        lookup(&h, "git/https/example.com:8443/team/repo.git/bob").as_deref(),
        Some("pw2")
    );
    assert!(!git.was_asked());

    // every decision was audited, and no password reached the audit log
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(log.contains("git/https/example.com/alice"));
    assert!(!log.contains("first-pw") && !log.contains("pw2"));
}

use keychain_auth_e2e::run_git_helper as run_helper;

#[test]
fn the_helper_refuses_bad_input_and_stores_nothing_half_way() {
    let mut h = Home::new();
    let git = Git::new(&h);
    approved_helper(&mut h, &git);
    let dir = h.dir.clone();
    let run = |args: &[&str], input: &[u8]| run_helper(&dir, args, input);
    let big_pw = format!(
        "protocol=https\nhost=h\nusername=u\npassword={}\n",
        "x".repeat(100 * 1024)
    );
    let long_user = format!("protocol=https\nhost=h\nusername={}\n", "u".repeat(1100));
    for (args, input, want) in [
        (
            &["store"][..],
            &b"protocol=https\nhost=h\nusername=u\njunk\n"[..],
            "not key=value",
        ),
        (
            &["store"],
            b"protocol=https\nhost=h\nusername=u\npassword=a\0b\n",
            "NUL",
        ),
        (
            &["store"],
            b"protocol=https\nhost=h\nusername=u\npassword=\xff\n",
            "not UTF-8",
        ),
        (
            &["store"],
            b"protocol=https\nhost=h\npassword=p\n",
            "no username",
        ),
        (
            &["store"],
            b"host=h\nusername=u\npassword=p\n",
            "no protocol",
        ),
        (
            &["store"],
            b"protocol=https\nhost=h\nusername=u\n",
            "no password",
        ),
        (&["store"], big_pw.as_bytes(), "frame"),
        (&["store"], long_user.as_bytes(), "limit is 1024"),
        (&["get"], &vec![b'a'; 300 * 1024], "at most"),
        (&["--wait"], b"", "--wait needs"),
        (&["--bogus", "get"], b"", "unknown option"),
        (&[], b"", "no action"),
    ] {
        let o = run(args, input);
        assert!(!o.status.success(), "{args:?} must fail");
        let err = stderr(&o);
        assert!(err.contains(want), "{args:?}: wanted {want:?} in {err}");
    }
    // An action git may add later is ignored, as git-credential(1) asks.
    assert!(run(&["future-action"], b"protocol=https\nhost=h\n")
        .status
        .success());
    // Nothing was stored by any of the refused requests.
    let names = stdout(&h.ka(&["names"]));
    assert!(!names.contains("git/"), "{names}");

    // A daemon that is not running: a clear message and a failure.
    h.kill_daemon();
    let o = run(&["get"], b"protocol=https\nhost=h\nusername=u\n");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("keychain-auth is not running"),
        "{}",
        stderr(&o)
    );
}

/// lighttpd serving `git http-backend` under /git/ with basic auth, on 127.0.0.1.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(dir: &Path, user: &str, password: &str) -> Server {
        let repos = dir.join("repos");
        std::fs::create_dir_all(&repos).unwrap();
        std::fs::write(dir.join("users"), format!("{user}:{password}\n")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = dir.join("lighttpd.conf");
        std::fs::write(
            &conf,
            format!(
                r#"server.document-root = "{d}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
server.modules = ("mod_alias", "mod_auth", "mod_authn_file", "mod_cgi", "mod_setenv")
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.add-environment = ("GIT_PROJECT_ROOT" => "{d}/repos", "GIT_HTTP_EXPORT_ALL" => "")
}}
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
auth.require = ("/git/" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
"#,
                d = dir.display()
            ),
        )
        .unwrap();
        let child = Command::new("lighttpd")
            .args(["-D", "-f"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lighttpd is installed (scripts/deps)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "lighttpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            port,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository with one commit served by git-http-backend behind basic auth, and the
/// server's password stored in keychain-auth only; returns the server and the name.
fn served_repo(h: &Home, git: &Git) -> (Server, String) {
    let server = Server::start(&h.path("www"), "alice", "http-s3cret");

    // A repository with one commit, served by git-http-backend.
    let work = h.path("work");
    let ok = |o: Output| assert!(o.status.success(), "{}", stderr(&o));
    ok(git
        .command(&["init", "-q", "-b", "main"])
        .arg(&work)
        .output()
        .unwrap());
    std::fs::write(work.join("README"), "served over http\n").unwrap();
    ok(git
        .command(&["-C", work.to_str().unwrap(), "add", "README"])
        .output()
        .unwrap());
    ok(git
        .command(&[
            "-C",
            work.to_str().unwrap(),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "first",
        ])
        .output()
        .unwrap());
    let bare = server.dir.join("repos/repo.git");
    ok(git
        .command(&["clone", "-q", "--bare"])
        .arg(&work)
        .arg(&bare)
        .output()
        .unwrap());

    // The password lives only in keychain-auth.
    let name = format!("git/http/127.0.0.1:{}/alice", server.port);
    assert!(h.ka_stdin(&["set", &name], b"http-s3cret").status.success());

    (server, name)
}

#[test]
fn git_clone_over_http_takes_the_password_from_keychain_auth() {
    let mut h = Home::new();
    let git = Git::new(&h);
    approved_helper(&mut h, &git);
    let (server, name) = served_repo(&h, &git);

    for (url, dest) in [
        (
            format!("http://alice@127.0.0.1:{}/git/repo.git", server.port),
            "with-user",
        ),
        (
            format!("http://127.0.0.1:{}/git/repo.git", server.port),
            "without-user",
        ),
    ] {
        let into = h.path(dest);
        let o = git
            .command(&["clone", "-q", &url])
            .arg(&into)
            .output()
            .unwrap();
        assert!(o.status.success(), "clone {url}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(into.join("README")).unwrap(),
            "served over http\n"
        );
    }
    assert!(!git.was_asked(), "git never prompted for a password");
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(log.contains(&name), "the reads were audited");
    assert!(!log.contains("http-s3cret"));

    // A wrong stored password: the clone fails, and git's reject erases exactly it.
    assert!(h.ka_stdin(&["set", &name], b"wrong").status.success());
    let url = format!("http://alice@127.0.0.1:{}/git/repo.git", server.port);
    let o = git
        .command(&["clone", "-q", &url])
        .arg(h.path("wrong"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "a wrong password cannot clone");
    assert_eq!(
        lookup(&h, &name),
        None,
        "git's reject erased the bad password"
    );
}

/// Runs `cmd` in the bash of a tmux session, as a person would type it there, and waits
/// until it has finished.
fn in_tmux(git: &Git, socket: &str, cmd: &str, marker: &Path) {
    let _ = std::fs::remove_file(marker);
    let line = format!("{cmd}; echo $? > '{}'", marker.display());
    let o = git
        .tmux(socket)
        .args(["send-keys", "-t", "ka", &line, "Enter"])
        .output()
        .unwrap();
    assert!(o.status.success(), "tmux send-keys: {}", stderr(&o));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the command in tmux never finished"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The hash of the pending entry whose chain contains `needle`.
fn pending_with(h: &Home, needle: &str) -> Option<String> {
    let o = h.ka(&["list-pending", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v.as_array()?
        .iter()
        .find(|e| e.to_string().contains(needle))
        .and_then(|e| e["hash"].as_str().map(str::to_string))
}

#[test]
fn git_clone_is_decided_for_who_ran_git_a_script_or_a_terminal_session() {
    let mut h = Home::new();
    h.start(&["--store", "secret-service"]);
    let git = Git::new(&h);
    let (server, name) = served_repo(&h, &git);
    let url = format!("http://alice@127.0.0.1:{}/git/repo.git", server.port);

    // A script: refused (git asks for the password itself) until it is approved.
    let script = h.path("clone.sh");
    std::fs::write(&script, "#!/bin/bash\ngit clone -q \"$1\" \"$2\"\n").unwrap();
    let clone = |dest: &str| {
        git.command_of("bash")
            .arg(&script)
            .arg(&url)
            .arg(h.path(dest))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = clone("by-script");
    assert!(!o.status.success(), "an unapproved script cannot clone");
    assert!(git.was_asked(), "git asked for the password itself");
    let hash = pending_with(&h, "clone.sh → git").expect("the script is queued with its chain");
    assert!(h.ka(&["approve", &hash]).status.success());
    let o = clone("by-script-approved");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!git.was_asked());
    // Another script running the same clone is not served.
    std::fs::copy(&script, h.path("other.sh")).unwrap();
    let o = git
        .command_of("bash")
        .arg(h.path("other.sh"))
        .arg(&url)
        .arg(h.path("by-other"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "another script is asked for on its own"
    );
    assert!(git.was_asked());

    // A shell in tmux: the origin is the terminal session of the tmux server.
    let socket = format!("ka-{}", std::process::id());
    let o = git
        .tmux(&socket)
        .args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "ka",
            "-x",
            "200",
            "-y",
            "50",
        ])
        .arg("bash --norc --noprofile -i")
        .output()
        .unwrap();
    assert!(o.status.success(), "tmux: {}", stderr(&o));
    let marker = h.path("tmux-done");
    in_tmux(
        &git,
        &socket,
        &format!("git clone -q {url} {}", h.path("by-tmux").display()),
        &marker,
    );
    assert_ne!(std::fs::read_to_string(&marker).unwrap().trim(), "0");
    let hash = pending_with(&h, "a terminal session of /usr/bin/tmux")
        .expect("the terminal session is queued");
    let o = h.ka(&["approve", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("every program started from"),
        "approving a terminal session says what it covers: {}",
        stdout(&o)
    );
    in_tmux(
        &git,
        &socket,
        &format!(
            "git clone -q {url} {}",
            h.path("by-tmux-approved").display()
        ),
        &marker,
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "0");
    assert!(h.path("by-tmux-approved/README").exists());
    let _ = git.tmux(&socket).arg("kill-server").output();
    let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
    assert!(log.contains("a terminal session of /usr/bin/tmux"), "{log}");
    assert!(log.contains(&name));
}

#[test]
fn expiry_refresh_token_empty_user_names_and_pathless_erase_on_both_stores() {
    for store in ["secret-service", "keyutils"] {
        let mut h = Home::new();
        h.start(&["--store", store]);
        // The helper is run by this test: the origin of its chain, approved here.
        let path = std::env::current_exe().unwrap();
        let o = h.ka(&[
            "register",
            path.to_str().unwrap(),
            "--scope",
            "git/*",
            "--access",
            "read-write",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let ok = |args: &[&str], input: &str| {
            let o = run_helper(&h.dir, args, input.as_bytes());
            assert!(o.status.success(), "{store} {args:?}: {}", stderr(&o));
            assert_eq!(stderr(&o), "", "{store}: nothing on stderr");
            stdout(&o)
        };
        let token = format!("refresh-{store}-xyzzy");

        // The expiry and the refresh token are kept beside the password.
        ok(
            &["store"],
            &format!(
                "protocol=https\nhost=h.example\nusername=alice\npassword=pw-{store}\n\
                 password_expiry_utc=9999999999\noauth_refresh_token={token}\n"
            ),
        );
        assert_eq!(
            ok(&["get"], "protocol=https\nhost=h.example\nusername=alice\n"),
            format!(
                "username=alice\npassword=pw-{store}\npassword_expiry_utc=9999999999\n\
                 oauth_refresh_token={token}\n"
            )
        );
        // An expiry that is not a number is not kept; storing again replaces it all.
        ok(
            &["store"],
            "protocol=https\nhost=h.example\nusername=alice\npassword=pw2\npassword_expiry_utc=soon\n",
        );
        assert_eq!(
            ok(&["get"], "protocol=https\nhost=h.example\n"),
            "username=alice\npassword=pw2\n"
        );
        // A refresh token too large for one frame: refused, the old value kept.
        let big = format!(
            "protocol=https\nhost=h.example\nusername=alice\npassword=pw3\noauth_refresh_token={}\n",
            "t".repeat(100 * 1024)
        );
        let o = run_helper(&h.dir, &["store"], big.as_bytes());
        assert!(!o.status.success());
        assert!(stderr(&o).contains("frame"), "{store}: {}", stderr(&o));
        assert!(!stderr(&o).contains("ttttt"), "no value echoed");
        assert_eq!(
            ok(&["get"], "protocol=https\nhost=h.example\nusername=alice\n"),
            "username=alice\npassword=pw2\n"
        );

        // An empty user name with an empty password (single sign-on).
        ok(
            &["store"],
            "protocol=https\nhost=sso.example\nusername=\npassword=\n",
        );
        assert_eq!(
            ok(&["get"], "protocol=https\nhost=sso.example\n"),
            "username=\npassword=\n"
        );
        assert!(stdout(&h.ka(&["names"])).contains("git/https/sso.example/\n"));

        // erase without path reaches the credential stored with one.
        ok(
            &["store"],
            "protocol=https\nhost=h.example\npath=team/r.git\nusername=bob\npassword=pb\n",
        );
        ok(&["erase"], "protocol=https\nhost=h.example\nusername=bob\n");
        let names = stdout(&h.ka(&["names"]));
        assert!(!names.contains("team/r.git"), "{store}: {names}");
        assert!(names.contains("git/https/h.example/alice"), "{names}");
        // erase without a user name: every account of the site, the empty one too.
        ok(&["erase"], "protocol=https\nhost=sso.example\n");
        ok(&["erase"], "protocol=https\nhost=h.example\n");
        let names = stdout(&h.ka(&["names"]));
        assert!(!names.contains("git/"), "{store}: {names}");

        // Names reached the audit log; no password or refresh token did.
        let log = std::fs::read_to_string(h.path("audit.log")).unwrap();
        assert!(log.contains("git/https/h.example/alice"));
        assert!(!log.contains(&token) && !log.contains("pw-") && !log.contains("pw2"));
    }
}
