//! Who holds a connection or a pipe, as the kernel says: the inode of a Unix socket's
//! other end (sock_diag, `UNIX_DIAG_PEER`), and the descriptors a process holds on a
//! socket or a pipe with their close-on-exec flag (`/proc/<pid>/fd` and `fdinfo`). An
//! identity is bound to the process that holds a connection *as it runs now*: a
//! descriptor that survived an `exec` cannot be close-on-exec, and one closed by the
//! `exec` is not held. Linux only; nothing here decides, it only reports.

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::stat::Mode;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// `SOCK_DIAG_BY_FAMILY` from linux/sock_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `UDIAG_SHOW_PEER` from linux/unix_diag.h.
const UDIAG_SHOW_PEER: u32 = 0x0000_0004;
/// `UNIX_DIAG_PEER` attribute type.
const UNIX_DIAG_PEER: u16 = 2;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;

/// Bytes of a request: `struct nlmsghdr` (16) followed by `struct unix_diag_req` (24).
const REQUEST_LEN: usize = 40;

/// A sock_diag request about the Unix socket whose inode is `ino`, laid out as
/// `struct nlmsghdr` then `struct unix_diag_req`, in native byte order.
fn request(seq: u32, ino: u32) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    // nlmsghdr: length, type, flags, sequence, port id (0: the kernel).
    b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // unix_diag_req: family, protocol, padding, states, inode, what to show, cookie.
    b[16] = libc::AF_UNIX as u8;
    b[20..24].copy_from_slice(&u32::MAX.to_ne_bytes());
    b[24..28].copy_from_slice(&ino.to_ne_bytes());
    b[28..32].copy_from_slice(&UDIAG_SHOW_PEER.to_ne_bytes());
    // INET_DIAG_NOCOOKIE: look the socket up by inode alone.
    b[32..40].fill(0xff);
    b
}

thread_local! {
    /// This thread's sock_diag socket, opened on first use and kept: one query is then a
    /// send and a receive.
    static DIAG: std::cell::RefCell<Option<OwnedFd>> = const { std::cell::RefCell::new(None) };
}

fn diag_socket() -> std::io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Netlink,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkSockDiag,
    )?)
}

/// The inode of the socket at the other end of the Unix socket whose inode is `ino`.
/// `Ok(None)` when the socket has no peer (it was closed, or is not connected).
pub fn unix_peer_of(ino: u64) -> std::io::Result<Option<u64>> {
    let ino32 = u32::try_from(ino)
        .map_err(|_| std::io::Error::other(format!("socket inode {ino} does not fit sock_diag")))?;
    DIAG.with_borrow_mut(|slot| {
        let nl = match slot.take() {
            Some(fd) => fd,
            None => diag_socket()?,
        };
        let answer = query(&nl, ino32);
        // A socket that failed is not kept: the next query opens a new one.
        if answer.is_ok() {
            *slot = Some(nl);
        }
        answer
    })
}

