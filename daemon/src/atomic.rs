//! Atomic file replacement: write a temporary file beside the target, fsync it, rename it
//! over the target, fsync the directory. A reader (or a daemon restarted after `kill -9`)
//! sees the old file or the new one, never a mix, also when several threads replace the
//! same file at once. Files are created 0600.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` atomically. With `durable`, the data and the rename are
/// fsynced before returning, so they survive a power cut as well as a crash.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "path has no parent")
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per call: two threads replacing the same file must not share a temporary
    // file (one would truncate what the other is about to rename into place).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_content_with_0600_and_leaves_no_temp() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("config.json");
        write_atomic(&p, b"one", true).expect("first write");
        write_atomic(&p, b"two", false).expect("second write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::metadata(&p).expect("meta").mode() & 0o777, 0o600);
        let entries: Vec<_> = std::fs::read_dir(t.path()).expect("ls").collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn threads_replacing_one_file_at_once_leave_one_whole_version() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("pending.json");
        // Versions of different lengths, so a mix of two would show.
        let versions: Vec<Vec<u8>> = (0..8)
            .map(|i| vec![b'a' + i as u8; 1000 + i * 977])
            .collect();
        std::thread::scope(|s| {
            for v in &versions {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..200 {
                        write_atomic(p, v, false).expect("every write succeeds");
                    }
                });
            }
        });
        let got = std::fs::read(&p).expect("read");
        assert!(
            versions.contains(&got),
            "a mix of versions ({} bytes)",
            got.len()
        );
        let entries: Vec<_> = std::fs::read_dir(t.path()).expect("ls").collect();
        assert_eq!(entries.len(), 1, "no temporary file is left");
    }
}
