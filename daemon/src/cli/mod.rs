//! The `keychain-auth` command line. Daemon control (`start`, `stop`, `status`, `pause`,
//! `resume`), admin commands sent over the socket (`approve`, `deny`, `undeny`, `revoke`, `register`,
//! `upgrade`, `list`, `list --denied`, `list-pending`), secret management (`set`, `delete`, `names`, `protect`), proof
//! of presence (`presence`; `tty_agent` asks for the password in the terminal), the
//! audit log (`audit`, `audit verify`), starting at login (`service`), and fitting the
//! shell (`completions`, `man`: [`shell`]). `doctor` checks the setup ([`doctor`]). Errors print their whole chain; the exit status
//! is the refusal's ([`keychain_auth_sdk::exit`]).
//!
//! [`args`]: the arguments (clap); [`commands`]: what talks to the daemon and the files;
//! [`output`]: what is printed for a person. This file: `main` and the one `match`.
//! Not here: what the daemon does with a request (`crate::handlers`) and starting it
//! (`crate::lifecycle`).

mod args;
mod commands;
mod doctor;
mod output;
mod shell;
#[cfg(target_os = "linux")]
mod tty_agent;

pub use args::Cli;

use crate::audit;
use anyhow::{anyhow, bail, Context, Result};
use args::{AuditCmd, Cmd, PresenceCmd, ServiceCmd};
use clap::Parser;
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{validate_name, Request, Response};
use std::io::{IsTerminal, Write};

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("keychain-auth: {e:#}");
            exit_status(&e)
        }
    }
}

/// The exit status of a failed command: the daemon's refusal, or its absence, has its
/// own ([`keychain_auth_sdk::exit`]: 3 not running, 4 not approved, 5 denied, 6 out of
/// scope, 7 not found); anything else is 1.
fn exit_status(e: &anyhow::Error) -> i32 {
    e.chain()
        .find_map(|c| c.downcast_ref::<keychain_auth_sdk::ClientError>())
        .map_or(
            keychain_auth_sdk::exit::FAILURE,
            keychain_auth_sdk::exit::for_error,
        )
        .into()
}

/// Logs to stderr, quiet (`warn`) unless `RUST_LOG` says otherwise. Used by the CLI and
/// the tray app.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Each line starts with its time (daemon.log keeps them); colours only on a terminal.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

