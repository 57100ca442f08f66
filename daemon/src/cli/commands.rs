//! What the commands do beyond one admin request: connecting (with the checks of
//! [`crate::daemon_check`]), storing a value, reading one from the terminal or stdin,
//! collecting paged listings, `status` and `audit verify`.

use super::output;
use crate::audit;
use anyhow::{anyhow, bail, Context, Result};
use keychain_auth_sdk::paths::{Paths, HOME_ENV};
use keychain_auth_sdk::protocol::{Request, Response};
use keychain_auth_sdk::{Client, Secret};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// Connects to the daemon: the socket and its listener must be the user's own (the
/// SDK checks), and the listener must run keychain-auth where the kernel shows it
/// ([`crate::daemon_check`]).
pub(super) fn connect() -> Result<Client> {
    let paths = Paths::from_env()?;
    // The client error stays in the chain: the exit status is chosen from it.
    crate::daemon_check::connect(&paths.socket).map_err(|e| match (&e, other_home()) {
        (keychain_auth_sdk::ClientError::NotRunning { .. }, Some((home, socket))) => anyhow!(e)
            .context(format!(
                "no daemon for {HOME_ENV}={}; one runs for the default home (socket {}): unset {HOME_ENV} to use it, or `keychain-auth start` with {HOME_ENV} set to run a second one for this home",
                home.display(),
                socket.display()
            )),
        _ => anyhow!(e),
    })
}

/// When `KEYCHAIN_AUTH_HOME` is set and a daemon answers at the socket of the default
/// home (the variable unset) but not at this home's: this home's directory and the
/// default socket. A likely mistake (a variable left set from a test), named by the
/// commands that cannot reach a daemon and by `start`.
pub(super) fn other_home() -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var_os(HOME_ENV).filter(|h| !h.is_empty())?;
    let ours = Paths::from_env().ok()?;
    let default = Paths::resolve(|k| {
        (k != HOME_ENV)
            .then(|| std::env::var_os(k))
            .flatten()
            .map(PathBuf::from)
            .filter(|p| !p.as_os_str().is_empty())
    })
    .ok()?;
    let answers = |p: &Path| std::os::unix::net::UnixStream::connect(p).is_ok();
    (default.socket != ours.socket && !answers(&ours.socket) && answers(&default.socket))
        .then(|| (PathBuf::from(home), default.socket))
}

/// Stores a value. On Linux the CLI writes it to the daemon's store itself and then
/// tells the daemon, which records it: the value never crosses the socket, so a program
/// of the user's that listens there in the daemon's place (which the CLI cannot always
/// tell from the daemon, see [`crate::daemon_check`]) learns the name, not the value.
/// The Linux stores have no per-program boundary, so this costs no isolation.
#[cfg(target_os = "linux")]
pub(super) fn store_value(name: &str, value: Secret) -> Result<()> {
    use crate::config::{Config, StoreChoice, DEFAULT_NAMESPACE};
    let paths = Paths::from_env()?;
    let mut client = connect()?;
    let store = match client
        .request(&Request::Status {})
        .map_err(|e| anyhow!(e))?
    {
        Response::Status(s) => s.store,
        other => bail!("unexpected answer: {other:?}"),
    };
    let choice = match store.as_str() {
        "secret-service" => StoreChoice::SecretService,
        "keyutils" => {
            // Possess @u, so that a key the daemon created can be replaced.
            if let Err(e) = crate::store::keyutils::link_user_keyring_into_process_keyring() {
                tracing::debug!("no process keyring: {e}");
            }
            StoreChoice::Keyutils
        }
        other => bail!("the daemon uses the {other} store, which keychain-auth set cannot write"),
    };
    let namespace = Config::load(&paths.config)?
        .map(|c| c.namespace)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime
        .block_on(async {
            let (store, _) = crate::store::open(choice, &namespace).await?;
            store.set(name, &value).await
        })
        .map_err(|e| anyhow!("cannot write the {store} store the daemon uses: {e}"))?;
    client
        .request(&Request::Stored {
            name: name.to_string(),
        })
        .map_err(|e| anyhow!("{name:?} was stored, but the daemon did not record it: {e}"))?;
    Ok(())
}

