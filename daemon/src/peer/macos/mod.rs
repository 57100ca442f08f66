//! Peer identification on macOS, from the kernel's audit token of the connection.
//!
//! Right after `accept()` the daemon reads `getpeereid` (the uid) and `LOCAL_PEERTOKEN`
//! (the audit token of the connection's last sender, which until the client writes is
//! the process that connected; it carries the pid *and pid version*) and keeps the token
//! and a duplicate of the connection. Everything about the process is then asked through
//! the token or confirmed against it: `proc_pidpath_audittoken` gives the executable's
//! path and fails once the process has exited or exec'd (its pid version changes), so a
//! reused pid is never judged. Never `LOCAL_PEERPID` + `proc_pidpath` alone.
//!
//! Pid-based reads (`proc_pidinfo` for the traced flag and the working directory, the
//! `KERN_PROCARGS2` sysctl for arguments and environment) are bracketed by token checks:
//! if the token still resolves after them, the pid still named the same process while
//! they ran. Before every answer `LOCAL_PEERTOKEN` is read again and must equal the kept
//! token (`peer/audit_token.rs`: another writer, an exec, or an exited writer is
//! refused), and the kept token must still resolve to the same path.
//!
//! The code signature of the running process is read through the same token and
//! validated against the running code (`code_signature.rs`), judged in
//! `peer/signing.rs`.
//!
//! Known limits, stated in docs/macos.md: the executable is hashed by path (macOS has no
//! `/proc/<pid>/exe` to open the running file); `SecCodeCheckValidity` refuses a file
//! changed on disk since it was loaded, and the cdhash of the running code is recorded
//! beside the hash. Messages carry no per-message sender credentials: a write by another
//! process on the connection is seen only if it was the last one before the daemon reads
//! the token again. This file is type-checked on Linux with
//! `cargo clippy --target x86_64-apple-darwin` but has not run on a Mac.

pub(crate) mod code_signature;

use super::audit_token::{self, AuditToken};
use super::identify::{self, hash_of, inspect_err, Named, ScriptFinder};
use super::procargs::{Procargs, Unreadable};
use super::{injected_env, Peer, PeerError};
use crate::digest::HashCache;
use code_signature::signing_facts;
use std::ffi::CStr;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

extern "C" {
    /// libproc (in libSystem): the executable path of the process an audit token names;
    /// fails with `ESRCH` when that process (that pid *version*) no longer exists.
    fn proc_pidpath_audittoken(
        token: *const AuditToken,
        buffer: *mut libc::c_void,
        buffersize: u32,
    ) -> libc::c_int;
}

/// `PROC_FLAG_TRACED` of `<sys/proc_info.h>`: the process is being debugged.
const PROC_FLAG_TRACED: u32 = 0x2;

/// What is kept to re-check the peer: its audit token, the path it had, and the
/// connection (a duplicate of the daemon's descriptor) to read the token again.
#[derive(Debug)]
pub struct Handle {
    token: AuditToken,
    path: String,
    conn: OwnedFd,
}

/// The connection's peer uid and audit token.
fn peer_token(sock: BorrowedFd<'_>) -> Result<(u32, AuditToken), PeerError> {
    let uid = nix::unistd::getpeereid(sock)
        .map_err(|e| match e {
            nix::errno::Errno::ENOTCONN | nix::errno::Errno::EINVAL => PeerError::Gone,
            e => inspect_err("getpeereid", e.into()),
        })?
        .0
        .as_raw();
    Ok((uid, read_token(sock).map_err(audit_token::read_error)?))
}

/// `LOCAL_PEERTOKEN`: the token of the connection's last sender, looked up now.
fn read_token(sock: BorrowedFd<'_>) -> std::io::Result<AuditToken> {
    let mut token = AuditToken::default();
    // Not nix's `LocalPeerToken`: it panics on an answer of another size, which this
    // refuses with an error instead.
    let mut len = std::mem::size_of::<AuditToken>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into the token we own.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_LOCAL,
            libc::LOCAL_PEERTOKEN,
            (&mut token as *mut AuditToken).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<AuditToken>() {
        return Err(std::io::Error::other(format!("it returned {len} bytes")));
    }
    Ok(token)
}

/// The executable path of the process the token names; `Gone` once that process exited
/// or exec'd.
fn token_path(token: &AuditToken) -> Result<String, PeerError> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    // SAFETY: the buffer is writable for its length; the token is a valid struct.
    let n = unsafe { proc_pidpath_audittoken(token, buf.as_mut_ptr().cast(), buf.len() as u32) };
    if n <= 0 {
        return Err(PeerError::Gone);
    }
    buf.truncate(n as usize);
    String::from_utf8(buf).map_err(|_| PeerError::Inspect("executable path is not UTF-8".into()))
}

