//! Protocol v1: every request and response that crosses the socket, the error codes, and
//! the rules for secret names and binary hashes. docs/protocol.md describes the same
//! types byte by byte; a test decodes its examples with these definitions.
//! Framing lives in [`crate::frame`]; nothing here does I/O. Over 500 lines on purpose:
//! the whole wire format in one file, read beside docs/protocol.md.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks. Bumped by hand when the wire format changes,
/// independently of the package version.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest secret name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Most scopes a `hello` may ask for.
pub const MAX_REQUESTED_SCOPES: usize = 16;

/// Longest `wait_ms` the daemon honours (ten minutes); larger values are clamped.
pub const MAX_WAIT_MS: u64 = 600_000;

/// A request from a client. The first request on a connection must be [`Request::Hello`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Opens the conversation and names the protocol version.
    Hello {
        /// Protocol version the client speaks; must be [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Free-form client name, for diagnostics only (never trusted).
        #[serde(default)]
        client: String,
        /// Scopes the client would like if the user approves it: recorded with its
        /// pending entry and offered as the default when the user approves it by hash.
        /// Self-reported, so never granted by itself; at most
        /// [`MAX_REQUESTED_SCOPES`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// Access the client would like (`read` or `read-write`); a default like `scopes`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<Access>,
    },
    /// Reads a secret.
    Get {
        /// Secret name.
        name: String,
        /// If the caller is not yet approved, hold the request up to this many
        /// milliseconds for the user to decide instead of failing at once.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// Reads a secret for the process that started the caller (`keychain-auth get` in a
    /// script): the daemon identifies the caller's parent and decides for it. Accepted
    /// only from the keychain-auth CLI.
    GetForParent {
        /// Secret name.
        name: String,
        /// As in [`Request::Get`]: how long an unapproved parent's request may wait.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wait_ms: Option<u64>,
    },
    /// Stores a secret (needs `read-write` access, or the keychain-auth CLI).
    Set {
        /// Secret name.
        name: String,
        /// Secret value.
        value: Secret,
    },
    /// Deletes a secret (needs `read-write` access, or the keychain-auth CLI).
    Delete {
        /// Secret name.
        name: String,
    },
    /// Lists the secret names within the caller's scopes (one page; see `next`).
    List {
        /// Index of the first item wanted (from a previous answer's `next`); default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Tells the caller how the daemon sees it.
    Whoami {},
    /// Admin: the keychain-auth CLI wrote this secret to the store itself (Linux, so that
    /// the value never crosses the socket): the daemon records it in the audit log and
    /// forgets any copy of the old value it kept.
    Stored {
        /// Secret name.
        name: String,
    },
    /// Admin: approves a pending binary by hash.
    Approve {
        /// `sha256:<64 hex>` of the binary.
        hash: String,
        /// Glob patterns over secret names; empty means "the names it asked for".
        #[serde(default)]
        scopes: Vec<String>,
        /// Access level; default read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<Access>,
        /// Display name; default the file name of its path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// Let `keychain-auth get` serve it even when it holds the CLI's output through a
        /// descriptor that is not close-on-exec (a shell's `$(…)`); absent keeps what an
        /// approved tool had, else `false`. See [`Tool::unbound_get`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unbound_get: Option<bool>,
        /// Serve it only through this deputy; absent keeps what an approved tool had.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only_through: Option<Deputy>,
        /// How long it lasts; absent keeps what an approved tool had, else always.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lasts: Option<Lasts>,
        /// Re-pin it without asking on updates proven by this provenance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        follow: Option<FollowKind>,
        /// Approve an update of an approved tool as a second tool instead of refusing
        /// (and advising `upgrade`, which keeps the tool's access).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        as_new: bool,
        /// Patterns to add to an approved tool's scopes, keeping the others (`--add-scope`);
        /// not with `scopes`. Adding widens (proof of presence).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        add_scopes: Vec<String>,
        /// Patterns to take off an approved tool's scopes (`--remove-scope`); each must be
        /// one of them, and at least one scope must be left (else: revoke). Not with
        /// `scopes`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        remove_scopes: Vec<String>,
    },
    /// Admin: approves a binary by path before it ever connects.
    Register {
        /// Absolute path of the executable; the daemon hashes it.
        path: String,
        /// Glob patterns over secret names (at least one).
        scopes: Vec<String>,
        /// Access level; default read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<Access>,
        /// Display name; default the file name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
        /// As in [`Request::Approve`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unbound_get: Option<bool>,
        /// Serve it only through this deputy.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        only_through: Option<Deputy>,
        /// How long it lasts; absent: always.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lasts: Option<Lasts>,
        /// Re-pin it without asking on updates proven by this provenance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        follow: Option<FollowKind>,
    },
    /// Admin: records a deny rule for a hash (and drops any approval it had).
    Deny {
        /// `sha256:<64 hex>` of the binary.
        hash: String,
    },
    /// Admin: lifts the deny rule of a hash: the binary is then unknown again (queued and
    /// asked about when it next asks). Lifting a deny widens (proof of presence).
    Undeny {
        /// `sha256:<64 hex>` of the denied binary.
        hash: String,
    },
    /// Admin: lists the deny rules (one page).
    ListDenied {
        /// Index of the first item wanted (from a previous answer's `next`); default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Admin: removes an approved tool, named by hash or label.
    Revoke {
        /// A hash (`sha256:…`) or an exact label.
        tool: String,
    },
    /// Admin: re-pins the tool approved for this path to the file's current hash.
    Upgrade {
        /// Absolute path of the tool's executable.
        path: String,
        /// Re-pin only if the file's identity is now this hash (Keep access on a pending
        /// update: exactly what the person saw); absent: whatever it is now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expect: Option<String>,
    },
    /// Admin: sets whether widening decisions need proof of presence (`required` or
    /// `off`). Turning it off is itself proven.
    SetPresence {
        /// `required` or `off`.
        presence: String,
    },
    /// Admin: marks a secret `confirm: always` (each read needs proof of presence), or
    /// takes the mark off (which is itself proven).
    Protect {
        /// The secret's name.
        name: String,
        /// `true` to protect, `false` to stop protecting.
        protect: bool,
    },
    /// Admin: lists approved tools (one page).
    ListTools {
        /// Index of the first item wanted (from a previous answer's `next`); default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Admin: lists pending (unknown) binaries (one page).
    ListPending {
        /// Index of the first item wanted (from a previous answer's `next`); default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Admin: lists every secret name in the store's namespace (one page).
    Names {
        /// Index of the first item wanted (from a previous answer's `next`); default 0.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// Admin: daemon status.
    Status {},
    /// Admin: pauses (every secret request is refused) or resumes (what is approved is
    /// served again; resuming is proven, as widening is).
    SetPaused {
        /// `true` to pause, `false` to resume.
        paused: bool,
    },
    /// Admin: stops the daemon.
    Shutdown {},
}

impl Request {
    /// The request's `type` string, as on the wire.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "hello",
            Request::Get { .. } => "get",
            Request::GetForParent { .. } => "get_for_parent",
            Request::Set { .. } => "set",
            Request::Delete { .. } => "delete",
            Request::List { .. } => "list",
            Request::Whoami {} => "whoami",
            Request::Stored { .. } => "stored",
            Request::Approve { .. } => "approve",
            Request::Register { .. } => "register",
            Request::Deny { .. } => "deny",
            Request::Undeny { .. } => "undeny",
            Request::ListDenied { .. } => "list_denied",
            Request::Revoke { .. } => "revoke",
            Request::Upgrade { .. } => "upgrade",
            Request::SetPresence { .. } => "set_presence",
            Request::Protect { .. } => "protect",
            Request::ListTools { .. } => "list_tools",
            Request::ListPending { .. } => "list_pending",
            Request::Names { .. } => "names",
            Request::Status {} => "status",
            Request::SetPaused { .. } => "set_paused",
            Request::Shutdown {} => "shutdown",
        }
    }

    /// Whether only the keychain-auth CLI (or the hosting app) may send this request.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Request::Approve { .. }
                | Request::Stored { .. }
                | Request::GetForParent { .. }
                | Request::Register { .. }
                | Request::Deny { .. }
                | Request::Undeny { .. }
                | Request::ListDenied { .. }
                | Request::Revoke { .. }
                | Request::Upgrade { .. }
                | Request::SetPresence { .. }
                | Request::Protect { .. }
                | Request::ListTools { .. }
                | Request::ListPending { .. }
                | Request::Names { .. }
                | Request::Status {}
                | Request::SetPaused { .. }
                | Request::Shutdown {}
        )
    }
}

/// A response from the daemon. Exactly one per request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Hello`].
    Hello {
        /// Protocol version the daemon speaks.
        protocol: u32,
        /// `keychain-auth/<version>`.
        server: String,
    },
    /// A secret value.
    Secret {
        /// Secret name.
        name: String,
        /// Secret value.
        value: Secret,
    },
    /// Answer to [`Request::Whoami`].
    Identity(Identity),
    /// Secret names (one page).
    Names {
        /// Sorted names.
        names: Vec<String>,
        /// Offset of the next page when more remain; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<u64>,
    },
    /// The request was carried out.
    Ok,
    /// Approved tools (one page).
    Tools {
        /// Approved tools, in approval order.
        tools: Vec<Tool>,
        /// Offset of the next page when more remain; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<u64>,
    },
    /// One tool, after approve/register/upgrade.
    Tool {
        /// The tool as now approved (boxed: it is by far the largest answer).
        tool: Box<Tool>,
        /// For upgrade: the hash it had before.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_hash: Option<String>,
        /// For an approve of a tool that was approved (or denied) already: what changed,
        /// one line each for a person (`scopes: git/* → git/*, api/*`,
        /// `access: read → read-write`, `deny lifted`), or `unchanged: …`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
    },
    /// Deny rules (one page).
    DenyRules {
        /// In the order they were made.
        denied: Vec<DenyRule>,
        /// Offset of the next page when more remain; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<u64>,
    },
    /// Pending binaries (one page).
    Pending {
        /// Oldest first.
        pending: Vec<PendingEntry>,
        /// Offset of the next page when more remain; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<u64>,
    },
    /// Daemon status.
    Status(Status),
    /// The request failed.
    Error(ErrorBody),
}