/// Stores a value through the daemon (macOS: the Keychain item must be the app's own).
#[cfg(not(target_os = "linux"))]
pub(super) fn store_value(name: &str, value: Secret) -> Result<()> {
    connect()?.set(name, value).map_err(|e| anyhow!(e))
}

pub(super) fn admin(req: Request) -> Result<Response> {
    connect()?.request(&req).map_err(|e| anyhow!(e))
}

/// Sends a request that may widen what is approved: the daemon proves the person's
/// presence before it applies it. In a terminal, with polkit, a text agent asks for the
/// password here ([`super::tty_agent`]); the wait lasts as long as the daemon's.
pub(super) fn widening(req: Request) -> Result<Response> {
    let mut client = connect()?;
    let presence = presence_of(&mut client)?;
    #[cfg(target_os = "linux")]
    let _agent = agent_if_polkit(&client, &presence)?;
    if let Some(off) = presence.strip_prefix("off: ") {
        eprintln!("keychain-auth: WARNING: {off}");
    }
    // The daemon gives up on the proof after at most 600 s.
    client
        .set_timeout(Some(std::time::Duration::from_secs(660)))
        .map_err(|e| anyhow!(e))?;
    client.request(&req).map_err(|e| anyhow!(e))
}

/// How the daemon proves presence (`Status::presence`).
fn presence_of(client: &mut Client) -> Result<String> {
    match client
        .request(&Request::Status {})
        .map_err(|e| anyhow!(e))?
    {
        Response::Status(s) => Ok(s.presence.unwrap_or_default()),
        other => bail!("unexpected answer: {other:?}"),
    }
}

/// A text agent for the daemon on this terminal, when the daemon proves presence with
/// polkit and there is a terminal.
#[cfg(target_os = "linux")]
fn agent_if_polkit(client: &Client, presence: &str) -> Result<Option<super::tty_agent::TtyAgent>> {
    if presence != "polkit" {
        return Ok(None);
    }
    let pid = super::tty_agent::daemon_pid(client)?;
    let agent = super::tty_agent::TtyAgent::start(pid)?;
    if agent.is_some() {
        eprintln!("keychain-auth: confirm with your password; the prompt names the change");
    }
    Ok(agent)
}

/// For `get` of a secret marked `confirm: always` (config.json's `protected`): a text
/// agent on this terminal, and a wait as long as the daemon's for the person.
#[cfg(target_os = "linux")]
pub(super) fn agent_for_protected(
    client: &mut Client,
    name: &str,
) -> Result<Option<super::tty_agent::TtyAgent>> {
    let paths = Paths::from_env()?;
    let protected = crate::config::Config::load(&paths.config)
        .ok()
        .flatten()
        .is_some_and(|c| c.is_protected(name));
    if !protected {
        return Ok(None);
    }
    client
        .set_timeout(Some(std::time::Duration::from_secs(660)))
        .map_err(|e| anyhow!(e))?;
    let presence = presence_of(client)?;
    agent_if_polkit(client, &presence)
}

/// Collects every page of a paged admin listing.
pub(super) fn all_pages<T>(
    mut fetch: impl FnMut(Option<u64>) -> Result<(Vec<T>, Option<u64>)>,
) -> Result<Vec<T>> {
    let mut all = Vec::new();
    let mut offset = None;
    loop {
        let (items, next) = fetch(offset)?;
        all.extend(items);
        match next {
            Some(n) if Some(n) != offset => offset = Some(n),
            _ => return Ok(all),
        }
    }
}

