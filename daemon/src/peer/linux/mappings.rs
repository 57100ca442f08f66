//! The executable files a process has mapped that its user can change: what a library
//! injected through the environment (`LD_LIBRARY_PATH`, `LD_PRELOAD` hidden after the
//! start, `GCONV_PATH`, an OpenSSL engine…) looks like to the kernel, whatever variable
//! brought it in. Read from `/proc/<pid>/maps`: asked of the kernel one executable,
//! file-backed mapping at a time (`PROCMAP_QUERY`, Linux 6.11), or, on older kernels,
//! from its text. Each mapped file is opened by its path and must be the same inode,
//! else it cannot be checked (deleted, replaced, a memfd). A file the user owns, can
//! write (as the kernel's own access check says), or that lives on a FUSE filesystem the
//! user mounted is "the user's". A file found to be nobody's but root's is remembered
//! with its `stat` and, while its path still gives that same `stat`, not opened again
//! ([`Trusted`]). Linux only; the policy decides what to do with them.

use super::resolve::{fs_type, FUSE_SUPER_MAGIC};
use nix::fcntl::{open, OFlag, AT_FDCWD};
use nix::sys::stat::Mode;
use nix::unistd::{faccessat, AccessFlags};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

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

/// The distinct files mapped with execute permission by the process whose `maps` file
/// is `maps` (opened through its pinned `/proc` directory), in address order.
pub fn executable_files_of(maps: File) -> std::io::Result<Vec<Mapped>> {
    match query_all(&maps) {
        Ok(Some(found)) => Ok(found),
        // A kernel without the ioctl: the text, from the same open file.
        Ok(None) => {
            let mut text = Vec::new();
            (&maps).read_to_end(&mut text)?;
            Ok(executable_files(&text))
        }
        Err(e) => Err(e),
    }
}

/// `struct procmap_query` of `<linux/fs.h>` (Linux 6.11).
#[repr(C)]
#[derive(Default)]
struct ProcmapQuery {
    size: u64,
    query_flags: u64,
    query_addr: u64,
    vma_start: u64,
    vma_end: u64,
    vma_flags: u64,
    vma_page_size: u64,
    vma_offset: u64,
    inode: u64,
    dev_major: u32,
    dev_minor: u32,
    vma_name_size: u32,
    build_id_size: u32,
    vma_name_addr: u64,
    build_id_addr: u64,
}

/// `_IOWR('f', 17, struct procmap_query)`.
const PROCMAP_QUERY: libc::c_ulong = (3 << 30)
    | ((std::mem::size_of::<ProcmapQuery>() as libc::c_ulong) << 16)
    | ((b'f' as libc::c_ulong) << 8)
    | 17;
const PROCMAP_QUERY_VMA_EXECUTABLE: u64 = 0x04;
const PROCMAP_QUERY_COVERING_OR_NEXT_VMA: u64 = 0x10;
const PROCMAP_QUERY_FILE_BACKED_VMA: u64 = 0x20;