/// `proc_pidinfo(PROC_PIDTBSDINFO)`: flags, parent, uids.
fn bsd_info(pid: i32) -> Result<libc::proc_bsdinfo, PeerError> {
    // SAFETY: proc_bsdinfo is plain data; zero is a valid value.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: the kernel writes at most `size` bytes into info.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    if n != size {
        return Err(PeerError::Gone);
    }
    Ok(info)
}

/// The process's working directory (for a script named by a relative path).
fn cwd_of(pid: i32) -> Option<String> {
    // SAFETY: proc_vnodepathinfo is plain data; zero is a valid value.
    let mut info: libc::proc_vnodepathinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_vnodepathinfo>() as libc::c_int;
    // SAFETY: the kernel writes at most `size` bytes into info.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            (&mut info as *mut libc::proc_vnodepathinfo).cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    // SAFETY: vip_path is MAXPATHLEN bytes that the kernel NUL-terminates.
    let bytes: &[u8] = unsafe {
        std::slice::from_raw_parts(
            info.pvi_cdir.vip_path.as_ptr().cast::<u8>(),
            std::mem::size_of_val(&info.pvi_cdir.vip_path),
        )
    };
    CStr::from_bytes_until_nul(bytes)
        .ok()
        .and_then(|c| c.to_str().ok())
        .map(str::to_string)
}

/// `KERN_PROCARGS2`: the process's arguments and environment, as the kernel keeps them
/// (`argc`, the exec path, padding, `argc` arguments, then `NAME=value` strings). The
/// outer error is the process gone; the inner one a buffer [`procargs`](super::procargs)
/// refuses, which leaves the peer with no script identity and refused.
fn proc_args(pid: i32) -> Result<Result<Procargs, Unreadable>, PeerError> {
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut size: libc::size_t = 0;
    // SAFETY: a size query: no buffer is written.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            std::ptr::null_mut(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(PeerError::Gone);
    }
    let mut buf = vec![0u8; size];
    // SAFETY: the kernel writes at most `size` bytes into buf.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return Err(PeerError::Gone);
    }
    buf.truncate(size);
    Ok(super::procargs::parse(&buf))
}

/// Opens a file without blocking on a FIFO and without following the file's own name
/// into a terminal.
fn open_nonblocking(path: &str) -> std::io::Result<File> {
    use nix::fcntl::OFlag;
    if path.contains('\0') {
        return Err(std::io::Error::other("NUL in path"));
    }
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    Ok(File::from(nix::fcntl::open(
        path,
        flags,
        nix::sys::stat::Mode::empty(),
    )?))
}

/// The path of an open file (`F_GETPATH`), symbolic links resolved.
fn path_of_file(f: &File) -> std::io::Result<String> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // Not nix's `F_GETPATH`: it panics on a path that is not UTF-8.
    // SAFETY: F_GETPATH writes at most PATH_MAX bytes into buf.
    if unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPATH, buf.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    CStr::from_bytes_until_nul(&buf)
        .ok()
        .and_then(|c| c.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::other("F_GETPATH gave no path"))
}

pub(super) fn identify(
    sock: BorrowedFd<'_>,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    let (uid, token) = peer_token(sock)?;
    let ours = crate::dirs::euid();
    if uid != ours || token.euid() != ours {
        return Err(PeerError::WrongUser { peer: uid, ours });
    }
    let conn = sock
        .try_clone_to_owned()
        .map_err(|e| inspect_err("keep the connection", e))?;
    inspect(token, conn, uid, cache, may_hash)
}

fn inspect(
    token: AuditToken,
    conn: OwnedFd,
    uid: u32,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    let pid = token.pid();
    let path = token_path(&token)?;
    let info = bsd_info(pid)?;
    let args = proc_args(pid)?;
    let cwd = cwd_of(pid);
    let signing = signing_facts(&token);
    // Still the same process (same pid version) after the pid-based reads above.
    if token_path(&token)? != path {
        return Err(PeerError::Changed);
    }
    let mut injection = (info.pbi_flags & PROC_FLAG_TRACED != 0)
        .then(|| "it is being traced (a debugger is attached)".to_string());
    let signing = match signing {
        Ok(f) => {
            if injection.is_none() {
                injection = f.refusal();
            }
            Some(f)
        }
        Err(why) => {
            injection = injection.or(Some(format!(
                "its code signature cannot be relied on: {why}"
            )));
            None
        }
    };
    if injection.is_none() {
        injection = match &args {
            Ok(a) => injected_env(&a.env),
            Err(e) => Some(format!(
                "its arguments and environment are unreadable ({e})"
            )),
        };
    }
    let exe = File::open(&path).map_err(|e| inspect_err("open executable", e))?;
    let (exe_hash, _) = hash_of(cache, &exe, may_hash, "hash executable")?;
    // No descriptor of the script can be checked here, so its directory may have changed
    // since it was read: only an absolute path names it, and the working directory is
    // not used.
    let _ = cwd;
    let id = identify::identity(&path, exe_hash, |exe_hash| match &args {
        Ok(a) => {
            let env = super::script::Env::parse(&a.env);
            identify::script_of(&ByPath, &path, exe_hash, &a.argv, &env, cache, may_hash)
        }
        Err(e) => Ok(Err(format!(
            "no script identity applies: its arguments are unreadable ({e})"
        ))),
    })?;
    let handle = Handle {
        token,
        path: path.clone(),
        conn,
    };
    Ok(Peer {
        signing,
        ..id.peer(pid, uid, path, injection, handle)
    })
}