/// One lookup by inode on a sock_diag socket.
fn query(nl: &OwnedFd, ino32: u32) -> std::io::Result<Option<u64>> {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    sendto(
        nl.as_raw_fd(),
        &request(seq, ino32),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(nl.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    parse_reply(&buf[..n], seq, ino32)
}

/// Reads the peer inode out of one sock_diag reply (a `nlmsghdr`, a `unix_diag_msg` of
/// 16 bytes, then attributes), or the error it carries. The reply must answer request
/// `seq` about socket `ino`.
fn parse_reply(bytes: &[u8], seq: u32, ino: u32) -> std::io::Result<Option<u64>> {
    let bad = |what: &str| std::io::Error::other(format!("malformed sock_diag reply: {what}"));
    let u16_at = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
    };
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let len = u32_at(bytes, 0).ok_or_else(|| bad("short header"))? as usize;
    let kind = u16_at(bytes, 4).ok_or_else(|| bad("short header"))?;
    let msg = bytes.get(..len).ok_or_else(|| bad("length past the end"))?;
    if u32_at(msg, 8) != Some(seq) {
        return Err(bad("a reply to another request"));
    }
    if kind == NLMSG_ERROR {
        let code = u32_at(msg, 16).ok_or_else(|| bad("short error"))? as i32;
        return match -code {
            libc::ENOENT => Ok(None),
            e => Err(std::io::Error::from_raw_os_error(e)),
        };
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(bad("unexpected message type"));
    }
    if u32_at(msg, 20) != Some(ino) {
        return Err(bad("a reply about another socket"));
    }
    // Attributes start after the 16-byte header and the 16-byte unix_diag_msg.
    let mut at = 32;
    while at + 4 <= msg.len() {
        let rta_len = u16_at(msg, at).ok_or_else(|| bad("short attribute"))? as usize;
        let rta_type = u16_at(msg, at + 2).ok_or_else(|| bad("short attribute"))?;
        if rta_len < 4 || at + rta_len > msg.len() {
            return Err(bad("attribute length"));
        }
        if rta_type == UNIX_DIAG_PEER {
            let peer = u32_at(msg, at + 4).ok_or_else(|| bad("short peer attribute"))?;
            return Ok(Some(u64::from(peer)));
        }
        at += (rta_len + 3) & !3;
    }
    Ok(None)
}

/// A kernel object a descriptor can refer to, named as `/proc/<pid>/fd/N` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// `socket:[inode]`.
    Socket(u64),
    /// `pipe:[inode]` (both ends of a pipe share the inode).
    Pipe(u64),
}

impl Object {
    /// Parses the target of a `/proc/<pid>/fd/N` link; `None` for anything else (files,
    /// terminals, anonymous inodes).
    pub fn parse(link: &[u8]) -> Option<Object> {
        let text = std::str::from_utf8(link).ok()?;
        let inode = |rest: &str| rest.strip_suffix(']')?.parse::<u64>().ok();
        if let Some(rest) = text.strip_prefix("socket:[") {
            return inode(rest).map(Object::Socket);
        }
        if let Some(rest) = text.strip_prefix("pipe:[") {
            return inode(rest).map(Object::Pipe);
        }
        None
    }
}

/// One descriptor a process holds on an [`Object`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// The descriptor number.
    pub fd: i32,
    /// `FD_CLOEXEC` is set: an `exec` of the process would close it.
    pub cloexec: bool,
    /// Opened for reading (`O_RDONLY` or `O_RDWR`): for a pipe, the reading end.
    pub reads: bool,
}

/// `flags:` of an fdinfo file, in octal.
fn fdinfo_flags(text: &[u8]) -> Option<u32> {
    std::str::from_utf8(text)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
}

/// The holding described by an fdinfo file's flags.
fn holding(fd: i32, flags: u32) -> Holding {
    let mode = flags & libc::O_ACCMODE as u32;
    Holding {
        fd,
        cloexec: flags & libc::O_CLOEXEC as u32 != 0,
        reads: mode == libc::O_RDONLY as u32 || mode == libc::O_RDWR as u32,
    }
}

/// Reads a link inside a directory handle (or, with an empty `name`, the link an
/// `O_PATH` handle is on), at most `max` bytes of it.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &str, max: usize) -> std::io::Result<Vec<u8>> {
    let mut target = readlinkat(dir, name)?.into_vec();
    target.truncate(max);
    Ok(target)
}

/// Reads an `fdinfo` file inside a directory handle (which the kernel shows whole).
fn read_at(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::from(openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?);
    super::proc::read_whole(&mut f)
}

