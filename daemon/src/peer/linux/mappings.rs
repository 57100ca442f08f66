//! The executable files a process has mapped that its user can change: what a library
//! injected through the environment (`LD_LIBRARY_PATH`, `LD_PRELOAD` hidden after the
//! start, `GCONV_PATH`, an OpenSSL engine…) looks like to the kernel, whatever variable
//! brought it in. Read from `/proc/<pid>/maps`; each file-backed executable mapping is
//! opened by its path and must be the same inode, else it cannot be checked (deleted,
//! replaced, a memfd). A file the user owns, can write (as the kernel's own access check
//! says), or that lives on a FUSE filesystem the user mounted is "the user's". Linux
//! only; the policy decides what to do with them.

use super::resolve::{fs_type, FUSE_SUPER_MAGIC};
use nix::fcntl::{open, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::unistd::{faccessat, AccessFlags};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;

/// One file-backed executable mapping, as `/proc/<pid>/maps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    /// Device, as the kernel numbers it (`st_dev`).
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Path as the kernel prints it (may end in ` (deleted)`).
    pub path: String,
}

/// The distinct files mapped with execute permission, in the order first seen.
pub fn executable_files(maps: &[u8]) -> Vec<Mapped> {
    let mut out: Vec<Mapped> = Vec::new();
    for line in String::from_utf8_lossy(maps).lines() {
        let Some(m) = parse_line(line) else { continue };
        if !out.iter().any(|o| o.dev == m.dev && o.ino == m.ino) {
            out.push(m);
        }
    }
    out
}

/// `start-end perms offset major:minor inode path`, for an executable, file-backed line.
fn parse_line(line: &str) -> Option<Mapped> {
    let mut rest = line;
    let mut field = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        f
    };
    let (_range, perms, _offset, dev, ino) = (field(), field(), field(), field(), field());
    let path = rest.trim_start();
    if perms.as_bytes().get(2) != Some(&b'x') || !path.starts_with('/') {
        return None;
    }
    let ino: u64 = ino.parse().ok()?;
    if ino == 0 {
        return None;
    }
    let (major, minor) = dev.split_once(':')?;
    let major = u32::from_str_radix(major, 16).ok()?;
    let minor = u32::from_str_radix(minor, 16).ok()?;
    Some(Mapped {
        dev: libc::makedev(major, minor),
        ino,
        path: path.to_string(),
    })
}

/// What a mapped file turned out to be.
#[derive(Debug)]
pub enum Verdict {
    /// Nobody but root (or another account the user cannot act as) can change it.
    Trusted,
    /// The user can change it; here it is, opened, for hashing.
    Users(File),
    /// It cannot be checked; why, for a person.
    Unverifiable(String),
}

/// Looks at one mapped file, as the user `uid` (the daemon's own).
pub fn judge(m: &Mapped, uid: u32) -> Verdict {
    if m.path.ends_with(" (deleted)") {
        return Verdict::Unverifiable(format!(
            "it runs code from {}, a file that was deleted (or a memory file), which cannot be checked",
            m.path
        ));
    }
    if m.path.contains('\0') {
        return Verdict::Unverifiable(format!("it maps {:?}, an unusable path", m.path));
    }
    let file = match open(
        m.path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(e) => {
            return Verdict::Unverifiable(format!(
                "it runs code from {}, which cannot be opened ({})",
                m.path,
                std::io::Error::from(e)
            ))
        }
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(e) => return Verdict::Unverifiable(format!("{}: {e}", m.path)),
    };
    if (meta.dev(), meta.ino()) != (m.dev, m.ino) {
        return Verdict::Unverifiable(format!(
            "it runs code from {}, which has been replaced since it was mapped",
            m.path
        ));
    }
    if users_can_change(&file, &meta, uid) {
        return Verdict::Users(file);
    }
    Verdict::Trusted
}

/// Whether the user `uid` can change an open file or directory: it is theirs, they may
/// write it, or it is on a FUSE filesystem root did not mount.
pub fn users_can_change(file: &File, meta: &std::fs::Metadata, uid: u32) -> bool {
    meta.uid() == uid || writable(file) || on_users_fuse(file)
}

