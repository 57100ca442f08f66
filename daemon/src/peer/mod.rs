//! Who is on the other end of the socket, as the kernel says: uid, process, executable
//! and its SHA-256, plus the signals that the process may be tampered with; everything
//! above this module sees only [`Peer`] and the functions here.
//!
//! - `identify.rs`: the OS-neutral steps (interpreters, injection variables, the script
//!   steps, hashes); [`script`]: what an interpreter's command line and environment run.
//! - [`shebang`]: the identity a `#!` script will have when run, for `register`.
//! - [`linux`] (`SO_PEERPIDFD`, `/proc`, sock_diag), `macos/` (the audit token,
//!   [`audit_token`], [`signing`], [`procargs`]) and, on other systems, `unsupported.rs` (every peer
//!   refused): what each OS reads about a process.
//!
//! Not here: what the daemon decides about a peer (`policy`) or tells it (`requests`).

use crate::digest::HashCache;
pub use keychain_auth_sdk::protocol::ScriptIdentity;
use nix::sys::socket::MsgFlags;
use std::os::fd::BorrowedFd;

pub mod audit_token;
pub mod chain;
mod identify;
pub mod procargs;
pub mod script;
pub mod shebang;
pub mod signing;

pub use identify::{base_name, exe_base_name, injected_env, is_interpreter, script_identity_hash};

#[cfg(target_os = "linux")]
pub mod linux;
#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "linux")]
use linux as sockets;
#[cfg(not(target_os = "linux"))]
use plain_sockets as sockets;

#[cfg(target_os = "macos")]
pub(crate) mod macos;
#[cfg(target_os = "macos")]
use macos as os;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
use unsupported as os;

pub use os::{Handle, ParentSeed};

/// Why a peer could not be identified or is no longer the process it was.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer runs as another user.
    #[error("the connecting process runs as uid {peer}, not uid {ours}")]
    WrongUser {
        /// The peer's uid.
        peer: u32,
        /// Ours.
        ours: u32,
    },
    /// The peer exited (its pid may already belong to another process).
    #[error("the connecting process exited before it could be checked")]
    Gone,
    /// Another process wrote on the peer's connection (an inherited socket).
    #[error("process {0} wrote on a connection that process {1} opened (an inherited socket)")]
    ForeignSender(i32, i32),
    /// The peer now runs a different executable than when it connected.
    #[error("the connecting process replaced its executable (exec) after connecting")]
    Changed,
    /// The identified process does not hold its end of the connection: it was closed by
    /// an exec (the program that connected is gone), or handed to another process.
    #[error("the process named as the peer does not hold its end of this connection: the program that connected replaced itself (exec) or handed the connection to another process")]
    NotHolding,
    /// The identified process holds the connection only through a descriptor that is not
    /// close-on-exec, which is what one kept across an exec looks like.
    #[error("the connecting process holds this connection in descriptor {0}, which is not close-on-exec: that is how a connection kept across an exec (from another program) looks. Clients must open the socket close-on-exec (SOCK_CLOEXEC)")]
    Inheritable(i32),
    /// The peer could not be inspected.
    #[error("cannot inspect the connecting process: {0}")]
    Inspect(String),
    /// The executable is not in the hash cache and hashing was not allowed (the caller
    /// retries on a thread that may block).
    #[error("the executable has not been hashed yet")]
    NeedsHash,
    /// This OS has no peer-identification recipe in this build.
    #[error("peer identification is not implemented for this operating system yet")]
    Unsupported,
    /// A process is not tied to the one said to be its child: an orphan adopted by
    /// init or a subreaper, or a parent that holds none of its child's streams.
    #[error("{0}")]
    Unlinked(String),
}

/// What a shell runs when it runs no script file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShellRuns {
    /// Code on its command line (`sh -c '…'`): written by the program that started it.
    Inline,
    /// Commands it reads as they come (an interactive shell, or `sh -s`/standard input).
    Commands,
}

/// The pseudo-terminal an interactive shell reads, and the session it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tty {
    /// `/dev/pts/N`.
    pub path: String,
    /// N.
    pub index: u32,
    /// The shell's session id.
    pub session: i32,
}

/// Why a program between a deputy and its origin is passed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassThrough {
    /// A deputy of keychain-auth itself (the git helper, the CLI).
    Deputy,
    /// One of the installed git's own executables.
    Git,
    /// A shell running code given on its command line: its author is its parent.
    InlineShell,
    /// An interactive shell on the terminal of a terminal session.
    TerminalShell,
}

/// One program of a caller chain between the connecting deputy and the origin, pinned
/// like a peer and re-checked with it.
#[derive(Debug)]
pub struct Link {
    /// Its pid.
    pub pid: i32,
    /// Its executable.
    pub path: String,
    /// Why it is passed through.
    pub what: PassThrough,
    /// OS state to re-check it.
    pub handle: Handle,
}

