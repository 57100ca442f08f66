//! Creating and checking the daemon's private directories. A directory that is a symlink,
//! belongs to another user or is writable by group or others, or sits below a directory
//! another user could change, is refused with a message naming it; one of ours with
//! looser read bits is tightened to 0700. Path names come from
//! `keychain_auth_sdk::paths`; clients check the same (`keychain_auth_sdk::verify`).

use std::fs::DirBuilder;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Why a directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// The directory could not be created or inspected.
    #[error("cannot use directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The directory is unsafe to use.
    #[error("refusing directory {path}: {reason}")]
    Unsafe {
        /// The directory.
        path: String,
        /// What is wrong with it and what to do.
        reason: String,
    },
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Creates `dir` (and missing parents) with mode 0700 if absent, then checks it: a real
/// directory, not a symlink, owned by this user, not writable by group or others.
pub fn ensure_private_dir(dir: &Path) -> Result<(), DirError> {
    let shown = dir.display().to_string();
    let io = |source| DirError::Io {
        path: shown.clone(),
        source,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        Err(e) => return Err(io(e)),
        Ok(_) => {}
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    let unsafe_dir = |reason: String| DirError::Unsafe {
        path: shown.clone(),
        reason,
    };
    if meta.file_type().is_symlink() {
        return Err(unsafe_dir(
            "it is a symbolic link; remove it so keychain-auth can create a real directory".into(),
        ));
    }
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory".into()));
    }
    if meta.uid() != euid() {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by you (uid {})",
            meta.uid(),
            euid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(unsafe_dir(format!(
            "it is writable by group or others (mode {mode:04o}); check its contents, then `chmod 700` it"
        )));
    }
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    // Nobody else may be able to replace it: every directory above it is root's or ours
    // and writable by nobody else (or sticky, like /tmp).
    keychain_auth_sdk::verify::ancestors(dir).map_err(unsafe_dir)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_0700_and_tightens_read_bits() {
        let t = tempfile::tempdir().expect("tempdir");
        let d = t.path().join("a/b");
        ensure_private_dir(&d).expect("created");
        assert_eq!(std::fs::metadata(&d).expect("meta").mode() & 0o777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&d).expect("tightened");
        assert_eq!(std::fs::metadata(&d).expect("meta").mode() & 0o777, 0o700);
    }

    #[test]
    fn refuses_symlinks_and_writable_dirs() {
        let t = tempfile::tempdir().expect("tempdir");
        let real = t.path().join("real");
        ensure_private_dir(&real).expect("created");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let e = ensure_private_dir(&link).expect_err("symlink refused");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let e = ensure_private_dir(&real).expect_err("writable refused");
        assert!(e.to_string().contains("writable"), "{e}");
        let file = t.path().join("file");
        std::fs::write(&file, b"x").expect("write");
        assert!(ensure_private_dir(&file).is_err());
    }
}
