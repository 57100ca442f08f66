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
//! only, which a descriptor kept across an `exec` cannot be ([`holders`]). The
//! descriptor table is read after the environment, whose opening waits for an `exec`
//! in progress to finish, and the executable is looked at again afterwards, so the
//! table and the executable belong to the same program.
//!
//! This folder is everything Linux-only about a peer: here, the order of the reads and
//! what they make a [`Peer`]; `socket.rs`, what the kernel says about the connection;
//! `proc.rs`, reads of one process through `/proc` and its pidfd; `find_script.rs`, the
//! script an interpreter runs, in its own world; [`holders`], who holds
//! a socket or pipe; [`mappings`], the code a process maps; [`resolve`], the script's
//! file in the process's own world; [`startup`], the files an interpreter reads first.
//! What an interpreter's command line runs is OS-neutral (`peer::script`), and so are the
//! script steps between the reads (`peer/identify.rs`).

mod find_script;
pub mod holders;
mod link;
pub mod mappings;
mod proc;
pub mod resolve;
mod socket;
pub mod startup;

use super::identify::{self, hash_of};
use super::{injected_env, OutputBinding, Peer, PeerError};
use crate::digest::HashCache;
use holders::{Binding, Object};
use proc::{
    exe_inode, exe_path, gone_or, open_in, open_proc_dir, parent_in, pidfd_alive, pidfd_open,
    pidfd_pid, read_all, read_in, real_uid, start_time, status_ppid, still_same, tracer_pid,
};
use socket::{client_end, peer_cred, peer_pidfd};
pub(super) use socket::{peek_in_turn, prepare_listener, recv_with_sender};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// This process's start time (clock ticks after boot, `stat` field 22), as polkit
/// names a process subject.
pub fn own_start_time() -> Result<u64, PeerError> {
    start_time(std::process::id() as i32)
}

/// What is kept to re-check the peer later.
#[derive(Debug)]
pub struct Handle {
    pidfd: Option<OwnedFd>,
    proc_dir: OwnedFd,
    start_time: u64,
    exe_inode: (u64, u64),
    /// For a process in the chain of `keychain-auth get`: the reading end of the CLI's
    /// output, which its parents are judged on as well.
    output: Option<Result<Object, String>>,
    /// For a parent found through its child: its parent's pid as its `status` said
    /// while it was identified, the first of the two reads that pin that parent.
    ppid: Option<i32>,
}

