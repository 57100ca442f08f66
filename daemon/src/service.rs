//! Starting the headless daemon at login: `keychain-auth service install` writes a systemd
//! user unit (Linux) or a LaunchAgent (macOS) that runs `keychain-auth start
//! --foreground`, then asks systemd or launchd to start it; `service uninstall` undoes
//! both; `service print` shows the file without writing it. The file texts are pure
//! functions, tested on every platform; only activation calls the service manager.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The systemd unit's file name.
pub const UNIT: &str = "keychain-auth.service";
/// The LaunchAgent's label (and file name, with `.plist`).
pub const LABEL: &str = "dev.keychain-auth.daemon";

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
    if let Some(h) = &spec.home {
        p.push_str(&format!(
            "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>KEYCHAIN_AUTH_HOME</key>\n    <string>{}</string>\n  </dict>\n",
            xml(&h.display().to_string())
        ));
    }
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
        let target = format!("gui/{}", uid());
        let _ =
            run_quiet(Command::new("launchctl").args(["bootout", &format!("{target}/{LABEL}")]));
        run_quiet(
            Command::new("launchctl")
                .arg("bootstrap")
                .arg(&target)
                .arg(&path),
        )
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
        assert!(!plain.contains("Environment="));
        assert!(!plain.contains("--notify"));
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
