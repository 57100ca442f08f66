//! Finding the script an interpreter runs in the interpreter's own world, not the
//! daemon's: the path from its command line is walked from the process's own root
//! (absolute) or working directory (relative), one component at a time, never through
//! a magic link and never into /proc; the process must share the daemon's mount and
//! user namespaces and root. Each symbolic link on the way and the file itself must not
//! have changed after the process started (a change made after it may have swapped the
//! file it read for another). Linux only; returns the opened file or why it cannot be
//! named.

use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::Mode;
use nix::time::{clock_gettime, ClockId};
use nix::unistd::{sysconf, SysconfVar};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Most symbolic links followed for one path (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// `PROC_SUPER_MAGIC`, `SYSFS_MAGIC`, `FUSE_SUPER_MAGIC` from linux/magic.h.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
/// `FUSE_SUPER_MAGIC`.
pub const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;

/// A point in time as the kernel stamps inodes (`CLOCK_REALTIME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Seconds since the epoch.
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: i64,
}

impl Stamp {
    /// When a file's inode last changed.
    pub fn ctime_of(m: &std::fs::Metadata) -> Stamp {
        Stamp {
            secs: m.ctime(),
            nanos: m.ctime_nsec(),
        }
    }

    /// This stamp moved `ms` milliseconds later.
    pub fn plus_ms(self, ms: i64) -> Stamp {
        self.minus_ms(-ms)
    }

    /// This stamp moved `ms` milliseconds earlier.
    pub fn minus_ms(self, ms: i64) -> Stamp {
        let total = self.secs as i128 * 1_000_000_000 + self.nanos as i128 - ms as i128 * 1_000_000;
        Stamp {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as i64,
        }
    }
}

/// When a process started, as a wall-clock [`Stamp`]: its start in clock ticks since
/// boot (`/proc/<pid>/stat` field 22) placed on the realtime clock.
pub fn started_at(start_ticks: u64) -> Stamp {
    let now = |clock| {
        // A clock that cannot be read counts as zero.
        clock_gettime(clock)
            .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
            .unwrap_or(0)
    };
    let boot = now(ClockId::CLOCK_REALTIME) - now(ClockId::CLOCK_BOOTTIME);
    let hz = match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) => hz.max(1) as i128,
        _ => 1,
    };
    let started = boot + start_ticks as i128 * 1_000_000_000 / hz;
    Stamp {
        secs: started.div_euclid(1_000_000_000) as i64,
        nanos: started.rem_euclid(1_000_000_000) as i64,
    }
}

fn open_at(dir: BorrowedFd<'_>, name: &str, flags: OFlag) -> std::io::Result<OwnedFd> {
    if name.contains('\0') {
        return Err(std::io::Error::other("NUL in path"));
    }
    Ok(openat(dir, name, flags | OFlag::O_CLOEXEC, Mode::empty())?)
}

fn meta(fd: BorrowedFd<'_>) -> std::io::Result<std::fs::Metadata> {
    File::from(fd.try_clone_to_owned()?).metadata()
}

/// The filesystem type of what `fd` is on.
pub fn fs_type(fd: BorrowedFd<'_>) -> std::io::Result<i64> {
    Ok(nix::sys::statfs::fstatfs(fd)?.filesystem_type().0 as i64)
}

