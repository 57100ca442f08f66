//! Starting the headless daemon at login: `keychain-auth service install` writes a systemd
//! user unit (Linux) or a LaunchAgent (macOS) that runs `keychain-auth start
//! --foreground`, then asks systemd or launchd to start it; `service uninstall` undoes
//! both; `service print` shows the file without writing it. The file texts, what a
//! supervised daemon does when one already runs, and when `launchctl bootstrap` is tried
//! again are pure functions, tested on every platform; only activation calls the
//! service manager.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The systemd unit's file name.
pub const UNIT: &str = "keychain-auth.service";
/// The LaunchAgent's label (and file name, with `.plist`).
pub const LABEL: &str = "dev.keychain-auth.daemon";
/// Set by the service file to the service manager that starts the daemon (`launchd`,
/// `systemd`).
pub const SUPERVISOR_ENV: &str = "KEYCHAIN_AUTH_SUPERVISOR";

/// Whether `start --foreground` that finds a daemon already running (the tray app, or one
/// started by hand) exits successfully: yes when a service manager started it, which
/// would otherwise start it again and again (launchd's `KeepAlive { SuccessfulExit =
/// false }` every 10 s, for ever); by hand it stays a failure.
pub fn already_running_is_success(supervisor: Option<&OsStr>) -> bool {
    supervisor.is_some_and(|s| s == "launchd" || s == "systemd")
}

/// How many times `service install` runs `launchctl bootstrap`.
const BOOTSTRAP_TRIES: u32 = 10;

/// Whether to run `launchctl bootstrap` again after try number `attempt` (from 1) failed
/// with `stderr`, and after how long. launchd answers "5: Input/output error" while the
/// job that `bootout` just removed is still going away; any other failure is final.
pub fn bootstrap_retry_after(stderr: &str, attempt: u32) -> Option<Duration> {
    (attempt < BOOTSTRAP_TRIES && stderr.contains("5: Input/output error"))
        .then(|| Duration::from_millis(250 * u64::from(attempt.min(4))))
}

/// What the service runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The keychain-auth executable.
    pub exe: PathBuf,
    /// `KEYCHAIN_AUTH_HOME` to pass on, when one was set at install time.
    pub home: Option<PathBuf>,
    /// Ask on the desktop (`--notify`).
    pub notify: bool,
    /// Where launchd writes the daemon's standard error (macOS).
    pub log: PathBuf,
}

impl Spec {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            self.exe.display().to_string(),
            "start".into(),
            "--foreground".into(),
        ];
        if self.notify {
            a.push("--notify".into());
        }
        a
    }
}

/// One word of a systemd command line: quoted, with `\`, `"`, `%` and `$` escaped so
/// systemd passes it through unchanged.
fn systemd_word(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The systemd user unit.
pub fn systemd_unit(spec: &Spec) -> String {
    let exec: Vec<String> = spec.args().iter().map(|a| systemd_word(a)).collect();
    let mut unit = String::from(
        "# Written by `keychain-auth service install`; removed by `keychain-auth service uninstall`.\n\
         [Unit]\n\
         Description=keychain-auth: hash-pinned access to your keychain for command-line tools\n\
         Documentation=https://github.com/keychain-auth/keychain-auth\n\
         \n\
         [Service]\n\
         Type=simple\n",
    );
    unit.push_str(&format!("ExecStart={}\n", exec.join(" ")));
    if let Some(h) = &spec.home {
        unit.push_str(&format!(
            "Environment={}\n",
            systemd_word(&format!("KEYCHAIN_AUTH_HOME={}", h.display()))
        ));
    }
    unit.push_str(&format!(
        "Environment={}\n",
        systemd_word(&format!("{SUPERVISOR_ENV}=systemd"))
    ));
    unit.push_str(
        "Restart=on-failure\n\
         RestartSec=2\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
    );
    unit
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The LaunchAgent property list.
pub fn launch_agent(spec: &Spec) -> String {
    let mut p = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `keychain-auth service install`; removed by `keychain-auth service uninstall`. -->\n\
         <plist version=\"1.0\">\n<dict>\n",
    );
    p.push_str(&format!("  <key>Label</key>\n  <string>{LABEL}</string>\n"));
    p.push_str("  <key>ProgramArguments</key>\n  <array>\n");
    for a in spec.args() {
        p.push_str(&format!("    <string>{}</string>\n", xml(&a)));
    }
    p.push_str("  </array>\n");
    p.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
    if let Some(h) = &spec.home {
        p.push_str(&format!(
            "    <key>KEYCHAIN_AUTH_HOME</key>\n    <string>{}</string>\n",
            xml(&h.display().to_string())
        ));
    }
    p.push_str(&format!(
        "    <key>{SUPERVISOR_ENV}</key>\n    <string>launchd</string>\n  </dict>\n"
    ));
    p.push_str(
        "  <key>RunAtLoad</key>\n  <true/>\n  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n  <key>ProcessType</key>\n  <string>Interactive</string>\n",
    );
    p.push_str(&format!(
        "  <key>StandardErrorPath</key>\n  <string>{}</string>\n",
        xml(&spec.log.display().to_string())
    ));
    p.push_str("</dict>\n</plist>\n");
    p
}

fn home_dir() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set")
}