/// A connected process, identified once right after `accept()`.
#[derive(Debug)]
pub struct Peer {
    /// Process id (as the kernel reported it for the socket).
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Executable path as the kernel reports it (may end in " (deleted)").
    pub path: String,
    /// The identity decisions are keyed on: `sha256:<hex>` of the executable that is
    /// running, or for a script run by an interpreter, of its [`ScriptIdentity`].
    pub hash: String,
    /// The executable is a script interpreter and no script identity applies (inline
    /// code, an interactive shell, an unreadable script): never approvable.
    pub interpreter: bool,
    /// Why an interpreter has no script identity, for the refusal message.
    pub no_script: Option<String>,
    /// The script an interpreter runs, when it runs one from a file.
    pub script: Option<ScriptIdentity>,
    /// How the request reached the daemon when not directly (`keychain-auth get`).
    pub via: Option<String>,
    /// Why the process looks tampered with, if it does.
    pub injection: Option<String>,
    /// OS state used to re-check the peer before each answer.
    pub handle: Handle,
    /// What its `hello` asked for, set once when the hello arrives. Self-reported: only
    /// a default offered to the user, never a grant.
    pub wants: std::sync::OnceLock<Wants>,
    /// macOS: what its code signature says; `None` elsewhere.
    pub signing: Option<signing::Facts>,
    /// For the program that ran `keychain-auth get`: how it holds the reading end of the
    /// CLI's standard output. `None` for a peer that connected itself.
    pub output: Option<OutputBinding>,
    /// Executable files it maps that its user can change, other than its own executable
    /// (Linux; see [`mappings`]): code its approval must name.
    pub libraries: Vec<keychain_auth_sdk::protocol::PinnedFile>,
    /// A shell that runs no script: what it runs instead.
    pub shell: Option<ShellRuns>,
    /// For the origin of a caller chain: the programs between it and the connecting
    /// deputy, nearest the deputy first.
    pub chain: Vec<Link>,
    /// For a terminal session: the terminal, whose master this process holds.
    pub terminal: Option<Tty>,
    /// For the origin of a caller chain: the deputy it asked through.
    pub through: Option<keychain_auth_sdk::protocol::Deputy>,
    /// For a deputy: the origin of its caller chain, found on its first secret request.
    pub origin: std::sync::OnceLock<std::sync::Arc<Peer>>,
    /// For a process found as the parent of another: whether it holds one of that
    /// child's standard streams (a pipe, socket, terminal or file it gave it). A
    /// subreaper or init that adopted an orphan holds none.
    pub child_stream: Option<bool>,
}

/// How the program that ran `keychain-auth get` holds the reading end of the pipe (or
/// socket) the CLI writes the value to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputBinding {
    /// It holds it, through close-on-exec descriptors only: its current program opened
    /// (or took over) that pipe, so it is the program that started the CLI or one it
    /// handed the pipe to; a descriptor kept across an exec could not be close-on-exec.
    Bound,
    /// It holds it through a descriptor that is not close-on-exec (a shell's `$(…)` pipe
    /// is one): it may have been kept across an exec, so a program that started the CLI
    /// and then became this one cannot be told apart.
    Inheritable(i32),
    /// The value would go elsewhere: not into a pipe or socket this process reads.
    Elsewhere(String),
}

/// Scopes and access a client's `hello` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    /// Scope patterns (each valid, at most `MAX_REQUESTED_SCOPES`).
    pub scopes: Vec<String>,
    /// `read` or `read-write`.
    pub access: Option<keychain_auth_sdk::protocol::Access>,
}

impl Peer {
    /// Identifies the process at the other end of a connected Unix socket, hashing its
    /// executable if the cache does not know it (which may take a while for a large file).
    pub fn identify(sock: BorrowedFd<'_>, cache: &HashCache) -> Result<Peer, PeerError> {
        os::identify(sock, cache, true)
    }

    /// Like [`Peer::identify`] but never reads the executable: fails with
    /// [`PeerError::NeedsHash`] when its hash is not cached. Cheap enough to run on an
    /// async worker.
    pub fn identify_cached(sock: BorrowedFd<'_>, cache: &HashCache) -> Result<Peer, PeerError> {
        os::identify(sock, cache, false)
    }

    /// The process that started this one (for `keychain-auth get`, which asks on behalf
    /// of its caller), pinned and confirmed to be this process's live parent. Cheap;
    /// identifying it ([`ParentSeed::identify`]) may hash.
    /// With `with_output`, the parent must also hold the reading end of this
    /// process's standard output (judged in [`Peer::output`]); otherwise it inherits
    /// what this process was judged on.
    pub fn parent(&self, with_output: bool) -> Result<ParentSeed, PeerError> {
        os::parent(self, with_output)
    }