/// The namespace or root a process shares with the daemon, or what differs.
pub fn same_world(proc_dir: BorrowedFd<'_>) -> Result<(), String> {
    for (ns, what) in [("ns/mnt", "mount"), ("ns/user", "user")] {
        let theirs = open_at(proc_dir, ns, OFlag::O_PATH).and_then(|f| meta(f.as_fd()));
        let ours = std::fs::metadata(format!("/proc/self/{ns}"));
        match (theirs, ours) {
            (Ok(t), Ok(o)) if (t.dev(), t.ino()) == (o.dev(), o.ino()) => {}
            (Ok(_), Ok(_)) => {
                return Err(format!(
                    "it runs in another {what} namespace, where its paths name other files"
                ))
            }
            (Err(e), _) | (_, Err(e)) => {
                return Err(format!("its {what} namespace cannot be read ({e})"))
            }
        }
    }
    let theirs = open_at(proc_dir, "root", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .and_then(|f| meta(f.as_fd()))
        .map_err(|e| format!("its root directory cannot be read ({e})"))?;
    let ours = std::fs::metadata("/").map_err(|e| format!("/: {e}"))?;
    if (theirs.dev(), theirs.ino()) != (ours.dev(), ours.ino()) {
        return Err("it runs with another root directory (chroot)".into());
    }
    Ok(())
}

/// A script found by [`resolve`].
#[derive(Debug)]
pub struct Found {
    /// The script, opened for reading (non-blocking, so a FIFO cannot hold the daemon).
    pub file: File,
    /// Its path with every link resolved, as the daemon (sharing the process's world)
    /// names it.
    pub path: String,
}

/// Walks `named` from the process's root (absolute) or working directory (relative),
/// the way the kernel would, but one component at a time: a symbolic link is read and
/// followed by hand, never a magic link (`/proc/<pid>/fd/…`, `cwd`, `root`), never into
/// /proc or /sys, and each link and the file itself must not have changed after
/// `not_after`. `Err(why)` says, for a person, why the path cannot name the script.
pub fn resolve(proc_dir: BorrowedFd<'_>, named: &str, not_after: Stamp) -> Result<Found, String> {
    let start = if named.starts_with('/') {
        "root"
    } else {
        "cwd"
    };
    let mut dir = open_at(proc_dir, start, OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| format!("its {start} directory cannot be opened ({e})"))?;
    let root = open_at(proc_dir, "root", OFlag::O_PATH | OFlag::O_DIRECTORY)
        .map_err(|e| format!("its root directory cannot be opened ({e})"))?;
    let mut pending: Vec<String> = components(named);
    pending.reverse();
    let mut links = 0;
    let mut last: Option<OwnedFd> = None;
    while let Some(part) = pending.pop() {
        if part.is_empty() || part == "." {
            continue;
        }
        let next = open_at(dir.as_fd(), &part, OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .map_err(|e| format!("{named:?} cannot be resolved at {part:?} ({e})"))?;
        let m = meta(next.as_fd()).map_err(|e| format!("{named:?}: {e}"))?;
        if m.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("{named:?} goes through too many symbolic links"));
            }
            if fs_type(dir.as_fd()).unwrap_or(0) == PROC_SUPER_MAGIC {
                return Err(format!(
                    "{named:?} goes through /proc, whose links name other processes' files"
                ));
            }
            if Stamp::ctime_of(&m) > not_after {
                return Err(format!(
                    "the symbolic link {part:?} on the path of {named:?} changed after (or just before) the interpreter started; run it again once nothing is changing it"
                ));
            }
            let target = read_link(next.as_fd())
                .map_err(|e| format!("{named:?}: reading the link {part:?}: {e}"))?;
            if target.starts_with('/') {
                dir = root.try_clone().map_err(|e| e.to_string())?;
            }
            let mut more = components(&target);
            more.reverse();
            pending.extend(more);
            continue;
        }
        if pending.is_empty() {
            last = Some(next);
        } else if m.is_dir() {
            dir = next;
        } else {
            return Err(format!("{named:?}: {part:?} is not a directory"));
        }
    }
    let Some(last) = last else {
        return Err(format!("{named:?} names a directory, not a script file"));
    };
    let kind = fs_type(last.as_fd()).map_err(|e| format!("{named:?}: {e}"))?;
    if kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC {
        return Err(format!(
            "{named:?} is a file of /proc or /sys, not a script"
        ));
    }
    // Reopen what the walk found, for reading, through the O_PATH handle's own link in
    // /proc/self/fd (this process's, so a plain reopen of the same inode).
    let file = File::from(
        open_at(
            proc_self_fd()?.as_fd(),
            &last.as_raw_fd().to_string(),
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        )
        .map_err(|e| format!("{named:?} cannot be read ({e})"))?,
    );
    let m = file.metadata().map_err(|e| format!("{named:?}: {e}"))?;
    if !m.is_file() {
        return Err(format!("{named:?} is not a regular file"));
    }
    if Stamp::ctime_of(&m) > not_after {
        return Err(format!(
            "{named:?} changed after (or just before) the interpreter started, so it may not be what the interpreter read; run it again once nothing is changing it"
        ));
    }
    let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("{named:?}: {e}"))?
        .to_string_lossy()
        .into_owned();
    Ok(Found { file, path })
}

