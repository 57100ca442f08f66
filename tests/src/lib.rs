//! Harness for the end-to-end tests: locate the built binaries, give each test its own
//! `KEYCHAIN_AUTH_HOME` and secret namespace, start the real daemon, run the real CLI and
//! test client, and clean up. The tests need a session D-Bus with an unlocked
//! gnome-keyring; `scripts/test` provides one and sets `KEYCHAIN_AUTH_E2E=1`.

#![allow(clippy::unwrap_used)]

pub mod desktop;
// polkit on a system bus, with keyutils: the presence tests are Linux's.
#[cfg(target_os = "linux")]
pub mod presence;
pub mod webdriver;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// `target/debug` (or whichever profile built the running test).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Path of a workspace binary; panics with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built; run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
    p
}

/// Fails the test unless it runs inside the environment `scripts/test` sets up.
pub fn require_environment() {
    assert!(
        std::env::var_os("KEYCHAIN_AUTH_E2E").is_some()
            && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
        "end-to-end tests need a session bus with an unlocked gnome-keyring: run ./scripts/test"
    );
}

/// SHA-256 of a file, as `sha256:<hex>` (what `sha256sum` prints).
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's private keychain-auth installation.
pub struct Home {
    _tmp: tempfile::TempDir,
    /// The `KEYCHAIN_AUTH_HOME` directory.
    pub dir: PathBuf,
    /// The secret namespace this test uses.
    pub namespace: String,
    daemon: Option<Child>,
    /// What the daemon wrote to stderr, read as it comes so the daemon never blocks on a
    /// full pipe.
    daemon_stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Dropped with the home; until then a watchdog waits on its other end.
    _watchdog: std::sync::mpsc::Sender<()>,
    /// The ordinary user (uid, gid) the daemon and every command run as, when the tests
    /// run as root ([`Home::ordinary`]); `None`: as the test process itself.
    user: Option<(u32, u32)>,
}

fn write_config(dir: &Path, namespace: &str, fields: &str) {
    let mut members = format!("\"version\":1,\"namespace\":\"{namespace}\"");
    if !fields.contains("\"presence\"") {
        members.push_str(",\"presence\":\"off\"");
    }
    if !fields.is_empty() {
        members.push(',');
        members.push_str(fields);
    }
    std::fs::write(dir.join("config.json"), format!("{{{members}}}\n")).unwrap();
}

/// How long one test's home may live before the watchdog ends the test binary: a hung
/// test fails loudly instead of using up the CI time limit.
const WATCHDOG: Duration = Duration::from_secs(15 * 60);

/// Starts a thread that aborts the process unless the returned sender is dropped within
/// [`WATCHDOG`].
fn watchdog(what: String) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(WATCHDOG) {
            eprintln!("watchdog: the test using {what} ran longer than {WATCHDOG:?}; aborting");
            std::process::abort();
        }
    });
    tx
}

/// Raises this process's soft file descriptor limit to its hard limit; returns the new
/// soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a valid rlimit struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