/// Finds a script by the absolute path its command line names ([`identify::script_of`]).
struct ByPath;

impl ScriptFinder for ByPath {
    type Found = ();

    fn open(&self, named: &Named<'_>) -> Result<Result<(File, ()), String>, PeerError> {
        use super::script::Startup;
        let path = &named.path;
        // Startup files (Python's site) are not pinned on macOS yet: they are root's
        // in the system Python; a user's own are named in docs/macos.md.
        if !matches!(named.startup, Startup::None | Startup::Python { .. }) {
            return Ok(Err(
                "no script identity applies: its interpreter reads configuration from beside argv[0]"
                    .into(),
            ));
        }
        if !path.starts_with('/') {
            return Ok(Err(format!(
                "its script is named by a relative path ({path:?}), so the directory it was read from may not be the one it is in now; run it by its absolute path"
            )));
        }
        let file = match open_nonblocking(path) {
            Ok(f) => f,
            Err(e) => return Ok(Err(format!("its script {path:?} cannot be read: {e}"))),
        };
        let meta = file.metadata().map_err(|e| inspect_err("stat script", e))?;
        if !meta.is_file() {
            return Ok(Err(format!("its script {path:?} is not a regular file")));
        }
        Ok(Ok((file, ())))
    }

    fn settle(
        &self,
        _named: &Named<'_>,
        file: &File,
        _meta: &std::fs::Metadata,
        _found: (),
    ) -> Result<Result<(String, Vec<keychain_auth_sdk::protocol::PinnedFile>), String>, PeerError>
    {
        let resolved = path_of_file(file).map_err(|e| inspect_err("resolve script path", e))?;
        Ok(Ok((resolved, Vec::new())))
    }
}

/// `keychain-auth get`'s caller. Not available on macOS yet: the parent's audit token
/// cannot be had without its task port, and a pid alone is not an identity.
#[derive(Debug)]
pub struct ParentSeed;

pub(super) fn parent(_peer: &Peer, _with_output: bool) -> Result<ParentSeed, PeerError> {
    Err(PeerError::Inspect(
        "the program that started a deputy (keychain-auth get, the git helper) cannot be identified on macOS yet (its audit token cannot be obtained); connect with the SDK instead".into(),
    ))
}

/// No terminal sessions without caller chains.
pub(super) fn terminal(_peer: &Peer) -> Result<Option<super::Tty>, PeerError> {
    Err(PeerError::Unsupported)
}

/// No terminal sessions without caller chains.
pub(super) fn holds_terminal(_peer: &Peer, _tty: &super::Tty) -> Result<bool, PeerError> {
    Err(PeerError::Unsupported)
}

pub(super) fn identify_seed(
    _seed: ParentSeed,
    _cache: &HashCache,
    _may_hash: bool,
) -> Result<Peer, PeerError> {
    Err(PeerError::Unsupported)
}

/// Before every answer: the connection's last sender must still be the peer (the token
/// read again equals the kept one, see `peer/audit_token.rs`), and the token must still
/// resolve (same pid version, so neither exited nor exec'd) to the same path.
pub(super) fn recheck(peer: &Peer) -> Result<(), PeerError> {
    audit_token::judge(&peer.handle.token, read_token(peer.handle.conn.as_fd()))?;
    recheck_handle(&peer.handle, peer.pid)
}

/// [`recheck`] of one process by its handle.
pub(super) fn recheck_handle(handle: &Handle, pid: i32) -> Result<(), PeerError> {
    match token_path(&handle.token) {
        Ok(p) if p == handle.path => Ok(()),
        Ok(_) => Err(PeerError::Changed),
        Err(_) => {
            // Signal 0 only checks that the pid exists.
            let alive = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                None::<nix::sys::signal::Signal>,
            )
            .is_ok();
            Err(if alive {
                PeerError::Changed
            } else {
                PeerError::Gone
            })
        }
    }
}

/// The process at the other end of a client's connection: its audit token (taken by the
/// kernel at connect) names it, and its executable is opened by the path the token
/// resolves to (macOS has no handle on a running file; the code signature is what binds
/// path and process, see `signing_facts`).
pub(super) fn listener(sock: BorrowedFd<'_>) -> Result<super::Listener, PeerError> {
    let (_uid, token) = peer_token(sock)?;
    let path = token_path(&token)?;
    let file = File::open(&path).map_err(|e| inspect_err("open the listener's executable", e))?;
    Ok(super::Listener::Runs { path, file })
}
