//! A process as `/proc` and its pidfd show it: the pid behind a pidfd, whether it is still
//! alive, its start time, and reads through its `/proc/<pid>` directory handle (`exe`,
//! `status`, `environ`, …) with the fields of `status` the identification uses. Nothing
//! here decides; `mod.rs` puts the reads in their order.

use crate::peer::identify::inspect_err;
use crate::peer::PeerError;
use nix::fcntl::{open, openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// The pid a pidfd refers to, from `/proc/self/fdinfo`. `Gone` if the process exited.
pub(super) fn pidfd_pid(pidfd: &OwnedFd) -> Result<i32, PeerError> {
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

/// Whether the process behind a pidfd is still alive (signal 0 checks without sending;
/// a process of another user answers EPERM, which means it is there).
pub(super) fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    // nix has no pidfd_send_signal.
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
    // EPERM: the process exists but is another user's (signals to it are not allowed).
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A pidfd for `pid` (`pidfd_open`).
pub(super) fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // nix has no pidfd_open.
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pidfd_open returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Field 22 of `/proc/<pid>/stat`: start time in clock ticks since boot.
pub(super) fn start_time(pid: i32) -> Result<u64, PeerError> {
    let stat = read_proc_text(&format!("/proc/{pid}/stat")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            PeerError::Gone
        } else {
            inspect_err("stat", e)
        }
    })?;
    start_of(&stat)
}

/// The start time of the process whose `/proc/<pid>` directory is `dir` (pinned).
pub(super) fn start_time_in(dir: &OwnedFd) -> Result<u64, PeerError> {
    start_of(&String::from_utf8_lossy(&read_in(dir, "stat")?))
}

/// The parent pid (field 4 of `stat`, which the kernel formats faster than `status`)
/// of the process whose `/proc/<pid>` directory is `dir`.
pub(super) fn parent_in(dir: &OwnedFd) -> Result<i32, PeerError> {
    let stat = String::from_utf8_lossy(&read_in(dir, "stat")?).into_owned();
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| PeerError::Inspect("malformed /proc stat".into()))
}

/// Field 22 of a stat line.
fn start_of(stat: &str) -> Result<u64, PeerError> {
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

/// A failed read of the process: `Gone` when it exited, else why it cannot be inspected.
pub(super) fn gone_or(what: &str, e: std::io::Error) -> PeerError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ESRCH) => PeerError::Gone,
        _ => inspect_err(what, e),
    }
}

/// Opens `/proc/<pid>` as an `O_PATH` directory handle.
pub(super) fn open_proc_dir(pid: i32) -> Result<OwnedFd, PeerError> {
    open(
        format!("/proc/{pid}").as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| gone_or("open /proc/<pid>", e.into()))
}

/// Opens a file inside the process directory for reading (following `exe`'s link).
pub(super) fn open_in(dir: &OwnedFd, name: &str) -> Result<File, PeerError> {
    openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map(File::from)
        .map_err(|e| gone_or(name, e.into()))
}

/// A whole file inside the process directory.
pub(super) fn read_in(dir: &OwnedFd, name: &str) -> Result<Vec<u8>, PeerError> {
    read_all(open_in(dir, name)?, name)
}

/// A whole open `/proc` file; `Gone` when the process exited meanwhile.
pub(super) fn read_all(mut f: File, name: &str) -> Result<Vec<u8>, PeerError> {
    read_proc(&mut f).map_err(|e| gone_or(name, e))
}

/// A whole open `/proc` file, as an I/O result.
pub(super) fn read_whole(f: &mut File) -> std::io::Result<Vec<u8>> {
    read_proc(f)
}

/// Reads a whole `/proc` file with plain `read`s into a page-sized buffer that doubles
/// when full, up to the first read that returns less than it was asked for. The kernel
/// writes `stat`, `status` and `fdinfo` (one record each) whole into its own buffer on
/// the first read and copies out as much as fits; it copies `environ` and `cmdline` out
/// of the process's memory until their end or until the buffer is full: either way a
/// short read is all of it, and one `read` does for a `status` file. (Not for `maps`,
/// whose records are copied a page at a time, nor for pipes.) `read_to_end` would first
/// ask the file's size (which `/proc` reports as 0) and then probe with 32-byte reads:
/// 8 system calls instead of 1, on every new connection.
fn read_proc(f: &mut File) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
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
pub(super) fn exe_path(dir: &OwnedFd) -> Result<String, PeerError> {
    let target = readlinkat(dir, "exe").map_err(|e| gone_or("readlink exe", e.into()))?;
    Ok(String::from_utf8_lossy(target.as_bytes()).into_owned())
}