/// Where the service file goes on this system, and its text.
pub fn file_for(spec: &Spec) -> Result<(PathBuf, String)> {
    if cfg!(target_os = "macos") {
        Ok((
            home_dir()?
                .join("Library/LaunchAgents")
                .join(format!("{LABEL}.plist")),
            launch_agent(spec),
        ))
    } else {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|c| Path::new(c).is_absolute())
            .map(PathBuf::from)
            .map_or_else(|| home_dir().map(|h| h.join(".config")), Ok)?;
        Ok((config.join("systemd/user").join(UNIT), systemd_unit(spec)))
    }
}

/// The spec for this executable and environment.
pub fn spec(notify: bool) -> Result<Spec> {
    let exe = std::env::current_exe()
        .context("locating the keychain-auth executable")?
        .canonicalize()
        .context("resolving the keychain-auth executable")?;
    let home = std::env::var_os("KEYCHAIN_AUTH_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from);
    let paths = keychain_auth_sdk::paths::Paths::from_env()?;
    Ok(Spec {
        exe,
        home,
        notify,
        log: paths.daemon_log,
    })
}

fn run_quiet(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(e.to_string()),
    }
}

fn uid() -> u32 {
    crate::dirs::euid()
}

/// Writes the service file and, unless `start` is false, starts it with the service
/// manager. Returns what to tell the person.
pub fn install(notify: bool, start: bool) -> Result<String> {
    let spec = spec(notify)?;
    let (path, text) = file_for(&spec)?;
    // launchd opens StandardErrorPath before the daemon runs, so its directory must
    // exist by then (the daemon itself would create it only once running).
    if let Some(logs) = spec.log.parent() {
        crate::dirs::ensure_private_dir(logs)
            .with_context(|| format!("creating {}", logs.display()))?;
    }
    let dir = path.parent().context("service file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    crate::atomic::write_atomic(&path, text.as_bytes(), true)
        .with_context(|| format!("writing {}", path.display()))?;
    let mut msg = format!("wrote {}", path.display());
    #[cfg(target_os = "linux")]
    if let Some(hint) = crate::presence::polkit::setup_hint() {
        msg.push('\n');
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let who = std::env::var("SUDO_USER").unwrap_or_else(|_| "root".into());
            match crate::presence::polkit::install(vec![who]) {
                Ok(done) => msg.push_str(&done),
                Err(e) => msg.push_str(&format!("{hint} ({e:#})")),
            }
        } else {
            msg.push_str(&hint);
        }
    }
    if !start {
        msg.push_str(&format!(
            "\nnot started; start it with: {}",
            start_hint(&path)
        ));
        return Ok(msg);
    }
    // Without a reachable user service manager nothing is started, and a daemon that
    // is running now is left alone.
    if !cfg!(target_os = "macos")
        && run_quiet(Command::new("systemctl").args(["--user", "show-environment"])).is_err()
    {
        msg.push_str(&format!(
            "\nthe systemd user manager cannot be reached here, so it was not started; start it with: {}",
            start_hint(&path)
        ));
        return Ok(msg);
    }
    // The service will take the socket: a daemon started by hand must stop first.
    let _ = crate::lifecycle::stop();
    let started = if cfg!(target_os = "macos") {
        bootstrap(&path)
    } else {
        run_quiet(Command::new("systemctl").args(["--user", "daemon-reload"])).and_then(|()| {
            run_quiet(Command::new("systemctl").args(["--user", "enable", "--now", UNIT]))
        })
    };
    match started {
        Ok(()) => msg.push_str("\nstarted; it will start again at every login"),
        Err(e) => msg.push_str(&format!(
            "\ncould not start it ({e}); start it with: {}",
            start_hint(&path)
        )),
    }
    Ok(msg)
}

