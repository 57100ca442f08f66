//! The OS-neutral part of identifying a peer: which executables are interpreters, which
//! environment variables inject code, file names and hashes, and the steps that name,
//! check and hash the script an interpreter runs ([`script_of`]). An OS file supplies only
//! what differs, through [`ScriptFinder`]: where it finds the script and what it checks
//! about it (Linux: in the process's own world, with its startup files; macOS: by
//! absolute path). Reading the process itself is the OS file's.

use super::script::{runs, Env, Runs, Startup};
use super::{Peer, PeerError, ScriptIdentity};
use crate::digest::{FileKey, HashCache};
use keychain_auth_sdk::protocol::PinnedFile;
use std::fs::File;

/// Largest script hashed; a bigger "script" is refused as one.
pub(super) const MAX_SCRIPT: u64 = 64 * 1024 * 1024;

/// Why a peer could not be inspected: what was being done, and the OS error.
pub(super) fn inspect_err(what: &str, e: std::io::Error) -> PeerError {
    PeerError::Inspect(format!("{what}: {e}"))
}

/// The hash of an open file: from the cache, or by reading it when `may_hash`; without
/// it, [`PeerError::NeedsHash`] when the cache does not know the file. `what` names the
/// step in the error.
pub(super) fn hash_of(
    cache: &HashCache,
    file: &File,
    may_hash: bool,
    what: &str,
) -> Result<(String, FileKey), PeerError> {
    let hashed = if may_hash {
        cache.hash_file(file).map(Some)
    } else {
        cache.cached(file)
    };
    hashed
        .map_err(|e| inspect_err(what, e))?
        .ok_or(PeerError::NeedsHash)
}

/// The last component of a path (all of it when it has no `/`).
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The file name of an executable path as the kernel reports it, without the
/// ` (deleted)` the kernel adds for a file removed since it was started.
pub fn exe_base_name(path: &str) -> &str {
    base_name(path.strip_suffix(" (deleted)").unwrap_or(path))
}

/// Executables that run scripts: approving one would approve every script it runs.
const INTERPRETERS: &[&str] = &[
    "python",
    "python2",
    "python3",
    "pypy",
    "pypy3",
    "node",
    "nodejs",
    "ruby",
    "irb",
    "perl",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "mksh",
    "fish",
    "tcsh",
    "csh",
    "busybox",
    "java",
    "deno",
    "bun",
    "osascript",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "rscript",
    "r",
    "pwsh",
    "powershell",
    "gawk",
    "awk",
    "mawk",
    "expect",
    "guile",
    "racket",
    "elixir",
    "erl",
    "julia",
    "swift",
];

/// Whether an executable path names a script interpreter (`python3.11` counts as `python3`).
pub fn is_interpreter(path: &str) -> bool {
    let base = exe_base_name(path).to_ascii_lowercase();
    let trimmed = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    INTERPRETERS.contains(&base.as_str()) || INTERPRETERS.contains(&trimmed)
}

/// Scans a NUL-separated environment block for variables that inject code into a process.
pub fn injected_env(environ: &[u8]) -> Option<String> {
    const VARS: &[&str] = &["LD_PRELOAD=", "LD_AUDIT=", "DYLD_INSERT_LIBRARIES="];
    environ
        .split(|&b| b == 0)
        .filter_map(|kv| {
            VARS.iter()
                .find(|v| kv.starts_with(v.as_bytes()) && kv.len() > v.len())
        })
        .map(|v| format!("{} is set in its environment", v.trim_end_matches('=')))
        .next()
}