/// Every executable, file-backed mapping, asked of the kernel one at a time from the
/// lowest address up; `None` when the kernel does not know the ioctl.
fn query_all(maps: &File) -> std::io::Result<Option<Vec<Mapped>>> {
    let mut out: Vec<Mapped> = Vec::new();
    let mut name = vec![0u8; libc::PATH_MAX as usize];
    let mut addr = 0u64;
    loop {
        let mut q = ProcmapQuery {
            size: std::mem::size_of::<ProcmapQuery>() as u64,
            query_flags: PROCMAP_QUERY_COVERING_OR_NEXT_VMA
                | PROCMAP_QUERY_VMA_EXECUTABLE
                | PROCMAP_QUERY_FILE_BACKED_VMA,
            query_addr: addr,
            vma_name_size: name.len() as u32,
            vma_name_addr: name.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: `q` is a `struct procmap_query` of the size it says, and its name
        // buffer is `name`, which outlives the call and is as long as it says.
        let rc = unsafe { libc::ioctl(maps.as_raw_fd(), PROCMAP_QUERY as _, &mut q) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                // No mapping at or above `addr`: all of them were seen.
                Some(libc::ENOENT) => Ok(Some(out)),
                Some(libc::ENOTTY) | Some(libc::EINVAL) if out.is_empty() && addr == 0 => Ok(None),
                _ => Err(e),
            };
        }
        let len = (q.vma_name_size as usize).saturating_sub(1).min(name.len());
        let path = String::from_utf8_lossy(&name[..len]).into_owned();
        if q.vma_end <= addr {
            return Err(std::io::Error::other(
                "the kernel listed mappings out of order",
            ));
        }
        addr = q.vma_end;
        let m = Mapped {
            dev: libc::makedev(q.dev_major, q.dev_minor),
            ino: q.inode,
            path,
        };
        if m.ino == 0 || !m.path.starts_with('/') {
            continue;
        }
        if !out.iter().any(|o| o.dev == m.dev && o.ino == m.ino) {
            out.push(m);
        }
    }
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

/// Looks at one mapped file, as the user `uid` (the daemon's own): first among the
/// files already found to be root's alone ([`Trusted`]), then by opening it.
pub fn judge(m: &Mapped, uid: u32) -> Verdict {
    if TRUSTED.still(m) {
        return Verdict::Trusted;
    }
    let (verdict, meta) = judge_afresh(m, uid);
    if let (Verdict::Trusted, Some(meta)) = (&verdict, meta) {
        TRUSTED.remember(m, &meta);
    }
    verdict
}

/// Looks at one mapped file by opening it; with the verdict, what the opened file's
/// `stat` said.
fn judge_afresh(m: &Mapped, uid: u32) -> (Verdict, Option<std::fs::Metadata>) {
    if m.path.ends_with(" (deleted)") {
        return (
            Verdict::Unverifiable(format!(
                "it runs code from {}, a file that was deleted (or a memory file), which cannot be checked",
                m.path
            )),
            None,
        );
    }
    if m.path.contains('\0') {
        return (
            Verdict::Unverifiable(format!("it maps {:?}, an unusable path", m.path)),
            None,
        );
    }
    let file = match open(
        m.path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => File::from(fd),
        Err(e) => {
            return (
                Verdict::Unverifiable(format!(
                    "it runs code from {}, which cannot be opened ({})",
                    m.path,
                    std::io::Error::from(e)
                )),
                None,
            )
        }
    };
    let meta = match file.metadata() {
        Ok(meta) => meta,
        Err(e) => return (Verdict::Unverifiable(format!("{}: {e}", m.path)), None),
    };
    if (meta.dev(), meta.ino()) != (m.dev, m.ino) {
        return (
            Verdict::Unverifiable(format!(
                "it runs code from {}, which has been replaced since it was mapped",
                m.path
            )),
            None,
        );
    }
    if users_can_change(&file, &meta, uid) {
        return (Verdict::Users(file), None);
    }
    (Verdict::Trusted, Some(meta))
}

/// What `stat` says of a file that decides whether its user can change it, or that
/// changes with it: its owner, group, mode (ACLs included, whose mask it shows) and
/// size, and when its contents and its attributes last changed. The change time moves
/// on every `chmod`, `chown`, ACL change and write, and nobody but root can set it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    /// Device, inode, size and the two change times, as the hash cache keys a file.
    key: crate::digest::FileKey,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            key: crate::digest::FileKey::of_meta(meta),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
        }
    }
}

/// Most files [`Trusted`] remembers; past it, it starts over.
const TRUSTED_MAX: usize = 4096;

/// Mapped files found to be root's alone, by device and inode, with their [`Stamp`].
/// One is taken as still root's alone, without opening it, when its path still names
/// that device and inode with that same stamp, and its mode lets nobody but its owner
/// write it (so that no mount made writable later, and no group or ACL entry, can let
/// the user write it either); on a filesystem without a device of its own (device
/// major 0: tmpfs, overlayfs, btrfs, FUSE), only when that filesystem is not FUSE,
/// whose server could reuse a device number and say anything of its files.
struct Trusted(Mutex<Option<HashMap<(u64, u64), Stamp>>>);

static TRUSTED: Trusted = Trusted::new();

impl Trusted {
    const fn new() -> Trusted {
        Trusted(Mutex::new(None))
    }