/// How the daemon sees a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `sha256:<hex>` of the peer's executable.
    pub hash: String,
    /// The executable's path as the kernel reports it.
    pub path: String,
    /// `admin`, `approved`, `denied`, `pending`, `interpreter` or `unknown`.
    pub status: String,
    /// Scopes when approved, else empty.
    pub scopes: Vec<String>,
    /// Access when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
    /// Label when approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Process id the kernel gave for the peer.
    pub pid: i32,
    /// For a script run by an interpreter: what `hash` was made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptIdentity>,
}

/// The error body of a [`Response::Error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// What happened and what to do next, for a person.
    pub message: String,
    /// For `not_approved` and `denied`: the peer's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// For `not_approved`: the binary was queued for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<bool>,
}

/// Error codes of protocol v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The binary is not approved yet; it was queued as pending.
    NotApproved,
    /// The binary is denied, or the request was refused for a security reason.
    Denied,
    /// The name is outside the tool's scopes.
    OutOfScope,
    /// No secret with that name.
    NotFound,
    /// The request was malformed.
    BadRequest,
    /// A frame was larger than 64 KiB.
    FrameTooLarge,
    /// The hello named a protocol version the daemon does not speak.
    UnsupportedProtocol,
    /// The caller may not make this request.
    Forbidden,
    /// The secret store (or the daemon's own files) could not be used.
    StoreUnavailable,
    /// A code this client does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotApproved => "not_approved",
            ErrorCode::Denied => "denied",
            ErrorCode::OutOfScope => "out_of_scope",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::UnsupportedProtocol => "unsupported_protocol",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an approved tool may do within its scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// `get` and `list`.
    #[default]
    Read,
    /// Also `set` and `delete`.
    ReadWrite,
}