impl Home {
    /// A new home with a unique namespace written into config.json.
    pub fn new() -> Home {
        keyutils::sweep_dead_runs();
        Home::with_namespace(&format!(
            "ka-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ))
    }

    /// A new home using the given namespace.
    pub fn with_namespace(namespace: &str) -> Home {
        require_environment();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ka");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        write_config(&dir, namespace, "");
        Home {
            _watchdog: watchdog(dir.display().to_string()),
            _tmp: tmp,
            dir,
            namespace: namespace.to_string(),
            daemon: None,
            daemon_stderr: Default::default(),
            user: None,
        }
    }

    /// A home whose daemon and every command run as an ordinary user, as an attacker of
    /// the threat model would: the test's second user when the tests run as root (CI),
    /// else the user running the tests. Such a daemon cannot reach the test session's
    /// D-Bus, so it uses the kernel keyutils store (`start(&["--store", "keyutils"])`).
    pub fn ordinary() -> Home {
        let mut h = Home::new();
        if let Some((uid, gid)) = other_user() {
            use std::os::unix::fs::PermissionsExt;
            keyutils::sweep_dead_runs_of(uid, gid);
            let tmp = h.dir.parent().unwrap();
            std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o711)).unwrap();
            std::os::unix::fs::chown(&h.dir, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(h.dir.join("config.json"), Some(uid), Some(gid)).unwrap();
            h.user = Some((uid, gid));
        }
        h
    }

    /// Rewrites config.json with the home's namespace and more `fields` (JSON members,
    /// `"a":1,"b":2`). Presence is off unless `fields` sets it: most tests are not about
    /// it, and polkit's action may be installed on the machine by those that are.
    pub fn write_config(&self, fields: &str) {
        write_config(&self.dir, &self.namespace, fields);
    }

    /// The uid the daemon and commands of this home run as.
    pub fn uid(&self) -> u32 {
        match self.user {
            Some((uid, _)) => uid,
            // SAFETY: geteuid has no preconditions.
            None => unsafe { libc::geteuid() },
        }
    }

    /// The gid the daemon and commands of this home run as.
    pub fn gid(&self) -> u32 {
        match self.user {
            Some((_, gid)) => gid,
            // SAFETY: getegid has no preconditions.
            None => unsafe { libc::getegid() },
        }
    }

    /// A path inside the home.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A command for a binary with this home's environment, run as this home's user.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = match self.user {
            Some((uid, gid)) => {
                let mut c = as_user(uid, gid, program);
                c.env("HOME", &self.dir)
                    .env_remove("XDG_RUNTIME_DIR")
                    .env_remove("DBUS_SESSION_BUS_ADDRESS");
                c
            }
            None => Command::new(program),
        };
        c.env("KEYCHAIN_AUTH_HOME", &self.dir)
            .env_remove("KEYCHAIN_AUTH_SOCKET")
            .env_remove("RUST_LOG")
            // Python writes its compiled-module cache, as it does on a user's machine.
            .env_remove("PYTHONDONTWRITEBYTECODE");
        c
    }

    /// Runs the keychain-auth CLI.
    pub fn ka(&self, args: &[&str]) -> Output {
        run_retrying(self.command(&bin("keychain-auth")).args(args))
    }

    /// Runs the keychain-auth CLI with stdin.
    pub fn ka_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = self
            .command(&bin("keychain-auth"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts `keychain-auth start --foreground` with extra args and waits for the socket.
    pub fn start(&mut self, args: &[&str]) {
        let child = self
            .command(&bin("keychain-auth"))
            .args(["start", "--foreground"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.adopt_daemon(child);
    }

    /// Takes charge of a daemon started by the test itself, and waits for its socket.
    pub fn adopt_daemon(&mut self, mut child: Child) {
        if let Some(mut err) = child.stderr.take() {
            let sink = self.daemon_stderr.clone();
            std::thread::spawn(move || {
                use std::io::Read;
                let mut chunk = [0u8; 4096];
                while let Ok(n) = err.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]);
                }
            });
        }
        let pid = child.id();
        self.daemon = Some(child);
        self.wait_for_socket();
        if let Some((uid, _)) = self.user {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let real = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next())
                .unwrap();
            assert_eq!(
                real,
                uid.to_string(),
                "the daemon runs as the ordinary user"
            );
        }
    }

    /// What the daemon has written to stderr so far.
    pub fn daemon_stderr(&self) -> String {
        String::from_utf8_lossy(&self.daemon_stderr.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned()
    }

    /// Waits until the daemon answers a status request.
    pub fn wait_for_socket(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.daemon.as_mut() {
                if let Some(status) = child.try_wait().unwrap() {
                    // Let the reader take the last of the pipe.
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("daemon exited ({status}): {}", self.daemon_stderr());
                }
            }
            if self.ka(&["status"]).status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("daemon did not start within 30s");
    }

    /// The foreground daemon's pid.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon.as_ref().expect("daemon started").id()
    }

    /// Kills the foreground daemon with SIGKILL and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs a client binary; returns its JSON answer (panics when none arrived).
    pub fn client_at(&self, program: &Path, args: &[&str]) -> Value {
        let out = run_retrying(self.command(program).args(args));
        assert!(
            out.status.success(),
            "client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs the stock test client.
    pub fn client(&self, args: &[&str]) -> Value {
        self.client_at(&bin("ka-test-client"), args)
    }

    /// A copy of the test client with `extra` appended: a different binary to the daemon.
    pub fn client_copy(&self, name: &str, extra: &[u8]) -> PathBuf {
        let dst = self.path(name);
        // cp in a child process: a write fd held by this (multi-threaded) test process
        // could leak into a concurrently forked child and make the exec fail with ETXTBSY.
        let ok = Command::new("cp")
            .arg(bin("ka-test-client"))
            .arg(&dst)
            .status()
            .unwrap();
        assert!(ok.success());
        if !extra.is_empty() {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg("cat >> \"$0\"")
                .arg(&dst)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(extra).unwrap();
            assert!(child.wait().unwrap().success());
        }
        dst
    }

    /// The flow most tests start from: stores `value` under `name` with the CLI, lets
    /// `program` ask once (turned away as not approved, with its hash), then approves that
    /// hash for `scope`.
    pub fn approve_client(&self, program: &Path, name: &str, value: &[u8], scope: &str) {
        let o = self.ka_stdin(&["set", name], value);
        assert!(o.status.success(), "set {name}: {}", stderr(&o));
        let r = self.client_at(program, &["get", name]);
        assert_eq!(r["code"], "not_approved", "{r}");
        assert_eq!(r["hash"], sha256_file(program).as_str(), "{r}");
        let o = self.ka(&["approve", &sha256_file(program), "--scope", scope]);
        assert!(o.status.success(), "approve: {}", stderr(&o));
    }

    /// The audit log's lines.
    pub fn audit_lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Default for Home {
    fn default() -> Self {
        Home::new()
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        } else {
            // A daemon started in the background by `keychain-auth start`.
            let _ = self.command(&bin("keychain-auth")).arg("stop").output();
        }
        keyutils::forget_home(&self.namespace, self.user);
    }
}

/// Runs the built git helper directly (not through git) with `KEYCHAIN_AUTH_HOME=ka_home`
/// and `input` on standard input.
pub fn run_git_helper(ka_home: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(bin("git-credential-keychain-auth"))
        .env("KEYCHAIN_AUTH_HOME", ka_home)
        .env_remove("KEYCHAIN_AUTH_SOCKET")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The helper may stop reading early (too much input): ignore a broken pipe.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

/// The hash a refusal (or any message) advises approving: what follows
/// `keychain-auth approve ` in it.
pub fn approve_hash(text: &str) -> String {
    let at = text
        .find("keychain-auth approve sha256:")
        .unwrap_or_else(|| panic!("no approve advice in: {text}"))
        + "keychain-auth approve ".len();
    text[at..at + 71].to_string()
}

/// Writes an executable bash script `name` in the home with `body` after its `#!` line.
pub fn bash_script(h: &Home, name: &str, body: &str) -> PathBuf {
    let p = h.path(name);
    std::fs::write(&p, format!("#!/bin/bash\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

/// Compiles the small C client (`clients/tiny-client.c`) to `dest` with `cc -O2`: a 16 KiB
/// executable whose copies (each with its own trailing bytes) are distinct binaries.
pub fn compile_tiny_client(dest: &Path) {
    let cc = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(dest)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/clients/tiny-client.c"
        ))
        .output()
        .expect("a C compiler (cc) is installed");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
}

/// Waits until files written just now no longer count as changed after a process started
/// next: for the directories Python reads startup code from, the daemon takes a change in
/// the ~20 ms before the interpreter started as made after it (the kernel reports start
/// times to 10 ms), and refuses the script's identity.
pub fn settle() {
    std::thread::sleep(Duration::from_millis(40));
}

/// Runs a command, retrying while exec fails with ETXTBSY (a just-written binary).
pub fn run_retrying(cmd: &mut Command) -> Output {
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    panic!("exec kept failing with ETXTBSY");
}

/// `program` run as the user `uid` (group `gid`, no supplementary groups), by `setpriv`.
pub fn as_user(uid: u32, gid: u32, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--",
    ])
    .arg(program);
    c
}

/// A second, unprivileged user for tests that need another uid: created on first use.
/// `None` when not running as root (creating users needs root; CI runs as root).
pub fn other_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let user = "ka-e2e-other";
    let _ = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ])
        .output();
    let id = |flag: &str| {
        let o = Command::new("id").args([flag, user]).output().unwrap();
        assert!(o.status.success(), "user {user} exists");
        String::from_utf8(o.stdout)
            .unwrap()
            .trim()
            .parse::<u32>()
            .unwrap()
    };
    Some((id("-u"), id("-g")))
}

