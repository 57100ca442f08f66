//! Linux peer identification. `SO_PEERCRED` gives the uid; `SO_PEERPIDFD` gives a pidfd
//! that pins the exact process. We read the pid from the pidfd, open the `/proc/<pid>`
//! directory, and only then check the pidfd is still alive: if it is, the pid was not
//! reused and the directory is the peer's for good (once the peer dies, lookups in it
//! fail rather than reach a process that reused the pid). Every later read goes through
//! that directory: `exe` (the inode that is executing, even if its path was replaced),
//! `status`, `environ`. Kernels without `SO_PEERPIDFD` (< 6.5) fall back to
//! `SO_PEERCRED` plus the process start time, checked before and after each read.
//!
//! The identity is bound to the process as it holds the connection now: it must hold
//! its end of this very socket (found with sock_diag), through close-on-exec descriptors
//! only, which a descriptor kept across an `exec` cannot be ([`super::holders`]). The
//! descriptor table is read after the environment, whose opening waits for an `exec`
//! in progress to finish, and the executable is looked at again afterwards, so the
//! table and the executable belong to the same program.

use super::holders::{self, Binding, Object};
use super::{injected_env, is_interpreter, OutputBinding, Peer, PeerError};
use crate::digest::HashCache;
use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// `SO_PEERPIDFD` from linux/socket.h (6.5+).
const SO_PEERPIDFD: libc::c_int = 77;

/// What is kept to re-check the peer later.
#[derive(Debug)]
pub struct Handle {
    pidfd: Option<OwnedFd>,
    proc_dir: OwnedFd,
    start_time: u64,
    exe_inode: (u64, u64),
}

fn inspect_err(what: &str, e: std::io::Error) -> PeerError {
    PeerError::Inspect(format!("{what}: {e}"))
}

fn peer_cred(sock: BorrowedFd<'_>) -> Result<libc::ucred, PeerError> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred is a valid ucred and len its size; the fd is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(inspect_err("SO_PEERCRED", std::io::Error::last_os_error()));
    }
    Ok(cred)
}

/// The peer's pidfd, or `None` on kernels that lack `SO_PEERPIDFD`.
fn peer_pidfd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, PeerError> {
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is a valid c_int and len its size; the socket fd is borrowed for the call.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOPROTOOPT) | Some(libc::EINVAL) => Ok(None),
            Some(libc::ESRCH) => Err(PeerError::Gone),
            _ => Err(inspect_err("SO_PEERPIDFD", e)),
        };
    }
    // SAFETY: the kernel returned a new pidfd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo`. `Gone` if the process exited.
fn pidfd_pid(pidfd: &OwnedFd) -> Result<i32, PeerError> {
    let info = read_proc_text(&format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd()))
        .map_err(|e| inspect_err("pidfd fdinfo", e))?;
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .ok_or_else(|| PeerError::Inspect("pidfd fdinfo has no Pid line".into()))?;
    match pid {
        -1 => Err(PeerError::Gone),
        0 => Err(PeerError::Inspect(
            "the peer is in another pid namespace".into(),
        )),
        p => Ok(p),
    }
}

/// Whether the process behind a pidfd is still alive (signal 0 checks without sending).
fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 and no siginfo only checks the process.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot.
fn start_time(pid: i32) -> Result<u64, PeerError> {
    let stat = read_proc_text(&format!("/proc/{pid}/stat")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PeerError::Gone
        } else {
            inspect_err("stat", e)
        }
    })?;
    // The command name (field 2) may hold spaces and parentheses: skip past the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| PeerError::Inspect("malformed /proc stat".into()))?;
    rest.split_whitespace()
        .nth(19)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| PeerError::Inspect("malformed /proc stat".into()))
}

fn gone_or(what: &str, e: std::io::Error) -> PeerError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => PeerError::Gone,
        _ => inspect_err(what, e),
    }
}

