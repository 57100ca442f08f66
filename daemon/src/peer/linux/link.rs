//! How two processes of a caller chain are tied together, as the kernel shows it: the
//! standard streams a child was started with and whether its parent holds one of them
//! (a program that started a child with pipes, or gave it its own terminal or file,
//! holds them; a subreaper or init that adopted an orphan holds none), and the terminal
//! an interactive shell reads (its controlling terminal, on its standard input) with the
//! process holding that terminal's master side (`tty-index:` of a `/dev/ptmx`
//! descriptor's fdinfo). Nothing here decides; `peer::chain` walks the chain.

use super::holders::{self, Object};
use super::proc::{gone_or, read_in};
use crate::peer::{PeerError, Tty};
use nix::sys::stat::{fstatat, SFlag};
use std::os::fd::{AsFd, OwnedFd};

/// One of a child's standard streams, as a parent holding it would show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    /// A pipe or socket, named by its link (`pipe:[ino]`, `socket:[ino]`).
    Object(Object),
    /// Anything else open (a terminal, a file): device and inode.
    Inode(u64, u64),
    /// The other end of a Unix socket the child holds: its inode.
    SocketPeer(u64),
}

/// Major number of the memory devices (`/dev/null`, `/dev/zero`, `/dev/urandom`, …):
/// anyone can open them, so holding one ties nobody to anybody.
const MEM_MAJOR: u64 = 1;

