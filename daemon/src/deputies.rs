//! The programs a caller chain passes through, known by what they are: keychain-auth's
//! own deputies (the git helper and the CLI, by the hashes of the installed binaries),
//! the installed git's own executables (every file of `git --exec-path`, by hash, from
//! a directory only root can change), and shells running code from their command line.
//! See `peer::chain` for the walk itself.

use crate::peer::chain::Known;
use crate::peer::{PassThrough, Peer, ShellRuns};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The git helper's file name, looked for beside the daemon's executable and on `PATH`.
pub const HELPER: &str = "git-credential-keychain-auth";

/// Largest file of git's exec-path that is hashed.
const MAX_GIT_FILE: u64 = 256 * 1024 * 1024;
/// Most files of git's exec-path that are hashed.
const MAX_GIT_FILES: usize = 2000;

/// What passes requests on.
#[derive(Debug)]
pub struct PassThroughs {
    deputies: Vec<String>,
    git: OnceLock<GitFiles>,
}

/// The installed git's executables.
#[derive(Debug, Default)]
pub struct GitFiles {
    /// Where they were found (`git --exec-path` of each git).
    pub dirs: Vec<PathBuf>,
    /// Their hashes.
    pub hashes: HashSet<String>,
    /// Why none are known, if none are.
    pub why_none: Option<String>,
}

impl PassThroughs {
    /// Pass-throughs with these deputy hashes (the helper's and the CLI's).
    pub fn new(deputies: Vec<String>) -> PassThroughs {
        PassThroughs {
            deputies,
            git: OnceLock::new(),
        }
    }

    /// Whether `hash` is one of keychain-auth's deputies.
    pub fn is_deputy(&self, hash: &str) -> bool {
        self.deputies.iter().any(|h| h == hash)
    }

    /// git's executables, found on first use.
    pub fn git(&self) -> &GitFiles {
        self.git.get_or_init(find_git)
    }
}

impl Known for PassThroughs {
    fn pass_through(&self, peer: &Peer) -> Option<PassThrough> {
        if peer.script.is_none() && self.is_deputy(&peer.hash) {
            return Some(PassThrough::Deputy);
        }
        let git = self.git();
        // git's own scripts (git-submodule, …) run by their interpreter count as git.
        let git_file = match &peer.script {
            Some(s) => git.hashes.contains(&s.hash),
            None => git.hashes.contains(&peer.hash),
        };
        if git_file {
            return Some(PassThrough::Git);
        }
        if peer.shell == Some(ShellRuns::Inline) {
            return Some(PassThrough::InlineShell);
        }
        None
    }

    fn ready(&self) -> bool {
        self.git.get().is_some()
    }
}

/// Whether a file (or directory) may be trusted as installed: not changeable by this
/// user, owned by root, not writable by group or others.
fn root_only(meta: &std::fs::Metadata) -> bool {
    meta.uid() == 0 && meta.mode() & 0o022 == 0
}

/// The `git` executables installed: each `git` on `PATH` (not only the first: a user may
/// have two, and a program may run either) and `/usr/bin/git`, each file once.
fn gits() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push(PathBuf::from("/usr/bin"));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for d in dirs {
        let git = d.join("git");
        if let Ok(meta) = std::fs::metadata(&git) {
            if meta.is_file() && seen.insert((meta.dev(), meta.ino())) {
                out.push(git);
            }
        }
    }
    out
}

/// git's exec-path, as `git` says it (its `GIT_EXEC_PATH` ignored).
fn exec_path(git: &Path) -> Result<PathBuf, String> {
    let out = std::process::Command::new(git)
        .arg("--exec-path")
        .env_remove("GIT_EXEC_PATH")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{} cannot be run ({e})", git.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --exec-path failed ({})",
            git.display(),
            out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if text.is_empty() {
        return Err(format!("{} --exec-path printed nothing", git.display()));
    }
    Ok(PathBuf::from(text))
}

/// Finds and hashes the executables of every installed git. A directory (or file) this
/// user can change is skipped: anything written there could then pass as git.
pub fn find_git() -> GitFiles {
    let mut found = GitFiles::default();
    let mut why = Vec::new();
    for git in gits() {
        let dir = match exec_path(&git) {
            Ok(d) => d,
            Err(e) => {
                why.push(e);
                continue;
            }
        };
        match hash_dir(&dir) {
            Ok(hashes) => {
                found.hashes.extend(hashes);
                found.dirs.push(dir);
            }
            Err(e) => why.push(e),
        }
    }
    if found.hashes.is_empty() {
        found.why_none = Some(if why.is_empty() {
            "git is not installed".to_string()
        } else {
            why.join("; ")
        });
    }
    found
}

/// The hashes of the executable files of `dir`, which must be root's alone.
fn hash_dir(dir: &Path) -> Result<HashSet<String>, String> {
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !root_only(&meta) {
        return Err(format!(
            "{} can be changed by users other than root, so its files are not trusted as git's",
            dir.display()
        ));
    }
    let mut seen = HashSet::new();
    let mut hashes = HashSet::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries.flatten().take(MAX_GIT_FILES) {
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() || meta.mode() & 0o111 == 0 || meta.len() > MAX_GIT_FILE {
            continue;
        }
        if !root_only(&meta) || !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        if let Ok(f) = std::fs::File::open(entry.path()) {
            if let Ok(h) = crate::digest::hash_reader(f) {
                hashes.insert(h);
            }
        }
    }
    Ok(hashes)
}

/// The hashes of the files named `name` beside `app_exe` and first on `PATH`, each once,
/// with their paths.
pub fn installed(app_exe: &Path, name: &str) -> Vec<(PathBuf, String)> {
    let mut candidates = Vec::new();
    if let Some(dir) = app_exe.parent() {
        candidates.push(dir.join(name));
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
        {
            candidates.push(found);
        }
    }
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    for c in candidates {
        let Ok(f) = std::fs::File::open(&c) else {
            continue;
        };
        if let Ok(h) = crate::digest::hash_reader(f) {
            if !out.iter().any(|(_, x)| *x == h) {
                out.push((c, h));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_this_user_can_change_gives_no_git_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("git");
        std::fs::write(&f, b"#!/bin/sh\n").expect("write");
        let got = hash_dir(dir.path());
        if crate::dirs::euid() == 0 {
            // root owns the temporary directory, but it is world-writable or not per
            // umask: only a root-only directory counts.
            let meta = std::fs::metadata(dir.path()).expect("stat");
            assert_eq!(got.is_ok(), root_only(&meta));
        } else {
            assert!(got.is_err(), "a directory of this user is not git's");
        }
    }

    #[test]
    fn the_installed_git_is_found_when_present() {
        let git = find_git();
        match &git.why_none {
            None => assert!(!git.hashes.is_empty(), "git's exec-path has executables"),
            Some(why) => assert!(!why.is_empty()),
        }
    }
}
