//! The macOS audit token of a connection, and what reading it again means. Pure, so it is
//! compiled and tested on every platform although only macOS has tokens.
//!
//! `LOCAL_PEERTOKEN` is not a property of the connection fixed at `connect`: XNU answers
//! with the token of the socket's *last sender* (`uipc_usrreq.c`, `last_pid`, updated on
//! every send), looked up when `getsockopt` runs, and fails with `EINVAL` once that
//! process has exited. So the daemon keeps the token it identified the peer by and reads
//! it again before each answer: another process writing on the connection (a child that
//! inherited it, a descriptor passed on) shows up as another token, an `exec` of the
//! peer as the same pid with a new pid version, and an exited writer as `EINVAL`.
//! What this cannot see: a write by another process followed by one of the peer before
//! the daemon looks (docs/macos.md).

use super::PeerError;

/// `audit_token_t`: eight 32-bit words; `[1]` is the effective uid, `[5]` the pid and
/// `[7]` the pid version (bumped at every `exec`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditToken {
    /// The words, as the kernel writes them.
    pub val: [u32; 8],
}

impl AuditToken {
    /// The effective uid.
    pub fn euid(&self) -> u32 {
        self.val[1]
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.val[5] as i32
    }

    /// The pid version: a new one at every `exec` (and for every new process).
    pub fn pid_version(&self) -> u32 {
        self.val[7]
    }
}

/// What a failed `LOCAL_PEERTOKEN` means: the last sender exited (`EINVAL`), or the
/// other end closed (`ENOTCONN`), is the peer gone; anything else is an error to report.
pub fn read_error(e: std::io::Error) -> PeerError {
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOTCONN) => PeerError::Gone,
        _ => PeerError::Inspect(format!("LOCAL_PEERTOKEN: {e}")),
    }
}

/// Judges a token read again before an answer against the one the peer was identified
/// by: the same token passes; another pid is another process writing on the
/// connection; the same pid with another version is the peer after an `exec`.
pub fn judge(kept: &AuditToken, now: Result<AuditToken, std::io::Error>) -> Result<(), PeerError> {
    let now = now.map_err(read_error)?;
    if now == *kept {
        Ok(())
    } else if now.pid() != kept.pid() {
        Err(PeerError::ForeignSender(now.pid(), kept.pid()))
    } else {
        Err(PeerError::Changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;

    fn token(uid: u32, pid: u32, version: u32) -> AuditToken {
        AuditToken {
            val: [uid, uid, 20, uid, 20, pid, 100_004, version],
        }
    }

    #[test]
    fn the_kept_token_read_again_passes() {
        let t = token(501, 4242, 7);
        assert!(judge(&t, Ok(t)).is_ok());
        assert_eq!((t.euid(), t.pid(), t.pid_version()), (501, 4242, 7));
    }

    #[test]
    fn another_writer_on_the_connection_is_refused() {
        // A child that inherited the connection, or a process it was passed to.
        let kept = token(501, 4242, 7);
        match judge(&kept, Ok(token(501, 4300, 1))) {
            Err(PeerError::ForeignSender(4300, 4242)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_exec_of_the_peer_is_refused_as_changed() {
        let kept = token(501, 4242, 7);
        assert!(matches!(
            judge(&kept, Ok(token(501, 4242, 8))),
            Err(PeerError::Changed)
        ));
        // Any other word changed (say the euid after setuid) is not the same either.
        let mut other = kept;
        other.val[1] = 0;
        assert!(matches!(judge(&kept, Ok(other)), Err(PeerError::Changed)));
    }

    #[test]
    fn an_exited_sender_is_gone_not_an_inspection_error() {
        let kept = token(501, 4242, 7);
        for errno in [libc::EINVAL, libc::ENOTCONN] {
            assert!(matches!(
                judge(&kept, Err(Error::from_raw_os_error(errno))),
                Err(PeerError::Gone)
            ));
        }
        match judge(&kept, Err(Error::from_raw_os_error(libc::EBADF))) {
            Err(PeerError::Inspect(why)) => assert!(why.contains("LOCAL_PEERTOKEN")),
            other => panic!("{other:?}"),
        }
    }
}