/// `start` with `KEYCHAIN_AUTH_HOME` set while a daemon runs for the default home:
/// starting a second one is allowed (tests, a separate set of approvals), but said.
fn note_other_home() {
    if let Some((home, socket)) = commands::other_home() {
        eprintln!(
            "keychain-auth: note: starting a daemon for KEYCHAIN_AUTH_HOME={}, while one already runs for the default home (socket {}); programs without that variable set keep using the default one. Unset KEYCHAIN_AUTH_HOME if you meant that one",
            home.display(),
            socket.display()
        );
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Cmd::Start {
            foreground: true,
            store,
            notify,
        } => {
            // Not when `start` runs it in the background (stderr is daemon.log): that
            // `start` said it already.
            if std::io::stderr().is_terminal() {
                note_other_home();
            }
            crate::lifecycle::run_foreground(store, notify)?;
        }
        Cmd::Start {
            foreground: false,
            store,
            notify,
        } => {
            note_other_home();
            println!("{}", crate::lifecycle::start_background(store, notify)?)
        }
        Cmd::Stop => {
            // Asked first: only when no daemon answers for this home.
            let other = commands::other_home();
            println!("{}", crate::lifecycle::stop()?);
            if let Some((home, socket)) = other {
                eprintln!(
                    "keychain-auth: no daemon for KEYCHAIN_AUTH_HOME={}; one runs for the default home (socket {}): unset KEYCHAIN_AUTH_HOME to stop it",
                    home.display(),
                    socket.display()
                );
            }
        }
        Cmd::Service { action } => match action {
            ServiceCmd::Install { notify, no_start } => {
                println!("{}", crate::service::install(notify, !no_start)?)
            }
            ServiceCmd::Uninstall => println!("{}", crate::service::uninstall()?),
            ServiceCmd::Print { notify } => {
                let (path, text) = crate::service::file_for(&crate::service::spec(notify)?)?;
                println!("# {}\n{text}", path.display());
            }
        },
        Cmd::Status { json } => return commands::status(json),
        Cmd::Pause => {
            commands::admin(Request::SetPaused { paused: true })?;
            println!("keychain-auth is paused: every secret request is refused until `keychain-auth resume`");
        }
        Cmd::Resume => {
            commands::widening(Request::SetPaused { paused: false })?;
            println!("keychain-auth answers secret requests again");
        }
        Cmd::Protect { name: None } => {
            let paths = Paths::from_env()?;
            let protected = crate::config::Config::load(&paths.config)?
                .map(|c| c.protected)
                .unwrap_or_default();
            if protected.is_empty() {
                println!("no secret is protected");
            }
            for n in protected {
                println!("{n}  (confirm: always)");
            }
        }
        Cmd::Protect { name: Some(name) } => {
            commands::admin(Request::Protect {
                name: name.clone(),
                protect: true,
            })?;
            println!("protected {name}: each read now needs your password");
        }
        Cmd::Unprotect { name } => {
            commands::widening(Request::Protect {
                name: name.clone(),
                protect: false,
            })?;
            println!("{name} is no longer protected");
        }
        Cmd::Presence { action } => match action {
            None => match commands::admin(Request::Status {})? {
                Response::Status(s) => {
                    println!(
                        "presence: {}",
                        s.presence.unwrap_or_else(|| "unknown".into())
                    )
                }
                other => bail!("unexpected answer: {other:?}"),
            },
            Some(PresenceCmd::Install { users }) => {
                println!("{}", commands::presence_install(users)?)
            }
            Some(c) => {
                let word = if matches!(c, PresenceCmd::Off) {
                    "off"
                } else {
                    "required"
                };
                commands::widening(Request::SetPresence {
                    presence: word.into(),
                })?;
                println!("presence: {word}");
            }
        },
        Cmd::ListPending { json } => {
            let pending = commands::all_pages(|offset| {
                match commands::admin(Request::ListPending { offset })? {
                    Response::Pending { pending, next } => Ok((pending, next)),
                    other => bail!("unexpected answer: {other:?}"),
                }
            })?;
            output::print_listing(
                &pending,
                json,
                "no binaries are waiting for approval",
                output::print_pending,
            )?;
        }
        Cmd::Approve {
            hash,
            grant,
            add_scopes,
            remove_scopes,
            as_new,
        } => {
            if !as_new {
                if let Some((full, u)) = update_of_pending(&hash)? {
                    keep_access_instead(&full, &u)?;
                    return Ok(0);
                }
            }
            let resp = commands::widening(Request::Approve {
                hash,
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                unbound_get: grant.allow_unbound_get,
                only_through: grant.only_through,
                lasts: grant.lasts,
                add_scopes,
                remove_scopes,
                follow: grant.follow,
                as_new,
            })?;
            output::print_tool("approved", resp);
        }
        Cmd::Register { path, grant } => {
            let abs = std::path::absolute(&path).with_context(|| format!("resolving {path}"))?;
            let resp = commands::widening(Request::Register {
                path: abs.display().to_string(),
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                unbound_get: grant.allow_unbound_get,
                only_through: grant.only_through,
                lasts: grant.lasts,
                follow: grant.follow,
            })?;
            output::print_tool("registered", resp);
        }
        Cmd::Deny { hash } => {
            commands::admin(Request::Deny { hash: hash.clone() })?;
            println!("denied {hash}");
        }
        Cmd::Undeny { hash } => {
            commands::widening(Request::Undeny { hash: hash.clone() })?;
            println!("lifted the deny of {hash}: it is asked about again when it next asks");
        }
        Cmd::Revoke { tool } => {
            commands::admin(Request::Revoke { tool: tool.clone() })?;
            println!("revoked {tool}");
        }
        Cmd::Upgrade { path } => {
            let abs = std::path::absolute(&path).with_context(|| format!("resolving {path}"))?;
            match commands::widening(Request::Upgrade {
                path: abs.display().to_string(),
                expect: None,
            })? {
                Response::Tool {
                    tool,
                    previous_hash,
                    ..
                } if previous_hash.as_deref() == Some(tool.hash.as_str()) => {
                    println!("{} is already pinned to {}", tool.label, tool.hash)
                }
                Response::Tool {
                    tool,
                    previous_hash,
                    ..
                } => println!(
                    "upgraded {}: {} -> {}",
                    tool.label,
                    previous_hash.unwrap_or_default(),
                    tool.hash
                ),
                other => bail!("unexpected answer: {other:?}"),
            }
        }
        Cmd::List { json, denied: true } => {
            let denied = commands::all_pages(|offset| {
                match commands::admin(Request::ListDenied { offset })? {
                    Response::DenyRules { denied, next } => Ok((denied, next)),
                    other => bail!("unexpected answer: {other:?}"),
                }
            })?;
            output::print_listing(&denied, json, "no binary is denied", output::print_denied)?;
        }
        Cmd::List { json, .. } => {
            let tools = commands::all_pages(|offset| {
                match commands::admin(Request::ListTools { offset })? {
                    Response::Tools { tools, next } => Ok((tools, next)),
                    other => bail!("unexpected answer: {other:?}"),
                }
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else if tools.is_empty() {
                println!("no tools are approved");
            } else {
                for t in tools {
                    output::print_tool_lines(&t);
                }
            }
        }
        Cmd::Get { name, wait } => {
            validate_name(&name).with_context(|| format!("cannot read {name:?}"))?;
            let mut client = commands::connect()?;
            // A protected secret is read once the person proved it: ask on this terminal.
            #[cfg(target_os = "linux")]
            let _agent = commands::agent_for_protected(&mut client, &name)?;
            let wait_ms = wait.map(|w| w.saturating_mul(1000));
            let mut answer = client.request(&Request::GetForParent {
                name: name.clone(),
                wait_ms: None,
            });
            // Not approved yet, and asked to wait: the first answer named the program and
            // the command that approves it; say so now, then wait for the decision.
            if let (Some(ms), Err(keychain_auth_sdk::ClientError::Daemon(body))) =
                (wait_ms, &answer)
            {
                if body.code == keychain_auth_sdk::ErrorCode::NotApproved && ms > 0 {
                    eprintln!("{}", output::waiting(ms / 1000, &body.message));
                    client
                        .set_timeout(Some(
                            std::time::Duration::from_millis(ms)
                                + keychain_auth_sdk::client::DEFAULT_TIMEOUT,
                        ))
                        .map_err(|e| anyhow!(e))?;
                    answer = client.request(&Request::GetForParent {
                        name: name.clone(),
                        wait_ms,
                    });
                }
            }
            match answer.map_err(|e| anyhow!(e))? {
                Response::Secret { value, .. } => {
                    // Exactly the value, like `secret-tool lookup`; a newline only for a
                    // person reading a terminal.
                    let mut out = std::io::stdout().lock();
                    out.write_all(value.expose().as_bytes())?;
                    if out.is_terminal() {
                        out.write_all(b"\n")?;
                    }
                    out.flush()?;
                }
                other => bail!("unexpected answer: {other:?}"),
            }
        }
        Cmd::Set { name } => {
            validate_name(&name).with_context(|| format!("cannot store {name:?}"))?;
            let value = commands::read_value(&name)?;
            let newline = value.expose().ends_with('\n');
            commands::store_value(&name, value).with_context(|| format!("storing {name:?}"))?;
            println!("stored {name}");
            if newline {
                eprintln!(
                    "keychain-auth: WARNING: the value ends in a newline (as `echo` adds one), and it was stored as given, newline included. To store it without: printf '%s' 'VALUE' | keychain-auth set {name}"
                );
            }
        }
        Cmd::Delete { name } => {
            validate_name(&name).with_context(|| format!("cannot delete {name:?}"))?;
            commands::connect()?.delete(&name).map_err(|e| anyhow!(e))?;
            println!("deleted {name}");
        }
        Cmd::Names { json } => {
            let names =
                commands::all_pages(|offset| match commands::admin(Request::Names { offset })? {
                    Response::Names { names, next } => Ok((names, next)),
                    other => bail!("unexpected answer: {other:?}"),
                })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&names)?);
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }
        Cmd::Doctor { json } => return doctor::run(json),
        Cmd::Completions { shell } => shell::print_completions(shell)?,
        Cmd::Man { dir } => {
            let written = shell::write_man_pages(&dir)?;
            println!("wrote {} man pages into {}", written.len(), dir.display());
        }
        Cmd::Audit {
            action: Some(AuditCmd::Verify),
            ..
        } => return commands::audit_verify(),
        Cmd::Audit {
            action: None,
            lines,
            json,
        } => {
            let paths = Paths::from_env()?;
            for (raw, rec) in audit::tail(&paths.audit, lines)? {
                match rec {
                    Some(r) if !json => println!("{}", output::describe(&r)),
                    _ => println!("{raw}"),
                }
            }
        }
    }
    Ok(0)
}

