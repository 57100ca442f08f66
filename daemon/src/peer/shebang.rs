//! The identity a script file will have when it runs, worked out ahead for `register`:
//! the kernel runs a file that starts with `#!` as its interpreter with the script's path
//! as an argument, and the daemon then identifies the process as that script
//! (interpreter + script path + script hash, [`super::script_identity_hash`]), not by the
//! file's own hash. So a script registered by path is pinned as that identity, built by
//! the same steps identification takes ([`super::identify::script_of`]) from the command
//! line the kernel makes of its `#!` line.
//!
//! Only when the identity is known in advance: the interpreter is an absolute path (or
//! `#!/usr/bin/env NAME`, with NAME found on the daemon's own `PATH`), one the daemon
//! identifies scripts of, and nothing but the script is read at startup. Otherwise the
//! file is refused with why, and the person runs it once so it asks and approves the
//! hash it shows. A file without `#!` is a binary, pinned by its hash, unless its name
//! says it is a script (`.sh`, `.py`, …): started by name, a shell runs such a file
//! itself, and `bash FILE` is identified as bash + script.

use super::identify::{self, Named, ScriptFinder};
use super::{is_interpreter, PeerError, ScriptIdentity};
use crate::digest::HashCache;
use keychain_auth_sdk::protocol::PinnedFile;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// How much of a file the kernel reads for its `#!` line (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// Where `#!/usr/bin/env NAME` is looked up when the daemon has no `PATH` of its own.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// File name endings of scripts, which are not run as themselves without a `#!` line.
const SCRIPT_ENDINGS: &[&str] = &[
    ".sh", ".bash", ".zsh", ".ksh", ".fish", ".csh", ".py", ".pl", ".rb", ".js", ".mjs", ".cjs",
    ".php", ".lua", ".tcl", ".awk",
];

/// What a file given to `register` is pinned as.
#[derive(Debug)]
pub enum WhenRun {
    /// Not a `#!` script: pinned by its own hash.
    Binary,
    /// A script: pinned as the identity it will have when run by its `#!` line.
    Script(ScriptIdentity),
}

/// What `script` (its canonical path) will be identified as when it is run by name; `Err`
/// says, for a person, why that cannot be known in advance and what to do instead.
pub fn when_run(script: &Path, cache: &HashCache) -> Result<WhenRun, String> {
    let shown = script.display();
    let mut head = Vec::with_capacity(SHEBANG_MAX);
    File::open(script)
        .and_then(|f| f.take(SHEBANG_MAX as u64).read_to_end(&mut head))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let Some(line) = head.strip_prefix(b"#!") else {
        return without_shebang(script);
    };
    let (interpreter, arg) = parse_shebang(line).map_err(|why| {
        format!("{shown} cannot be registered by path: its #! line {why}; {RUN_ONCE}")
    })?;
    let (exe, argv) = command_line(&interpreter, arg.as_deref(), script)
        .map_err(|why| format!("{shown} cannot be registered by path: {why}; {RUN_ONCE}"))?;
    let exe_shown = exe.display().to_string();
    if !is_interpreter(&exe_shown) {
        return Err(format!(
            "{shown} cannot be registered by path: its #! line runs {exe_shown}, which keychain-auth does not know as a script interpreter, so when the script runs it is identified as {exe_shown} itself (by that program's hash), not as this script. If you trust {exe_shown} with everything it runs, {RUN_ONCE}"
        ));
    }
    if starts_with_shebang(&exe) {
        return Err(format!(
            "{shown} cannot be registered by path: its #! line runs {exe_shown}, which is itself a script (a wrapper or version manager's shim), so what runs it, and what the script is identified as, is decided when it runs; name the real interpreter on the #! line, or {RUN_ONCE}"
        ));
    }
    let exe_hash = File::open(&exe)
        .and_then(|f| cache.hash_file(&f))
        .map_err(|e| format!("cannot hash the interpreter {exe_shown}: {e}"))?
        .0;
    let env = super::script::Env::parse(env_block().as_bytes());
    let finder = Ahead {
        script,
        exe: &exe,
        cache,
    };
    let found = identify::script_of(&finder, &exe_shown, &exe_hash, &argv, &env, cache, true)
        .map_err(|e: PeerError| format!("cannot work out the identity of {shown}: {e}"))?;
    let id = found.map_err(|why| {
        format!("{shown} cannot be registered by path: run by its #! line, {why}; {RUN_ONCE}")
    })?;
    if !id.startup.is_empty() {
        let files: Vec<&str> = id.startup.iter().map(|f| f.path.as_str()).collect();
        return Err(format!(
            "{shown} cannot be registered by path: run by its #! line, {exe_shown} also runs code from {} before the script, which its approval would pin and which registering a script does not name; {RUN_ONCE} (the approval then shows those files)",
            files.join(", ")
        ));
    }
    Ok(WhenRun::Script(id))
}