    /// Checks that the peer (and every program of its caller chain) is still alive and
    /// still runs the executable it was identified with. Call before answering each
    /// request.
    pub fn recheck(&self) -> Result<(), PeerError> {
        os::recheck(self)?;
        for link in &self.chain {
            os::recheck_handle(&link.handle, link.pid)?;
        }
        Ok(())
    }

    /// The pseudo-terminal this (shell) process reads commands from, if it reads them
    /// from its controlling terminal.
    pub fn terminal_of(&self) -> Result<Option<Tty>, PeerError> {
        os::terminal(self)
    }

    /// Whether this process holds the master side of `tty`.
    pub fn holds_terminal(&self, tty: &Tty) -> Result<bool, PeerError> {
        os::holds_terminal(self, tty)
    }
}

impl ParentSeed {
    /// Identifies the parent with the same recipe as a connecting peer.
    pub fn identify(self, cache: &HashCache, may_hash: bool) -> Result<Peer, PeerError> {
        os::identify_seed(self, cache, may_hash)
    }
}

/// What the kernel shows a client of the process listening at the other end of its
/// connection (the CLI checks the daemon with it before admin requests).
#[derive(Debug)]
pub enum Listener {
    /// The listener's executable, opened (the running file on Linux; by path on macOS).
    Runs {
        /// Its path as the kernel reports it.
        path: String,
        /// The file, for hashing.
        file: std::fs::File,
    },
    /// The kernel does not let this process see it (the listener made itself
    /// non-dumpable, as the daemon does); why, for a person.
    Hidden(String),
}

/// The process listening at the other end of a connected client socket.
pub fn listener(sock: BorrowedFd<'_>) -> Result<Listener, PeerError> {
    os::listener(sock)
}

/// Prepares a listening socket so each message carries its writer's credentials.
pub fn prepare_listener(listener: BorrowedFd<'_>) -> std::io::Result<()> {
    sockets::prepare_listener(listener)
}

/// Makes each [`Recv::Peek`] on a connected socket continue after the bytes the previous
/// peeks returned, so bytes can be read in order and left queued until a
/// [`Recv::Take`]. False where the OS has no peek offset (reads then take the bytes).
pub fn peek_in_turn(sock: BorrowedFd<'_>) -> bool {
    sockets::peek_in_turn(sock)
}

/// Whether a receive takes the bytes off the socket or leaves them there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recv {
    /// Take the bytes (a normal read).
    Take,
    /// Copy the bytes and leave them queued (`MSG_PEEK`). After [`peek_in_turn`], the
    /// next peek starts after them; otherwise it returns them again.
    Peek,
}

impl Recv {
    fn flags(self) -> MsgFlags {
        match self {
            Recv::Take => MsgFlags::MSG_DONTWAIT,
            Recv::Peek => MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_PEEK,
        }
    }
}

/// Reads what is available from a connected socket without blocking, returning the
/// byte count and, where the OS reports it, the pid of the process that wrote them.
pub fn recv_with_sender(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    how: Recv,
) -> std::io::Result<(usize, Option<i32>)> {
    sockets::recv_with_sender(sock, buf, how.flags())
}

/// Sockets where the OS attaches no per-message sender credentials to stream sockets
/// and has no peek offset (macOS, and systems without a recipe).
#[cfg(not(target_os = "linux"))]
mod plain_sockets {
    use nix::sys::socket::MsgFlags;
    use std::os::fd::{AsRawFd, BorrowedFd};

    /// Nothing to prepare: messages carry no credentials to ask for.
    pub(super) fn prepare_listener(_listener: BorrowedFd<'_>) -> std::io::Result<()> {
        Ok(())
    }

    /// No peek offset (`SO_PEEK_OFF`): reads take bytes as they come.
    pub(super) fn peek_in_turn(_sock: BorrowedFd<'_>) -> bool {
        false
    }

    /// One non-blocking `recv`; the sender is unknown (`None`).
    pub(super) fn recv_with_sender(
        sock: BorrowedFd<'_>,
        buf: &mut [u8],
        flags: MsgFlags,
    ) -> std::io::Result<(usize, Option<i32>)> {
        let n = nix::sys::socket::recv(sock.as_raw_fd(), buf, flags)?;
        Ok((n, None))
    }
}

impl Peer {
    /// Checks that bytes reported as written by `sender` came from this peer. On Linux the
    /// kernel always reports the writer; a missing or different pid fails closed.
    pub fn check_sender(&self, sender: Option<i32>) -> Result<(), PeerError> {
        match sender {
            Some(pid) if pid == self.pid => Ok(()),
            Some(pid) => Err(PeerError::ForeignSender(pid, self.pid)),
            None if cfg!(target_os = "linux") => Err(PeerError::ForeignSender(0, self.pid)),
            None => Ok(()),
        }
    }
}