fn proc_self_fd() -> Result<OwnedFd, String> {
    open(
        "/proc/self/fd",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| std::io::Error::from(e).to_string())
}

/// The components of a path; `..` is kept (it is walked like any name: the kernel
/// stops it at the root).
fn components(path: &str) -> Vec<String> {
    path.split('/').map(str::to_string).collect()
}

fn read_link(fd: BorrowedFd<'_>) -> std::io::Result<String> {
    let target = super::holders::read_link_at(fd, "", libc::PATH_MAX as usize + 1)?;
    String::from_utf8(target).map_err(|_| std::io::Error::other("link target is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_dir() -> OwnedFd {
        open(
            format!("/proc/{}", std::process::id()).as_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .expect("open /proc/<pid>")
    }

    fn now() -> Stamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        Stamp {
            secs: d.as_secs() as i64,
            nanos: i64::from(d.subsec_nanos()),
        }
    }

    #[test]
    fn a_path_resolves_through_links_to_the_file_and_its_canonical_path() {
        let t = tempfile::tempdir().expect("tempdir");
        let real = t.path().join("real.py");
        std::fs::write(&real, b"print(1)").expect("write");
        std::os::unix::fs::symlink(&real, t.path().join("link.py")).expect("link");
        std::os::unix::fs::symlink("real.py", t.path().join("rel.py")).expect("link");
        let dir = self_dir();
        let later = now().minus_ms(-60_000);
        for name in ["real.py", "link.py", "rel.py"] {
            let f = resolve(
                dir.as_fd(),
                &t.path().join(name).display().to_string(),
                later,
            )
            .expect("resolves");
            assert_eq!(
                f.path,
                std::fs::canonicalize(&real)
                    .expect("canon")
                    .display()
                    .to_string()
            );
        }
        let e = resolve(dir.as_fd(), &t.path().display().to_string(), later).expect_err("dir");
        assert!(
            e.contains("not a regular file") || e.contains("directory"),
            "{e}"
        );
    }

    #[test]
    fn files_and_links_changed_after_the_start_and_proc_paths_are_refused() {
        let t = tempfile::tempdir().expect("tempdir");
        let real = t.path().join("real.py");
        std::fs::write(&real, b"print(1)").expect("write");
        let link = t.path().join("link.py");
        std::os::unix::fs::symlink(&real, &link).expect("link");
        let dir = self_dir();
        // "Started" an hour ago: both were made after.
        let before = now().minus_ms(3_600_000);
        let e = resolve(dir.as_fd(), &real.display().to_string(), before).expect_err("new file");
        assert!(e.contains("changed after"), "{e}");
        let e = resolve(dir.as_fd(), &link.display().to_string(), before).expect_err("new link");
        assert!(
            e.contains("symbolic link") && e.contains("changed after"),
            "{e}"
        );
        let later = now().minus_ms(-60_000);
        for p in [
            "/proc/self/exe",
            "/proc/self/cwd/x.py",
            "/dev/fd/0",
            "/proc/self/environ",
        ] {
            let e = resolve(dir.as_fd(), p, later).expect_err(p);
            assert!(
                e.contains("/proc") || e.contains("/sys") || e.contains("cannot"),
                "{p}: {e}"
            );
        }
    }

    #[test]
    fn this_process_shares_the_daemons_world() {
        same_world(self_dir().as_fd()).expect("same namespaces and root");
        assert!(Stamp { secs: 10, nanos: 0 }.minus_ms(1) < Stamp { secs: 10, nanos: 0 });
        assert_eq!(
            Stamp {
                secs: 10,
                nanos: 500_000_000
            }
            .minus_ms(600),
            Stamp {
                secs: 9,
                nanos: 900_000_000
            }
        );
    }
}