/// What to do instead, for the end of a refusal.
const RUN_ONCE: &str = "run it once so it asks, then approve the hash it shows with `keychain-auth approve HASH --scope ...`";

/// A file without `#!`: a binary, unless its name says it is a script.
fn without_shebang(path: &Path) -> Result<WhenRun, String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if !SCRIPT_ENDINGS.iter().any(|e| name.ends_with(e)) {
        return Ok(WhenRun::Binary);
    }
    let shown = path.display();
    Err(format!(
        "{shown} is a script without a #! line, so it never runs as itself: started by name, your shell runs it itself (identified as that shell, which is never approved), and `bash {shown}` or `python3 {shown}` is identified as that interpreter + this script. Add a #! line naming its interpreter (such as #!/bin/bash) and register it again, or run it once with its interpreter so it asks, then approve the hash it shows with `keychain-auth approve HASH --scope ...`"
    ))
}

/// The interpreter and its one argument (the rest of the line, as Linux passes it) of a
/// `#!` line (after the `#!`), as the kernel splits it.
fn parse_shebang(after: &[u8]) -> Result<(String, Option<String>), String> {
    let Some(end) = after.iter().position(|&b| b == b'\n') else {
        if after.len() + 2 >= SHEBANG_MAX {
            return Err(format!(
                "is longer than the {} bytes the kernel reads of it",
                SHEBANG_MAX - 1
            ));
        }
        return parse_line(after);
    };
    parse_line(&after[..end])
}

fn parse_line(line: &[u8]) -> Result<(String, Option<String>), String> {
    let line = std::str::from_utf8(line).map_err(|_| "is not UTF-8 text".to_string())?;
    let blank = |c: char| c == ' ' || c == '\t';
    let line = line.trim_matches(blank);
    let (interpreter, rest) = line.split_once(blank).unwrap_or((line, ""));
    if interpreter.is_empty() {
        return Err("names no interpreter".into());
    }
    let rest = rest.trim_matches(blank);
    Ok((
        interpreter.to_string(),
        (!rest.is_empty()).then(|| rest.to_string()),
    ))
}

/// The executable that runs (canonical path) and its `argv` when the kernel runs `script`
/// by `#!interpreter arg`: through `env NAME`, NAME found on the daemon's `PATH`.
fn command_line(
    interpreter: &str,
    arg: Option<&str>,
    script: &Path,
) -> Result<(PathBuf, Vec<String>), String> {
    if !interpreter.starts_with('/') {
        return Err(format!(
            "its #! line names the interpreter {interpreter:?} by a relative path, which the kernel looks up from the directory the script is started in"
        ));
    }
    let exe = canonical_exe(Path::new(interpreter))?;
    let script = script.display().to_string();
    if super::base_name(&exe.display().to_string()) != "env" {
        let mut argv = vec![interpreter.to_string()];
        argv.extend(arg.map(str::to_string));
        argv.push(script);
        return Ok((exe, argv));
    }
    // `env NAME`: env runs NAME (found on PATH) with argv[0] = NAME.
    let Some(name) = arg else {
        return Err(format!(
            "its #! line runs {interpreter} with no program to run"
        ));
    };
    if name.starts_with('-') || name.contains(['=', ' ', '\t']) {
        return Err(format!(
            "its #! line gives env options or more than a program name ({name:?}; with -S, env splits its program and options out of it when it runs); name the interpreter by its absolute path on the #! line instead"
        ));
    }
    let program = if name.contains('/') {
        if !name.starts_with('/') {
            return Err(format!(
                "its #! line has env run {name:?}, a relative path, looked up from the directory the script is started in"
            ));
        }
        PathBuf::from(name)
    } else {
        on_path(name, &search_path())?
    };
    Ok((canonical_exe(&program)?, vec![name.to_string(), script]))
}