impl std::str::FromStr for Access {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Access::Read),
            "read-write" => Ok(Access::ReadWrite),
            other => Err(format!("unknown access {other:?}: use read or read-write")),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        })
    }
}

/// How long an approval lasts (`approve --for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lasts {
    /// Until revoked.
    Always,
    /// Until the daemon's session ends (it stops, or the user logs out).
    UntilLogout,
    /// This many seconds from now.
    Seconds(u64),
}

/// The deputy an approval may be restricted to (`approve --only-through`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Deputy {
    /// Through git and `git-credential-keychain-auth`.
    Git,
    /// Through `keychain-auth get`.
    Get,
}

impl std::str::FromStr for Deputy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "git" => Ok(Deputy::Git),
            "get" => Ok(Deputy::Get),
            other => Err(format!(
                "unknown deputy {other:?}: use git (the git helper) or get (keychain-auth get)"
            )),
        }
    }
}

impl std::fmt::Display for Deputy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Deputy::Git => "git",
            Deputy::Get => "get",
        })
    }
}

/// What an approval may follow by itself when the tool is updated (`approve --follow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FollowKind {
    /// The system's package manager installed the new file (Linux: dpkg).
    Package,
    /// The new binary is signed by the same team with the same identifier (macOS).
    Signer,
}

