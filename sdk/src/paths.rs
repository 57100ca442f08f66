//! Where keychain-auth keeps its socket and files. The daemon and every client compute the
//! paths here, so they always agree. Creating and checking the directories is the
//! daemon's job (`keychain_auth::dirs`); this module only names them.
//!
//! | | macOS | Linux |
//! |---|---|---|
//! | socket | `~/Library/Application Support/keychain-auth/agent.sock` | `$XDG_RUNTIME_DIR/keychain-auth/agent.sock` |
//! | config.json, pending.json | `~/Library/Application Support/keychain-auth/` | `$XDG_CONFIG_HOME/keychain-auth/` |
//! | audit.log | `~/Library/Logs/keychain-auth/` | `$XDG_STATE_HOME/keychain-auth/` |
//!
//! `KEYCHAIN_AUTH_HOME=DIR` puts all of them in `DIR`. `KEYCHAIN_AUTH_SOCKET` overrides the
//! socket path alone (for clients). On Linux without `XDG_RUNTIME_DIR`, the socket goes
//! beside the audit log, in `$XDG_STATE_HOME/keychain-auth/`: never a predictable path in
//! a directory other users can write (such as `/tmp`), where one of them could create the
//! directory first and listen in the daemon's place. Clients check the directory before
//! they connect ([`crate::verify`]).

use std::path::{Path, PathBuf};

/// Environment variable that puts every file in one directory.
pub const HOME_ENV: &str = "KEYCHAIN_AUTH_HOME";
/// Environment variable that names the socket (clients only).
pub const SOCKET_ENV: &str = "KEYCHAIN_AUTH_SOCKET";
/// The application's directory name.
pub const APP_DIR: &str = "keychain-auth";

/// Every path keychain-auth uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Directory holding the socket (created 0700, checked before use).
    pub socket_dir: PathBuf,
    /// The Unix socket.
    pub socket: PathBuf,
    /// Directory holding config.json and pending.json.
    pub config_dir: PathBuf,
    /// Approved tools and settings.
    pub config: PathBuf,
    /// Unknown binaries waiting for a decision.
    pub pending: PathBuf,
    /// Directory holding the audit log.
    pub state_dir: PathBuf,
    /// The hash-chained audit log.
    pub audit: PathBuf,
    /// The background daemon's diagnostics (written by `keychain-auth start`).
    pub daemon_log: PathBuf,
}

/// Why the paths could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError(pub String);

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PathError {}

impl Paths {
    /// Paths from the process environment.
    pub fn from_env() -> Result<Paths, PathError> {
        Paths::resolve(|k| {
            std::env::var_os(k)
                .map(PathBuf::from)
                .filter(|p| !p.as_os_str().is_empty())
        })
    }

    /// Everything in one directory, as `KEYCHAIN_AUTH_HOME` does.
    pub fn in_dir(dir: &Path) -> Paths {
        Paths {
            socket_dir: dir.to_path_buf(),
            socket: dir.join("agent.sock"),
            config_dir: dir.to_path_buf(),
            config: dir.join("config.json"),
            pending: dir.join("pending.json"),
            state_dir: dir.to_path_buf(),
            audit: dir.join("audit.log"),
            daemon_log: dir.join("daemon.log"),
        }
    }

    /// Paths from an environment lookup function (testable without touching the process).
    pub fn resolve(env: impl Fn(&str) -> Option<PathBuf>) -> Result<Paths, PathError> {
        if let Some(dir) = env(HOME_ENV) {
            if !dir.is_absolute() {
                return Err(PathError(format!(
                    "{HOME_ENV}={} is not an absolute path",
                    dir.display()
                )));
            }
            return Ok(Paths::in_dir(&dir));
        }
        let home = env("HOME").filter(|h| h.is_absolute()).ok_or_else(|| {
            PathError(format!(
                "HOME is not set to an absolute path; set HOME or {HOME_ENV}"
            ))
        })?;
        Ok(platform_paths(&home, &env))
    }

