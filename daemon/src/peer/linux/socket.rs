//! The socket half of Linux peer identification: what the kernel says about the other end
//! of a connection (`SO_PEERCRED`, the `SO_PEERPIDFD` pidfd, the inode of the client's
//! end through sock_diag), the listener's options (`SO_PASSCRED`, `SO_PEEK_OFF`), and
//! receiving with the writer's credentials (`SCM_CREDENTIALS`). Who *holds* a socket is
//! [`super::holders`]; what the process is, `super::proc`.

use super::holders;
use crate::peer::identify::inspect_err;
use crate::peer::PeerError;
use nix::errno::Errno;
use nix::sys::socket::{
    getsockopt, recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, UnixCredentials,
};
use nix::{setsockopt_impl, sockopt_impl};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

sockopt_impl!(
    /// `SO_PEEK_OFF`, which nix does not name: where the next `MSG_PEEK` starts.
    PeekOff,
    SetOnly,
    libc::SOL_SOCKET,
    libc::SO_PEEK_OFF,
    i32
);

/// The uid and pid the kernel recorded for the other end at connect (`SO_PEERCRED`).
pub(super) fn peer_cred(sock: BorrowedFd<'_>) -> Result<UnixCredentials, PeerError> {
    getsockopt(&sock, sockopt::PeerCredentials).map_err(|e| inspect_err("SO_PEERCRED", e.into()))
}

/// The peer's pidfd, or `None` on kernels that lack `SO_PEERPIDFD`.
pub(super) fn peer_pidfd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>, PeerError> {
    match getsockopt(&sock, sockopt::PeerPidfd) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOPROTOOPT) | Err(Errno::EINVAL) => Ok(None),
        Err(Errno::ESRCH) => Err(PeerError::Gone),
        Err(e) => Err(inspect_err("SO_PEERPIDFD", e.into())),
    }
}

/// The inode of the client's end of this connection (the one the identified process must
/// hold), through sock_diag; `NotHolding` when nobody holds it any more.
pub(super) fn client_end(sock: BorrowedFd<'_>) -> Result<u64, PeerError> {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::File::from(
        sock.try_clone_to_owned()
            .map_err(|e| inspect_err("dup the connection", e))?,
    )
    .metadata()
    .map_err(|e| inspect_err("stat the connection", e))?
    .ino();
    holders::unix_peer_of(ours)
        .map_err(|e| inspect_err("sock_diag (the kernel's unix_diag)", e))?
        .ok_or(PeerError::NotHolding)
}

/// Makes every connection accepted from this listener carry the sending process's
/// credentials on each message (`SO_PASSCRED`; accepted sockets inherit it, and data
/// written before the accept carries them too).
pub(in crate::peer) fn prepare_listener(listener: BorrowedFd<'_>) -> std::io::Result<()> {
    setsockopt(&listener, sockopt::PassCred, &true).map_err(std::io::Error::from)
}

/// Makes each `MSG_PEEK` on a connection continue where the previous one stopped
/// (`SO_PEEK_OFF`), with taken bytes moving the offset back. False if the kernel refuses.
pub(in crate::peer) fn peek_in_turn(sock: BorrowedFd<'_>) -> bool {
    setsockopt(&sock, PeekOff, &0).is_ok()
}

/// Most descriptors the kernel passes in one message (`SCM_MAX_FD`).
const SCM_MAX_FD: usize = 253;

/// Room for one ucred and as many stray descriptors as one message can carry, so the
/// control data is never cut short.
const CONTROL_LEN: usize = nix::sys::socket::cmsg_space::<libc::ucred>()
    + nix::sys::socket::cmsg_space::<[RawFd; SCM_MAX_FD]>();

/// The control buffer, aligned as `cmsghdr` needs.
#[repr(C, align(8))]
struct Control([u8; CONTROL_LEN]);

/// Receives bytes without blocking and reports which process wrote them: the kernel
/// never merges data from different writers into one `recvmsg`, and attaches the
/// writer's pid (`SCM_CREDENTIALS`). File descriptors a client tries to pass are closed.
pub(in crate::peer) fn recv_with_sender(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> std::io::Result<(usize, Option<i32>)> {
    let mut control = Control([0; CONTROL_LEN]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut control.0),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut sender = None;
    // Cut-short control data (which the buffer's size rules out) names no sender.
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            match c {
                ControlMessageOwned::ScmCredentials(cred) => sender = Some(cred.pid()),
                ControlMessageOwned::ScmRights(fds) => {
                    for fd in fds {
                        let _ = nix::unistd::close(fd);
                    }
                }
                _ => {}
            }
        }
    }
    Ok((msg.bytes, sender))
}