impl std::str::FromStr for FollowKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "package" => Ok(FollowKind::Package),
            "signer" => Ok(FollowKind::Signer),
            other => Err(format!(
                "unknown --follow {other:?}: use package (Linux: files dpkg installed) or signer (macOS: the same Developer ID team and identifier)"
            )),
        }
    }
}

/// The provenance an approved tool follows: an update proven by it re-pins the tool
/// without asking (audited and announced). Recorded when it was approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Follow {
    /// The package (of the system's package manager) that installed the tool's file.
    Package {
        /// The package's name (`git`, `gh`).
        package: String,
    },
    /// The Developer ID team and signing identifier the tool is signed with.
    Signer {
        /// The Apple team id.
        team_id: String,
        /// The signing identifier.
        identifier: String,
    },
}

/// The approved tool a pending binary is an update of: it runs from (or is the script
/// at) the same path, with other contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOf {
    /// The approved tool's hash.
    pub hash: String,
    /// Its label.
    pub label: String,
    /// Its path (what `keychain-auth upgrade` takes).
    pub path: String,
}

/// An approved tool, as stored in config.json and sent to admin clients. Fields it does
/// not know are ignored here (a newer daemon's reply still parses); config.json itself is
/// read strictly by the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// `sha256:<64 hex>` of the approved executable.
    pub hash: String,
    /// Display name.
    pub label: String,
    /// Path of the executable when it was approved.
    pub path: String,
    /// Glob patterns over secret names.
    pub scopes: Vec<String>,
    /// Access level.
    pub access: Access,
    /// RFC 3339 time of approval.
    pub approved_at: String,
    /// `cli`, `notification` or `window`.
    pub approved_via: String,
    /// RFC 3339 time of the last re-pin to an updated file (`upgrade`, Keep access, a
    /// followed update); `approved_at` stays the time of the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded_at: Option<String>,
    /// Where that re-pin was decided: `cli`, `notification`, `tray`, `window`, or
    /// `follow package` / `follow signer` for a followed update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgraded_via: Option<String>,
    /// RFC 3339 expiry, or none: after it the daemon refuses the tool and removes it.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Approved until the daemon's session ends: removed when the daemon starts again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub until_logout: bool,
    /// For a script run by an interpreter: what its identity (`hash`) was made of.
    #[serde(default)]
    pub script: Option<ScriptIdentity>,
    /// For `keychain-auth get` callers (reserved).
    #[serde(default)]
    pub parent: Option<serde_json::Value>,
    /// macOS code-signing facts (reserved).
    #[serde(default)]
    pub macos: Option<serde_json::Value>,
    /// `keychain-auth get` may serve it although it holds the CLI's output through a
    /// descriptor that is not close-on-exec, as shells hold `$(…)`: the daemon then
    /// cannot tell it from a program that started the CLI and replaced itself with it
    /// (exec). Off unless the user asked for it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unbound_get: bool,
    /// Files the user can change that the approved program runs code from (libraries it
    /// maps), pinned by hash when it was approved; a mapping of any other such file
    /// makes it ask again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<PinnedFile>,
    /// The approval is of the terminal sessions whose terminal this program holds (its
    /// `hash` is the terminal-session identity): every interactive shell in one, and so
    /// every program started from one, asks as the person at it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminal_session: bool,
    /// Served only when it asks through this deputy ("only through git"); a direct
    /// request, or one through another deputy, is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_through: Option<Deputy>,
    /// The caller chain it asked through when it was approved, origin first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Updates proven by this provenance re-pin it without asking (`approve --follow`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<Follow>,
}

