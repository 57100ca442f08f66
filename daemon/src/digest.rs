//! SHA-256 of executables, with a cache keyed by file identity: device, inode, size,
//! modification and change times. An unchanged file is never hashed twice; any write,
//! rename-over or metadata change gives a new key, so a stale hash is never served.
//! The file is always one the caller already opened (for peers: `/proc/<pid>/exe`).

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

/// Entries kept before the cache is emptied and refilled.
pub const CACHE_LIMIT: usize = 4096;

/// Identity of a file's contents as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    /// The key of an open file.
    pub fn of(file: &File) -> std::io::Result<FileKey> {
        Ok(FileKey::of_meta(&file.metadata()?))
    }

    /// The key of a file from its `stat`.
    pub fn of_meta(m: &std::fs::Metadata) -> FileKey {
        FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Device and inode.
    pub fn inode(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }
}

/// `sha256:<hex>` of everything readable from `file`, from its current position.
pub fn hash_reader(mut file: impl Read) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// A bounded cache from [`FileKey`] to hash.
#[derive(Debug, Default)]
pub struct HashCache {
    map: Mutex<HashMap<FileKey, String>>,
}

impl HashCache {
    /// An empty cache.
    pub fn new() -> HashCache {
        HashCache::default()
    }

    /// The hash of an open file, from the cache when its key is known. The key is taken
    /// before and after hashing; if the file changed meanwhile, the result is not cached.
    pub fn hash_file(&self, file: &File) -> std::io::Result<(String, FileKey)> {
        let key = FileKey::of(file)?;
        if let Some(h) = self.lock().get(&key) {
            return Ok((h.clone(), key));
        }
        // pread-style hashing from offset 0 without disturbing a shared position.
        let hash = hash_reader(PositionedReader { file, offset: 0 })?;
        // Like git's "racily clean" rule: a file changed in the last two seconds could be
        // changed again within the same timestamp tick, so its hash is not cached yet.
        if FileKey::of(file)? == key && !recently_changed(&key) {
            let mut map = self.lock();
            if map.len() >= CACHE_LIMIT {
                map.clear();
            }
            map.insert(key, hash.clone());
        }
        Ok((hash, key))
    }

    /// The hash of an open file only if the cache already has it (no reading).
    pub fn cached(&self, file: &File) -> std::io::Result<Option<(String, FileKey)>> {
        let key = FileKey::of(file)?;
        Ok(self.lock().get(&key).map(|h| (h.clone(), key)))
    }

    /// Number of cached hashes.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, String>> {
        crate::lock::lock(&self.map)
    }
}

fn recently_changed(key: &FileKey) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(i64::MAX);
    now - key.mtime.0.max(key.ctime.0) < 2
}

struct PositionedReader<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn known_vector() {
        assert_eq!(
            hash_reader(&b"abc"[..]).expect("hash"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn cache_hits_and_changes_invalidate() {
        let t = tempfile::tempdir().expect("tempdir");
        let p = t.path().join("bin");
        std::fs::write(&p, b"abc").expect("write");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .expect("open")
            .set_modified(old)
            .expect("mtime");
        let cache = HashCache::new();
        // ctime moved with set_modified; a freshly changed file is hashed but not cached.
        let (h0, _) = cache
            .hash_file(&File::open(&p).expect("open"))
            .expect("hash");
        assert_eq!(cache.len(), 0);
        std::thread::sleep(std::time::Duration::from_millis(2100));
        let (h1, _) = cache
            .hash_file(&File::open(&p).expect("open"))
            .expect("hash");
        let (h2, _) = cache
            .hash_file(&File::open(&p).expect("open"))
            .expect("hash");
        assert_eq!(h1, h2);
        assert_eq!(h0, h1);
        assert_eq!(cache.len(), 1);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        f.write_all(b"d").expect("append");
        drop(f);
        let (h3, _) = cache
            .hash_file(&File::open(&p).expect("open"))
            .expect("hash");
        assert_ne!(
            h1, h3,
            "an appended byte is a new hash, never the cached one"
        );
        assert_eq!(h3, hash_reader(&b"abcd"[..]).expect("hash"));
    }
}
