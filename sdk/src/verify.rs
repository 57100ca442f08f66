//! What a client checks before it sends anything: that the socket's directory is the
//! user's own (a real directory, owned by them, mode 0700, and every directory above it
//! writable only by them or root, or sticky like `/tmp`), and that the process listening
//! on it runs as the user (the kernel's `SO_PEERCRED`, `getpeereid` on macOS). A socket
//! another user created, or a directory another user could swap, gets nothing: not a
//! hello, not a secret. The small unsafe blocks here are the OS calls.

#![allow(unsafe_code)]

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective gid of this process.
fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Checks the directory holding `socket` and everything above it, and the socket file.
/// `Err` says what is wrong, naming the path, for a person.
pub fn socket_path(socket: &Path) -> Result<(), String> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("the socket path {} has no directory", socket.display()))?;
    let me = euid();
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        // Nothing can listen there: the connect reports "not running".
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    };
    if meta.file_type().is_symlink() {
        return Err(format!(
            "{} is a symbolic link, not keychain-auth's own directory",
            dir.display()
        ));
    }
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    if meta.uid() != me {
        return Err(format!(
            "{} belongs to uid {}, not to you (uid {me}): another user may have created it to listen in your place",
            dir.display(),
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} has mode {mode:04o}; keychain-auth's socket directory is 0700 (the daemon makes it so)",
            dir.display()
        ));
    }
    ancestors(dir)?;
    match std::fs::symlink_metadata(socket) {
        Ok(m) if !m.file_type().is_socket() => Err(format!("{} is not a socket", socket.display())),
        Ok(m) if m.uid() != me => Err(format!(
            "the socket {} belongs to uid {}, not to you (uid {me})",
            socket.display(),
            m.uid()
        )),
        // A missing socket is "not running", reported by the connect.
        _ => Ok(()),
    }
}

/// Checks every directory above `dir` (after resolving links): owned by root or this
/// user, and writable by nobody else (see [`socket_path`]).
pub fn ancestors(dir: &Path) -> Result<(), String> {
    let me = euid();
    let canonical =
        std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    for ancestor in canonical.ancestors().skip(1) {
        ancestor_ok(ancestor, me)?;
    }
    Ok(())
}

/// A directory above the socket's: nobody but its owner (root or the user) may replace
/// what it holds. Group write is accepted only for the user's own primary group, as
/// with per-user groups; world write only with the sticky bit (`/tmp`).
fn ancestor_ok(dir: &Path, me: u32) -> Result<(), String> {
    let m = std::fs::metadata(dir).map_err(|e| format!("cannot inspect {}: {e}", dir.display()))?;
    if m.uid() != 0 && m.uid() != me {
        return Err(format!(
            "{} (above the socket's directory) belongs to uid {}, who could replace the socket's directory",
            dir.display(),
            m.uid()
        ));
    }
    let mode = m.mode();
    let sticky = mode & 0o1000 != 0;
    let group_ok = m.uid() == me && m.gid() == egid();
    if (mode & 0o002 != 0 && !sticky) || (mode & 0o020 != 0 && !sticky && !group_ok) {
        return Err(format!(
            "{} (above the socket's directory) is writable by other users (mode {:04o})",
            dir.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// The uid of the process at the other end of a connected Unix socket, from the kernel.
#[cfg(target_os = "linux")]
pub fn server_uid(stream: &UnixStream) -> std::io::Result<u32> {
    Ok(peer_cred(stream)?.uid)
}

/// The pid of the process that listens at the other end (Linux: the credentials the
/// kernel took when it called `listen`).
#[cfg(target_os = "linux")]
pub fn server_pid(stream: &UnixStream) -> std::io::Result<i32> {
    Ok(peer_cred(stream)?.pid)
}

#[cfg(target_os = "linux")]
fn peer_cred(stream: &UnixStream) -> std::io::Result<libc::ucred> {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred is a valid ucred and len its size; the fd is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred)
}

/// The uid of the process at the other end of a connected Unix socket, from the kernel.
#[cfg(not(target_os = "linux"))]
pub fn server_uid(stream: &UnixStream) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let (mut uid, mut gid): (libc::uid_t, libc::gid_t) = (0, 0);
    // SAFETY: uid and gid are valid to be written; the fd is open for the call.
    if unsafe { libc::getpeereid(stream.as_raw_fd(), &mut uid, &mut gid) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(uid)
}

/// Checks the process behind a connected socket runs as this user.
pub fn server_is_ours(stream: &UnixStream, socket: &Path) -> Result<(), String> {
    let me = euid();
    match server_uid(stream) {
        Ok(uid) if uid == me => Ok(()),
        Ok(uid) => Err(format!(
            "the process listening on {} runs as uid {uid}, not as you (uid {me}); nothing was sent to it",
            socket.display()
        )),
        Err(e) => Err(format!(
            "cannot tell who listens on {}: {e}; nothing was sent to it",
            socket.display()
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private_dir() -> (std::path::PathBuf, std::path::PathBuf) {
        let base = std::env::temp_dir().join(format!(
            "ka-verify-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700)).unwrap();
        let dir = base.join("ka");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        (base, dir)
    }

    #[test]
    fn only_a_private_directory_of_ours_passes() {
        let (base, dir) = private_dir();
        let sock = dir.join("agent.sock");
        socket_path(&sock).unwrap();
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        socket_path(&sock).unwrap();
        let s = UnixStream::connect(&sock).unwrap();
        server_is_ours(&s, &sock).unwrap();
        drop(s);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(socket_path(&sock).unwrap_err().contains("mode 0750"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();

        let link = base.join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(socket_path(&link.join("agent.sock"))
            .unwrap_err()
            .contains("symbolic link"));

        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(socket_path(&sock)
            .unwrap_err()
            .contains("writable by other users"));
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o1777)).unwrap();
        socket_path(&sock).unwrap();

        let file = dir.join("file");
        std::fs::write(&file, b"x").unwrap();
        assert!(socket_path(&file).unwrap_err().contains("not a socket"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