    /// The socket a client should connect to: `KEYCHAIN_AUTH_SOCKET` if set, else the
    /// daemon's socket path.
    pub fn client_socket() -> Result<PathBuf, PathError> {
        if let Some(s) = std::env::var_os(SOCKET_ENV).filter(|s| !s.is_empty()) {
            return Ok(PathBuf::from(s));
        }
        Paths::from_env().map(|p| p.socket)
    }
}

#[cfg(target_os = "macos")]
fn platform_paths(home: &Path, _env: &impl Fn(&str) -> Option<PathBuf>) -> Paths {
    let support = home.join("Library/Application Support").join(APP_DIR);
    let logs = home.join("Library/Logs").join(APP_DIR);
    Paths {
        socket_dir: support.clone(),
        socket: support.join("agent.sock"),
        config_dir: support.clone(),
        config: support.join("config.json"),
        pending: support.join("pending.json"),
        audit: logs.join("audit.log"),
        daemon_log: logs.join("daemon.log"),
        state_dir: logs,
    }
}

#[cfg(not(target_os = "macos"))]
fn platform_paths(home: &Path, env: &impl Fn(&str) -> Option<PathBuf>) -> Paths {
    let xdg = |var: &str, default: &str| {
        env(var)
            .filter(|p| p.is_absolute())
            .unwrap_or_else(|| home.join(default))
            .join(APP_DIR)
    };
    let config_dir = xdg("XDG_CONFIG_HOME", ".config");
    let state_dir = xdg("XDG_STATE_HOME", ".local/state");
    let socket_dir = match env("XDG_RUNTIME_DIR").filter(|p| p.is_absolute()) {
        Some(run) => run.join(APP_DIR),
        None => state_dir.clone(),
    };
    Paths {
        socket: socket_dir.join("agent.sock"),
        socket_dir,
        config: config_dir.join("config.json"),
        pending: config_dir.join("pending.json"),
        config_dir,
        audit: state_dir.join("audit.log"),
        daemon_log: state_dir.join("daemon.log"),
        state_dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let map: HashMap<String, PathBuf> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn home_override_puts_everything_in_one_dir() {
        let p = Paths::resolve(env(&[(HOME_ENV, "/x/ka"), ("HOME", "/home/u")])).expect("paths");
        assert_eq!(p.socket, PathBuf::from("/x/ka/agent.sock"));
        assert_eq!(p.config, PathBuf::from("/x/ka/config.json"));
        assert_eq!(p.pending, PathBuf::from("/x/ka/pending.json"));
        assert_eq!(p.audit, PathBuf::from("/x/ka/audit.log"));
    }

    #[test]
    fn relative_home_override_is_refused() {
        assert!(Paths::resolve(env(&[(HOME_ENV, "rel")])).is_err());
        assert!(Paths::resolve(env(&[])).is_err());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn linux_uses_xdg_dirs() {
        let p = Paths::resolve(env(&[
            ("HOME", "/home/u"),
            ("XDG_RUNTIME_DIR", "/run/user/1000"),
            ("XDG_CONFIG_HOME", "/cfg"),
        ]))
        .expect("paths");
        assert_eq!(
            p.socket,
            PathBuf::from("/run/user/1000/keychain-auth/agent.sock")
        );
        assert_eq!(p.config, PathBuf::from("/cfg/keychain-auth/config.json"));
        assert_eq!(
            p.audit,
            PathBuf::from("/home/u/.local/state/keychain-auth/audit.log")
        );
        // Without XDG_RUNTIME_DIR: beside the audit log, never in /tmp.
        let p = Paths::resolve(env(&[("HOME", "/home/u")])).expect("paths");
        assert_eq!(
            p.socket,
            PathBuf::from("/home/u/.local/state/keychain-auth/agent.sock")
        );
    }
}