/// stdout as a string.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The kernel keyutils store (Linux): the keys test homes' daemons stored there are
/// unlinked when the home is dropped, and those of test runs that were killed on first use.
#[cfg(target_os = "linux")]
mod keyutils {
    use std::path::Path;
    use std::process::Command;

    /// Sweeps, once per test process, this user's keys left by test runs that were killed.
    pub(crate) fn sweep_dead_runs() {
        static SWEEP: std::sync::Once = std::sync::Once::new();
        SWEEP.call_once(|| forget_keyutils_keys(left_by_a_dead_run));
    }

    /// Sweeps, once per test process, the keys left in the keyring of the ordinary user
    /// `uid` by test runs that were killed.
    pub(crate) fn sweep_dead_runs_of(uid: u32, gid: u32) {
        static SWEEP_OTHER: std::sync::Once = std::sync::Once::new();
        SWEEP_OTHER.call_once(|| forget_user_keys(uid, gid, ""));
    }

    /// Unlinks the keys of a home's namespace: from this user's keyring, and from that of
    /// the home's ordinary user when it has one.
    pub(crate) fn forget_home(namespace: &str, user: Option<(u32, u32)>) {
        let prefix = format!("{namespace}:");
        forget_keyutils_keys(|d| d.starts_with(&prefix));
        if let Some((uid, gid)) = user {
            forget_user_keys(uid, gid, namespace);
        }
    }