/// What descriptor `fd` of the process is, as a stream that can tie it to another
/// process; `None` for a closed descriptor and the memory devices. A pipe or a socket
/// is known by its link alone; anything else is looked at (`fstatat`).
fn stream_at(dir: &OwnedFd, fd: &str) -> Result<Option<Stream>, PeerError> {
    match holders::read_link_at(dir.as_fd(), fd, 256) {
        Ok(link) => {
            if let Some(obj) = Object::parse(&link) {
                return Ok(Some(Stream::Object(obj)));
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(gone_or("a descriptor", e)),
    }
    let st = match fstatat(dir, fd, nix::fcntl::AtFlags::empty()) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(gone_or("stat a descriptor", e.into())),
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFCHR && libc::major(st.st_rdev) as u64 == MEM_MAJOR {
        return Ok(None);
    }
    Ok(Some(Stream::Inode(st.st_dev, st.st_ino)))
}

/// The child's standard input, output and error as streams (a socket twice: itself and
/// its other end, which a parent talking to it over a socket pair holds).
pub(super) fn streams(dir: &OwnedFd) -> Result<Vec<Stream>, PeerError> {
    let mut out = Vec::new();
    for fd in 0..3 {
        let name = format!("fd/{fd}");
        let Some(s) = stream_at(dir, &name)? else {
            continue;
        };
        if let Stream::Object(Object::Socket(ino)) = s {
            if let Ok(Some(peer)) = holders::unix_peer_of(ino) {
                out.push(Stream::SocketPeer(peer));
            }
        }
        out.push(s);
    }
    Ok(out)
}

/// Whether the process whose `/proc` directory is `dir` holds any of `streams`: its own
/// standard streams first (what a child started with its parent's streams shares),
/// then every other descriptor.
pub(super) fn holds_any(dir: &OwnedFd, streams: &[Stream]) -> Result<bool, PeerError> {
    if streams.is_empty() {
        return Ok(false);
    }
    let is_one = |s: Option<Stream>| match s {
        Some(s) if streams.contains(&s) => true,
        Some(Stream::Object(Object::Socket(ino))) => streams.contains(&Stream::SocketPeer(ino)),
        _ => false,
    };
    for fd in 0..3 {
        if is_one(stream_at(dir, &format!("fd/{fd}"))?) {
            return Ok(true);
        }
    }
    let fds = holders::descriptors(dir.as_fd()).map_err(|e| gone_or("its descriptors", e))?;
    for fd in fds.into_iter().filter(|fd| *fd > 2) {
        if is_one(stream_at(dir, &format!("fd/{fd}"))?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Fields of `/proc/<pid>/stat` after the command name: state is field 3, so field
/// `n` is at index `n - 3`.
fn stat_fields(stat: &[u8]) -> Option<Vec<String>> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = String::from_utf8_lossy(&stat[close + 1..]).into_owned();
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Major and minor of a `tty_nr` as `/proc/<pid>/stat` encodes it.
fn tty_nr_dev(nr: u64) -> (u64, u64) {
    ((nr >> 8) & 0xfff, (nr & 0xff) | ((nr >> 12) & 0xfff00))
}

/// The terminal of a shell: its controlling terminal (`tty_nr`), which must be a
/// pseudo-terminal and its standard input. `None` when it reads commands elsewhere.
pub(super) fn terminal(dir: &OwnedFd) -> Result<Option<Tty>, PeerError> {
    let stat = read_in(dir, "stat")?;
    let fields = stat_fields(&stat)
        .ok_or_else(|| PeerError::Inspect("its stat file has no command name".into()))?;
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let (Some(session), Some(nr)) = (field(6), field(7)) else {
        return Err(PeerError::Inspect("its stat file is too short".into()));
    };
    if nr == 0 {
        return Ok(None);
    }
    let (major, minor) = tty_nr_dev(nr);
    let st = match fstatat(dir, "fd/0", nix::fcntl::AtFlags::empty()) {
        Ok(st) => st,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(gone_or("stat its standard input", e.into())),
    };
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFCHR
        || libc::major(st.st_rdev) as u64 != major
        || libc::minor(st.st_rdev) as u64 != minor
    {
        return Ok(None);
    }
    let path = holders::read_link_at(dir.as_fd(), "fd/0", 256)
        .map_err(|e| gone_or("its standard input", e))?;
    let path = String::from_utf8_lossy(&path).into_owned();
    let Some(index) = path
        .strip_prefix("/dev/pts/")
        .and_then(|n| n.parse::<u32>().ok())
    else {
        return Ok(None);
    };
    Ok(Some(Tty {
        path,
        index,
        session: session as i32,
    }))
}

/// The `tty-index:` line of a `/dev/ptmx` descriptor's fdinfo.
fn tty_index(fdinfo: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(fdinfo)
        .lines()
        .find_map(|l| l.strip_prefix("tty-index:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the process holds the master side of `tty` (a descriptor on the ptmx whose
/// fdinfo names the terminal's index).
pub(super) fn holds_master(dir: &OwnedFd, tty: &Tty) -> Result<bool, PeerError> {
    let fds = holders::descriptors(dir.as_fd()).map_err(|e| gone_or("its descriptors", e))?;
    for fd in fds {
        let Ok(link) = holders::read_link_at(dir.as_fd(), &format!("fd/{fd}"), 256) else {
            continue;
        };
        if link != b"/dev/ptmx" && link != b"/dev/pts/ptmx" {
            continue;
        }
        let Ok(info) = read_in(dir, &format!("fdinfo/{fd}")) else {
            continue;
        };
        match tty_index(&info) {
            Some(i) if i == tty.index => return Ok(true),
            Some(_) => {}
            None => return Err(PeerError::Inspect(
                "this kernel does not say which terminal a pty master is (no tty-index in fdinfo)"
                    .into(),
            )),
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::peer::linux::proc::self_dir;

    #[test]
    fn stat_fields_survive_a_hostile_command_name() {
        let f = stat_fields(b"42 (a) b ) S 1 42 42 34816 42 0").expect("fields");
        assert_eq!(f[0], "S");
        assert_eq!(f[4], "34816");
        assert!(stat_fields(b"no name here").is_none());
    }

    #[test]
    fn tty_numbers_decode_like_the_kernel_encodes_them() {
        assert_eq!(tty_nr_dev(34816), (136, 0));
        assert_eq!(tty_nr_dev(34816 + 5), (136, 5));
        // Minor 300 (pts/300): low byte, then the rest shifted past the major.
        let nr = (136 << 8) | (300 & 0xff) | ((300 & !0xff) << 12);
        assert_eq!(tty_nr_dev(nr), (136, 300));
    }

    #[test]
    fn tty_index_parses_and_refuses_garbage() {
        assert_eq!(
            tty_index(b"pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t2\ntty-index:\t7\n"),
            Some(7)
        );
        assert_eq!(tty_index(b"pos:\t0\n"), None);
        assert_eq!(tty_index(b"tty-index:\tseven\n"), None);
    }

    #[test]
    fn a_process_holds_the_streams_it_shares_and_not_others() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let dir = self_dir();
        let mine = stream_at(&dir, &format!("fd/{}", std::os::fd::AsRawFd::as_raw_fd(&r)))
            .expect("stat")
            .expect("a pipe is a stream");
        assert!(holds_any(&dir, &[mine]).expect("scan"));
        drop((r, w));
        assert!(!holds_any(&dir, &[mine]).expect("scan"));
        assert!(!holds_any(&dir, &[]).expect("scan"));
        let null = std::fs::File::open("/dev/null").expect("null");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
        assert_eq!(stream_at(&dir, &format!("fd/{fd}")).expect("stat"), None);
    }

    #[test]
    fn the_master_of_a_pty_is_found_by_its_index() {
        use std::os::fd::{AsRawFd, FromRawFd};
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the two ints; the name, the
        // termios and the window size are optional and passed as null.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors are new and owned here alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let dir = self_dir();
        let path = holders::read_link_at(dir.as_fd(), &format!("fd/{}", slave.as_raw_fd()), 256)
            .expect("link");
        let path = String::from_utf8_lossy(&path).into_owned();
        let index: u32 = path
            .strip_prefix("/dev/pts/")
            .expect("a pts")
            .parse()
            .expect("index");
        let tty = Tty {
            path,
            index,
            session: 0,
        };
        assert!(holds_master(&dir, &tty).expect("scan"));
        let other = Tty {
            index: index + 1000,
            ..tty.clone()
        };
        assert!(!holds_master(&dir, &other).expect("scan"));
        drop((master, slave));
        assert!(!holds_master(&dir, &tty).expect("scan"));
    }
}
