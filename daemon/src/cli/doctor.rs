//! `keychain-auth doctor [--json]`: every check a support thread would ask for, each
//! `ok`, `info`, `warning` or `problem` and, when not ok, the fix (a command or an
//! exact step). Exits 1 when any check is a problem; warnings do not fail.
//!
//! Collecting the facts is I/O ([`collect`]: the daemon's `status` and `names`, the
//! session bus, `git`, `/proc`); judging them is pure (the `judge_*` functions and
//! [`parse_key_users`]), so that each verdict is unit-tested with hostile input. The
//! socket directory is judged by the clients' own check
//! ([`keychain_auth_sdk::verify::socket_path`]) and ptrace by [`crate::ptrace::Scope`].

use crate::ptrace::Scope;
use anyhow::Result;
use keychain_auth_sdk::paths::{Paths, HOME_ENV};
use keychain_auth_sdk::protocol::{ErrorCode, Request, Response, Status};
use keychain_auth_sdk::ClientError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    /// Nothing to do.
    Ok,
    /// Nothing wrong; worth knowing (a check that does not apply, or was not run).
    Info,
    /// Works, but not as well or as safely as it could.
    Warning,
    /// Something does not work; the exit status is 1.
    Problem,
}

impl Level {
    fn word(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Problem => "problem",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Check {
    /// Stable name: `daemon`, `version`, `store`, `notifications`, `tray`, `presence`,
    /// `git`, `socket-dir`, `ptrace`, `keyutils-quota`.
    pub id: &'static str,
    /// The verdict.
    pub status: Level,
    /// What was found, for a person.
    pub summary: String,
    /// What to do about it (a command or an exact step), when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn check(id: &'static str, status: Level, summary: impl Into<String>) -> Check {
    Check {
        id,
        status,
        summary: summary.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

/// What connecting to the daemon gave.
#[derive(Debug, Clone)]
pub(crate) enum Daemon {
    /// It answered `status`.
    Running(Box<Status>),
    /// Nothing answers at the socket; `default_socket`: a daemon answers for the default
    /// home while `KEYCHAIN_AUTH_HOME` is set.
    NotRunning {
        socket: PathBuf,
        error: String,
        default_socket: Option<PathBuf>,
    },
    /// The socket, or what listens there, is not the user's keychain-auth.
    Untrusted(String),
    /// It answered, but not `status`.
    Failed(String),
}

impl Daemon {
    fn status(&self) -> Option<&Status> {
        match self {
            Daemon::Running(s) => Some(s),
            _ => None,
        }
    }
}

pub(crate) fn judge_daemon(d: &Daemon) -> Check {
    match d {
        Daemon::Running(s) => check(
            "daemon",
            Level::Ok,
            format!(
                "running (pid {}, {}), socket {}",
                s.pid,
                match s.host.as_deref() {
                    Some("app") => "hosted by the tray app",
                    Some("cli") => "started by keychain-auth start",
                    _ => "host unknown",
                },
                s.socket
            ),
        ),
        Daemon::NotRunning {
            socket,
            error,
            default_socket: Some(default),
        } => check(
            "daemon",
            Level::Problem,
            format!(
                "no daemon answers at {} ({error}), but one runs for the default home (socket {}): {HOME_ENV} is set",
                socket.display(),
                default.display()
            ),
        )
        .fix(format!(
            "unset {HOME_ENV} to use that one, or `keychain-auth start` to run one for this home"
        )),
        Daemon::NotRunning { socket, error, .. } => check(
            "daemon",
            Level::Problem,
            format!("not running: nothing answers at {} ({error})", socket.display()),
        )
        .fix("keychain-auth start (or `keychain-auth service install` to start it at every login)"),
        Daemon::Untrusted(why) => check(
            "daemon",
            Level::Problem,
            format!("the CLI refuses to talk to the socket: {why}"),
        )
        .fix("do what the socket-dir check says; if the directory is fine, find what listens on the socket (`fuser -v SOCKET`), stop it, then `keychain-auth start`"),
        Daemon::Failed(why) => check(
            "daemon",
            Level::Problem,
            format!("the daemon did not answer status: {why}"),
        )
        .fix("restart it: keychain-auth stop && keychain-auth start (its log: daemon.log beside the audit log)"),
    }
}

/// `server` (`keychain-auth/<version>`) against this binary's `ours`.
pub(crate) fn judge_version(status: Option<&Status>, ours: &str) -> Check {
    let Some(s) = status else {
        return check(
            "version",
            Level::Info,
            format!("not checked: no daemon answered (this CLI is {ours})"),
        );
    };
    if s.server == ours {
        return check(
            "version",
            Level::Ok,
            format!("the daemon and this CLI are both {ours}"),
        );
    }
    let restart = match s.host.as_deref() {
        Some("app") => "quit keychain-auth-app from its tray menu and start it again",
        _ => "keychain-auth stop && keychain-auth start (after an update, the running daemon is still the old one)",
    };
    check(
        "version",
        Level::Problem,
        format!(
            "the daemon is {:?} but this CLI is {ours}: the CLI may send what the daemon does not know",
            s.server
        ),
    )
    .fix(restart)
}

/// What the daemon's `names` request gave.
#[derive(Debug, Clone)]
pub(crate) enum Names {
    /// The store answered with this many names.
    Listed(usize),
    /// The daemon refused (`store_unavailable` for a store error).
    Refused(ErrorCode, String),
    /// The request failed otherwise.
    Failed(String),
}

pub(crate) fn judge_store(status: Option<&Status>, names: Option<&Names>) -> Check {
    let (Some(s), Some(names)) = (status, names) else {
        return check("store", Level::Info, "not checked: no daemon answered");
    };
    let store = s.store.as_str();
    match names {
        Names::Listed(n) => check(
            "store",
            Level::Ok,
            format!("{store}: reachable and unlocked ({n} secret names)"),
        ),
        Names::Refused(ErrorCode::StoreUnavailable, why) if why.contains("locked") => check(
            "store",
            Level::Problem,
            format!("{store} is locked: {why}"),
        )
        .fix(if store == "secret-service" {
            "unlock the login keyring: open Passwords and Keys (seahorse) and unlock \"Login\", or run `gnome-keyring-daemon --unlock`, type your login password, then Ctrl-D"
        } else {
            "unlock the keychain (Keychain Access, or `security unlock-keychain`), then retry"
        }),
        Names::Refused(code, why) => {
            let c = check(
                "store",
                Level::Problem,
                format!("{store}: the daemon cannot list the store ({code}): {why}"),
            );
            match store {
                "secret-service" => c.fix("check that a Secret Service runs on the session bus (`busctl --user status org.freedesktop.secrets`; gnome-keyring-daemon --start --components=secrets starts one), or use the kernel's keyring: keychain-auth stop && keychain-auth start --store keyutils"),
                "keyutils" => c.fix("see the keyutils-quota check; `keyctl show @u` shows the user keyring"),
                _ => c.fix("restart the daemon: keychain-auth stop && keychain-auth start"),
            }
        }
        Names::Failed(why) => check(
            "store",
            Level::Problem,
            format!("{store}: asking the daemon for the names failed: {why}"),
        )
        .fix("restart the daemon: keychain-auth stop && keychain-auth start"),
    }
}

/// The notification server on the session bus: `Err`: no bus, or it did not answer;
/// `Ok(None)`: nobody serves `org.freedesktop.Notifications`; `Ok(Some(caps))`: its
/// `GetCapabilities`.
pub(crate) type NotificationServer = Result<Option<Vec<String>>, String>;

pub(crate) fn judge_notifications(server: &NotificationServer, status: Option<&Status>) -> Check {
    let daemon_notifies = status.and_then(|s| s.notifications);
    let from_cli = status.and_then(|s| s.host.as_deref()) == Some("cli");
    let cli_approve = "approve with `keychain-auth list-pending` and `keychain-auth approve HASH`";
    match server {
        Err(why) => check(
            "notifications",
            if daemon_notifies == Some(true) { Level::Warning } else { Level::Info },
            format!("no notification server could be asked ({why})"),
        )
        .fix(format!("{cli_approve}; for notifications, run this in your desktop session (where DBUS_SESSION_BUS_ADDRESS is set)")),
        Ok(None) => check(
            "notifications",
            if daemon_notifies == Some(true) { Level::Warning } else { Level::Info },
            "no notification server on the session bus (nobody owns org.freedesktop.Notifications)",
        )
        .fix(format!("{cli_approve}; or run a notification daemon (your desktop's, or dunst / mako)")),
        Ok(Some(caps)) if !caps.iter().any(|c| c == "actions") => check(
            "notifications",
            Level::Warning,
            format!(
                "the notification server cannot show buttons (capabilities: {}): a notification says a binary waits, but cannot approve it",
                caps.join(", ")
            ),
        )
        .fix(cli_approve),
        Ok(Some(_)) => match daemon_notifies {
            Some(false) if from_cli => check(
                "notifications",
                Level::Info,
                "the notification server shows buttons, but the daemon was started without --notify",
            )
            .fix("keychain-auth stop && keychain-auth start --notify (or `keychain-auth service install --notify`)"),
            Some(false) => check(
                "notifications",
                Level::Info,
                "the notification server shows buttons, but the daemon does not notify",
            )
            .fix(cli_approve),
            Some(true) => check(
                "notifications",
                Level::Ok,
                "the daemon notifies, with Approve / Deny buttons",
            ),
            None => check(
                "notifications",
                Level::Ok,
                "the notification server shows buttons (Approve / Deny)",
            ),
        },
    }
}

/// Whether `org.kde.StatusNotifierWatcher` has an owner (`Err`: the bus could not be
/// asked).
pub(crate) fn judge_tray(watcher: &Result<bool, String>, status: Option<&Status>) -> Check {
    let in_app = status.and_then(|s| s.host.as_deref()) == Some("app");
    match watcher {
        Ok(true) => check(
            "tray",
            Level::Ok,
            "a tray host (StatusNotifierWatcher) runs: keychain-auth-app shows its tray icon",
        ),
        Ok(false) => check(
            "tray",
            if in_app { Level::Warning } else { Level::Info },
            "no tray host (nobody owns org.kde.StatusNotifierWatcher): keychain-auth-app shows its window instead of a tray icon",
        )
        .fix("on GNOME, enable the AppIndicator extension (gnome-shell-extension-appindicator); or use the window, or the CLI"),
        Err(why) => check(
            "tray",
            Level::Info,
            format!("not checked: the session bus could not be asked ({why})"),
        ),
    }
}

/// `presence` as `status` gave it (`None`: no daemon), whether polkit's action is
/// installed (`None`: not Linux), and the command that installs it.
pub(crate) fn judge_presence(
    presence: Option<&str>,
    action_installed: Option<bool>,
    install: &str,
) -> Check {
    match presence {
        Some(p @ ("polkit" | "local-auth")) => check(
            "presence",
            Level::Ok,
            format!("required: each widening decision is proven with {p}"),
        ),
        Some(p) if p.starts_with("unavailable: ") => check(
            "presence",
            Level::Problem,
            format!(
                "required but unavailable, so nothing can be approved: {}",
                &p["unavailable: ".len()..]
            ),
        )
        .fix(install.to_string()),
        Some(p) if p.starts_with("off: ") => {
            let c = check("presence", Level::Warning, &p["off: ".len()..]);
            if action_installed == Some(false) {
                c.fix(install.to_string())
            } else {
                c.fix("keychain-auth presence required")
            }
        }
        Some(other) => check(
            "presence",
            Level::Warning,
            format!("the daemon reports presence as {other:?}"),
        )
        .fix("keychain-auth presence"),
        None => match action_installed {
            Some(true) => check(
                "presence",
                Level::Ok,
                "polkit's action is installed (the daemon is not running to say more)",
            ),
            Some(false) => check(
                "presence",
                Level::Warning,
                "polkit's action is not installed: without it any program of yours can approve itself",
            )
            .fix(install.to_string()),
            None => check(
                "presence",
                Level::Info,
                "not checked: no daemon answered",
            ),
        },
    }
}

/// git, the helper and git's configuration.
#[derive(Debug, Clone)]
pub(crate) struct Git {
    /// `git` on PATH.
    pub git: Option<PathBuf>,
    /// `git-credential-keychain-auth` on PATH.
    pub helper: Option<PathBuf>,
    /// The helper beside this binary, when it is there.
    pub beside_us: Option<PathBuf>,
    /// `git config --get-all credential.helper`, one value each (`Err`: git failed).
    pub helpers: Result<Vec<String>, String>,
}

/// The helpers git runs: the values after the last empty one (which resets the list).
fn effective_helpers(all: &[String]) -> &[String] {
    match all.iter().rposition(|h| h.trim().is_empty()) {
        Some(i) => &all[i + 1..],
        None => all,
    }
}

pub(crate) fn judge_git(g: &Git) -> Check {
    let Some(git) = &g.git else {
        return check(
            "git",
            Level::Info,
            "git is not installed (nothing on PATH): the git helper is not needed",
        );
    };
    let Some(helper) = &g.helper else {
        let fix = match &g.beside_us {
            Some(p) => format!(
                "put the helper on PATH: install -m 755 {} ~/.local/bin/ (with ~/.local/bin on PATH)",
                crate::naming::shell_quote(&p.display().to_string())
            ),
            None => "install git-credential-keychain-auth (from the same release as keychain-auth) into a directory on PATH".into(),
        };
        return check(
            "git",
            Level::Warning,
            format!(
                "git is {} but git-credential-keychain-auth is not on PATH: git cannot run it",
                git.display()
            ),
        )
        .fix(fix);
    };
    let helpers = match &g.helpers {
        Ok(h) => effective_helpers(h),
        Err(why) => {
            return check(
                "git",
                Level::Warning,
                format!("git config could not be read: {why}"),
            )
            .fix("git config --get-all credential.helper")
        }
    };
    let ours = helpers.iter().position(|h| h.contains("keychain-auth"));
    match ours {
        None => check(
            "git",
            Level::Info,
            format!(
                "the helper is {} but git does not use it (credential.helper: {})",
                helper.display(),
                if helpers.is_empty() {
                    "unset".to_string()
                } else {
                    helpers.join(", ")
                }
            ),
        )
        .fix("git config --global credential.helper keychain-auth (docs/git.md)"),
        Some(i) => {
            let before: Vec<&str> = helpers[..i].iter().map(String::as_str).collect();
            if before.is_empty() {
                check(
                    "git",
                    Level::Ok,
                    format!("git asks {} first", helper.display()),
                )
            } else {
                check(
                    "git",
                    Level::Warning,
                    format!(
                        "git asks {} before keychain-auth: a password it holds is used without keychain-auth's approval",
                        before.join(", ")
                    ),
                )
                .fix("git config --global --unset-all credential.helper && git config --global credential.helper keychain-auth")
            }
        }
    }
}

/// The socket's directory: the clients' verdict on it, and what it is.
#[derive(Debug, Clone)]
pub(crate) struct SocketDir {
    pub dir: PathBuf,
    /// [`keychain_auth_sdk::verify::socket_path`]'s verdict.
    pub verdict: Result<(), String>,
    /// `(mode, owned by this user)`, when the directory exists.
    pub found: Option<(u32, bool)>,
}

pub(crate) fn judge_socket_dir(d: &SocketDir) -> Check {
    let shown = d.dir.display().to_string();
    let quoted = crate::naming::shell_quote(&shown);
    match (&d.verdict, d.found) {
        (Ok(()), None) => check(
            "socket-dir",
            Level::Info,
            format!("{shown} does not exist yet: the daemon creates it (0700) when it starts"),
        ),
        (Ok(()), Some((mode, _))) => check(
            "socket-dir",
            Level::Ok,
            format!("{shown}: yours, mode {:04o}", mode & 0o7777),
        ),
        (Err(why), Some((mode, true))) if mode & 0o077 != 0 => check(
            "socket-dir",
            Level::Problem,
            format!("{why}: clients refuse to connect"),
        )
        .fix(format!("check what {quoted} holds, then: chmod 700 {quoted}")),
        (Err(why), _) => check(
            "socket-dir",
            Level::Problem,
            format!("{why}: clients refuse to connect"),
        )
        .fix(format!(
            "keychain-auth stop; check what {quoted} is and who made it, remove it (rm -r {quoted}), then keychain-auth start (it creates it, 0700)"
        )),
    }
}

pub(crate) fn judge_ptrace(scope: &Scope) -> Check {
    let level = match scope {
        s if s.protects_children() => Level::Ok,
        _ => Level::Warning,
    };
    let c = check("ptrace", level, scope.describe());
    match scope {
        Scope::Yama(0 | 1) => c.fix("as root: sysctl -w kernel.yama.ptrace_scope=2, and echo kernel.yama.ptrace_scope=2 > /etc/sysctl.d/10-ptrace.conf to keep it"),
        Scope::NoYama => c.fix("a kernel with Yama (CONFIG_SECURITY_YAMA) is the only way to stop it"),
        Scope::Unreadable(_) => c.fix("cat /proc/sys/kernel/yama/ptrace_scope (as root if need be)"),
        _ => c,
    }
}

/// One user's key quota, from `/proc/key-users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyUse {
    pub keys: u64,
    pub max_keys: u64,
    pub bytes: u64,
    pub max_bytes: u64,
}

/// `uid`'s line of `/proc/key-users` (`UID: USAGE NKEYS/NIKEYS QNKEYS/MAXKEYS
/// QNBYTES/MAXBYTES`): `Ok(None)` when the user has no line (no keys yet); `Err` when
/// its line cannot be read. Other users' lines are not looked at beyond their uid.
pub(crate) fn parse_key_users(text: &str, uid: u32) -> Result<Option<KeyUse>, String> {
    let Some(line) = text.lines().find(|l| {
        l.split_once(':')
            .and_then(|(u, _)| u.trim().parse::<u32>().ok())
            == Some(uid)
    }) else {
        return Ok(None);
    };
    let bad =
        || format!("/proc/key-users has a line for uid {uid} that is not understood: {line:?}");
    let rest = line.split_once(':').map(|(_, r)| r).ok_or_else(bad)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let [_usage, _nkeys, quota_keys, quota_bytes] = fields[..] else {
        return Err(bad());
    };
    let pair = |f: &str| -> Option<(u64, u64)> {
        let (a, b) = f.split_once('/')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    };
    let (keys, max_keys) = pair(quota_keys).ok_or_else(bad)?;
    let (bytes, max_bytes) = pair(quota_bytes).ok_or_else(bad)?;
    Ok(Some(KeyUse {
        keys,
        max_keys,
        bytes,
        max_bytes,
    }))
}

/// A sysctl's number (`/proc/sys/kernel/keys/maxkeys`...), if it is one.
pub(crate) fn parse_limit(contents: &std::io::Result<String>) -> Option<u64> {
    contents.as_ref().ok()?.trim().parse().ok()
}

/// Share of a limit used, in percent (a limit of 0 is full).
fn percent(used: u64, max: u64) -> u128 {
    match max {
        0 => 100,
        m => u128::from(used) * 100 / u128::from(m),
    }
}

/// The keyutils quota when the daemon's store is keyutils: `key_users` is
/// `/proc/key-users`, `limits` the sysctls (maxkeys, maxbytes; root's for root).
pub(crate) fn judge_key_quota(
    store: Option<&str>,
    uid: u32,
    key_users: &std::io::Result<String>,
    limits: (Option<u64>, Option<u64>),
) -> Check {
    match store {
        Some("keyutils") => {}
        Some(other) => {
            return check(
                "keyutils-quota",
                Level::Info,
                format!("the store is {other}: no kernel key quota applies"),
            )
        }
        None => {
            return check(
                "keyutils-quota",
                Level::Info,
                "not checked: no daemon answered to say which store it uses",
            )
        }
    }
    let (max_keys_name, max_bytes_name) = if uid == 0 {
        ("kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes")
    } else {
        ("kernel.keys.maxkeys", "kernel.keys.maxbytes")
    };
    let raise = format!(
        "delete secrets you no longer need (`keychain-auth names`, `keychain-auth delete NAME`), or raise the limits as root: sysctl -w {max_keys_name}=N {max_bytes_name}=M (and in /etc/sysctl.d/ to keep them)"
    );
    let text = match key_users {
        Ok(t) => t,
        Err(e) => {
            return check(
                "keyutils-quota",
                Level::Warning,
                format!("/proc/key-users cannot be read ({e}): the quota is unknown"),
            )
            .fix("cat /proc/key-users")
        }
    };
    let used = match parse_key_users(text, uid) {
        Ok(Some(u)) => u,
        Ok(None) => KeyUse {
            keys: 0,
            max_keys: limits.0.unwrap_or(0),
            bytes: 0,
            max_bytes: limits.1.unwrap_or(0),
        },
        Err(why) => return check("keyutils-quota", Level::Warning, why).fix("cat /proc/key-users"),
    };
    if used.keys == 0 && (used.max_keys == 0 || used.max_bytes == 0) {
        return check(
            "keyutils-quota",
            Level::Info,
            format!("uid {uid} holds no keys yet, and the limits ({max_keys_name}, {max_bytes_name}) could not be read"),
        );
    }
    let summary = format!(
        "uid {uid} uses {}/{} keys ({max_keys_name}) and {}/{} bytes ({max_bytes_name})",
        used.keys, used.max_keys, used.bytes, used.max_bytes
    );
    let worst = percent(used.keys, used.max_keys).max(percent(used.bytes, used.max_bytes));
    if worst >= 100 {
        check(
            "keyutils-quota",
            Level::Problem,
            format!("{summary}: full, another secret cannot be stored"),
        )
        .fix(raise)
    } else if worst >= 90 {
        check(
            "keyutils-quota",
            Level::Warning,
            format!("{summary}: nearly full"),
        )
        .fix(raise)
    } else {
        check("keyutils-quota", Level::Ok, summary)
    }
}

/// Every fact the checks judge.
pub(crate) struct Facts {
    pub daemon: Daemon,
    pub names: Option<Names>,
    pub notifications: NotificationServer,
    pub tray: Result<bool, String>,
    pub action_installed: Option<bool>,
    pub install_presence: String,
    pub git: Git,
    pub socket_dir: SocketDir,
    pub ptrace: Scope,
    pub uid: u32,
    pub key_users: std::io::Result<String>,
    pub key_limits: (Option<u64>, Option<u64>),
}

/// Every check, in the order a person reads them.
pub(crate) fn judge(f: &Facts, ours: &str) -> Vec<Check> {
    let status = f.daemon.status();
    vec![
        judge_daemon(&f.daemon),
        judge_version(status, ours),
        judge_socket_dir(&f.socket_dir),
        judge_store(status, f.names.as_ref()),
        judge_key_quota(
            status.map(|s| s.store.as_str()),
            f.uid,
            &f.key_users,
            f.key_limits,
        ),
        judge_presence(
            status.and_then(|s| s.presence.as_deref()),
            f.action_installed,
            &f.install_presence,
        ),
        judge_notifications(&f.notifications, status),
        judge_tray(&f.tray, status),
        judge_git(&f.git),
        judge_ptrace(&f.ptrace),
    ]
}

/// An executable named `name` in a directory of `path` (PATH's value).
fn on_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn collect_git() -> Git {
    let path = std::env::var_os("PATH");
    let git = on_path("git", path.as_deref());
    let helper = on_path("git-credential-keychain-auth", path.as_deref());
    let beside_us = std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("git-credential-keychain-auth"))
        .filter(|p| p.is_file());
    let helpers = match &git {
        None => Ok(Vec::new()),
        Some(g) => std::process::Command::new(g)
            .args(["config", "--get-all", "credential.helper"])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| e.to_string())
            .and_then(|o| match o.status.code() {
                Some(0) => Ok(String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect()),
                // Exit 1: the key is not set.
                Some(1) => Ok(Vec::new()),
                _ => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
            }),
    };
    Git {
        git,
        helper,
        beside_us,
        helpers,
    }
}

fn collect_daemon(paths: &Paths) -> (Daemon, Option<Names>) {
    let mut client = match crate::daemon_check::connect(&paths.socket) {
        Ok(c) => c,
        Err(ClientError::NotRunning { socket, source }) => {
            return (
                Daemon::NotRunning {
                    socket,
                    error: source.to_string(),
                    default_socket: super::commands::other_home().map(|(_, s)| s),
                },
                None,
            )
        }
        Err(ClientError::Untrusted(why)) => return (Daemon::Untrusted(why), None),
        Err(e) => return (Daemon::Failed(e.to_string()), None),
    };
    let status = match client.request(&Request::Status {}) {
        Ok(Response::Status(s)) => s,
        Ok(other) => {
            return (
                Daemon::Failed(format!("unexpected answer: {other:?}")),
                None,
            )
        }
        Err(e) => return (Daemon::Failed(e.to_string()), None),
    };
    let names =
        super::commands::all_pages(|offset| match client.request(&Request::Names { offset }) {
            Ok(Response::Names { names, next }) => Ok((names, next)),
            Ok(other) => anyhow::bail!("unexpected answer: {other:?}"),
            Err(e) => Err(anyhow::anyhow!(e)),
        });
    let names = match names {
        Ok(n) => Names::Listed(n.len()),
        Err(e) => match e.downcast_ref::<ClientError>() {
            Some(ClientError::Daemon(body)) => Names::Refused(body.code, body.message.clone()),
            _ => Names::Failed(format!("{e:#}")),
        },
    };
    (Daemon::Running(Box::new(status)), Some(names))
}

/// The notification server's capabilities and whether a tray host runs, from the
/// session bus (each call bounded: a hung bus is reported, not waited on).
#[cfg(target_os = "linux")]
fn collect_session_bus() -> (NotificationServer, Result<bool, String>) {
    const NOTIFICATIONS: &str = "org.freedesktop.Notifications";
    const WATCHER: &str = "org.kde.StatusNotifierWatcher";
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(3);
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        let e = "cannot start an async runtime".to_string();
        return (Err(e.clone()), Err(e));
    };
    runtime.block_on(async {
        let conn = match tokio::time::timeout(LIMIT, zbus::Connection::session()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let e = format!("no session bus: {e}");
                return (Err(e.clone()), Err(e));
            }
            Err(_) => {
                let e = "the session bus did not answer".to_string();
                return (Err(e.clone()), Err(e));
            }
        };
        let dbus = match zbus::fdo::DBusProxy::new(&conn).await {
            Ok(d) => d,
            Err(e) => {
                let e = e.to_string();
                return (Err(e.clone()), Err(e));
            }
        };
        let owned = |name: &'static str| {
            let dbus = &dbus;
            async move {
                let bus_name = zbus::names::BusName::try_from(name).map_err(|e| e.to_string())?;
                match tokio::time::timeout(LIMIT, dbus.name_has_owner(bus_name)).await {
                    Err(_) => Err(late("the session bus", LIMIT)),
                    Ok(answer) => answer.map_err(|e| e.to_string()),
                }
            }
        };
        let tray = owned(WATCHER).await;
        let activatable = || async {
            tokio::time::timeout(LIMIT, dbus.list_activatable_names())
                .await
                .ok()
                .and_then(Result::ok)
                .is_some_and(|names| names.iter().any(|n| n.as_str() == NOTIFICATIONS))
        };
        let notifications = match owned(NOTIFICATIONS).await {
            Err(e) => Err(e),
            Ok(false) if !activatable().await => Ok(None),
            Ok(_) => {
                let caps = async {
                    let proxy = zbus::Proxy::new(
                        &conn,
                        NOTIFICATIONS,
                        "/org/freedesktop/Notifications",
                        NOTIFICATIONS,
                    )
                    .await?;
                    let caps: Vec<String> = proxy.call("GetCapabilities", &()).await?;
                    Ok::<_, zbus::Error>(caps)
                };
                match tokio::time::timeout(LIMIT, caps).await {
                    Err(_) => Err(late("the notification server", LIMIT)),
                    Ok(Err(e)) => Err(format!("GetCapabilities failed: {e}")),
                    Ok(Ok(caps)) => Ok(Some(caps)),
                }
            }
        };
        (notifications, tray)
    })
}

