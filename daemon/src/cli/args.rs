//! The command line's arguments, as clap parses them.

use crate::config::StoreChoice;
use clap::{Parser, Subcommand};
use keychain_auth_sdk::protocol::Access;

/// keychain-auth: hash-pinned, per-binary access to the OS keychain for CLI tools.
#[derive(Debug, Parser)]
#[command(name = "keychain-auth", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Cmd,
}

#[derive(Debug, Subcommand)]
pub(super) enum Cmd {
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
    /// Show whether the daemon runs, who hosts it, whether it notifies or is paused, and
    /// its store, socket and counts.
    Status {
        /// Print JSON (the daemon's status, and where the config and audit log are).
        #[arg(long)]
        json: bool,
    },
    /// Refuse every secret request, approved tools' too, until `resume` (no proof asked).
    Pause,
    /// Answer secret requests again after `pause` (asks for proof of presence).
    Resume,
    /// List binaries waiting for approval.
    ListPending {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending (or denied) binary by hash, or change an approved tool's
    /// approval: --add-scope/--remove-scope edit its scopes, --scope replaces them.
    Approve {
        /// sha256:<hex> of the binary, or a unique prefix of 12+ hex digits.
        hash: String,
        #[command(flatten)]
        grant: Grant,
        /// Add a glob over secret names to an approved tool's scopes, keeping the others
        /// (repeatable; not with --scope).
        #[arg(long = "add-scope", value_name = "PATTERN")]
        add_scopes: Vec<String>,
        /// Take a scope off an approved tool, exactly as `list` shows it (repeatable; not
        /// with --scope; one scope at least must be left: else `revoke`).
        #[arg(long = "remove-scope", value_name = "PATTERN")]
        remove_scopes: Vec<String>,
        /// It is an update of an approved tool: approve it as a tool of its own anyway,
        /// instead of `upgrade` (which keeps the tool's scopes and access).
        #[arg(long)]
        as_new: bool,
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
        /// sha256:<hex> of the binary, or a unique prefix of 12+ hex digits.
        hash: String,
    },
    /// Lift a deny: the binary is asked about again when it next asks (asks for proof of
    /// presence). `approve HASH` lifts it too, approving at once.
    Undeny {
        /// sha256:<hex> of the denied binary (see `list --denied`), or a unique prefix of 12+ hex digits.
        hash: String,
    },
    /// Remove an approved tool (by hash or label).
    Revoke {
        /// sha256:<hex> (or a unique prefix of 12+ hex digits) or label.
        tool: String,
    },
    /// Re-pin an approved tool to its file's new hash after it was updated.
    Upgrade {
        /// Path of the tool's executable.
        path: String,
    },
    /// List approved tools and their scopes (or, with --denied, the denied binaries).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// List the denied binaries and scripts instead.
        #[arg(long)]
        denied: bool,
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
    Names {
        /// Print JSON (an array of names).
        #[arg(long)]
        json: bool,
    },
    /// Check what a support thread would ask about: the daemon and its version, the
    /// store, notifications, the tray, proof of presence, the git helper, the socket
    /// directory, ptrace, the keyutils quota. Each check says ok, warning or problem, and
    /// how to fix it; exits 1 when there is a problem.
    Doctor {
        /// Print JSON: {"ok", "problems", "warnings", "checks": [{"id", "status",
        /// "summary", "fix"}]}.
        #[arg(long)]
        json: bool,
    },
    /// Start the daemon at login (systemd user unit on Linux, LaunchAgent on macOS).
    Service {
        #[command(subcommand)]
        action: ServiceCmd,
    },
    /// Mark a secret `confirm: always`: each read, by any approved program, then needs
    /// your password (or fingerprint) naming the program and the secret. Without NAME:
    /// list the protected names.
    Protect {
        /// Secret name.
        name: Option<String>,
    },
    /// Take the `confirm: always` mark off a secret (asks for proof of presence).
    Unprotect {
        /// Secret name.
        name: String,
    },
    /// Proof of presence for widening decisions: show it, require it, turn it off, or
    /// install polkit's action (as root).
    Presence {
        #[command(subcommand)]
        action: Option<PresenceCmd>,
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
    /// Print a shell completion script: `source <(keychain-auth completions bash)`
    /// (scripts/start installs the bash, zsh and fish ones).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (keychain-auth.1 and one per command, such as
    /// keychain-auth-approve.1) into DIR, creating it; scripts/start installs them.
    Man {
        /// Directory to write them in (for man to find them: a man1 directory on its
        /// path, such as ~/.local/share/man/man1).
        #[arg(value_hint = clap::ValueHint::DirPath)]
        dir: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ServiceCmd {
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
pub(super) enum PresenceCmd {
    /// Every widening decision needs your password (or fingerprint).
    Required,
    /// No proof: any program of yours can approve itself. Asks for proof once.
    Off,
    /// Install polkit's action for keychain-auth (Linux, as root).
    Install {
        /// A user whose daemon may show the change in the password prompt (repeatable;
        /// default: the user who ran sudo).
        #[arg(long = "user")]
        users: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCmd {
    /// Check every line's hash chain; exits non-zero naming the first bad line.
    Verify,
}

#[derive(Debug, clap::Args)]
pub(super) struct Grant {
    /// Glob over secret names this tool may use (repeatable). `*` matches across `/`.
    #[arg(long = "scope")]
    pub(super) scopes: Vec<String>,
    /// read or read-write.
    #[arg(long)]
    pub(super) access: Option<Access>,
    /// Display name (default: the executable's file name).
    #[arg(long)]
    pub(super) label: Option<String>,
    /// Let `keychain-auth get` serve this script although its shell holds the output
    /// pipe without close-on-exec, as every shell's `$(…)` does. Then a program of yours
    /// that starts `keychain-auth get` and replaces itself with this script (exec) can
    /// read what it reads; see docs/threat-model.md. `--allow-unbound-get=false`
    /// takes it back; absent, an approved tool keeps what it had.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub(super) allow_unbound_get: Option<bool>,
    /// Serve it only when it asks through this deputy: `git` (git and the git helper) or
    /// `get` (keychain-auth get); a direct request is then refused.
    #[arg(long)]
    pub(super) only_through: Option<keychain_auth_sdk::protocol::Deputy>,
    /// How long the approval lasts: a duration (`1h`, `8h`, `2days`), `logout` (until the
    /// daemon's session ends) or `always`; absent: what an approved tool had, else
    /// always.
    #[arg(long = "for", value_name = "DURATION|logout|always", value_parser = parse_lasts)]
    pub(super) lasts: Option<keychain_auth_sdk::protocol::Lasts>,
    /// Re-pin it without asking when it is updated, if the update proves where it came
    /// from: `package` (Linux: the file is the one dpkg installed, by the digest in dpkg's
    /// database) or `signer` (macOS: a valid signature of the same team and identifier).
    /// Each such re-pin is audited and announced.
    #[arg(long)]
    pub(super) follow: Option<keychain_auth_sdk::protocol::FollowKind>,
}

/// `--for`'s value.
fn parse_lasts(s: &str) -> Result<keychain_auth_sdk::protocol::Lasts, String> {
    use keychain_auth_sdk::protocol::Lasts;
    match s {
        "always" => Ok(Lasts::Always),
        "logout" => Ok(Lasts::UntilLogout),
        d => {
            let d = humantime::parse_duration(d).map_err(|e| {
                format!("{d:?} is not a duration (1h, 8h, 2days), `logout` or `always`: {e}")
            })?;
            match d.as_secs() {
                0 => Err("an approval lasts at least 1 s".into()),
                s => Ok(Lasts::Seconds(s)),
            }
        }
    }
}