/// A file its user can change that a program runs code from (a library under the
/// user's home it maps, a Python `.pth` startup file), pinned by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedFile {
    /// Its path when it was seen.
    pub path: String,
    /// `sha256:<hex>` of its contents.
    pub hash: String,
}

/// A script run by an interpreter, as identified: the peer's `hash` is then
/// `sha256("keychain-auth script v1\0" + interpreter_hash + "\0" + path + "\0" + hash)`,
/// and with startup files `sha256("keychain-auth script v2\0" + … + hash + "\0" + for each
/// startup file, path + "\0" + hash + "\0")`.
/// Advisory: which script runs is read from the process's own command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptIdentity {
    /// The interpreter's executable path.
    pub interpreter: String,
    /// `sha256:<hex>` of the interpreter's executable.
    pub interpreter_hash: String,
    /// The script's absolute path (symbolic links resolved).
    pub path: String,
    /// `sha256:<hex>` of the script's contents.
    pub hash: String,
    /// Files the user can change that the interpreter reads at startup before the script
    /// (Python's `.pth` files and `sitecustomize`/`usercustomize` of a user or venv site),
    /// pinned by hash; when any, the identity covers them too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub startup: Vec<PinnedFile>,
}

/// A deny rule, as stored in config.json's `denied` and sent to admin clients: the hash
/// is refused (`denied`) and never queued, until the rule is lifted (`undeny`, or an
/// approve of the hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DenyRule {
    /// `sha256:<hex>` of the denied binary (for a script, its script identity).
    pub hash: String,
    /// Its path when denied (for a script, the script's path).
    pub path: String,
    /// RFC 3339 time of the decision.
    pub at: String,
    /// For a script run by an interpreter: what its identity (`hash`) was made of, so
    /// that the deny names the script (not the interpreter) and an approve of the hash
    /// approves the script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptIdentity>,
}

/// A binary that asked and is not approved, as in pending.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingEntry {
    /// `sha256:<64 hex>`.
    pub hash: String,
    /// Executable path as the kernel reported it.
    pub path: String,
    /// RFC 3339 time first seen.
    pub first_seen: String,
    /// RFC 3339 time last seen.
    pub last_seen: String,
    /// How many requests it made.
    pub attempts: u64,
    /// Secret names it asked for (at most 32 kept).
    pub names: Vec<String>,
    /// The executable is a script interpreter, which is never approved as a whole.
    #[serde(default)]
    pub interpreter: bool,
    /// Scopes its `hello` asked for (self-reported; the default of `approve`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requested_scopes: Vec<String>,
    /// Access its `hello` asked for (self-reported; the default of `approve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_access: Option<Access>,
    /// For a script run by an interpreter: what its identity was made of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptIdentity>,
    /// macOS: what the binary's code signature says (signed, cdhash, identifier, team
    /// id, flags, injection entitlements). Absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macos: Option<serde_json::Value>,
    /// Files the user can change that it was seen running code from (see
    /// [`Tool::libraries`]): approving it pins them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<PinnedFile>,
    /// When it asked through deputies: its caller chain as last seen, origin first
    /// (`python3 ~/sync.py → git → git-credential-keychain-auth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// For a terminal session: the terminal it was last seen on (`/dev/pts/3, session 42`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    /// It is at the path of an approved tool with other contents: an update of it, which
    /// `keychain-auth upgrade` (Keep access) re-pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_of: Option<UpdateOf>,
}