    /// Unlinks from the user keyring of another user the keys of a namespace, and those of
    /// test processes that no longer run: `keyctl` run as that user, since its keyring is
    /// not this process's.
    fn forget_user_keys(uid: u32, gid: u32, namespace: &str) {
        let script = r#"
for k in $(keyctl rlist @u 2>/dev/null); do
  d=$(keyctl rdescribe "$k" 2>/dev/null) || continue
  desc=${d#*;*;*;*;}
  case "$d" in user\;*) ;; *) continue ;; esac
  case "$desc" in
    "$1":*) keyctl unlink "$k" @u >/dev/null 2>&1 ;;
    ka-test-*) pid=${desc#ka-test-}; pid=${pid%%-*}
      [ -d "/proc/$pid" ] || keyctl unlink "$k" @u >/dev/null 2>&1 ;;
  esac
done"#;
        let _ = Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "sh",
                "-c",
                script,
                "sh",
                namespace,
            ])
            .output();
    }

    /// Whether a key description is from a test home (`ka-test-<pid>-<n>:`) of a test
    /// process that no longer runs: one killed before its homes could clean up.
    fn left_by_a_dead_run(description: &str) -> bool {
        description
            .strip_prefix("ka-test-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Unlinks from the user keyring every `user` key whose description `doomed` picks: the
    /// keys a home's daemon stored with the keyutils store (described `<namespace>:<name>`),
    /// so test runs leave nothing behind there.
    fn forget_keyutils_keys(doomed: impl Fn(&str) -> bool) {
        // The keyring's serials (KEYCTL_READ on @u), growing the buffer as the kernel asks.
        let mut serials: Vec<i32> = Vec::with_capacity(1024);
        loop {
            let cap = serials.capacity() * std::mem::size_of::<i32>();
            // SAFETY: the kernel writes at most `cap` bytes into the spare capacity.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_READ,
                    libc::KEY_SPEC_USER_KEYRING,
                    serials.as_mut_ptr(),
                    cap,
                )
            };
            if n < 0 {
                return;
            }
            let n = n as usize;
            if n <= cap {
                // SAFETY: the kernel wrote n bytes of serials.
                unsafe { serials.set_len(n / std::mem::size_of::<i32>()) };
                break;
            }
            serials = Vec::with_capacity(n / std::mem::size_of::<i32>() + 64);
        }
        let mut buf = vec![0u8; 4096];
        for id in serials {
            // SAFETY: KEYCTL_DESCRIBE writes at most buf.len() bytes into buf.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_keyctl,
                    libc::KEYCTL_DESCRIBE,
                    id,
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            if n <= 0 || n as usize > buf.len() {
                continue;
            }
            // "type;uid;gid;perm;description\0"
            let text = String::from_utf8_lossy(&buf[..n as usize - 1]);
            let mut parts = text.splitn(5, ';');
            let (kind, desc) = (parts.next(), parts.nth(3));
            if kind == Some("user") && desc.is_some_and(&doomed) {
                // SAFETY: unlinking a key from the user keyring passes no memory.
                unsafe {
                    libc::syscall(
                        libc::SYS_keyctl,
                        libc::KEYCTL_UNLINK,
                        id,
                        libc::KEY_SPEC_USER_KEYRING,
                    )
                };
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::left_by_a_dead_run;

        #[test]
        fn only_keys_of_test_processes_that_ended_are_swept() {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            child.wait().unwrap();
            let dead = child.id();
            let alive = std::process::id();
            assert!(left_by_a_dead_run(&format!("ka-test-{dead}-3:storm/1")));
            assert!(!left_by_a_dead_run(&format!("ka-test-{alive}-3:storm/1")));
            assert!(!left_by_a_dead_run(&format!(
                "ka-bench-{dead}-0:bench/token"
            )));
            assert!(!left_by_a_dead_run("work:github/token"));
            assert!(!left_by_a_dead_run("ka-test-notapid-0:x"));
        }
    }
}

/// Other systems have no kernel keyutils store (the daemon has none there either), so no
/// test home leaves keys in one: there is nothing to sweep.
#[cfg(not(target_os = "linux"))]
mod keyutils {
    pub(crate) fn sweep_dead_runs() {}
    pub(crate) fn sweep_dead_runs_of(_uid: u32, _gid: u32) {}
    pub(crate) fn forget_home(_namespace: &str, _user: Option<(u32, u32)>) {}
}