pub(super) fn status(json: bool) -> Result<i32> {
    let paths = Paths::from_env()?;
    let mut c = match crate::daemon_check::connect(&paths.socket) {
        Ok(c) => c,
        Err(e @ keychain_auth_sdk::ClientError::Untrusted(_)) => bail!(e),
        Err(e) => {
            let other = other_home();
            if json {
                let v = serde_json::json!({
                    "running": false,
                    "error": e.to_string(),
                    "default_home_socket": other.as_ref().map(|(_, s)| s.display().to_string()),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("keychain-auth is not running ({e})");
            }
            if let Some((home, socket)) = other {
                eprintln!(
                    "keychain-auth: no daemon for {HOME_ENV}={}; one runs for the default home (socket {}): unset {HOME_ENV} to use it",
                    home.display(),
                    socket.display()
                );
            }
            return Ok(3);
        }
    };
    match c.request(&Request::Status {}).map_err(|e| anyhow!(e))? {
        Response::Status(s) if json => {
            let mut v = serde_json::to_value(&s)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("running".into(), true.into());
                o.insert("config".into(), paths.config.display().to_string().into());
                o.insert("audit".into(), paths.audit.display().to_string().into());
            }
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Response::Status(s) => {
            println!("keychain-auth is running");
            println!("  server:   {}", s.server);
            println!("  pid:      {}", s.pid);
            if let Some(h) = &s.host {
                println!("  host:     {}", output::host(h));
            }
            if let Some(n) = s.notifications {
                println!(
                    "  notify:   {}",
                    output::notifications(n, s.host.as_deref())
                );
            }
            if let Some(p) = s.paused {
                println!("  paused:   {}", output::paused(p));
            }
            println!("  store:    {}", s.store);
            println!("  socket:   {}", s.socket);
            println!("  tools:    {} approved, {} pending", s.tools, s.pending);
            println!("  config:   {}", paths.config.display());
            println!(
                "  audit:    {} ({} events)",
                paths.audit.display(),
                s.audit_seq
            );
            if let Some(p) = &s.ptrace_scope {
                println!(
                    "  ptrace:   {}",
                    crate::ptrace::Scope::from_wire(p).describe()
                );
            }
            if let Some(p) = &s.presence {
                match p.split_once(": ") {
                    Some((state, why)) => {
                        println!("  presence: {state}");
                        eprintln!("keychain-auth: WARNING: {why}");
                    }
                    None => {
                        println!("  presence: {p} (each widening decision needs your password)")
                    }
                }
            }
            if !s.deputy_approvals.is_empty() {
                println!(
                    "  deputies: {} approved itself; a deputy's approval no longer serves whoever runs it: each program that asks through it is asked for once (docs/git.md); `keychain-auth revoke` it when done",
                    s.deputy_approvals.join(", ")
                );
            }
            Ok(0)
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

pub(super) fn audit_verify() -> Result<i32> {
    let paths = Paths::from_env()?;
    // Ask the running daemon where its chain ends first, so lines cut from the end show.
    let anchor = crate::daemon_check::connect(&paths.socket)
        .ok()
        .and_then(|mut c| match c.request(&Request::Status {}) {
            Ok(Response::Status(s)) => Some((s.audit_seq, s.audit_head)),
            _ => None,
        });
    match audit::verify_with(&paths.audit, anchor.clone()) {
        Ok(r) => {
            println!(
                "audit log OK: {} lines in {} file(s), last sequence {}",
                r.lines,
                r.files.len(),
                r.last_seq
            );
            if anchor.is_none() {
                println!("(the daemon is not running, so lines removed from the very end cannot be detected)");
            }
            Ok(0)
        }
        Err(f) => {
            eprintln!("audit log FAILED verification: {f}");
            Ok(1)
        }
    }
}

/// Reads a secret value: a hidden prompt on a terminal, else all of stdin as given.
pub(super) fn read_value(name: &str) -> Result<Secret> {
    let value = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Value for {name}: ")).context("reading the value")?
    } else {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading the value from stdin")?;
        String::from_utf8(buf).map_err(|e| {
            keychain_auth_sdk::secret::wipe(&mut e.into_bytes());
            anyhow!("the value is not UTF-8 text; keychain-auth stores text values")
        })?
    };
    if value.is_empty() {
        bail!("the value is empty; nothing was stored");
    }
    let limit = keychain_auth_sdk::frame::MAX_FRAME - name.len() - 64;
    if value.len() > limit {
        let n = value.len();
        drop(Secret::new(value));
        bail!(
            "the value is {n} bytes; the limit for this name is {limit} bytes (64 KiB per message)"
        );
    }
    Ok(Secret::new(value))
}

/// `presence install`: polkit's action for keychain-auth (Linux, root only).
#[cfg(target_os = "linux")]
pub(super) fn presence_install(users: Vec<String>) -> Result<String> {
    crate::presence::polkit::install(users)
}

/// `presence install` elsewhere: nothing to install.
#[cfg(not(target_os = "linux"))]
pub(super) fn presence_install(_users: Vec<String>) -> Result<String> {
    Ok("nothing to install: LocalAuthentication is part of macOS".into())
}