fn c_name(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

/// Opens `/proc/<pid>` as an `O_PATH` directory handle.
fn open_proc_dir(pid: i32) -> Result<OwnedFd, PeerError> {
    let path = c_name(&format!("/proc/{pid}"));
    // SAFETY: path is a valid C string; the returned fd is owned below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(gone_or("open /proc/<pid>", std::io::Error::last_os_error()));
    }
    // SAFETY: open returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a file inside the process directory for reading (following `exe`'s link).
fn open_in(dir: &OwnedFd, name: &str) -> Result<File, PeerError> {
    let c = c_name(name);
    // SAFETY: dir is a valid directory fd and c a valid C string.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(gone_or(name, std::io::Error::last_os_error()));
    }
    // SAFETY: openat returned a new descriptor nobody else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn read_in(dir: &OwnedFd, name: &str) -> Result<Vec<u8>, PeerError> {
    read_all(open_in(dir, name)?, name)
}

fn read_all(mut f: File, name: &str) -> Result<Vec<u8>, PeerError> {
    read_proc(&mut f).map_err(|e| gone_or(name, e))
}

/// Reads a whole `/proc` file with plain `read`s into a page-sized buffer that doubles
/// when full. `read_to_end` would first ask the file's size (which `/proc` reports as 0)
/// and then probe with 32-byte reads: 8 system calls for a `status` file instead of 2,
/// on every new connection.
fn read_proc(f: &mut File) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// A `/proc` file read whole as text (invalid UTF-8 is replaced, never trusted).
fn read_proc_text(path: &str) -> std::io::Result<String> {
    let bytes = read_proc(&mut File::open(path)?)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The target of the `exe` link, as the kernel prints it.
fn exe_path(dir: &OwnedFd) -> Result<String, PeerError> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let exe = c_name("exe");
    // SAFETY: buf is writable for its length; dir and exe are valid.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            exe.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(gone_or("readlink exe", std::io::Error::last_os_error()));
    }
    buf.truncate(n as usize);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Device and inode of the executable, through the `exe` link.
fn exe_inode(dir: &OwnedFd) -> Result<(u64, u64), PeerError> {
    let exe = c_name("exe");
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: dir and exe are valid; st is writable.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), exe.as_ptr(), &mut st, 0) };
    if rc != 0 {
        return Err(gone_or("stat exe", std::io::Error::last_os_error()));
    }
    Ok((st.st_dev, st.st_ino))
}

