//! Real polkit for the presence tests: a system bus and `polkitd` started as root (once
//! per test binary, or reused when the machine runs them already), the project's action
//! installed with the real `keychain-auth presence install`, and the tests' ordinary
//! user given a known password, so that polkit's own PAM check decides. A terminal for a
//! person to type in is a tmux session ([`Terminal`]).

use crate::{bin, other_user, stdout, Home};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The ordinary user's password in these tests.
pub const PASSWORD: &str = "ka-presence-pw-7";

/// The system bus's socket.
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// Asks the system bus (`dbus-send`, from scripts/deps' dbus-bin).
fn ask_bus(method: &str, arg: Option<&str>) -> Option<String> {
    let mut c = Command::new("dbus-send");
    c.args([
        "--system",
        "--print-reply",
        "--dest=org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        &format!("org.freedesktop.DBus.{method}"),
    ]);
    if let Some(a) = arg {
        c.arg(format!("string:{a}"));
    }
    let o = c.output().ok()?;
    o.status.success().then(|| stdout(&o))
}

fn polkit_answers() -> bool {
    ask_bus("NameHasOwner", Some("org.freedesktop.PolicyKit1"))
        .is_some_and(|r| r.contains("boolean true"))
}

fn bus_answers() -> bool {
    ask_bus("GetId", None).is_some()
}

/// `cmd`, made to start with nothing open but its standard streams: the system bus and
/// polkitd outlive the test binary and must not keep what it inherited (a lock held by
/// whoever ran the tests, say).
fn without_inherited_descriptors(cmd: &mut Command) -> &mut Command {
    // SAFETY: close_range is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, || {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    cmd
}

/// Makes sure polkit runs with the project's action installed, and returns the
/// ordinary user (uid, gid) whose password is [`PASSWORD`]. Needs root (as CI runs).
pub fn polkit() -> (u32, u32) {
    static READY: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        let user = other_user()
            .expect("the presence tests run as root: they start polkit and set a password");
        if !bus_answers() {
            std::fs::create_dir_all("/run/dbus").unwrap();
            let _ = std::fs::remove_file(SYSTEM_BUS);
            // No pid file: one left behind by a bus that is gone (a machine image,
            // a container restarted) would stop this one from starting, and nothing
            // here needs it.
            let o = without_inherited_descriptors(Command::new("dbus-daemon").args([
                "--system",
                "--fork",
                "--nopidfile",
                &format!("--address=unix:path={SYSTEM_BUS}"),
            ]))
            .output()
            .expect("dbus-daemon is installed (scripts/deps)");
            assert!(
                o.status.success(),
                "dbus-daemon --system: {}",
                crate::stderr(&o)
            );
            crate::desktop::wait_until("the system bus", bus_answers);
        }
        if !polkit_answers() {
            // In the background, outliving this test binary (the next one reuses it).
            let started = without_inherited_descriptors(Command::new("sh").args([
                "-c",
                "/usr/lib/polkit-1/polkitd --no-debug </dev/null >/dev/null 2>&1 &",
            ]))
            .status()
            .unwrap();
            assert!(started.success(), "polkitd is installed (scripts/deps)");
            crate::desktop::wait_until("polkitd", polkit_answers);
        }
        let mut chpasswd = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        chpasswd
            .stdin
            .take()
            .unwrap()
            .write_all(format!("ka-e2e-other:{PASSWORD}\n").as_bytes())
            .unwrap();
        assert!(chpasswd.wait().unwrap().success(), "chpasswd");
        let o = Command::new(bin("keychain-auth"))
            .args(["presence", "install", "--user", "ka-e2e-other"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "presence install: {}",
            crate::stderr(&o)
        );
        // polkitd reads new actions when it sees the file change.
        std::thread::sleep(Duration::from_millis(500));
        user
    })
}

/// A home of the ordinary user whose daemon requires proof of presence through polkit
/// (the default where the action is installed), with `fields` more in its config.
pub fn home(fields: &str) -> Home {
    polkit();
    let h = Home::ordinary();
    let presence = if fields.is_empty() {
        "\"presence\":\"required\"".to_string()
    } else {
        format!("\"presence\":\"required\",{fields}")
    };
    h.write_config(&presence);
    h
}

/// A terminal (tmux, on a server of its own) whose shell runs as the home's user with
/// the home's environment: where a person types.
pub struct Terminal {
    socket: String,
    dir: PathBuf,
}

impl Terminal {
    /// Opens one for `h`.
    pub fn open(h: &Home, name: &str) -> Terminal {
        let socket = format!("ka-presence-{}-{name}", std::process::id());
        let dir = h.path(&format!("term-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(h.uid()), Some(h.gid())).unwrap();
        let t = Terminal { socket, dir };
        let env = format!(
            "KEYCHAIN_AUTH_HOME={} HOME={} PATH={}",
            h.dir.display(),
            h.dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let o = Command::new("tmux")
            .args(["-L", &t.socket, "new-session", "-d", "-s", "ka", "-x", "220", "-y", "50"])
            .arg(format!(
                "setpriv --reuid={uid} --regid={gid} --clear-groups env -i {env} TERM=xterm bash --norc --noprofile",
                uid = h.uid(),
                gid = h.gid()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "tmux: {}", crate::stderr(&o));
        t
    }

    /// Types `keys` and Enter.
    pub fn type_line(&self, keys: &str) {
        let o = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "ka", "-l", keys])
            .output()
            .unwrap();
        assert!(o.status.success());
        self.press("Enter");
    }

    /// Presses one key (`Enter`, `C-c`).
    pub fn press(&self, key: &str) {
        let o = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "ka", key])
            .output()
            .unwrap();
        assert!(o.status.success());
    }

    /// What the terminal shows.
    pub fn screen(&self) -> String {
        stdout(
            &Command::new("tmux")
                .args([
                    "-L",
                    &self.socket,
                    "capture-pane",
                    "-p",
                    "-t",
                    "ka",
                    "-S",
                    "-200",
                ])
                .output()
                .unwrap(),
        )
    }

    /// Waits until the screen shows `text`; panics with the screen after 30 s.
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.screen().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a command line in the terminal's shell and returns its exit code when it
    /// finishes, typing `answer` (if any) once polkit's agent asks for the password.
    pub fn run(&self, line: &str, answer: Option<&str>) -> i32 {
        let marker = self.dir.join("exit");
        let _ = std::fs::remove_file(&marker);
        let prompts = self.screen().matches("Password:").count();
        self.type_line(&format!("{line}; echo $? > {}", marker.display()));
        if let Some(a) = answer {
            // This command's prompt, not one already on the screen.
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.screen().matches("Password:").count() <= prompts {
                assert!(
                    Instant::now() < deadline,
                    "no password prompt:\n{}",
                    self.screen()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            self.type_line(a);
        }
        self.exit_code(&marker)
    }

    /// Waits for the exit code a command line wrote to `marker`.
    pub fn exit_code(&self, marker: &Path) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(s) = std::fs::read_to_string(marker) {
                if let Ok(code) = s.trim().parse() {
                    return code;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the command never finished:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where a command line typed here writes its exit code.
    pub fn marker(&self) -> PathBuf {
        self.dir.join("exit")
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

/// Runs the CLI as the home's user with no terminal at all (a new session, no
/// controlling tty): a program of the user's running it in the background.
pub fn ka_without_terminal(h: &Home, args: &[&str]) -> Output {
    let mut c = h.command(&bin("keychain-auth"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::setsid();
            Ok(())
        });
    }
    c.output().unwrap()
}