/// Daemon status, for `keychain-auth status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `keychain-auth/<version>`.
    pub server: String,
    /// Daemon process id.
    pub pid: u32,
    /// Store in use: `secret-service`, `keyutils` or `memory`.
    pub store: String,
    /// Socket path.
    pub socket: String,
    /// Number of approved tools.
    pub tools: usize,
    /// Number of pending binaries.
    pub pending: usize,
    /// Sequence number of the last audit line written.
    pub audit_seq: u64,
    /// SHA-256 (hex) of the last audit line written.
    pub audit_head: String,
    /// The machine's ptrace policy: `absent` (Linux without Yama), `0` to `3` (Yama's
    /// `kernel.yama.ptrace_scope`), `unreadable`, or `not-linux`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ptrace_scope: Option<String>,
    /// Labels of approvals of deputies themselves (the git helper approved by its own
    /// hash): they no longer serve whoever runs the deputy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deputy_approvals: Vec<String>,
    /// Proof of presence for widening decisions: `polkit`, `local-auth`,
    /// `unavailable: <why>` (required, nothing can be approved) or `off: <why>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<String>,
    /// Whether every secret request is being refused (`keychain-auth pause`, the tray's
    /// Pause). Absent from daemons older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Whether a new binary is announced by a desktop notification. Absent from daemons
    /// older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<bool>,
    /// Who runs the daemon: `app` (the tray app hosts it) or `cli` (`keychain-auth
    /// start`, or a service running it). Absent from daemons older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Why a secret name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// Checks a secret name: 1 to 1024 bytes, no control characters (NUL included), no
/// leading `/`, no `.` or `..` path segment, no leading or trailing white space.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError("secret name is empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError(format!(
            "secret name is {} bytes; the limit is {MAX_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(NameError(format!(
            "secret name contains control character U+{:04X}",
            c as u32
        )));
    }
    if name.starts_with('/') {
        return Err(NameError("secret name must not start with '/'".into()));
    }
    if name.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(NameError(
            "secret name must not contain a '.' or '..' segment".into(),
        ));
    }
    if name.trim() != name {
        return Err(NameError(
            "secret name must not start or end with white space".into(),
        ));
    }
    Ok(())
}

/// A `sha256:<64 lowercase hex>` hash of an executable (or of a script identity),
/// checked when it is made: a value of this type is always well formed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, std::hash::Hash)]
pub struct Hash(String);

impl Hash {
    /// Checks `s` ([`validate_hash`]).
    pub fn parse(s: &str) -> Result<Hash, String> {
        validate_hash(s)?;
        Ok(Hash(s.to_string()))
    }

