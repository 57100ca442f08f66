//! The `keychain-auth` command line. Daemon control (`start`, `stop`, `status`), admin
//! commands sent over the socket (`approve`, `deny`, `revoke`, `register`, `upgrade`,
//! `list`, `list-pending`), secret management (`set`, `delete`, `names`, `protect`), proof
//! of presence (`presence`; `tty_agent` asks for the password in the terminal), the
//! audit log (`audit`, `audit verify`), and starting at login (`service`). Errors print their whole
//! chain; the exit code is non-zero.
//!
//! [`args`]: the arguments (clap); [`commands`]: what talks to the daemon and the files;
//! [`output`]: what is printed for a person. This file: `main` and the one `match`.
//! Not here: what the daemon does with a request (`crate::handlers`) and starting it
//! (`crate::lifecycle`).

mod args;
mod commands;
mod output;
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
            1
        }
    }
}

/// Logs to stderr, quiet (`warn`) unless `RUST_LOG` says otherwise. Used by the CLI and
/// the tray app.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Cmd::Start {
            foreground: true,
            store,
            notify,
        } => {
            crate::lifecycle::run_foreground(store, notify)?;
        }
        Cmd::Start {
            foreground: false,
            store,
            notify,
        } => println!("{}", crate::lifecycle::start_background(store, notify)?),
        Cmd::Stop => println!("{}", crate::lifecycle::stop()?),
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
        Cmd::Status => return commands::status(),
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
            if json {
                println!("{}", serde_json::to_string_pretty(&pending)?);
            } else if pending.is_empty() {
                println!("no binaries are waiting for approval");
            } else {
                output::print_pending(&pending);
            }
        }
        Cmd::Approve { hash, grant } => {
            let resp = commands::widening(Request::Approve {
                hash,
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                unbound_get: grant.allow_unbound_get,
                only_through: grant.only_through,
                lasts: grant.lasts,
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
            })?;
            output::print_tool("registered", resp);
        }
        Cmd::Deny { hash } => {
            commands::admin(Request::Deny { hash: hash.clone() })?;
            println!("denied {hash}");
        }
        Cmd::Revoke { tool } => {
            commands::admin(Request::Revoke { tool: tool.clone() })?;
            println!("revoked {tool}");
        }
        Cmd::Upgrade { path } => {
            let abs = std::path::absolute(&path).with_context(|| format!("resolving {path}"))?;
            match commands::widening(Request::Upgrade {
                path: abs.display().to_string(),
            })? {
                Response::Tool {
                    tool,
                    previous_hash,
                } if previous_hash.as_deref() == Some(tool.hash.as_str()) => {
                    println!("{} is already pinned to {}", tool.label, tool.hash)
                }
                Response::Tool {
                    tool,
                    previous_hash,
                } => println!(
                    "upgraded {}: {} -> {}",
                    tool.label,
                    previous_hash.unwrap_or_default(),
                    tool.hash
                ),
                other => bail!("unexpected answer: {other:?}"),
            }
        }
        Cmd::List { json } => {
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
            if let Some(ms) = wait_ms {
                client
                    .set_timeout(Some(
                        std::time::Duration::from_millis(ms)
                            + keychain_auth_sdk::client::DEFAULT_TIMEOUT,
                    ))
                    .map_err(|e| anyhow!(e))?;
            }
            match client
                .request(&Request::GetForParent {
                    name: name.clone(),
                    wait_ms,
                })
                .map_err(|e| anyhow!(e))?
            {
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
            commands::store_value(&name, value).with_context(|| format!("storing {name:?}"))?;
            println!("stored {name}");
        }
        Cmd::Delete { name } => {
            validate_name(&name).with_context(|| format!("cannot delete {name:?}"))?;
            commands::connect()?.delete(&name).map_err(|e| anyhow!(e))?;
            println!("deleted {name}");
        }
        Cmd::Names => {
            let names =
                commands::all_pages(|offset| match commands::admin(Request::Names { offset })? {
                    Response::Names { names, next } => Ok((names, next)),
                    other => bail!("unexpected answer: {other:?}"),
                })?;
            for n in names {
                println!("{n}");
            }
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