fn tracer_pid(status: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Confirms the process read about is still the one that connected.
fn still_same(pidfd: Option<&OwnedFd>, pid: i32, start: u64) -> Result<(), PeerError> {
    match pidfd {
        Some(fd) if pidfd_alive(fd) => Ok(()),
        Some(_) => Err(PeerError::Gone),
        None if start_time(pid)? == start => Ok(()),
        None => Err(PeerError::Gone),
    }
}

pub(super) fn identify(
    sock: BorrowedFd<'_>,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    let cred = peer_cred(sock)?;
    let ours = crate::dirs::euid();
    if cred.uid != ours {
        return Err(PeerError::WrongUser {
            peer: cred.uid,
            ours,
        });
    }
    let pidfd = peer_pidfd(sock)?;
    let pid = match &pidfd {
        Some(fd) => {
            let p = pidfd_pid(fd)?;
            if p != cred.pid {
                return Err(PeerError::Inspect(format!(
                    "SO_PEERCRED says pid {} but the pidfd says {p}",
                    cred.pid
                )));
            }
            p
        }
        None => cred.pid,
    };
    // The client's end of this connection, which the identified process must hold.
    let ours = std::fs::File::from(
        sock.try_clone_to_owned()
            .map_err(|e| inspect_err("dup the connection", e))?,
    )
    .metadata()
    .map_err(|e| inspect_err("stat the connection", e))?
    .ino();
    let theirs = holders::unix_peer_of(ours)
        .map_err(|e| inspect_err("sock_diag (the kernel's unix_diag)", e))?
        .ok_or(PeerError::NotHolding)?;
    inspect(
        pidfd,
        pid,
        cred.uid,
        cache,
        may_hash,
        Held::Connection(theirs),
    )
}

/// What the process being identified must hold.
enum Held {
    /// Its end of the connection (a socket inode): refused unless bound.
    Connection(u64),
    /// The reading end of the output of `keychain-auth get` (which the caller of the CLI
    /// should read), or why there is none: judged by the request, recorded in
    /// [`Peer::output`].
    Output(Result<Object, String>),
}

/// Identifies a process whose pid was just taken from a pidfd (or, without one, from the
/// kernel): its executable, its hash, injection signals, and the script an interpreter
/// runs. Every read goes through a `/proc/<pid>` directory that is confirmed to be the
/// process's own.
fn inspect(
    pidfd: Option<OwnedFd>,
    pid: i32,
    uid: u32,
    cache: &HashCache,
    may_hash: bool,
    held: Held,
) -> Result<Peer, PeerError> {
    let start = start_time(pid)?;
    let dir = open_proc_dir(pid)?;
    // The directory was opened through the pid; it is the peer's only if the peer is
    // still alive now (a live pidfd means the pid cannot have been reused).
    still_same(pidfd.as_ref(), pid, start)?;
    let exe = open_in(&dir, "exe")?;
    let exe_meta = exe.metadata().map_err(|e| gone_or("stat exe", e))?;
    let path = exe_path(&dir)?;
    let status_file = open_in(&dir, "status")?;
    // The kernel gives a non-dumpable process's /proc entries to root: an owner other than
    // the peer's uid means the peer made itself non-dumpable (or exec'd something setuid).
    // When the peer is root this cannot be told apart.
    let status_owner = status_file
        .metadata()
        .map_err(|e| gone_or("status", e))?
        .uid();
    let status = read_all(status_file, "status")?;
    // Opening `environ` waits for an exec in progress (the kernel holds its
    // exec_update_lock from switching the executable until it has closed the
    // close-on-exec descriptors), so the descriptor table read next is the current
    // program's, and the executable is looked at again after it.
    let environ = read_in(&dir, "environ");
    let output = match held {
        Held::Connection(ino) => {
            match holders::judge(&holdings(&dir, Object::Socket(ino))?, false) {
                Binding::Bound => None,
                Binding::NotHeld => return Err(PeerError::NotHolding),
                Binding::Inheritable(fd) => return Err(PeerError::Inheritable(fd)),
            }
        }
        Held::Output(Err(why)) => Some(OutputBinding::Elsewhere(why)),
        Held::Output(Ok(obj)) => {
            let reads = matches!(obj, Object::Pipe(_));
            Some(match holders::judge(&holdings(&dir, obj)?, reads) {
                Binding::Bound => OutputBinding::Bound,
                Binding::Inheritable(fd) => OutputBinding::Inheritable(fd),
                Binding::NotHeld => OutputBinding::Elsewhere(
                    "its output goes to a pipe that the program that ran it does not read (another program reads it)".into(),
                ),
            })
        }
    };
    let (libraries, unverifiable) =
        user_libraries(&dir, (exe_meta.dev(), exe_meta.ino()), cache, may_hash)?;
    if exe_inode(&dir)? != (exe_meta.dev(), exe_meta.ino()) {
        return Err(PeerError::Changed);
    }
    if pidfd.is_none() {
        // Without a pidfd, confirm again that the pid still names the same process.
        still_same(None, pid, start)?;
    }

    let mut injection = match tracer_pid(&status) {
        _ if status_owner != uid => Some(format!(
            "it made itself non-dumpable (its /proc entries belong to uid {status_owner})"
        )),
        Some(0) => None,
        Some(t) => Some(format!("it is being traced by pid {t}")),
        None => Some("its tracer status is unreadable".to_string()),
    };
    if injection.is_none() {
        injection = match &environ {
            Ok(env) => injected_env(env),
            Err(PeerError::Gone) => return Err(PeerError::Gone),
            Err(e) => Some(format!("its environment is unreadable ({e})")),
        };
    }
    if injection.is_none() {
        injection = unverifiable;
    }
    let hashed = if may_hash {
        cache.hash_file(&exe).map(Some)
    } else {
        cache.cached(&exe)
    };
    let (exe_hash, key) = hashed
        .map_err(|e| inspect_err("hash executable", e))?
        .ok_or(PeerError::NeedsHash)?;
    let (mut hash, mut interpreter, mut no_script, mut script) = (exe_hash, false, None, None);
    if is_interpreter(&path) {
        let env = environ.as_deref().unwrap_or(&[]);
        match script_of(&dir, &path, &hash, cache, may_hash, env, start)? {
            Ok(s) => {
                hash = super::script_identity_hash(&s);
                script = Some(s);
            }
            Err(why) => {
                interpreter = true;
                no_script = Some(why);
            }
        }
    }
    Ok(Peer {
        pid,
        uid,
        interpreter,
        no_script,
        script,
        via: None,
        path,
        hash,
        injection,
        handle: Handle {
            pidfd,
            proc_dir: dir,
            start_time: start,
            exe_inode: key.inode(),
        },
        wants: std::sync::OnceLock::new(),
        signing: None,
        output,
        libraries,
    })
}

/// The executable files the process maps that its user can change, hashed (its own
/// executable aside, which its identity already is), and why a mapping cannot be
/// checked, if one cannot. The daemon of root skips this: every file is root's.
#[allow(clippy::type_complexity)]
fn user_libraries(
    dir: &OwnedFd,
    exe: (u64, u64),
    cache: &HashCache,
    may_hash: bool,
) -> Result<(Vec<keychain_auth_sdk::protocol::PinnedFile>, Option<String>), PeerError> {
    use super::mappings::{self, Verdict};
    let uid = crate::dirs::euid();
    if uid == 0 {
        return Ok((Vec::new(), None));
    }
    let maps = read_in(dir, "maps")?;
    let mut out = Vec::new();
    for m in mappings::executable_files(&maps) {
        if (m.dev, m.ino) == exe {
            continue;
        }
        match mappings::judge(&m, uid) {
            Verdict::Trusted => {}
            Verdict::Unverifiable(why) => return Ok((out, Some(why))),
            Verdict::Users(file) => {
                let hashed = if may_hash {
                    cache.hash_file(&file).map(Some)
                } else {
                    cache.cached(&file)
                };
                let (hash, _) = hashed
                    .map_err(|e| inspect_err("hash a mapped library", e))?
                    .ok_or(PeerError::NeedsHash)?;
                out.push(keychain_auth_sdk::protocol::PinnedFile { path: m.path, hash });
            }
        }
    }
    Ok((out, None))
}

/// The descriptors the process holds on `obj`; a process that exited is `Gone`, one
/// whose table cannot be read (non-dumpable) cannot be inspected.
fn holdings(dir: &OwnedFd, obj: Object) -> Result<Vec<holders::Holding>, PeerError> {
    use std::os::fd::AsFd;
    holders::holdings(dir.as_fd(), obj).map_err(|e| gone_or("its descriptors", e))
}

/// Largest script hashed; a bigger "script" is refused as one.
const MAX_SCRIPT: u64 = 64 * 1024 * 1024;

/// How long after the start time the kernel reports a file may have changed and still
/// count as changed before the process started: the start is reported rounded down to
/// 10 ms (plus 1 ms for reading the two clocks it is placed on), so a file written just
/// before a process started (a script written, then run at once) is never taken as
/// changed after it. The price is a window: a change made in the first ~10 ms of the
/// process may be taken as made before it (see the threat model).
const CHANGE_SLACK_MS: i64 = 11;

/// How far before the reported start a change time may be and still have been made after
/// the process started: inode times lag the clock by up to a tick (10 ms at the
/// coarsest). A bound this much before the reported start misses no change made after
/// the start, and takes one made in the ~20 ms before it as made after it.
const START_UNCERTAINTY_MS: i64 = 10;

/// The script an interpreter process runs, found in the process's own world and hashed,
/// with the startup files the interpreter reads before it. `Ok(Err(why))` when no script
/// identity applies (inline code, options or variables that load other code, a path
/// that cannot be resolved unambiguously, …).
fn script_of(
    dir: &OwnedFd,
    interpreter: &str,
    interpreter_hash: &str,
    cache: &HashCache,
    may_hash: bool,
    environ: &[u8],
    start_ticks: u64,
) -> Result<Result<super::ScriptIdentity, String>, PeerError> {
    use super::resolve;
    use super::script::{keeps_script_open, runs, Env, Runs};
    use std::os::fd::AsFd;
    let cmdline = read_in(dir, "cmdline")?;
    let mut argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // The kernel ends each argument with a NUL, so the split leaves an empty last piece.
    while argv.last().is_some_and(String::is_empty) {
        argv.pop();
    }
    let base = interpreter
        .strip_suffix(" (deleted)")
        .unwrap_or(interpreter)
        .rsplit('/')
        .next()
        .unwrap_or(interpreter);
    let env = Env::parse(environ);
    let (named, startup) =
        match runs(base, &argv, &env) {
            Runs::Script { path, startup } => (path, startup),
            Runs::Inline(how) => return Ok(Err(format!("it runs {how}, not a script file"))),
            Runs::Interactive => return Ok(Err(
                "it runs no script file (an interactive session, or commands from standard input)"
                    .into(),
            )),
            Runs::Refused(why) => return Ok(Err(format!("no script identity applies: {why}"))),
        };
    if let Err(why) = resolve::same_world(dir.as_fd()) {
        return Ok(Err(format!("its script cannot be named from here: {why}")));
    }
    let holds = keeps_script_open(base, &argv);
    if !holds && !named.starts_with('/') {
        return Ok(Err(format!(
            "its script is named by a relative path ({named:?}) and {base} does not keep the file open, so the directory it was read from may not be the one it is in now; run it by its absolute path (as a script found on PATH is)"
        )));
    }
    let not_after = resolve::started_at(start_ticks).plus_ms(CHANGE_SLACK_MS);
    let found = match resolve::resolve(dir.as_fd(), &named, not_after) {
        Ok(f) => f,
        Err(why) => {
            return Ok(Err(format!(
                "its script cannot be named unambiguously: {why}"
            )))
        }
    };
    let meta = found
        .file
        .metadata()
        .map_err(|e| inspect_err("stat script", e))?;
    if meta.len() > MAX_SCRIPT {
        return Ok(Err(format!(
            "its script {named:?} is larger than {MAX_SCRIPT} bytes"
        )));
    }
    if holds && !holds_file(dir, (meta.dev(), meta.ino()))? {
        return Ok(Err(format!(
            "{base} does not have {} open, the file its command line names: it is running another one (its directory changed, or the file was replaced)",
            found.path
        )));
    }
    let cwd = std::fs::read_link(format!("/proc/self/fd/{}/cwd", dir.as_raw_fd()))
        .map_err(|e| gone_or("its working directory", e))?;
    let process = super::startup::Process {
        interpreter,
        exe: exe_inode(dir)?,
        cwd: &cwd,
        env: &env,
        script: std::path::Path::new(&found.path),
    };
    let own_dirs: Vec<std::path::PathBuf> = keychain_auth_sdk::paths::Paths::from_env()
        .map(|p| vec![p.config_dir, p.state_dir, p.socket_dir])
        .unwrap_or_default();
    let ctx = super::startup::Context {
        uid: crate::dirs::euid(),
        not_after,
        strict_not_after: resolve::started_at(start_ticks).minus_ms(START_UNCERTAINTY_MS),
        cache,
        may_hash,
        own_dirs: &own_dirs,
    };
    let startup = match super::startup::files(&startup, &process, &ctx)? {
        Ok(files) => files,
        Err(why) => return Ok(Err(format!("no script identity applies: {why}"))),
    };
    let hashed = if may_hash {
        cache.hash_file(&found.file).map(Some)
    } else {
        cache.cached(&found.file)
    };
    let (hash, _) = hashed
        .map_err(|e| inspect_err("hash script", e))?
        .ok_or(PeerError::NeedsHash)?;
    Ok(Ok(super::ScriptIdentity {
        interpreter: interpreter.to_string(),
        interpreter_hash: interpreter_hash.to_string(),
        path: found.path,
        hash,
        startup,
    }))
}

/// Whether the process holds a descriptor on the file (device, inode): a shell keeps
/// the script it runs open.
fn holds_file(dir: &OwnedFd, file: (u64, u64)) -> Result<bool, PeerError> {
    let fds = std::fs::read_dir(format!("/proc/self/fd/{}/fd", dir.as_raw_fd()))
        .map_err(|e| gone_or("its descriptors", e))?;
    for entry in fds {
        let entry = entry.map_err(|e| gone_or("its descriptors", e))?;
        // Following the link reaches the open file itself.
        if let Ok(m) = std::fs::metadata(entry.path()) {
            if m.is_file() && (m.dev(), m.ino()) == file {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// A parent process pinned by a pidfd, not yet identified.
#[derive(Debug)]
pub struct ParentSeed {
    pidfd: OwnedFd,
    pid: i32,
    uid: u32,
    /// The reading end of the child's standard output, which the parent should hold.
    output: Result<Object, String>,
}

/// The reading end of what a process writes to descriptor 1: the pipe itself, or the
/// other end of a socket; `Err` for anything else (a file, a terminal, nothing).
fn reading_end_of_stdout(dir: &OwnedFd) -> Result<Result<Object, String>, PeerError> {
    use std::os::fd::AsFd;
    let obj = holders::object_at(dir.as_fd(), 1).map_err(|e| gone_or("fd/1", e))?;
    Ok(match obj {
        Some(Object::Pipe(ino)) => Ok(Object::Pipe(ino)),
        Some(Object::Socket(ino)) => match holders::unix_peer_of(ino) {
            Ok(Some(peer)) => Ok(Object::Socket(peer)),
            Ok(None) => Err("its output is a socket that nobody reads".into()),
            Err(e) => Err(format!("its output socket cannot be looked up ({e})")),
        },
        None => Err(
            "its output is not a pipe (a file, a terminal, or nothing): keychain-auth get prints only into a pipe that the program that ran it reads".into(),
        ),
    })
}

/// The `PPid:` line of a status file.
fn parent_pid(status: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The real uid (first field of `Uid:`) of a status file.
fn real_uid(status: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub(super) fn parent(peer: &Peer) -> Result<ParentSeed, PeerError> {
    let h = &peer.handle;
    let ppid = parent_pid(&read_in(&h.proc_dir, "status")?)
        .ok_or_else(|| PeerError::Inspect("no PPid in the caller's status".into()))?;
    if ppid <= 1 {
        return Err(PeerError::Inspect(
            "the caller has no parent process to ask for (it was orphaned)".into(),
        ));
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, ppid, 0) };
    if fd < 0 {
        return Err(gone_or(
            "pidfd_open parent",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: pidfd_open returned a new descriptor nobody else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    // The pid was read before the pidfd was taken: if the parent exited in between and
    // its pid was reused, the caller (still alive, checked through its own pidfd) has
    // been reparented, so its PPid no longer names that pid.
    let again = parent_pid(&read_in(&h.proc_dir, "status")?);
    match &h.pidfd {
        Some(fd) if !pidfd_alive(fd) => return Err(PeerError::Gone),
        None => still_same(None, peer.pid, h.start_time)?,
        Some(_) => {}
    }
    if again != Some(ppid) {
        return Err(PeerError::Inspect(
            "the caller's parent exited while it was being identified".into(),
        ));
    }
    let status = read_in(&open_proc_dir(ppid)?, "status")?;
    if !pidfd_alive(&pidfd) {
        return Err(PeerError::Gone);
    }
    let uid = real_uid(&status)
        .ok_or_else(|| PeerError::Inspect("no Uid in the parent's status".into()))?;
    let ours = crate::dirs::euid();
    if uid != ours {
        return Err(PeerError::WrongUser { peer: uid, ours });
    }
    let output = reading_end_of_stdout(&h.proc_dir)?;
    Ok(ParentSeed {
        pidfd,
        pid: ppid,
        uid,
        output,
    })
}

pub(super) fn identify_seed(
    seed: ParentSeed,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    inspect(
        Some(seed.pidfd),
        seed.pid,
        seed.uid,
        cache,
        may_hash,
        Held::Output(seed.output),
    )
}

pub(super) fn recheck(peer: &Peer) -> Result<(), PeerError> {
    let h = &peer.handle;
    // Through the peer's own /proc directory: if the peer exited, this fails instead of
    // reaching a process that reused the pid.
    let inode = exe_inode(&h.proc_dir)?;
    if h.pidfd.is_none() {
        still_same(None, peer.pid, h.start_time)?;
    }
    if inode != h.exe_inode {
        return Err(PeerError::Changed);
    }
    Ok(())
}

/// The process listening at the other end of a client's connection: pinned by the
/// pidfd the kernel gives for it (the process that called `listen`), its `/proc`
/// directory confirmed to be that process's, then its executable opened through it. A
/// listener whose `/proc` entries belong to root while it runs as this user made itself
/// non-dumpable: the kernel hides its executable from this process.
pub(super) fn listener(sock: BorrowedFd<'_>) -> Result<super::Listener, PeerError> {
    let cred = peer_cred(sock)?;
    let pidfd = peer_pidfd(sock)?;
    let pid = match &pidfd {
        Some(fd) => pidfd_pid(fd)?,
        None => cred.pid,
    };
    let start = start_time(pid)?;
    let dir = open_proc_dir(pid)?;
    still_same(pidfd.as_ref(), pid, start)?;
    let owner = open_in(&dir, "status")
        .and_then(|f| f.metadata().map_err(|e| gone_or("status", e)))?
        .uid();
    match open_in(&dir, "exe") {
        Ok(file) => {
            let path = exe_path(&dir)?;
            still_same(pidfd.as_ref(), pid, start)?;
            Ok(super::Listener::Runs { path, file })
        }
        Err(PeerError::Inspect(why)) if owner != cred.uid => Ok(super::Listener::Hidden(format!(
            "it is non-dumpable, so the kernel hides its executable from other processes ({why})"
        ))),
        Err(e) => Err(e),
    }
}

/// Sets one integer `SOL_SOCKET` option.
fn set_socket_option(sock: BorrowedFd<'_>, option: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: setsockopt reads one c_int from a valid pointer; the fd is borrowed.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Makes every connection accepted from this listener carry the sending process's
/// credentials on each message (`SO_PASSCRED`; accepted sockets inherit it, and data
/// written before the accept carries them too).
pub(super) fn prepare_listener(listener: BorrowedFd<'_>) -> std::io::Result<()> {
    if !set_socket_option(listener, libc::SO_PASSCRED, 1) {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes each `MSG_PEEK` on a connection continue where the previous one stopped
/// (`SO_PEEK_OFF`), with taken bytes moving the offset back. False if the kernel refuses.
pub(super) fn peek_in_turn(sock: BorrowedFd<'_>) -> bool {
    set_socket_option(sock, libc::SO_PEEK_OFF, 0)
}

/// Receives bytes without blocking and reports which process wrote them: the kernel
/// never merges data from different writers into one `recvmsg`, and attaches the
/// writer's pid (`SCM_CREDENTIALS`). File descriptors a client tries to pass are closed.
pub(super) fn recv_with_sender(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> std::io::Result<(usize, Option<i32>)> {
    // Room for one ucred and a few stray descriptors, 8-byte aligned as cmsghdr needs.
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: msg describes valid, writable buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut sender = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel just filled, within
    // msg_controllen; payloads are read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let hdr = &*c;
            if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_CREDENTIALS {
                let cred: libc::ucred = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                sender = Some(cred.pid);
            } else if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c);
                let len = hdr.cmsg_len as usize - (data as usize - c as usize);
                for i in 0..len / std::mem::size_of::<libc::c_int>() {
                    let fd: libc::c_int =
                        std::ptr::read_unaligned(data.cast::<libc::c_int>().add(i));
                    libc::close(fd);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, sender))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn identifies_this_process_through_a_socket_pair() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let cache = HashCache::new();
        let peer = identify(a.as_fd(), &cache, true).expect("identified");
        assert_eq!(peer.pid, std::process::id() as i32);
        let me = std::fs::read_link("/proc/self/exe").expect("exe");
        assert_eq!(peer.path, me.to_string_lossy());
        let expected = crate::digest::hash_reader(File::open(&me).expect("open")).expect("hash");
        assert_eq!(peer.hash, expected);
        recheck(&peer).expect("still the same process");
    }

    #[test]
    fn this_process_parent_is_found_and_identified() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let cache = HashCache::new();
        let peer = identify(a.as_fd(), &cache, true).expect("identified");
        let seed = parent(&peer).expect("parent");
        // SAFETY: getppid has no preconditions.
        let ppid = unsafe { libc::getppid() };
        assert_eq!(seed.pid, ppid);
        let p = identify_seed(seed, &cache, true).expect("parent identified");
        assert_eq!(p.pid, ppid);
    }

    #[test]
    fn proc_files_and_larger_files_are_read_whole() {
        for path in ["/proc/self/status", "/proc/self/stat", "/proc/self/environ"] {
            let ours = read_proc(&mut File::open(path).expect("open")).expect("read");
            let std = std::fs::read(path).expect("std read");
            // status and stat change between two reads (times, memory): compare shape.
            assert!(!ours.is_empty(), "{path}");
            assert_eq!(
                ours.split(|b| *b == b'\n').count(),
                std.split(|b| *b == b'\n').count(),
                "{path}"
            );
        }
        // Past the first 4 KiB buffer and several doublings, byte for byte.
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big");
        let bytes: Vec<u8> = (0..70_001u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&big, &bytes).expect("write");
        assert_eq!(
            read_proc(&mut File::open(&big).expect("open")).expect("read"),
            bytes
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        let got = read_proc(&mut File::open(&empty).expect("open")).expect("read");
        assert!(got.is_empty());
    }

    #[test]
    fn a_command_name_that_is_not_utf8_still_gives_the_start_time() {
        let pid = std::process::id() as i32;
        let before = start_time(pid).expect("start time");
        let old = std::fs::read("/proc/self/comm").expect("comm");
        std::fs::write("/proc/self/comm", b"bad\xff) (x").expect("set comm");
        let after = start_time(pid);
        let _ = std::fs::write("/proc/self/comm", old.trim_ascii_end());
        assert_eq!(after.expect("start time with a non-UTF-8 name"), before);
    }

    #[test]
    fn status_fields_parse() {
        let st = b"Name:\tbash\nPPid:\t42\nUid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parent_pid(st), Some(42));
        assert_eq!(real_uid(st), Some(1000));
        assert_eq!(parent_pid(b"Name:\tx\n"), None);
    }

    #[test]
    fn tracer_pid_parses() {
        assert_eq!(tracer_pid(b"Name:\tx\nTracerPid:\t0\n"), Some(0));
        assert_eq!(tracer_pid(b"TracerPid:\t1234\n"), Some(1234));
        assert_eq!(tracer_pid(b"Name:\tx\n"), None);
    }
}