/// Device and inode of the executable, through the `exe` link.
pub(super) fn exe_inode(dir: &OwnedFd) -> Result<(u64, u64), PeerError> {
    let st = fstatat(dir, "exe", AtFlags::empty()).map_err(|e| gone_or("stat exe", e.into()))?;
    Ok((st.st_dev, st.st_ino))
}

/// The `TracerPid:` line of a status file.
pub(super) fn tracer_pid(status: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The `PPid:` line of a status file.
pub(super) fn status_ppid(status: &[u8]) -> Option<i32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The real uid (first field of `Uid:`) of a status file.
pub(super) fn real_uid(status: &[u8]) -> Option<u32> {
    String::from_utf8_lossy(status)
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Confirms the process read about is still the one that connected.
pub(super) fn still_same(pidfd: Option<&OwnedFd>, pid: i32, start: u64) -> Result<(), PeerError> {
    match pidfd {
        Some(fd) if pidfd_alive(fd) => Ok(()),
        Some(_) => Err(PeerError::Gone),
        None if start_time(pid)? == start => Ok(()),
        None => Err(PeerError::Gone),
    }
}

/// This process's `/proc/<pid>` directory, for tests.
#[cfg(test)]
pub(super) fn self_dir() -> OwnedFd {
    open_proc_dir(std::process::id() as i32).expect("open /proc/<pid>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_and_larger_files_are_read_whole() {
        for path in [
            "/proc/self/status",
            "/proc/self/stat",
            "/proc/self/environ",
            "/proc/self/cmdline",
        ] {
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
        // Past the first 4 KiB buffer and several doublings, byte for byte: a read that
        // fills the buffer is never taken for the end.
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
        assert_eq!(real_uid(st), Some(1000));
        assert_eq!(real_uid(b"Name:\tx\n"), None);
    }

    #[test]
    fn a_long_environment_and_command_line_are_read_whole() {
        // Past the first buffer of each kind of file, and a page of the process's memory.
        let long = "v".repeat(20_000);
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; :", "a"])
            .arg(&long)
            .env("KA_LONG", &long)
            .spawn()
            .expect("sleep");
        let pid = child.id() as i32;
        let dir = open_proc_dir(pid).expect("dir");
        // Until the exec is done, the files are still the test's own.
        let mut tries = 0;
        while !read_in(&dir, "cmdline")
            .expect("cmdline")
            .starts_with(b"sh\0")
        {
            tries += 1;
            assert!(tries < 500, "sh did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let environ = read_in(&dir, "environ").expect("environ");
        let cmdline = read_in(&dir, "cmdline").expect("cmdline");
        let _ = child.kill();
        let _ = child.wait();
        assert!(environ.len() > 20_000, "{}", environ.len());
        assert!(environ
            .split(|b| *b == 0)
            .any(|v| v == format!("KA_LONG={long}").as_bytes()));
        assert_eq!(
            cmdline,
            format!("sh\x00-c\x00sleep 30; :\x00a\x00{long}\x00").into_bytes()
        );
    }

    #[test]
    fn the_parent_pid_is_read_through_the_pinned_directory() {
        let dir = open_proc_dir(std::process::id() as i32).expect("dir");
        assert_eq!(
            parent_in(&dir).expect("ppid"),
            nix::unistd::getppid().as_raw()
        );
    }

    #[test]
    fn the_parent_pid_of_a_status_file_parses() {
        let status = std::fs::read("/proc/self/status").expect("status");
        assert_eq!(status_ppid(&status), Some(nix::unistd::getppid().as_raw()));
        assert_eq!(status_ppid(b"Name:\tx\nPPid:\tnope\n"), None);
        assert_eq!(status_ppid(b""), None);
    }

    #[test]
    fn tracer_pid_parses() {
        assert_eq!(tracer_pid(b"Name:\tx\nTracerPid:\t0\n"), Some(0));
        assert_eq!(tracer_pid(b"TracerPid:\t1234\n"), Some(1234));
        assert_eq!(tracer_pid(b"Name:\tx\n"), None);
    }
}