/// Whether this process may write the open file, by the kernel's own check (mode, ACLs,
/// a read-only mount), asked through the file's `/proc/self/fd` link.
fn writable(file: &File) -> bool {
    faccessat(
        AT_FDCWD,
        format!("/proc/self/fd/{}", file.as_raw_fd()).as_str(),
        AccessFlags::W_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .is_ok()
}

/// Whether a file is on a FUSE filesystem that root did not mount (`user_id=` in its
/// mountinfo line, or none said): such a filesystem's server, a user's program, decides
/// what its files contain and whom they say they belong to.
pub fn on_users_fuse(file: &File) -> bool {
    if fs_type(file.as_fd()).map_or(true, |t| t != FUSE_SUPER_MAGIC) {
        return false;
    }
    let mounted_by = || -> Option<u32> {
        let info =
            std::fs::read_to_string(format!("/proc/self/fdinfo/{}", file.as_raw_fd())).ok()?;
        let mnt: u64 = info
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))?
            .trim()
            .parse()
            .ok()?;
        fuse_user_in(&std::fs::read_to_string("/proc/self/mountinfo").ok()?, mnt)
    };
    mounted_by() != Some(0)
}

/// `user_id=` of mount `mnt` in a mountinfo text.
fn fuse_user_in(mountinfo: &str, mnt: u64) -> Option<u32> {
    let line = mountinfo.lines().find(|l| {
        l.split_whitespace()
            .next()
            .and_then(|id| id.parse::<u64>().ok())
            == Some(mnt)
    })?;
    let (_, supers) = line.split_once(" - ")?;
    supers
        .split_whitespace()
        .nth(2)?
        .split(',')
        .find_map(|o| o.strip_prefix("user_id="))
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_parse() {
        let maps = b"\
55d0c0000000-55d0c0001000 r--p 00000000 fd:01 1234                       /usr/bin/tool
55d0c0001000-55d0c0002000 r-xp 00001000 fd:01 1234                       /usr/bin/tool
7f0000000000-7f0000100000 r-xp 00028000 fd:01 99                         /usr/lib/x86_64-linux-gnu/libc.so.6
7f0000100000-7f0000101000 r-xp 00000000 00:00 0                          [vdso]
7f0000200000-7f0000201000 rwxp 00000000 00:00 0 
7f0000300000-7f0000301000 r-xp 00000000 00:05 77                         /memfd:evil (deleted)
7f0000400000-7f0000401000 r-xp 00000000 08:10 12                         /home/u/with space/lib.so
";
        let got = executable_files(maps);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0].path, "/usr/bin/tool");
        assert_eq!(got[0].dev, libc::makedev(0xfd, 1));
        assert_eq!(got[1].ino, 99);
        assert_eq!(got[2].path, "/memfd:evil (deleted)");
        assert_eq!(got[3].path, "/home/u/with space/lib.so");
        assert_eq!(got[3].dev, libc::makedev(8, 0x10));
        assert!(executable_files(b"garbage\n\n-- x\n").is_empty());
    }

    #[test]
    fn our_own_files_are_the_users_and_system_files_are_not() {
        let uid = crate::dirs::euid();
        let dir = tempfile::tempdir().expect("tempdir");
        let mine = dir.path().join("lib.so");
        std::fs::write(&mine, b"not really a library").expect("write");
        let meta = std::fs::metadata(&mine).expect("stat");
        let m = Mapped {
            dev: meta.dev(),
            ino: meta.ino(),
            path: mine.display().to_string(),
        };
        assert!(matches!(judge(&m, uid), Verdict::Users(_)));
        let gone = Mapped {
            path: format!("{} (deleted)", m.path),
            ..m.clone()
        };
        assert!(matches!(judge(&gone, uid), Verdict::Unverifiable(_)));
        let other_inode = Mapped {
            ino: m.ino + 1,
            ..m.clone()
        };
        assert!(matches!(judge(&other_inode, uid), Verdict::Unverifiable(_)));
        if uid != 0 {
            let libc_path = "/bin/sh";
            let meta = std::fs::metadata(libc_path).expect("stat");
            let sys = Mapped {
                dev: meta.dev(),
                ino: meta.ino(),
                path: libc_path.into(),
            };
            assert!(matches!(judge(&sys, uid), Verdict::Trusted));
        }
    }

    #[test]
    fn fuse_owners_are_read_from_mountinfo() {
        let info = "\
36 25 0:32 / /home/u/mnt rw,nosuid,nodev relatime shared:1 - fuse.sshfs host:/ rw,user_id=1000,group_id=1000
37 25 0:33 / /mnt/root rw relatime - fuse.foo foo rw,user_id=0,group_id=0,allow_other
";
        assert_eq!(fuse_user_in(info, 36), Some(1000));
        assert_eq!(fuse_user_in(info, 37), Some(0));
        assert_eq!(fuse_user_in(info, 38), None);
    }
}