    /// The whole hash, `sha256:` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Shortened for a line meant for a person ([`short_hash`]).
    pub fn short(&self) -> &str {
        short_hash(&self.0)
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Hash {
    type Err = String;
    fn from_str(s: &str) -> Result<Hash, String> {
        Hash::parse(s)
    }
}

impl From<Hash> for String {
    fn from(h: Hash) -> String {
        h.0
    }
}

/// The first characters of a `sha256:<hex>` hash (`sha256:` and 12 hex digits), enough
/// to tell binaries apart on a line meant for a person; the whole hash elsewhere.
pub fn short_hash(hash: &str) -> &str {
    hash.get(..19).unwrap_or(hash)
}

/// Checks a hash: `sha256:` and 64 lowercase hex digits.
pub fn validate_hash(hash: &str) -> Result<(), String> {
    let hex = hash
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("hash {hash:?} must start with sha256:"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "hash {hash:?} must be sha256: followed by 64 lowercase hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_the_documented_shape() {
        let r: Request = serde_json::from_str(r#"{"type":"hello","protocol":1,"client":"x"}"#)
            .expect("hello parses");
        assert_eq!(
            r,
            Request::Hello {
                protocol: 1,
                client: "x".into(),
                scopes: Vec::new(),
                access: None,
            }
        );
        let r: Request = serde_json::from_str(r#"{"type":"list"}"#).expect("list parses");
        assert_eq!(r, Request::List { offset: None });
        let r: Request =
            serde_json::from_str(r#"{"type":"get","name":"a","wait_ms":5}"#).expect("get");
        assert_eq!(
            r,
            Request::Get {
                name: "a".into(),
                wait_ms: Some(5)
            }
        );
    }

    #[test]
    fn the_fields_of_scope_edits_and_deny_rules_are_optional() {
        // An older client's approve, an older daemon's tool reply, an older deny rule.
        let r: Request = serde_json::from_str(r#"{"type":"approve","hash":"h"}"#).expect("approve");
        assert!(matches!(
            r,
            Request::Approve { ref add_scopes, ref remove_scopes, .. }
                if add_scopes.is_empty() && remove_scopes.is_empty()
        ));
        let json = serde_json::to_string(&r).expect("json");
        assert!(
            !json.contains("add_scopes") && !json.contains("remove_scopes"),
            "{json}"
        );
        let d: DenyRule =
            serde_json::from_str(r#"{"hash":"h","path":"/p","at":"t"}"#).expect("deny rule");
        assert_eq!(d.script, None);
        assert_eq!(
            serde_json::to_string(&d).expect("json"),
            r#"{"hash":"h","path":"/p","at":"t"}"#
        );
        let r: Request = serde_json::from_str(r#"{"type":"undeny","hash":"h"}"#).expect("undeny");
        assert_eq!(r.kind(), "undeny");
        assert!(r.is_admin());
    }

    #[test]
    fn unknown_types_and_fields_are_rejected() {
        assert!(serde_json::from_str::<Request>(r#"{"type":"steal"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"get","name":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"type":"list","x":1}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"name":"a"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"[1,2]"#).is_err());
    }

    #[test]
    fn error_response_shape() {
        let e = Response::Error(ErrorBody {
            code: ErrorCode::NotApproved,
            message: "m".into(),
            hash: Some("sha256:00".into()),
            pending: Some(true),
        });
        let s = serde_json::to_string(&e).expect("serializes");
        assert_eq!(
            s,
            r#"{"type":"error","code":"not_approved","message":"m","hash":"sha256:00","pending":true}"#
        );
        let unknown: Response =
            serde_json::from_str(r#"{"type":"error","code":"brand_new","message":"m"}"#)
                .expect("unknown codes still parse");
        assert!(matches!(
            unknown,
            Response::Error(ErrorBody {
                code: ErrorCode::Unknown,
                ..
            })
        ));
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("git/https/example.com/alice").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\0b").is_err());
        assert!(validate_name("a\nb").is_err());
        assert!(validate_name("a\u{7f}b").is_err());
        assert!(validate_name("../etc").is_err());
        assert!(validate_name("a/../b").is_err());
        assert!(validate_name("a/./b").is_err());
        assert!(validate_name("/abs").is_err());
        assert!(validate_name(" pad").is_err());
        assert!(validate_name(&"x".repeat(1024)).is_ok());
        assert!(validate_name(&"x".repeat(1025)).is_err());
        assert!(validate_name("a..b").is_ok());
    }

    #[test]
    fn hashes_are_checked() {
        let good = format!("sha256:{}", "ab".repeat(32));
        assert!(validate_hash(&good).is_ok());
        assert!(validate_hash(&good.to_uppercase()).is_err());
        assert!(validate_hash("sha256:abc").is_err());
        assert!(validate_hash(&"ab".repeat(32)).is_err());
        let h = Hash::parse(&good).expect("good");
        assert_eq!(h.as_str(), good);
        assert_eq!(h.short(), &good[..19]);
        assert_eq!(h.to_string(), good);
        assert!("sha256:abc".parse::<Hash>().is_err());
        assert_eq!(short_hash("short"), "short");
    }
}