/// The descriptor numbers held by the process whose `/proc/<pid>` directory is
/// `proc_dir`, listed through that directory (the pinned process's own).
pub fn descriptors(proc_dir: BorrowedFd<'_>) -> std::io::Result<Vec<i32>> {
    use std::os::fd::AsRawFd;
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/self/fd/{}/fd", proc_dir.as_raw_fd()))? {
        let entry = entry?;
        if let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// What descriptor `fd` of the process whose `/proc/<pid>` directory is `proc_dir`
/// refers to, when it is a socket or a pipe. `Ok(None)` for anything else or a closed
/// descriptor.
pub fn object_at(proc_dir: BorrowedFd<'_>, fd: i32) -> std::io::Result<Option<Object>> {
    match read_link_at(proc_dir, &format!("fd/{fd}"), 256) {
        Ok(link) => Ok(Object::parse(&link)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every descriptor the process whose `/proc/<pid>` directory is `proc_dir` holds on
/// `object`, with its flags. A process that exited gives `ENOENT`/`ESRCH`; one whose
/// descriptors this process may not see (non-dumpable, another user) gives `EACCES`.
pub fn holdings(proc_dir: BorrowedFd<'_>, object: Object) -> std::io::Result<Vec<Holding>> {
    // The descriptor numbers first, then each one's link and flags.
    let mut out = Vec::new();
    for fd in descriptors(proc_dir)? {
        let link = match read_link_at(proc_dir, &format!("fd/{fd}"), 256) {
            Ok(l) => l,
            // Closed since the directory was read.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if Object::parse(&link) != Some(object) {
            continue;
        }
        let info = match read_at(proc_dir, &format!("fdinfo/{fd}")) {
            Ok(i) => i,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let flags = fdinfo_flags(&info)
            .ok_or_else(|| std::io::Error::other(format!("fdinfo/{fd} has no flags line")))?;
        out.push(holding(fd, flags));
    }
    Ok(out)
}

/// How a process holds the end of a connection or pipe it should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// Held, and every descriptor of it is close-on-exec: it was opened (or taken over)
    /// by the program the process runs now.
    Bound,
    /// Not held at all (closed by an exec, or never the process's).
    NotHeld,
    /// Held through a descriptor that is not close-on-exec, which is what one that
    /// survived an exec looks like.
    Inheritable(i32),
}

/// Judges the holdings of a connection (`reads: false`: any descriptor counts) or of a
/// pipe's reading end (`reads: true`: only descriptors open for reading count).
pub fn judge(holdings: &[Holding], reads: bool) -> Binding {
    let mut held = holdings.iter().filter(|h| !reads || h.reads).peekable();
    if held.peek().is_none() {
        return Binding::NotHeld;
    }
    match held.find(|h| !h.cloexec) {
        Some(h) => Binding::Inheritable(h.fd),
        None => Binding::Bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use crate::peer::linux::proc::self_dir;

    fn inode(fd: BorrowedFd<'_>) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let f = std::fs::File::from(fd.try_clone_to_owned().expect("dup"));
        f.metadata().expect("stat").ino()
    }

    #[test]
    fn the_peer_of_a_socket_pair_end_is_the_other_end() {
        let (a, b) = UnixStream::pair().expect("pair");
        assert_eq!(
            unix_peer_of(inode(a.as_fd())).expect("diag"),
            Some(inode(b.as_fd()))
        );
        assert_eq!(
            unix_peer_of(inode(b.as_fd())).expect("diag"),
            Some(inode(a.as_fd()))
        );
    }

    #[test]
    fn a_socket_whose_peer_closed_or_that_does_not_exist_has_no_peer() {
        let (a, b) = UnixStream::pair().expect("pair");
        let ino = inode(a.as_fd());
        drop(b);
        // The kernel keeps the peer pointer until both ends are gone on some versions:
        // either answer is "no live peer to bind to" for the caller, never another socket.
        let got = unix_peer_of(ino).expect("diag");
        assert!(got.is_none() || got != Some(ino));
        drop(a);
        assert_eq!(unix_peer_of(ino).expect("diag"), None);
    }

    #[test]
    fn holdings_report_close_on_exec_and_the_reading_end() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let dir = self_dir();
        let obj = Object::Socket(inode(a.as_fd()));
        let held = holdings(dir.as_fd(), obj).expect("scan");
        assert_eq!(held.len(), 1, "{held:?}");
        assert!(held[0].cloexec, "std opens sockets close-on-exec");
        assert_eq!(judge(&held, false), Binding::Bound);
        // A duplicate without close-on-exec is what an inherited descriptor looks like.
        // dup gives a new descriptor without FD_CLOEXEC.
        let dup = nix::unistd::dup(a.as_fd()).expect("dup");
        let held = holdings(dir.as_fd(), obj).expect("scan");
        assert_eq!(held.len(), 2, "{held:?}");
        assert_eq!(judge(&held, false), Binding::Inheritable(dup.as_raw_fd()));
        drop(dup);
        // A pipe: the reading end only counts when reads are asked for.
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).expect("pipe2");
        let Some(Object::Pipe(pino)) = object_at(dir.as_fd(), w.as_raw_fd()).expect("link") else {
            panic!("a pipe");
        };
        let held = holdings(dir.as_fd(), Object::Pipe(pino)).expect("scan");
        assert_eq!(held.len(), 2);
        assert_eq!(judge(&held, true), Binding::Bound);
        drop(r);
        let held = holdings(dir.as_fd(), Object::Pipe(pino)).expect("scan");
        assert_eq!(
            judge(&held, true),
            Binding::NotHeld,
            "only the writing end is left"
        );
        assert_eq!(judge(&held, false), Binding::Bound);
    }

    #[test]
    fn links_and_replies_parse() {
        assert_eq!(Object::parse(b"socket:[123]"), Some(Object::Socket(123)));
        assert_eq!(Object::parse(b"pipe:[9]"), Some(Object::Pipe(9)));
        for bad in [
            &b"/dev/null"[..],
            b"socket:[x]",
            b"socket:[12",
            b"anon_inode:[eventfd]",
            b"pipe:[]",
        ] {
            assert_eq!(Object::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            fdinfo_flags(b"pos:\t0\nflags:\t02000002\nmnt_id:\t8\n"),
            Some(0o2000002)
        );
        assert_eq!(fdinfo_flags(b"pos:\t0\n"), None);
        let h = holding(3, 0o2000000);
        assert!(h.cloexec && h.reads);
        let h = holding(4, 0o1);
        assert!(!h.cloexec && !h.reads);
        // Hostile replies: truncated, lying lengths, an error, no attribute.
        assert!(parse_reply(&[], 1, 5).is_err());
        assert!(parse_reply(&[255, 255, 0, 0, 20, 0], 1, 5).is_err());
        let mut err = vec![0u8; 36];
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        err[8..12].copy_from_slice(&1u32.to_ne_bytes());
        err[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse_reply(&err, 1, 5).expect("enoent"), None);
        assert!(
            parse_reply(&err, 2, 5).is_err(),
            "a reply to another request"
        );
        err[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_reply(&err, 1, 5).expect_err("eperm").raw_os_error(),
            Some(libc::EPERM)
        );
        let mut msg = vec![0u8; 32];
        msg[..4].copy_from_slice(&32u32.to_ne_bytes());
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
        msg[20..24].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(parse_reply(&msg, 1, 5).expect("no peer"), None);
        assert!(
            parse_reply(&msg, 1, 6).is_err(),
            "a reply about another socket"
        );
        let mut with_peer = msg.clone();
        with_peer.extend_from_slice(&8u16.to_ne_bytes());
        with_peer.extend_from_slice(&UNIX_DIAG_PEER.to_ne_bytes());
        with_peer.extend_from_slice(&77u32.to_ne_bytes());
        let total = with_peer.len() as u32;
        with_peer[..4].copy_from_slice(&total.to_ne_bytes());
        assert_eq!(parse_reply(&with_peer, 1, 5).expect("peer"), Some(77));
        let mut bad_attr = with_peer.clone();
        bad_attr[32..34].copy_from_slice(&200u16.to_ne_bytes());
        assert!(parse_reply(&bad_attr, 1, 5).is_err());
    }
}
