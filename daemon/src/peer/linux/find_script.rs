//! The script a Linux interpreter process runs, found in the process's own world: its
//! namespaces and root must be the daemon's, the path is walked from its own root or
//! working directory ([`super::resolve`]), a shell that keeps its script open must hold
//! that very file, and the startup files are pinned ([`super::startup`]). The steps
//! around these (what the command line runs, the size check, hashing) are
//! `peer/identify.rs`'s.

use super::proc::{exe_inode, gone_or, read_in};
use super::{resolve, startup};
use crate::digest::HashCache;
use crate::peer::identify::{self, Named, ScriptFinder};
use crate::peer::PeerError;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// How long after the start time the kernel reports a file may have changed and still
/// count as changed before the process started: the start is reported rounded down to
/// 10 ms (plus 1 ms for reading the two clocks it is placed on), so a file written just
/// before a process started (a script written, then run at once) is never taken as
/// changed after it. The price is a window: a change made in the first ~10 ms of the
/// process may be taken as made before it (see the threat model).
const CHANGE_SLACK_MS: i64 = 11;

/// How far before the reported start a change time may be and still have been made after
/// the process started: inode times lag the clock by up to a tick (10 ms at the
/// coarsest). A bound this much before the reported start misses no change made after
/// the start, and takes one made in the ~20 ms before it as made after it.
const START_UNCERTAINTY_MS: i64 = 10;

/// The script an interpreter process runs, found in the process's own world and hashed,
/// with the startup files the interpreter reads before it ([`identify::script_of`]).
pub(super) fn script_of(
    dir: &OwnedFd,
    interpreter: &str,
    interpreter_hash: &str,
    argv: &[String],
    cache: &HashCache,
    may_hash: bool,
    environ: &[u8],
) -> Result<Result<crate::peer::ScriptIdentity, String>, PeerError> {
    // Read through the pinned directory: the same process's start, whichever way it
    // was pinned.
    let start_ticks = super::proc::start_time_in(dir)?;
    let env = crate::peer::script::Env::parse(environ);
    let finder = Finder {
        dir,
        env: &env,
        cache,
        may_hash,
        start_ticks,
    };
    identify::script_of(
        &finder,
        interpreter,
        interpreter_hash,
        argv,
        &env,
        cache,
        may_hash,
    )
}

/// The process's arguments, `argv[0]` first.
pub(super) fn argv(dir: &OwnedFd) -> Result<Vec<String>, PeerError> {
    let cmdline = read_in(dir, "cmdline")?;
    let mut argv: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // The kernel ends each argument with a NUL, so the split leaves an empty last piece.
    while argv.last().is_some_and(String::is_empty) {
        argv.pop();
    }
    Ok(argv)
}

/// Finds a script in the world of the process whose `/proc` directory is `dir`: its
/// namespaces and root must be the daemon's, the path is walked from its own root or
/// working directory ([`resolve`]), and the startup files are pinned ([`startup`]).
struct Finder<'a> {
    dir: &'a OwnedFd,
    env: &'a crate::peer::script::Env,
    cache: &'a HashCache,
    may_hash: bool,
    start_ticks: u64,
}

impl ScriptFinder for Finder<'_> {
    /// The script's resolved path, whether the interpreter keeps it open, and the latest
    /// change time it was held to.
    type Found = (String, bool, resolve::Stamp);

    fn open(&self, named: &Named<'_>) -> Result<Result<(File, Self::Found), String>, PeerError> {
        use std::os::fd::AsFd;
        let (base, path) = (named.base, &named.path);
        if let Err(why) = resolve::same_world(self.dir.as_fd()) {
            return Ok(Err(format!("its script cannot be named from here: {why}")));
        }
        let holds = crate::peer::script::keeps_script_open(base, named.argv);
        if !holds && !path.starts_with('/') {
            return Ok(Err(format!(
                "its script is named by a relative path ({path:?}) and {base} does not keep the file open, so the directory it was read from may not be the one it is in now; run it by its absolute path (as a script found on PATH is)"
            )));
        }
        let not_after = resolve::started_at(self.start_ticks).plus_ms(CHANGE_SLACK_MS);
        match resolve::resolve(self.dir.as_fd(), path, not_after) {
            Ok(found) => Ok(Ok((found.file, (found.path, holds, not_after)))),
            Err(why) => Ok(Err(format!(
                "its script cannot be named unambiguously: {why}"
            ))),
        }
    }

    fn settle(
        &self,
        named: &Named<'_>,
        _file: &File,
        meta: &std::fs::Metadata,
        (path, holds, not_after): Self::Found,
    ) -> Result<Result<(String, Vec<keychain_auth_sdk::protocol::PinnedFile>), String>, PeerError>
    {
        let dir = self.dir;
        if holds && !holds_file(dir, (meta.dev(), meta.ino()))? {
            return Ok(Err(format!(
                "{} does not have {path} open, the file its command line names: it is running another one (its directory changed, or the file was replaced)",
                named.base
            )));
        }
        let cwd = std::fs::read_link(format!("/proc/self/fd/{}/cwd", dir.as_raw_fd()))
            .map_err(|e| gone_or("its working directory", e))?;
        let process = startup::Process {
            interpreter: named.interpreter,
            exe: exe_inode(dir)?,
            cwd: &cwd,
            env: self.env,
            script: std::path::Path::new(&path),
        };
        let own_dirs: Vec<std::path::PathBuf> = keychain_auth_sdk::paths::Paths::from_env()
            .map(|p| vec![p.config_dir, p.state_dir, p.socket_dir])
            .unwrap_or_default();
        let ctx = startup::Context {
            uid: crate::dirs::euid(),
            not_after,
            strict_not_after: resolve::started_at(self.start_ticks).minus_ms(START_UNCERTAINTY_MS),
            cache: self.cache,
            may_hash: self.may_hash,
            own_dirs: &own_dirs,
        };
        match startup::files(&named.startup, &process, &ctx)? {
            Ok(files) => Ok(Ok((path, files))),
            Err(why) => Ok(Err(format!("no script identity applies: {why}"))),
        }
    }
}

/// Whether the process holds a descriptor on the file (device, inode): a shell keeps
/// the script it runs open.
fn holds_file(dir: &OwnedFd, file: (u64, u64)) -> Result<bool, PeerError> {
    let fds = std::fs::read_dir(format!("/proc/self/fd/{}/fd", dir.as_raw_fd()))
        .map_err(|e| gone_or("its descriptors", e))?;
    for entry in fds {
        let entry = entry.map_err(|e| gone_or("its descriptors", e))?;
        // Following the link reaches the open file itself.
        if let Ok(m) = std::fs::metadata(entry.path()) {
            if m.is_file() && (m.dev(), m.ino()) == file {
                return Ok(true);
            }
        }
    }
    Ok(false)
}