/// What a call that took too long is reported as.
#[cfg(target_os = "linux")]
fn late(what: &str, limit: std::time::Duration) -> String {
    format!("{what} did not answer within {} s", limit.as_secs())
}

#[cfg(not(target_os = "linux"))]
fn collect_session_bus() -> (NotificationServer, Result<bool, String>) {
    let e = "not Linux: macOS notifications and the menu bar need no session bus".to_string();
    (Err(e.clone()), Err(e))
}

/// Gathers every fact (I/O only; no verdicts).
pub(crate) fn collect() -> Result<Facts> {
    let paths = Paths::from_env()?;
    let (daemon, names) = collect_daemon(&paths);
    let (notifications, tray) = collect_session_bus();
    let socket_dir = {
        use std::os::unix::fs::MetadataExt;
        let dir = paths
            .socket
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| paths.socket_dir.clone());
        SocketDir {
            verdict: keychain_auth_sdk::verify::socket_path(&paths.socket),
            found: std::fs::symlink_metadata(&dir)
                .ok()
                .map(|m| (m.mode(), m.uid() == crate::dirs::euid())),
            dir,
        }
    };
    let uid = crate::dirs::euid();
    let prefix = if uid == 0 { "root_" } else { "" };
    let limit = |name: &str| {
        parse_limit(&std::fs::read_to_string(format!(
            "/proc/sys/kernel/keys/{prefix}{name}"
        )))
    };
    #[cfg(target_os = "linux")]
    let (action_installed, install_presence) = (
        Some(crate::presence::polkit::action_path().exists()),
        format!(
            "as root: apt-get install polkitd && {} presence install --user {}",
            std::env::current_exe()
                .map(|p| crate::naming::shell_quote(&p.display().to_string()))
                .unwrap_or_else(|_| "keychain-auth".into()),
            std::env::var("USER").unwrap_or_else(|_| "$USER".into())
        ),
    );
    #[cfg(not(target_os = "linux"))]
    let (action_installed, install_presence) = (
        None,
        "set a login password (System Settings > Users & Groups), then keychain-auth presence required".to_string(),
    );
    Ok(Facts {
        daemon,
        names,
        notifications,
        tray,
        action_installed,
        install_presence,
        git: collect_git(),
        socket_dir,
        ptrace: Scope::read(),
        uid,
        key_users: std::fs::read_to_string("/proc/key-users"),
        key_limits: (limit("maxkeys"), limit("maxbytes")),
    })
}