/// The `PATH` `#!/usr/bin/env NAME` is resolved on: the daemon's own (its absolute
/// entries), as the session that started it has it.
fn search_path() -> String {
    std::env::var("PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_PATH.to_string())
}

/// NAME as env finds it on `path` (its absolute entries: a relative one depends on the
/// directory the script is started in).
fn on_path(name: &str, path: &str) -> Result<PathBuf, String> {
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            format!(
                "its #! line has env run {name}, which is not found on the daemon's PATH ({path}); name the interpreter by its absolute path on the #! line instead"
            )
        })
}

/// Whether a file starts with `#!`.
fn starts_with_shebang(path: &Path) -> bool {
    let mut head = [0u8; 2];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

/// An executable's path with links resolved, as the kernel reports a process's.
fn canonical_exe(path: &Path) -> Result<PathBuf, String> {
    let exe = std::fs::canonicalize(path)
        .map_err(|e| format!("its interpreter {} cannot be found: {e}", path.display()))?;
    if !exe.is_file() {
        return Err(format!(
            "its interpreter {} is not a regular file",
            path.display()
        ));
    }
    Ok(exe)
}

/// The environment the identity is worked out for: the daemon's `HOME` (the user's) and
/// the `PATH` of [`search_path`], nothing else: variables that change what a script
/// runs are checked when it runs.
fn env_block() -> String {
    let mut block = format!("PATH={}\0", search_path());
    if let Ok(home) = std::env::var("HOME") {
        block.push_str(&format!("HOME={home}\0"));
    }
    block
}

/// Finds the script at its canonical path, and the startup files the interpreter would
/// read before it as if it started now (Linux).
struct Ahead<'a> {
    script: &'a Path,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    exe: &'a Path,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    cache: &'a HashCache,
}

impl ScriptFinder for Ahead<'_> {
    type Found = ();

    fn open(&self, named: &Named<'_>) -> Result<Result<(File, ()), String>, PeerError> {
        if Path::new(&named.path) != self.script {
            return Ok(Err(format!("it runs {:?}, not this file", named.path)));
        }
        let file = File::open(self.script)
            .map_err(|e| PeerError::Inspect(format!("open {}: {e}", self.script.display())))?;
        Ok(Ok((file, ())))
    }

    fn settle(
        &self,
        named: &Named<'_>,
        _file: &File,
        _meta: &std::fs::Metadata,
        _found: (),
    ) -> Result<Result<(String, Vec<PinnedFile>), String>, PeerError> {
        let path = self.script.display().to_string();
        #[cfg(target_os = "linux")]
        {
            Ok(self.startup(named)?.map(|files| (path, files)))
        }
        #[cfg(not(target_os = "linux"))]
        {
            // As identification on macOS: no startup files are pinned, and an
            // interpreter that reads its configuration from beside argv[0] gets no identity.
            if matches!(named.startup, super::script::Startup::Argv0IsExe(_)) {
                return Ok(Err(
                    "no script identity applies: its interpreter reads configuration from beside argv[0]"
                        .into(),
                ));
            }
            Ok(Ok((path, Vec::new())))
        }
    }
}