/// Replaces a loaded job with the one in `path`: `bootout` (best effort), `enable` (a job
/// switched off in Login Items or by `launchctl disable` is not bootstrapped), then
/// `bootstrap`, tried again while launchd is still removing the old job.
fn bootstrap(path: &Path) -> Result<(), String> {
    let target = format!("gui/{}", uid());
    let job = format!("{target}/{LABEL}");
    let _ = run_quiet(Command::new("launchctl").args(["bootout", &job]));
    let _ = run_quiet(Command::new("launchctl").args(["enable", &job]));
    let mut attempt = 1;
    loop {
        match run_quiet(
            Command::new("launchctl")
                .arg("bootstrap")
                .arg(&target)
                .arg(path),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => match bootstrap_retry_after(&e, attempt) {
                Some(wait) => {
                    std::thread::sleep(wait);
                    attempt += 1;
                }
                None => return Err(e),
            },
        }
    }
}

fn start_hint(path: &Path) -> String {
    if cfg!(target_os = "macos") {
        format!("launchctl bootstrap gui/{} {}", uid(), path.display())
    } else {
        format!("systemctl --user daemon-reload && systemctl --user enable --now {UNIT}")
    }
}

/// Stops the service (best effort) and removes its file.
pub fn uninstall() -> Result<String> {
    let spec = spec(false)?;
    let (path, _) = file_for(&spec)?;
    if cfg!(target_os = "macos") {
        let _ = run_quiet(
            Command::new("launchctl").args(["bootout", &format!("gui/{}/{LABEL}", uid())]),
        );
    } else {
        let _ = run_quiet(Command::new("systemctl").args(["--user", "disable", "--now", UNIT]));
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {
            if !cfg!(target_os = "macos") {
                let _ = run_quiet(Command::new("systemctl").args(["--user", "daemon-reload"]));
            }
            Ok(format!("removed {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(format!(
            "no service was installed ({} does not exist)",
            path.display()
        )),
        Err(e) => bail!("removing {}: {e}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(exe: &str, home: Option<&str>) -> Spec {
        Spec {
            exe: exe.into(),
            home: home.map(PathBuf::from),
            notify: true,
            log: "/Users/a/Library/Logs/keychain-auth/daemon.log".into(),
        }
    }

    #[test]
    fn the_systemd_unit_quotes_and_escapes_every_word() {
        let u = systemd_unit(&spec(
            "/opt/my tools/keychain-auth",
            Some("/h/100% $HOME\"x"),
        ));
        assert!(u.contains(
            "ExecStart=\"/opt/my tools/keychain-auth\" \"start\" \"--foreground\" \"--notify\"\n"
        ));
        assert!(u.contains("Environment=\"KEYCHAIN_AUTH_HOME=/h/100%% $$HOME\\\"x\"\n"));
        assert!(u.contains("WantedBy=default.target"));
        let plain = systemd_unit(&Spec {
            notify: false,
            ..spec("/usr/bin/keychain-auth", None)
        });
        assert!(!plain.contains("KEYCHAIN_AUTH_HOME"));
        assert!(!plain.contains("--notify"));
    }

    #[test]
    fn both_service_files_tell_the_daemon_who_started_it() {
        for home in [None, Some("/h")] {
            let u = systemd_unit(&spec("/usr/bin/keychain-auth", home));
            assert!(
                u.contains("Environment=\"KEYCHAIN_AUTH_SUPERVISOR=systemd\"\n"),
                "{u}"
            );
            // KEYCHAIN_AUTH_HOME stays the first Environment= line (the end-to-end test
            // reads that one).
            if home.is_some() {
                let first = u
                    .lines()
                    .find(|l| l.starts_with("Environment="))
                    .expect("an Environment= line");
                assert!(first.contains("KEYCHAIN_AUTH_HOME=/h"), "{u}");
            }
            let p = launch_agent(&spec("/usr/local/bin/keychain-auth", home));
            assert!(
                p.contains("<key>EnvironmentVariables</key>\n  <dict>\n"),
                "{p}"
            );
            assert!(
                p.contains(
                    "    <key>KEYCHAIN_AUTH_SUPERVISOR</key>\n    <string>launchd</string>\n  </dict>\n"
                ),
                "{p}"
            );
            assert_eq!(
                p.matches("<dict>").count(),
                3,
                "plist, environment, KeepAlive"
            );
            assert_eq!(p.matches("</dict>").count(), 3);
        }
    }

    #[test]
    fn the_launch_agent_restarts_only_a_failed_daemon() {
        let p = launch_agent(&spec("/usr/local/bin/keychain-auth", None));
        assert!(p.contains(
            "<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>"
        ));
        assert!(p.contains(
            "<key>StandardErrorPath</key>\n  <string>/Users/a/Library/Logs/keychain-auth/daemon.log</string>"
        ));
    }

    #[test]
    fn an_already_running_daemon_is_a_success_only_under_a_service_manager() {
        assert!(already_running_is_success(Some(OsStr::new("launchd"))));
        assert!(already_running_is_success(Some(OsStr::new("systemd"))));
        assert!(!already_running_is_success(None));
        assert!(!already_running_is_success(Some(OsStr::new(""))));
        assert!(!already_running_is_success(Some(OsStr::new("cron"))));
    }

    #[test]
    fn bootstrap_is_tried_again_only_while_launchd_answers_input_output_error() {
        let busy = "Bootstrap failed: 5: Input/output error\nTry re-running the command as root for richer errors.";
        assert_eq!(
            bootstrap_retry_after(busy, 1),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            bootstrap_retry_after(busy, 9),
            Some(Duration::from_millis(1000))
        );
        assert_eq!(bootstrap_retry_after(busy, BOOTSTRAP_TRIES), None);
        let total: Duration = (1..BOOTSTRAP_TRIES)
            .map(|a| bootstrap_retry_after(busy, a).expect("retried"))
            .sum();
        assert!(total <= Duration::from_secs(10), "{total:?}");
        for other in [
            "Bootstrap failed: 37: Operation already in progress",
            "Bootstrap failed: 125: Domain does not support specified action",
            "",
        ] {
            assert_eq!(bootstrap_retry_after(other, 1), None, "{other:?}");
        }
    }

    #[test]
    fn the_launch_agent_escapes_xml_and_keeps_the_arguments_apart() {
        let p = launch_agent(&spec("/Applications/A & B/keychain-auth", Some("/tmp/<h>")));
        assert!(p.contains("<string>/Applications/A &amp; B/keychain-auth</string>"));
        assert!(p.contains("<string>start</string>\n    <string>--foreground</string>\n    <string>--notify</string>"));
        assert!(p.contains("<key>KEYCHAIN_AUTH_HOME</key>\n    <string>/tmp/&lt;h&gt;</string>"));
        assert!(p.contains(&format!("<string>{LABEL}</string>")));
        assert!(!p.contains("A & B"));
    }
}