/// `keychain-auth doctor`: prints the checks (JSON with `json`), returns 1 when one is
/// a problem.
pub(super) fn run(json: bool) -> Result<i32> {
    let checks = judge(&collect()?, &crate::state::server_name());
    let problems = checks.iter().filter(|c| c.status == Level::Problem).count();
    let warnings = checks.iter().filter(|c| c.status == Level::Warning).count();
    if json {
        let v = serde_json::json!({
            "ok": problems == 0,
            "problems": problems,
            "warnings": warnings,
            "checks": checks,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for c in &checks {
            println!("{:<8} {:<15} {}", c.status.word(), c.id, c.summary);
            if let Some(fix) = &c.fix {
                println!("{:<24} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            match (problems, warnings) {
                (0, 0) => "no problems found".to_string(),
                (0, w) => format!("no problems; {w} warning(s)"),
                (p, w) => format!("{p} problem(s), {w} warning(s): see each fix above"),
            }
        );
    }
    Ok(i32::from(problems > 0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn status(store: &str) -> Status {
        Status {
            server: "keychain-auth/0.1.0".into(),
            pid: 42,
            store: store.into(),
            socket: "/run/user/1000/keychain-auth/agent.sock".into(),
            tools: 0,
            pending: 0,
            audit_seq: 0,
            audit_head: String::new(),
            ptrace_scope: None,
            deputy_approvals: vec![],
            presence: None,
            paused: None,
            notifications: None,
            host: None,
        }
    }

    fn not_found() -> std::io::Result<String> {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    #[test]
    fn a_daemon_that_is_down_is_a_problem_with_start_as_the_fix() {
        let c = judge_daemon(&Daemon::NotRunning {
            socket: "/x/agent.sock".into(),
            error: "No such file or directory".into(),
            default_socket: None,
        });
        assert_eq!(c.status, Level::Problem);
        assert!(
            c.fix.as_deref().unwrap().starts_with("keychain-auth start"),
            "{c:?}"
        );
        let c = judge_daemon(&Daemon::NotRunning {
            socket: "/x/agent.sock".into(),
            error: "refused".into(),
            default_socket: Some("/run/ka/agent.sock".into()),
        });
        assert!(
            c.fix
                .as_deref()
                .unwrap()
                .contains("unset KEYCHAIN_AUTH_HOME"),
            "{c:?}"
        );
        assert_eq!(
            judge_daemon(&Daemon::Untrusted("mode 0755".into())).status,
            Level::Problem
        );
        assert_eq!(
            judge_daemon(&Daemon::Running(Box::new(status("keyutils")))).status,
            Level::Ok
        );
    }

    #[test]
    fn versions_must_match_and_a_strange_server_string_is_a_mismatch() {
        let s = status("keyutils");
        assert_eq!(
            judge_version(Some(&s), "keychain-auth/0.1.0").status,
            Level::Ok
        );
        for server in [
            "keychain-auth/0.0.9",
            "",
            "keychain-auth/0.1.0\n",
            "evil\u{1b}[2J",
        ] {
            let mut t = s.clone();
            t.server = server.into();
            let c = judge_version(Some(&t), "keychain-auth/0.1.0");
            assert_eq!(c.status, Level::Problem, "{server:?}");
            // Shown quoted: a control character cannot reach the terminal raw.
            assert!(!c.summary.contains('\u{1b}'), "{c:?}");
            assert!(c.fix.as_deref().unwrap().contains("keychain-auth start"));
        }
        let mut app = s.clone();
        app.server = "keychain-auth/9".into();
        app.host = Some("app".into());
        assert!(judge_version(Some(&app), "keychain-auth/0.1.0")
            .fix
            .unwrap()
            .contains("tray"));
        assert_eq!(judge_version(None, "x").status, Level::Info);
    }

    #[test]
    fn a_locked_store_says_how_to_unlock_it() {
        let s = status("secret-service");
        let locked = Names::Refused(
            ErrorCode::StoreUnavailable,
            "the Secret Service collection is locked (listing)".into(),
        );
        let c = judge_store(Some(&s), Some(&locked));
        assert_eq!(c.status, Level::Problem);
        assert!(c.fix.unwrap().contains("gnome-keyring-daemon --unlock"));
        let down = Names::Refused(ErrorCode::StoreUnavailable, "no bus".into());
        assert!(judge_store(Some(&s), Some(&down))
            .fix
            .unwrap()
            .contains("--store keyutils"));
        assert_eq!(
            judge_store(Some(&s), Some(&Names::Listed(3))).status,
            Level::Ok
        );
        assert_eq!(judge_store(None, None).status, Level::Info);
        assert_eq!(
            judge_store(Some(&s), Some(&Names::Failed("eof".into()))).status,
            Level::Problem
        );
    }

    #[test]
    fn notifications_need_the_actions_capability() {
        let mut s = status("keyutils");
        s.notifications = Some(true);
        s.host = Some("cli".into());
        let with = Ok(Some(vec!["body".into(), "actions".into()]));
        assert_eq!(judge_notifications(&with, Some(&s)).status, Level::Ok);
        let without: NotificationServer = Ok(Some(vec!["body".into(), "action".into()]));
        let c = judge_notifications(&without, Some(&s));
        assert_eq!(c.status, Level::Warning);
        assert!(c.fix.unwrap().contains("keychain-auth approve"));
        assert_eq!(
            judge_notifications(&Ok(None), Some(&s)).status,
            Level::Warning
        );
        assert_eq!(
            judge_notifications(&Err("no bus".into()), Some(&s)).status,
            Level::Warning
        );
        s.notifications = Some(false);
        let c = judge_notifications(&with, Some(&s));
        assert_eq!(c.status, Level::Info);
        assert!(c.fix.unwrap().contains("start --notify"));
        assert_eq!(judge_notifications(&Ok(None), None).status, Level::Info);
    }

    #[test]
    fn without_a_tray_host_the_app_shows_its_window() {
        let mut s = status("keyutils");
        s.host = Some("app".into());
        let c = judge_tray(&Ok(false), Some(&s));
        assert_eq!(c.status, Level::Warning);
        assert!(c.summary.contains("window"));
        assert_eq!(judge_tray(&Ok(false), None).status, Level::Info);
        assert_eq!(judge_tray(&Ok(true), None).status, Level::Ok);
        assert_eq!(judge_tray(&Err("x".into()), None).status, Level::Info);
    }

    #[test]
    fn presence_off_or_unavailable_says_how_to_set_it_up() {
        let install = "as root: keychain-auth presence install";
        assert_eq!(
            judge_presence(Some("polkit"), Some(true), install).status,
            Level::Ok
        );
        let c = judge_presence(Some("unavailable: no polkitd"), Some(false), install);
        assert_eq!(
            (c.status, c.fix.as_deref()),
            (Level::Problem, Some(install))
        );
        let c = judge_presence(
            Some("off: presence is off in config.json"),
            Some(true),
            install,
        );
        assert_eq!(c.status, Level::Warning);
        assert_eq!(c.fix.as_deref(), Some("keychain-auth presence required"));
        let c = judge_presence(Some("off: no action"), Some(false), install);
        assert_eq!(c.fix.as_deref(), Some(install));
        assert_eq!(
            judge_presence(Some(""), None, install).status,
            Level::Warning
        );
        assert_eq!(
            judge_presence(None, Some(false), install).status,
            Level::Warning
        );
        assert_eq!(judge_presence(None, None, install).status, Level::Info);
    }

    fn git(helpers: &[&str]) -> Git {
        Git {
            git: Some("/usr/bin/git".into()),
            helper: Some("/usr/local/bin/git-credential-keychain-auth".into()),
            beside_us: None,
            helpers: Ok(helpers.iter().map(|h| h.to_string()).collect()),
        }
    }

    #[test]
    fn git_must_find_the_helper_and_ask_it_first() {
        assert_eq!(judge_git(&git(&["keychain-auth"])).status, Level::Ok);
        assert_eq!(
            judge_git(&git(&["keychain-auth --wait 30"])).status,
            Level::Ok
        );
        // An empty value resets the list: what comes before it is not asked.
        assert_eq!(
            judge_git(&git(&["store", "", "keychain-auth"])).status,
            Level::Ok
        );
        let c = judge_git(&git(&["keychain-auth", ""]));
        assert_eq!(c.status, Level::Info);
        assert!(c.summary.contains("unset"), "{c:?}");
        let c = judge_git(&git(&["store", "keychain-auth"]));
        assert_eq!(c.status, Level::Warning);
        assert!(c.summary.contains("store"));
        assert_eq!(judge_git(&git(&["cache"])).status, Level::Info);
        let mut g = git(&[]);
        g.helper = None;
        g.beside_us = Some("/opt/ka bin/git-credential-keychain-auth".into());
        let c = judge_git(&g);
        assert_eq!(c.status, Level::Warning);
        assert!(c
            .fix
            .unwrap()
            .contains("'/opt/ka bin/git-credential-keychain-auth'"));
        g.git = None;
        assert_eq!(judge_git(&g).status, Level::Info);
        let mut g = git(&[]);
        g.helpers = Err("fatal: bad config line 1".into());
        assert_eq!(judge_git(&g).status, Level::Warning);
    }

    #[test]
    fn a_loose_socket_directory_is_a_problem_fixed_by_chmod() {
        let d = SocketDir {
            dir: "/run/user/1000/keychain-auth".into(),
            verdict: Err("/run/user/1000/keychain-auth has mode 0755".into()),
            found: Some((0o40755, true)),
        };
        let c = judge_socket_dir(&d);
        assert_eq!(c.status, Level::Problem);
        assert!(c
            .fix
            .unwrap()
            .ends_with("chmod 700 /run/user/1000/keychain-auth"));
        let theirs = SocketDir {
            verdict: Err("belongs to uid 1001".into()),
            found: Some((0o40700, false)),
            ..d.clone()
        };
        assert!(judge_socket_dir(&theirs).fix.unwrap().contains("rm -r"));
        let fine = SocketDir {
            verdict: Ok(()),
            found: Some((0o40700, true)),
            ..d.clone()
        };
        let c = judge_socket_dir(&fine);
        assert_eq!((c.status, c.fix), (Level::Ok, None));
        assert!(c.summary.contains("0700"));
        let absent = SocketDir {
            verdict: Ok(()),
            found: None,
            ..d
        };
        assert_eq!(judge_socket_dir(&absent).status, Level::Info);
    }

    #[test]
    fn ptrace_is_judged_by_scope_for_every_value() {
        assert_eq!(judge_ptrace(&Scope::Yama(2)).status, Level::Ok);
        assert_eq!(judge_ptrace(&Scope::Yama(3)).status, Level::Ok);
        assert_eq!(judge_ptrace(&Scope::NotLinux).status, Level::Ok);
        for s in [Scope::Yama(0), Scope::Yama(1)] {
            let c = judge_ptrace(&s);
            assert_eq!(c.status, Level::Warning);
            assert!(c.fix.unwrap().contains("ptrace_scope=2"));
        }
        assert_eq!(judge_ptrace(&Scope::NoYama).status, Level::Warning);
        let garbage = Scope::parse(Ok("banana\n".into()));
        assert_eq!(judge_ptrace(&garbage).status, Level::Warning);
        assert_eq!(
            judge_ptrace(&Scope::parse(not_found())).status,
            Level::Warning
        );
    }

    #[test]
    fn key_users_lines_are_read_for_our_uid_only_and_garbage_is_refused() {
        let text = "    0:    10 9/9 4/1000000 280233/25000000\n 1000:     3 3/3 3/200 76/20000\n";
        assert_eq!(
            parse_key_users(text, 1000),
            Ok(Some(KeyUse {
                keys: 3,
                max_keys: 200,
                bytes: 76,
                max_bytes: 20000
            }))
        );
        assert_eq!(parse_key_users(text, 1001), Ok(None));
        assert_eq!(parse_key_users("", 0), Ok(None));
        // Another user's garbage is not ours to judge.
        assert_eq!(parse_key_users("junk\n:::\n 7: x\n", 1000), Ok(None));
        for bad in [
            "1000: 3 3/3 3/200",
            "1000: 3 3/3 3/200 76/20000 extra",
            "1000: 3 3/3 3-200 76/20000",
            "1000: 3 3/3 /200 76/20000",
            "1000: 3 3/3 3/200 76/99999999999999999999999",
            "1000: 3 3/3 -1/200 76/20000",
            "1000:",
        ] {
            assert!(parse_key_users(bad, 1000).is_err(), "{bad:?}");
        }
        assert_eq!(parse_limit(&Ok("200\n".into())), Some(200));
        assert_eq!(parse_limit(&Ok("two hundred".into())), None);
        assert_eq!(parse_limit(&not_found()), None);
    }

    #[test]
    fn the_key_quota_is_judged_only_for_keyutils_and_full_is_a_problem() {
        let quota = |line: &str| {
            judge_key_quota(
                Some("keyutils"),
                1000,
                &Ok(line.into()),
                (Some(200), Some(20000)),
            )
        };
        assert_eq!(quota("1000: 3 3/3 3/200 76/20000").status, Level::Ok);
        assert_eq!(quota("1000: 3 3/3 185/200 76/20000").status, Level::Warning);
        let c = quota("1000: 3 3/3 200/200 76/20000");
        assert_eq!(c.status, Level::Problem);
        assert!(c.fix.unwrap().contains("kernel.keys.maxkeys"));
        assert_eq!(
            quota("1000: 3 3/3 3/200 20000/20000").status,
            Level::Problem
        );
        // A limit of 0 with keys in use is full, not a division by zero.
        assert_eq!(quota("1000: 1 1/1 1/0 1/0").status, Level::Problem);
        assert_eq!(quota("1000: garbage").status, Level::Warning);
        // No line: no keys yet, measured against the sysctls.
        let c = quota("");
        assert_eq!(c.status, Level::Ok);
        assert!(c.summary.contains("0/200"), "{c:?}");
        let none = judge_key_quota(Some("keyutils"), 1000, &Ok(String::new()), (None, None));
        assert_eq!(none.status, Level::Info);
        assert_eq!(
            judge_key_quota(Some("keyutils"), 1000, &not_found(), (None, None)).status,
            Level::Warning
        );
        let root = judge_key_quota(
            Some("keyutils"),
            0,
            &Ok("0: 1 1/1 10/10 1/10".into()),
            (None, None),
        );
        assert!(root.fix.unwrap().contains("root_maxkeys"));
        assert_eq!(
            judge_key_quota(Some("secret-service"), 1000, &not_found(), (None, None)).status,
            Level::Info
        );
        assert_eq!(
            judge_key_quota(None, 1000, &not_found(), (None, None)).status,
            Level::Info
        );
    }

    #[test]
    fn every_check_is_named_once() {
        let f = Facts {
            daemon: Daemon::NotRunning {
                socket: "/x/agent.sock".into(),
                error: "absent".into(),
                default_socket: None,
            },
            names: None,
            notifications: Ok(None),
            tray: Ok(false),
            action_installed: Some(false),
            install_presence: "install".into(),
            git: Git {
                git: None,
                helper: None,
                beside_us: None,
                helpers: Ok(vec![]),
            },
            socket_dir: SocketDir {
                dir: "/x".into(),
                verdict: Ok(()),
                found: None,
            },
            ptrace: Scope::Yama(1),
            uid: 1000,
            key_users: not_found(),
            key_limits: (None, None),
        };
        let checks = judge(&f, "keychain-auth/0.1.0");
        let mut ids: Vec<&str> = checks.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), checks.len());
        assert_eq!(checks.len(), 10);
        assert!(checks.iter().any(|c| c.status == Level::Problem));
        let v = serde_json::to_value(&checks[0]).expect("json");
        assert_eq!(v["status"], "problem");
        assert_eq!(v["id"], "daemon");
    }
}