    /// Whether `m` is a file remembered as root's alone, unchanged.
    fn still(&self, m: &Mapped) -> bool {
        if m.path.ends_with(" (deleted)") {
            return false;
        }
        let stamp = {
            let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
            match memo.as_ref().and_then(|memo| memo.get(&(m.dev, m.ino))) {
                Some(s) => *s,
                None => return false,
            }
        };
        let Ok(meta) = std::fs::metadata(&m.path) else {
            return false;
        };
        if (meta.dev(), meta.ino()) != (m.dev, m.ino) || Stamp::of(&meta) != stamp {
            return false;
        }
        libc::major(m.dev) != 0
            || nix::sys::statfs::statfs(m.path.as_str())
                .is_ok_and(|fs| fs.filesystem_type() != nix::sys::statfs::FUSE_SUPER_MAGIC)
    }

    /// Remembers `m`, just found to be root's alone when opened with `meta`, if its
    /// mode lets only its owner write it.
    fn remember(&self, m: &Mapped, meta: &std::fs::Metadata) {
        if (meta.dev(), meta.ino()) != (m.dev, m.ino) || meta.mode() & 0o022 != 0 {
            return;
        }
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let memo = memo.get_or_insert_with(HashMap::new);
        if memo.len() >= TRUSTED_MAX {
            memo.clear();
        }
        memo.insert((m.dev, m.ino), Stamp::of(meta));
    }
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

    /// This process's executable mappings as the text of its `maps` lists them.
    fn own_from_text() -> Vec<Mapped> {
        executable_files(&std::fs::read("/proc/self/maps").expect("maps"))
    }

    #[test]
    fn the_kernel_lists_the_same_mappings_as_the_text() {
        // Another test thread may map or unmap a file between the two reads: retry.
        let release = nix::sys::utsname::uname().expect("uname");
        let release = release.release().to_string_lossy().into_owned();
        let mut version = release.split(|c: char| !c.is_ascii_digit());
        let major: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let minor: u32 = version.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut last = None;
        for _ in 0..5 {
            let maps = File::open("/proc/self/maps").expect("maps");
            let Some(asked) = query_all(&maps).expect("asked") else {
                assert!(
                    (major, minor) < (6, 11),
                    "Linux {release} has PROCMAP_QUERY, but it was refused"
                );
                return;
            };
            let text = own_from_text();
            if asked == text {
                assert!(asked.iter().any(|m| m.path.contains("libc")), "{asked:?}");
                return;
            }
            last = Some((asked, text));
        }
        panic!("the two lists differ: {last:?}");
    }

    #[test]
    fn a_remembered_file_is_trusted_only_while_it_is_unchanged_at_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lib.so");
        std::fs::write(&path, b"library").expect("write");
        let mapped = |p: &std::path::Path| {
            let meta = std::fs::metadata(p).expect("stat");
            (
                Mapped {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    path: p.display().to_string(),
                },
                meta,
            )
        };
        let (m, meta) = mapped(&path);
        let memo = Trusted::new();
        assert!(!memo.still(&m), "nothing is remembered yet");
        memo.remember(&m, &meta);
        assert!(memo.still(&m));
        // Written to: its size and times change.
        std::fs::write(&path, b"library, changed").expect("write");
        assert!(!memo.still(&m));
        let (m, meta) = mapped(&path);
        memo.remember(&m, &meta);
        assert!(memo.still(&m));
        // Its mode changed, and changed back: the change time moved (unless the clock's
        // tick did not, when nothing tells the file from what it was).
        use std::os::unix::fs::PermissionsExt;
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(!memo.still(&m));
        // Another file at its path.
        let (m, meta) = mapped(&path);
        memo.remember(&m, &meta);
        let other = dir.path().join("other.so");
        std::fs::write(&other, b"library").expect("write");
        std::fs::rename(&other, &path).expect("rename");
        assert!(!memo.still(&m));
        // Deleted, or named as deleted.
        let (m, meta) = mapped(&path);
        memo.remember(&m, &meta);
        let deleted = Mapped {
            path: format!("{} (deleted)", m.path),
            ..m.clone()
        };
        assert!(!memo.still(&deleted));
        std::fs::remove_file(&path).expect("rm");
        assert!(!memo.still(&m));
        // A file others may write is never remembered.
        std::fs::write(&path, b"library").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let (m, meta) = mapped(&path);
        memo.remember(&m, &meta);
        assert!(!memo.still(&m));
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