/// The identity of a script: `sha256:` of a domain-separated concatenation of the
/// interpreter's hash, the script's path and the script's hash.
pub fn script_identity_hash(s: &ScriptIdentity) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    // v1 when nothing but the script is read at startup, so such identities stay as
    // they were; v2 covers the startup files too.
    h.update(if s.startup.is_empty() {
        &b"keychain-auth script v1\0"[..]
    } else {
        &b"keychain-auth script v2\0"[..]
    });
    h.update(s.interpreter_hash.as_bytes());
    h.update(b"\0");
    h.update(s.path.as_bytes());
    h.update(b"\0");
    h.update(s.hash.as_bytes());
    for f in &s.startup {
        h.update(b"\0");
        h.update(f.path.as_bytes());
        h.update(b"\0");
        h.update(f.hash.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// What a peer is identified by: its executable's hash, or, for an interpreter running a
/// script that can be named, the script's identity.
pub(super) struct Identity {
    /// See [`super::Peer::hash`].
    pub hash: String,
    /// See [`super::Peer::interpreter`].
    pub interpreter: bool,
    /// See [`super::Peer::no_script`].
    pub no_script: Option<String>,
    /// See [`super::Peer::script`].
    pub script: Option<ScriptIdentity>,
}

impl Identity {
    /// The peer this identity is of, with what every OS reports; the OS-specific fields
    /// (`signing`, `output`, `libraries`) are empty, for the OS file to fill.
    pub(super) fn peer(
        self,
        pid: i32,
        uid: u32,
        path: String,
        injection: Option<String>,
        handle: super::Handle,
    ) -> Peer {
        Peer {
            pid,
            uid,
            interpreter: self.interpreter,
            no_script: self.no_script,
            script: self.script,
            via: None,
            path,
            hash: self.hash,
            injection,
            handle,
            wants: std::sync::OnceLock::new(),
            signing: None,
            output: None,
            libraries: Vec::new(),
            shell: None,
            chain: Vec::new(),
            terminal: None,
            origin: std::sync::OnceLock::new(),
            through: None,
            child_stream: None,
        }
    }
}

/// The identity of a process running the executable at `path` with hash `exe_hash`: for
/// an interpreter, `script(exe_hash)` says which script it runs (or why none applies).
pub(super) fn identity(
    path: &str,
    exe_hash: String,
    script: impl FnOnce(&str) -> Result<Result<ScriptIdentity, String>, PeerError>,
) -> Result<Identity, PeerError> {
    let mut id = Identity {
        hash: exe_hash,
        interpreter: false,
        no_script: None,
        script: None,
    };
    if is_interpreter(path) {
        match script(&id.hash)? {
            Ok(s) => {
                id.hash = script_identity_hash(&s);
                id.script = Some(s);
            }
            Err(why) => {
                id.interpreter = true;
                id.no_script = Some(why);
            }
        }
    }
    Ok(id)
}

/// A script as an interpreter's command line names it, for the OS to find.
// Only the Linux finder needs the interpreter and its arguments.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) struct Named<'a> {
    /// The interpreter's executable path.
    pub interpreter: &'a str,
    /// Its file name.
    pub base: &'a str,
    /// Its arguments, `argv[0]` first.
    pub argv: &'a [String],
    /// The script as named (maybe relative to the working directory).
    pub path: String,
    /// What the interpreter reads at startup besides.
    pub startup: Startup,
}

/// What an OS does to find and check a script; the steps between are [`script_of`]'s.
pub(super) trait ScriptFinder {
    /// What [`ScriptFinder::open`] learnt that [`ScriptFinder::settle`] needs.
    type Found;

    /// Opens the script, as the process would find it. `Ok(Err(why))` when it cannot
    /// be named.
    #[allow(clippy::type_complexity)]
    fn open(&self, named: &Named<'_>) -> Result<Result<(File, Self::Found), String>, PeerError>;

    /// After the size check: the script's path as its identity names it, and the startup
    /// files pinned into the identity. `Ok(Err(why))` when no identity applies.
    #[allow(clippy::type_complexity)]
    fn settle(
        &self,
        named: &Named<'_>,
        file: &File,
        meta: &std::fs::Metadata,
        found: Self::Found,
    ) -> Result<Result<(String, Vec<PinnedFile>), String>, PeerError>;
}

/// The script an interpreter runs, from its arguments and environment, found by the OS
/// and hashed, with the startup files the interpreter reads before it. `Ok(Err(why))`
/// when no script identity applies (inline code, options or variables that load other
/// code, a path that cannot be named unambiguously, …).
pub(super) fn script_of<F: ScriptFinder>(
    finder: &F,
    interpreter: &str,
    interpreter_hash: &str,
    argv: &[String],
    env: &Env,
    cache: &HashCache,
    may_hash: bool,
) -> Result<Result<ScriptIdentity, String>, PeerError> {
    let base = exe_base_name(interpreter);
    let (path, startup) =
        match runs(base, argv, env) {
            Runs::Script { path, startup } => (path, startup),
            Runs::Inline(how) => return Ok(Err(format!("it runs {how}, not a script file"))),
            Runs::Interactive => return Ok(Err(
                "it runs no script file (an interactive session, or commands from standard input)"
                    .into(),
            )),
            Runs::Refused(why) => return Ok(Err(format!("no script identity applies: {why}"))),
        };
    let named = Named {
        interpreter,
        base,
        argv,
        path,
        startup,
    };
    let (file, found) = match finder.open(&named)? {
        Ok(opened) => opened,
        Err(why) => return Ok(Err(why)),
    };
    let meta = file.metadata().map_err(|e| inspect_err("stat script", e))?;
    if meta.len() > MAX_SCRIPT {
        return Ok(Err(format!(
            "its script {:?} is larger than {MAX_SCRIPT} bytes",
            named.path
        )));
    }
    let (path, startup) = match finder.settle(&named, &file, &meta, found)? {
        Ok(settled) => settled,
        Err(why) => return Ok(Err(why)),
    };
    let (hash, _) = hash_of(cache, &file, may_hash, "hash script")?;
    Ok(Ok(ScriptIdentity {
        interpreter: interpreter.to_string(),
        interpreter_hash: interpreter_hash.to_string(),
        path,
        hash,
        startup,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreters_are_recognised() {
        for p in [
            "/usr/bin/python3",
            "/usr/bin/python3.11",
            "/usr/local/bin/node",
            "/bin/bash",
            "/usr/bin/perl5.36.0",
            "/bin/busybox",
            "/usr/bin/python3 (deleted)",
        ] {
            assert!(is_interpreter(p), "{p}");
        }
        for p in [
            "/usr/bin/git",
            "/usr/local/bin/gh",
            "/usr/bin/ssh",
            "/opt/shell-tool",
        ] {
            assert!(!is_interpreter(p), "{p}");
        }
    }

    #[test]
    fn injection_variables_are_found() {
        assert!(injected_env(b"HOME=/root\0LD_PRELOAD=/tmp/x.so\0").is_some());
        assert!(injected_env(b"LD_AUDIT=/tmp/a.so\0").is_some());
        assert!(injected_env(b"HOME=/root\0LD_PRELOAD=\0PATH=/bin\0").is_none());
        assert!(injected_env(b"HOME=/root\0MY_LD_PRELOAD=x\0").is_none());
        assert!(injected_env(b"").is_none());
    }
}