/// The approved tool a pending hash (or unique prefix) is an update of, if it is one.
fn update_of_pending(
    hash: &str,
) -> Result<Option<(String, keychain_auth_sdk::protocol::UpdateOf)>> {
    let want = hash.trim().to_ascii_lowercase();
    let want = want.strip_prefix("sha256:").unwrap_or(&want).to_string();
    if want.is_empty() {
        return Ok(None);
    }
    let pending: Vec<keychain_auth_sdk::protocol::PendingEntry> =
        commands::all_pages(
            |offset| match commands::admin(Request::ListPending { offset })? {
                Response::Pending { pending, next } => Ok((pending, next)),
                other => bail!("unexpected answer: {other:?}"),
            },
        )?;
    let mut found = pending
        .into_iter()
        .filter(|p| p.hash.trim_start_matches("sha256:").starts_with(&want));
    Ok(match (found.next(), found.next()) {
        (Some(p), None) => p.update_of.map(|u| (p.hash, u)),
        _ => None,
    })
}

/// `approve` of an update: in a terminal, asks whether to keep the tool's access
/// (`upgrade`) instead of adding a second tool; elsewhere, says what to run.
fn keep_access_instead(hash: &str, u: &keychain_auth_sdk::protocol::UpdateOf) -> Result<()> {
    use std::io::{BufRead, IsTerminal, Write};
    let what = format!(
        "{hash} is an update of the approved tool {} ({}, was {})",
        u.label,
        u.path,
        crate::naming::short_hash(&u.hash)
    );
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        bail!(
            "{what}. Keep its access (its scopes and access, re-pinned to the new file) with: keychain-auth upgrade {}; or approve it as a tool of its own with: keychain-auth approve {hash} --as-new",
            crate::naming::shell_quote(&u.path)
        );
    }
    eprint!("{what}.\nKeep its access (upgrade: same scopes and access, re-pinned)? [Y/n] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "" | "y" | "Y" | "yes") {
        bail!("nothing changed; to approve it as a tool of its own: keychain-auth approve {hash} --as-new");
    }
    match commands::widening(Request::Upgrade {
        path: u.path.clone(),
        expect: Some(hash.to_string()),
    })? {
        Response::Tool {
            tool,
            previous_hash,
            ..
        } => println!(
            "upgraded {}: {} -> {}",
            tool.label,
            previous_hash.unwrap_or_default(),
            tool.hash
        ),
        other => bail!("unexpected answer: {other:?}"),
    }
    Ok(())
}