pub(super) fn identify(
    sock: BorrowedFd<'_>,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    let cred = peer_cred(sock)?;
    let ours = crate::dirs::euid();
    if cred.uid() != ours {
        return Err(PeerError::WrongUser {
            peer: cred.uid(),
            ours,
        });
    }
    let pidfd = peer_pidfd(sock)?;
    let pid = match &pidfd {
        Some(fd) => {
            let p = pidfd_pid(fd)?;
            if p != cred.pid() {
                return Err(PeerError::Inspect(format!(
                    "SO_PEERCRED says pid {} but the pidfd says {p}",
                    cred.pid()
                )));
            }
            p
        }
        None => cred.pid(),
    };
    // The client's end of this connection, which the identified process must hold.
    let theirs = client_end(sock)?;
    inspect(
        pidfd,
        pid,
        cred.uid(),
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
    /// Nothing: a program in a caller chain of a client that connected itself.
    Nothing,
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
    // Without a pidfd the start time tells the process from one that reused its pid;
    // with one, it is read (through the pinned directory) only for a script's checks.
    let start = match &pidfd {
        None => Some(start_time(pid)?),
        Some(_) => None,
    };
    let dir = open_proc_dir(pid)?;
    // The directory was opened through the pid; it is the peer's only if the peer is
    // still alive now (a live pidfd means the pid cannot have been reused).
    still_same(pidfd.as_ref(), pid, start.unwrap_or(0))?;
    if !matches!(held, Held::Connection(_)) {
        // A parent found through its child: its `/proc` directory belongs to its user
        // (or to root, when it is non-dumpable); another user's is refused by its real
        // uid before anything else is opened.
        let owner = nix::sys::stat::fstat(&dir)
            .map_err(|e| gone_or("stat /proc/<pid>", e.into()))?
            .st_uid;
        if owner != uid {
            match real_uid(&read_in(&dir, "status")?) {
                Some(real) if real != uid => {
                    return Err(PeerError::WrongUser {
                        peer: real,
                        ours: uid,
                    })
                }
                _ => {}
            }
        }
    }
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
    if !matches!(held, Held::Connection(_)) {
        // A parent found through its child: it must be this user's, by its real uid.
        match real_uid(&status) {
            Some(real) if real == uid => {}
            Some(real) => {
                return Err(PeerError::WrongUser {
                    peer: real,
                    ours: uid,
                })
            }
            None => return Err(PeerError::Inspect("no Uid in its status".into())),
        }
    }
    // Opening `environ` waits for an exec in progress (the kernel holds its
    // exec_update_lock from switching the executable until it has closed the
    // close-on-exec descriptors), so the descriptor table read next is the current
    // program's, and the executable is looked at again after it.
    let environ = read_in(&dir, "environ");
    let is_parent = !matches!(held, Held::Connection(_));
    let carried = match &held {
        Held::Output(obj) => Some(obj.clone()),
        _ => None,
    };
    let output = match held {
        Held::Connection(ino) => {
            match holders::judge(&holdings(&dir, Object::Socket(ino))?, false) {
                Binding::Bound => None,
                Binding::NotHeld => return Err(PeerError::NotHolding),
                Binding::Inheritable(fd) => return Err(PeerError::Inheritable(fd)),
            }
        }
        Held::Nothing => None,
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
        still_same(None, pid, start.unwrap_or(0))?;
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
    let (exe_hash, key) = hash_of(cache, &exe, may_hash, "hash executable")?;
    // An interpreter's command line, read once for its script and for what a shell runs.
    let argv = if super::is_interpreter(&path) {
        find_script::argv(&dir)?
    } else {
        Vec::new()
    };
    let id = identify::identity(&path, exe_hash, |exe_hash| {
        let env = environ.as_deref().unwrap_or(&[]);
        find_script::script_of(&dir, &path, exe_hash, &argv, cache, may_hash, env)
    })?;
    // A shell without a script: what it runs instead decides its place in a chain.
    let shell = if id.interpreter {
        super::script::shell_runs(super::exe_base_name(&path), &argv)
    } else {
        None
    };
    let handle = Handle {
        pidfd,
        proc_dir: dir,
        start_time: start.unwrap_or(0),
        exe_inode: key.inode(),
        output: carried,
        ppid: if is_parent {
            status_ppid(&status)
        } else {
            None
        },
    };
    Ok(Peer {
        output,
        libraries,
        shell,
        ..id.peer(pid, uid, path, injection, handle)
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
    use mappings::Verdict;
    let uid = crate::dirs::euid();
    if uid == 0 {
        return Ok((Vec::new(), None));
    }
    let maps = open_in(dir, "maps")?;
    let mapped = mappings::executable_files_of(maps).map_err(|e| gone_or("maps", e))?;
    let mut out = Vec::new();
    for m in mapped {
        if (m.dev, m.ino) == exe {
            continue;
        }
        match mappings::judge(&m, uid) {
            Verdict::Trusted => {}
            Verdict::Unverifiable(why) => return Ok((out, Some(why))),
            Verdict::Users(file) => {
                let (hash, _) = hash_of(cache, &file, may_hash, "hash a mapped library")?;
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

/// A parent process pinned by a pidfd, not yet identified.
#[derive(Debug)]
pub struct ParentSeed {
    pidfd: OwnedFd,
    pid: i32,
    uid: u32,
    /// The reading end of the output of `keychain-auth get`, which the parent should
    /// hold (`None`: a chain of a client that connected itself).
    output: Option<Result<Object, String>>,
    /// The child's standard streams: the parent must hold one of them.
    child_streams: Vec<link::Stream>,
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

pub(super) fn parent(peer: &Peer, with_output: bool) -> Result<ParentSeed, PeerError> {
    let h = &peer.handle;
    // The first read of the parent's pid: the one taken while the process was
    // identified (a moment ago, in a walk), else now.
    let ppid = match h.ppid {
        Some(p) => p,
        None => parent_in(&h.proc_dir)?,
    };
    if ppid <= 1 {
        return Err(PeerError::Unlinked(format!(
            "process {} has no parent to ask for: it was orphaned (its parent exited and init adopted it)",
            peer.pid
        )));
    }
    let pidfd = pidfd_open(ppid).map_err(|e| gone_or("pidfd_open parent", e))?;
    // The pid was read before the pidfd was taken: if the parent exited in between and
    // its pid was reused, the caller (still alive, checked through its own pidfd) has
    // been reparented, so its PPid no longer names that pid.
    let again = Some(parent_in(&h.proc_dir)?);
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
    // Its uid is checked when it is identified (its real uid, from the status read
    // through its pinned directory).
    let uid = crate::dirs::euid();
    let output = if with_output {
        Some(reading_end_of_stdout(&h.proc_dir)?)
    } else {
        h.output.clone()
    };
    Ok(ParentSeed {
        pidfd,
        pid: ppid,
        uid,
        output,
        child_streams: link::streams(&h.proc_dir)?,
    })
}

pub(super) fn identify_seed(
    seed: ParentSeed,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Peer, PeerError> {
    let held = match seed.output {
        Some(obj) => Held::Output(obj),
        None => Held::Nothing,
    };
    let parent = inspect(Some(seed.pidfd), seed.pid, seed.uid, cache, may_hash, held)?;
    // A process that did not start the child (a subreaper or init that adopted an
    // orphan) shares none of its standard streams.
    let holds = link::holds_any(&parent.handle.proc_dir, &seed.child_streams)?;
    Ok(Peer {
        child_stream: Some(holds),
        ..parent
    })
}

pub(super) fn recheck(peer: &Peer) -> Result<(), PeerError> {
    recheck_handle(&peer.handle, peer.pid)
}

/// Re-checks one process of a peer's identity: alive, still the executable it was.
pub(super) fn recheck_handle(h: &Handle, pid: i32) -> Result<(), PeerError> {
    // Through the peer's own /proc directory: if the peer exited, this fails instead of
    // reaching a process that reused the pid.
    let inode = exe_inode(&h.proc_dir)?;
    if h.pidfd.is_none() {
        still_same(None, pid, h.start_time)?;
    }
    if inode != h.exe_inode {
        return Err(PeerError::Changed);
    }
    Ok(())
}

/// The terminal a shell reads its commands from: its controlling terminal, which must
/// be its standard input. `None` when it reads them from elsewhere.
pub(super) fn terminal(peer: &Peer) -> Result<Option<super::Tty>, PeerError> {
    link::terminal(&peer.handle.proc_dir)
}

/// Whether the process holds the master side of the pseudo-terminal `tty`.
pub(super) fn holds_terminal(peer: &Peer, tty: &super::Tty) -> Result<bool, PeerError> {
    link::holds_master(&peer.handle.proc_dir, tty)
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
        None => cred.pid(),
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
        Err(PeerError::Inspect(why)) if owner != cred.uid() => {
            Ok(super::Listener::Hidden(format!(
            "it is non-dumpable, so the kernel hides its executable from other processes ({why})"
        )))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
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
        let seed = parent(&peer, true).expect("parent");
        let ppid = nix::unistd::getppid().as_raw();
        assert_eq!(seed.pid, ppid);
        let p = identify_seed(seed, &cache, true).expect("parent identified");
        assert_eq!(p.pid, ppid);
    }
}
