//! The `keychain-auth` command line. Daemon control (`start`, `stop`, `status`), admin
//! commands sent over the socket (`approve`, `deny`, `revoke`, `register`, `upgrade`,
//! `list`, `list-pending`), secret management (`set`, `delete`, `names`) and the audit log
//! (`audit`, `audit verify`), and starting at login (`service`). Errors print their whole
//! chain; the exit code is non-zero.

use crate::audit;
use crate::config::StoreChoice;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{validate_name, Access, Request, Response, Tool};
use keychain_auth_sdk::{Client, Secret};
use std::io::{IsTerminal, Read, Write};

/// keychain-auth: hash-pinned, per-binary access to the OS keychain for CLI tools.
#[derive(Debug, Parser)]
#[command(name = "keychain-auth", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the daemon (in the background unless --foreground).
    Start {
        /// Stay in the foreground (for systemd or launchd).
        #[arg(long)]
        foreground: bool,
        /// Secret store: auto, secret-service or keyutils.
        #[arg(long)]
        store: Option<StoreChoice>,
        /// Ask on the desktop: a notification with Approve / Deny for each new binary.
        #[arg(long)]
        notify: bool,
    },
    /// Stop the running daemon.
    Stop,
    /// Show whether the daemon runs, and its store, socket and counts.
    Status,
    /// List binaries waiting for approval.
    ListPending {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending binary by hash.
    Approve {
        /// sha256:<hex> of the binary.
        hash: String,
        #[command(flatten)]
        grant: Grant,
    },
    /// Approve a binary by path before it ever connects.
    Register {
        /// Path of the executable.
        path: String,
        #[command(flatten)]
        grant: Grant,
    },
    /// Deny a binary by hash: it gets `denied` and is not queued again.
    Deny {
        /// sha256:<hex> of the binary.
        hash: String,
    },
    /// Remove an approved tool (by hash or label).
    Revoke {
        /// sha256:<hex> or label.
        tool: String,
    },
    /// Re-pin an approved tool to its file's new hash after it was updated.
    Upgrade {
        /// Path of the tool's executable.
        path: String,
    },
    /// List approved tools and their scopes.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a secret for the script that runs this command. The daemon identifies the
    /// calling process (this command's parent) and answers only if it is approved.
    Get {
        /// Secret name.
        name: String,
        /// When the caller is not approved yet, wait this many seconds for the user.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Store a secret; the value is read from stdin (or a hidden prompt), never argv.
    Set {
        /// Secret name.
        name: String,
    },
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
    },
    /// List every secret name in the store (names only).
    Names,
    /// Start the daemon at login (systemd user unit on Linux, LaunchAgent on macOS).
    Service {
        #[command(subcommand)]
        action: ServiceCmd,
    },
    /// Show recent audit events, or verify the log's hash chain.
    Audit {
        #[command(subcommand)]
        action: Option<AuditCmd>,
        /// How many recent events to show.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Print the raw JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ServiceCmd {
    /// Write the systemd user unit (Linux) or LaunchAgent (macOS) and start it.
    Install {
        /// Ask on the desktop (notifications) for each new binary.
        #[arg(long)]
        notify: bool,
        /// Only write the file; do not start it.
        #[arg(long)]
        no_start: bool,
    },
    /// Stop the service and remove its file.
    Uninstall,
    /// Print the file `install` would write, and where.
    Print {
        /// As with `install --notify`.
        #[arg(long)]
        notify: bool,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check every line's hash chain; exits non-zero naming the first bad line.
    Verify,
}

#[derive(Debug, clap::Args)]
struct Grant {
    /// Glob over secret names this tool may use (repeatable). `*` matches across `/`.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// read or read-write.
    #[arg(long)]
    access: Option<Access>,
    /// Display name (default: the executable's file name).
    #[arg(long)]
    label: Option<String>,
    /// Let `keychain-auth get` serve this script although its shell holds the output
    /// pipe without close-on-exec, as every shell's `$(…)` does. Then a program of yours
    /// that starts `keychain-auth get` and replaces itself with this script (exec) can
    /// read what it reads; see docs/threat-model.md. `--allow-unbound-get=false`
    /// takes it back; absent, an approved tool keeps what it had.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    allow_unbound_get: Option<bool>,
}

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

/// Connects to the daemon: the socket and its listener must be the user's own (the
/// SDK checks), and the listener must run keychain-auth where the kernel shows it
/// ([`crate::daemon_check`]).
fn connect() -> Result<Client> {
    let paths = Paths::from_env()?;
    crate::daemon_check::connect(&paths.socket).map_err(|e| anyhow!(e))
}

/// Stores a value. On Linux the CLI writes it to the daemon's store itself and then
/// tells the daemon, which records it: the value never crosses the socket, so a program
/// of the user's that listens there in the daemon's place (which the CLI cannot always
/// tell from the daemon, see [`crate::daemon_check`]) learns the name, not the value.
/// The Linux stores have no per-program boundary, so this costs no isolation.
#[cfg(target_os = "linux")]
fn store_value(name: &str, value: Secret) -> Result<()> {
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
fn store_value(name: &str, value: Secret) -> Result<()> {
    connect()?.set(name, value).map_err(|e| anyhow!(e))
}

fn admin(req: Request) -> Result<Response> {
    connect()?.request(&req).map_err(|e| anyhow!(e))
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
        Cmd::Status => return status(),
        Cmd::ListPending { json } => {
            let pending = all_pages(|offset| match admin(Request::ListPending { offset })? {
                Response::Pending { pending, next } => Ok((pending, next)),
                other => bail!("unexpected answer: {other:?}"),
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&pending)?);
            } else if pending.is_empty() {
                println!("no binaries are waiting for approval");
            } else {
                for p in pending {
                    println!("{}", p.hash);
                    println!("    path:      {}", p.path);
                    if let Some(facts) = crate::peer::signing::Facts::from_entry(&p) {
                        println!("    signature: {}", facts.describe());
                    }
                    println!(
                        "    asked for: {}",
                        if p.names.is_empty() {
                            "(no name)".into()
                        } else {
                            p.names.join(", ")
                        }
                    );
                    let grants = crate::pending::grants(&p);
                    if !grants.is_empty() {
                        println!(
                            "    grants:    {} ({}): what approving it grants unless you pass --scope/--access",
                            grants.join(", "),
                            p.requested_access.unwrap_or_default()
                        );
                    }
                    println!(
                        "    attempts:  {} (first {}, last {})",
                        p.attempts, p.first_seen, p.last_seen
                    );
                    if let Some(sc) = &p.script {
                        println!("    script:    {} run by {}", sc.path, sc.interpreter);
                        println!("    note:      a script's identity is interpreter + path + contents, and which script runs is read from the process's own command line (advisory)");
                        for f in &sc.startup {
                            println!(
                                "    runs code: {} ({}), read before the script from a place you can change: approving pins it",
                                f.path,
                                short(&f.hash)
                            );
                        }
                    }
                    if p.interpreter {
                        println!("    note:      a script interpreter; it cannot be approved as a whole binary");
                    }
                    for l in &p.libraries {
                        println!(
                            "    runs code: {} ({}), a file you can change: approving pins it",
                            l.path,
                            short(&l.hash)
                        );
                    }
                }
            }
        }
        Cmd::Approve { hash, grant } => {
            let resp = admin(Request::Approve {
                hash,
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                unbound_get: grant.allow_unbound_get,
            })?;
            print_tool("approved", resp);
        }
        Cmd::Register { path, grant } => {
            let abs = std::path::absolute(&path).with_context(|| format!("resolving {path}"))?;
            let resp = admin(Request::Register {
                path: abs.display().to_string(),
                scopes: grant.scopes,
                access: grant.access,
                label: grant.label,
                unbound_get: grant.allow_unbound_get,
            })?;
            print_tool("registered", resp);
        }
        Cmd::Deny { hash } => {
            admin(Request::Deny { hash: hash.clone() })?;
            println!("denied {hash}");
        }
        Cmd::Revoke { tool } => {
            admin(Request::Revoke { tool: tool.clone() })?;
            println!("revoked {tool}");
        }
        Cmd::Upgrade { path } => {
            let abs = std::path::absolute(&path).with_context(|| format!("resolving {path}"))?;
            match admin(Request::Upgrade {
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
            let tools = all_pages(|offset| match admin(Request::ListTools { offset })? {
                Response::Tools { tools, next } => Ok((tools, next)),
                other => bail!("unexpected answer: {other:?}"),
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tools)?);
            } else if tools.is_empty() {
                println!("no tools are approved");
            } else {
                for t in tools {
                    print_tool_lines(&t);
                }
            }
        }
        Cmd::Get { name, wait } => {
            validate_name(&name).with_context(|| format!("cannot read {name:?}"))?;
            let mut client = connect()?;
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
            let value = read_value(&name)?;
            store_value(&name, value).with_context(|| format!("storing {name:?}"))?;
            println!("stored {name}");
        }
        Cmd::Delete { name } => {
            validate_name(&name).with_context(|| format!("cannot delete {name:?}"))?;
            connect()?.delete(&name).map_err(|e| anyhow!(e))?;
            println!("deleted {name}");
        }
        Cmd::Names => {
            let names = all_pages(|offset| match admin(Request::Names { offset })? {
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
        } => return audit_verify(),
        Cmd::Audit {
            action: None,
            lines,
            json,
        } => {
            let paths = Paths::from_env()?;
            for (raw, rec) in audit::tail(&paths.audit, lines)? {
                match rec {
                    Some(r) if !json => println!("{}", describe(&r)),
                    _ => println!("{raw}"),
                }
            }
        }
    }
    Ok(0)
}

/// Collects every page of a paged admin listing.
fn all_pages<T>(
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

fn status() -> Result<i32> {
    let paths = Paths::from_env()?;
    let mut c = match crate::daemon_check::connect(&paths.socket) {
        Ok(c) => c,
        Err(e @ keychain_auth_sdk::ClientError::Untrusted(_)) => bail!(e),
        Err(e) => {
            println!("keychain-auth is not running ({e})");
            return Ok(3);
        }
    };
    match c.request(&Request::Status {}).map_err(|e| anyhow!(e))? {
        Response::Status(s) => {
            println!("keychain-auth is running");
            println!("  server:   {}", s.server);
            println!("  pid:      {}", s.pid);
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
            Ok(0)
        }
        other => bail!("unexpected answer: {other:?}"),
    }
}

fn audit_verify() -> Result<i32> {
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

fn describe(r: &audit::Record) -> String {
    let e = &r.entry;
    let mut s = format!("{} #{} {} {}", r.time, r.seq, e.event, e.decision);
    if let Some(op) = &e.op {
        s.push_str(&format!(" {op}"));
    }
    if let Some(via) = &e.via {
        s.push_str(&format!(" (via {via})"));
    }
    if !e.names.is_empty() {
        s.push_str(&format!(" [{}]", e.names.join(", ")));
    }
    if let Some(p) = &e.path {
        s.push_str(&format!(" {p}"));
    }
    if let Some(h) = &e.hash {
        s.push_str(&format!(" {}", &h[..h.len().min(19)]));
    }
    if !e.reason.is_empty() {
        s.push_str(&format!(" — {}", e.reason));
    }
    s
}

/// `sha256:` and the first 12 hex digits.
fn short(hash: &str) -> &str {
    hash.get(..19).unwrap_or(hash)
}

fn print_tool(verb: &str, resp: Response) {
    if let Response::Tool { tool, .. } = resp {
        println!("{verb} {}", tool.label);
        print_tool_lines(&tool);
    }
}

fn print_tool_lines(t: &Tool) {
    println!("{}  {}", t.label, t.hash);
    println!("    path:   {}", t.path);
    if let Some(sc) = &t.script {
        println!(
            "    script: run by {} ({})",
            sc.interpreter, sc.interpreter_hash
        );
        println!(
            "            contents {} (advisory: see docs/threat-model.md)",
            sc.hash
        );
        for f in &sc.startup {
            println!(
                "    pinned: {} ({}), read before the script",
                f.path,
                short(&f.hash)
            );
        }
    }
    println!("    scopes: {}", t.scopes.join(", "));
    println!("    access: {}", t.access);
    for l in &t.libraries {
        println!("    pinned: {} ({})", l.path, short(&l.hash));
    }
    if t.unbound_get {
        println!("    get:    served through keychain-auth get even from a shell's $(…) (--allow-unbound-get)");
    }
    println!("    since:  {} (via {})", t.approved_at, t.approved_via);
}

/// Reads a secret value: a hidden prompt on a terminal, else all of stdin as given.
fn read_value(name: &str) -> Result<Secret> {
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