#[cfg(target_os = "linux")]
impl Ahead<'_> {
    /// The startup files of the script's interpreter, as the running process's would be
    /// found if it started now, from the script's directory.
    fn startup(&self, named: &Named<'_>) -> Result<Result<Vec<PinnedFile>, String>, PeerError> {
        use super::linux::{resolve::Stamp, startup};
        use std::os::unix::fs::MetadataExt;
        let exe = std::fs::metadata(self.exe)
            .map_err(|e| PeerError::Inspect(format!("stat {}: {e}", self.exe.display())))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = Stamp {
            secs: now.as_secs() as i64,
            nanos: i64::from(now.subsec_nanos()),
        };
        let cwd = self.script.parent().unwrap_or(Path::new("/"));
        let env = super::script::Env::parse(env_block().as_bytes());
        let own_dirs: Vec<PathBuf> = keychain_auth_sdk::paths::Paths::from_env()
            .map(|p| vec![p.config_dir, p.state_dir, p.socket_dir])
            .unwrap_or_default();
        let process = startup::Process {
            interpreter: named.interpreter,
            exe: (exe.dev(), exe.ino()),
            cwd,
            env: &env,
            script: self.script,
        };
        let ctx = startup::Context {
            uid: crate::dirs::euid(),
            not_after: now,
            strict_not_after: now,
            cache: self.cache,
            may_hash: true,
            own_dirs: &own_dirs,
        };
        Ok(startup::files(&named.startup, &process, &ctx)?
            .map_err(|why| format!("no script identity applies: {why}")))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_shebang_line_is_split_as_the_kernel_splits_it() {
        let p = |s: &str| parse_shebang(s.as_bytes());
        assert_eq!(p("/bin/bash\n"), Ok(("/bin/bash".into(), None)));
        assert_eq!(p(" /bin/bash \t\necho"), Ok(("/bin/bash".into(), None)));
        // Linux passes the rest of the line as one argument.
        assert_eq!(
            p("/usr/bin/python3 -u -E\n"),
            Ok(("/usr/bin/python3".into(), Some("-u -E".into())))
        );
        assert_eq!(
            p("/usr/bin/env\tpython3\n"),
            Ok(("/usr/bin/env".into(), Some("python3".into())))
        );
        // No newline: the file is the line.
        assert_eq!(p("/bin/sh"), Ok(("/bin/sh".into(), None)));
        // A carriage return is part of the name, as for the kernel.
        assert_eq!(p("/bin/sh\r\n"), Ok(("/bin/sh\r".into(), None)));
        assert!(p("\n").is_err());
        assert!(p("   \n").is_err());
        assert!(parse_shebang(b"/bin/\xff\n").is_err());
        let long = format!("/{}", "a".repeat(SHEBANG_MAX));
        assert!(p(&long[..SHEBANG_MAX - 2]).unwrap_err().contains("longer"));
    }

    #[test]
    fn the_command_line_is_the_kernels_and_envs() {
        let script = Path::new("/home/u/deploy.sh");
        let (exe, argv) = command_line("/bin/sh", Some("-e"), script).unwrap();
        assert_eq!(exe, std::fs::canonicalize("/bin/sh").unwrap());
        assert_eq!(argv, ["/bin/sh", "-e", "/home/u/deploy.sh"]);
        let (exe, argv) = command_line("/usr/bin/env", Some("sh"), script).unwrap();
        assert_eq!(
            exe,
            std::fs::canonicalize(on_path("sh", &search_path()).unwrap()).unwrap()
        );
        assert_eq!(argv, ["sh", "/home/u/deploy.sh"]);
        let (_, argv) = command_line("/usr/bin/env", Some("/bin/sh"), script).unwrap();
        assert_eq!(argv, ["/bin/sh", "/home/u/deploy.sh"]);
        for (interp, arg, why) in [
            ("sh", None, "relative path"),
            ("./sh", None, "relative path"),
            ("/nonexistent/sh", None, "cannot be found"),
            ("/usr/bin/env", None, "no program"),
            ("/usr/bin/env", Some("-S sh -e"), "env options"),
            ("/usr/bin/env", Some("-i"), "env options"),
            ("/usr/bin/env", Some("A=1"), "env options"),
            ("/usr/bin/env", Some("sh -e"), "env options"),
            ("/usr/bin/env", Some("bin/sh"), "relative path"),
            ("/tmp", None, "not a regular file"),
        ] {
            let err = command_line(interp, arg, script).unwrap_err();
            assert!(err.contains(why), "{interp} {arg:?}: {err}");
        }
    }

    #[test]
    fn env_finds_a_name_on_the_absolute_entries_of_its_path() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap(); // not executable: skipped
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("relative:{}::{}", a.display(), b.display());
        assert_eq!(on_path("tool", &path), Ok(b.join("tool")));
        assert!(on_path("other", &path).unwrap_err().contains("not found"));
    }

    #[test]
    fn scripts_without_a_shebang_are_refused_by_their_name_only() {
        let d = tempfile::tempdir().unwrap();
        let cache = HashCache::default();
        for (name, binary) in [("tool", true), ("deploy.sh", false), ("x.PY", false)] {
            let p = d.path().join(name);
            std::fs::write(&p, "echo hi\n").unwrap();
            match when_run(&p, &cache) {
                Ok(WhenRun::Binary) => assert!(binary, "{name}"),
                Err(why) => {
                    assert!(!binary, "{name}: {why}");
                    assert!(why.contains("without a #! line"), "{why}");
                }
                Ok(WhenRun::Script(s)) => panic!("{name}: {s:?}"),
            }
        }
    }
}
