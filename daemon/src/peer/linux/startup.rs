//! The files an interpreter runs before its script's own code, without being told to on
//! its command line, and whether a script identity can hold at all. Linux only. Over 500
//! lines as one concern: every step shares one collector and its time bounds.
//!
//! - The interpreter must be one the user cannot change (its executable and the directory
//!   it is in are not the user's): an interpreter installed in the user's home loads its
//!   standard library from files the user can change, which no identity can pin.
//! - CPython: the `.pth` files and `sitecustomize` / `usercustomize` of a venv found from
//!   `argv[0]`, of its prefix and of the user site; and the modules beside the script
//!   named like a module of the interpreter's own installation (its standard library or
//!   root's site-packages): the script's directory comes first on `sys.path`, so such a
//!   file shadows the module the script means. Other modules beside it are ones only the
//!   script itself imports: its own dependencies, like the packages it uses.
//! - PHP: `php.ini` beside `argv[0]`, so `argv[0]` must be the executable.
//!
//! Those the user can change are hashed into the identity, and every directory of the
//! user's that holds them, and every such file, must not have changed since the process
//! started: code that ran and then removed or rewrote itself leaves its directory or file
//! changed. (keychain-auth's own directories, which the daemon itself keeps changing, are
//! not held to that.) What counts as "the user can change" is what the mapping check uses: owned by
//! the user, writable by the user, or on a FUSE filesystem root did not mount.

use super::mappings::users_can_change;
use super::resolve::Stamp;
use crate::digest::HashCache;
use crate::peer::script::{Env, Startup};
use crate::peer::PeerError;
use keychain_auth_sdk::protocol::PinnedFile;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Most files pinned beside one script (its directory, packages and caches): more than
/// this and the script is refused rather than hashed file by file.
const MAX_BESIDE: usize = 512;

/// How much earlier than its directory's change an entry's own change time may be and
/// still explain it (the two are stamped in one call, from clocks of different
/// precision).
const EXPLAINS_MS: i64 = 10;

/// Deepest package nesting followed beside a script.
const MAX_DEPTH: usize = 8;

/// What the checks need to know besides the process.
pub struct Context<'a> {
    /// The daemon's (and the peer's) uid.
    pub uid: u32,
    /// A change time later than this was made after the process started (with the
    /// slack that lets a file written just before the start count as before it).
    pub not_after: Stamp,
    /// The same without the slack: every change made after the start is later, and so
    /// is one made in the few milliseconds before it. For the site directories, where
    /// startup code runs within milliseconds of the start (and could remove itself at
    /// once) and nothing is usually written just before an interpreter starts.
    pub strict_not_after: Stamp,
    /// Where hashes are cached.
    pub cache: &'a HashCache,
    /// Whether a file not yet cached may be hashed now.
    pub may_hash: bool,
    /// The daemon's own directories (config, state, socket), which it changes itself.
    pub own_dirs: &'a [PathBuf],
}

/// The process as the checks see it.
pub struct Process<'a> {
    /// Its executable's path (the interpreter) and (device, inode).
    pub interpreter: &'a str,
    /// (device, inode) of the running executable.
    pub exe: (u64, u64),
    /// Its working directory.
    pub cwd: &'a Path,
    /// Its environment.
    pub env: &'a Env,
    /// The script it runs, as resolved.
    pub script: &'a Path,
}

/// `Ok(Ok(files))`: the startup files to pin (maybe none); `Ok(Err(why))`: no script
/// identity holds; `Err`: the process could not be inspected (or needs hashing).
pub type Outcome = Result<Result<Vec<PinnedFile>, String>, PeerError>;

/// The startup files of `startup` for the process `p`.
pub fn files(startup: &Startup, p: &Process<'_>, ctx: &Context<'_>) -> Outcome {
    let mut c = Collector {
        ctx,
        files: Vec::new(),
        strict: false,
    };
    match c.collect(startup, p) {
        Ok(()) => {}
        Err(Stop::Refuse(why)) => return Ok(Err(why)),
        Err(Stop::Inspect(e)) => return Err(e),
    }
    let mut out = Vec::new();
    for (path, file) in c.files {
        let hashed = if ctx.may_hash {
            ctx.cache.hash_file(&file).map(Some)
        } else {
            ctx.cache.cached(&file)
        };
        let (hash, _) = hashed
            .map_err(|e| PeerError::Inspect(format!("hash {}: {e}", path.display())))?
            .ok_or(PeerError::NeedsHash)?;
        out.push(PinnedFile {
            path: path.display().to_string(),
            hash,
        });
    }
    Ok(Ok(out))
}

enum Stop {
    Refuse(String),
    Inspect(PeerError),
}

impl From<String> for Stop {
    fn from(why: String) -> Stop {
        Stop::Refuse(why)
    }
}

struct Collector<'a> {
    ctx: &'a Context<'a>,
    files: Vec<(PathBuf, File)>,
    /// Which of the context's bounds applies now.
    strict: bool,
}

/// An open file's metadata.
fn metadata(f: &File) -> Result<std::fs::Metadata, Stop> {
    f.metadata()
        .map_err(|e| Stop::Inspect(PeerError::Inspect(e.to_string())))
}

impl Collector<'_> {
    fn bound(&self) -> Stamp {
        if self.strict {
            self.ctx.strict_not_after
        } else {
            self.ctx.not_after
        }
    }

    fn collect(&mut self, startup: &Startup, p: &Process<'_>) -> Result<(), Stop> {
        let uid = self.ctx.uid;
        if uid == 0 {
            // Every file is root's: nothing the daemon's user could not change anyway.
            return Ok(());
        }
        self.interpreter_is_not_users(p)?;
        match startup {
            Startup::None => Ok(()),
            Startup::Argv0IsExe(argv0) => {
                let found = resolve_argv0(p.cwd, argv0, p.env);
                match found.and_then(|f| std::fs::metadata(f).ok()) {
                    Some(m) if (m.dev(), m.ino()) == p.exe => Ok(()),
                    _ => Err(Stop::Refuse(format!(
                        "its argv[0] ({argv0:?}) is not its executable, and it reads its configuration (which can load code) from beside argv[0]"
                    ))),
                }
            }
            Startup::Python {
                argv0,
                site,
                user_site,
                home,
                script_dir,
            } => {
                if *site {
                    self.strict = true;
                    let site = self.python_site(p, argv0, *user_site, home.as_deref());
                    self.strict = false;
                    site?;
                }
                if *script_dir {
                    self.beside_script(p)?;
                }
                Ok(())
            }
        }
    }

    /// The interpreter's executable, and the directory it is in, are not the user's.
    fn interpreter_is_not_users(&self, p: &Process<'_>) -> Result<(), Stop> {
        let exe = Path::new(
            p.interpreter
                .strip_suffix(" (deleted)")
                .unwrap_or(p.interpreter),
        );
        for (what, path) in [
            ("its executable", exe),
            ("its directory", exe.parent().unwrap_or(exe)),
        ] {
            let Ok(f) = File::open(path) else {
                return Err(Stop::Refuse(format!(
                    "{} cannot be opened to check who can change it",
                    path.display()
                )));
            };
            let m = metadata(&f)?;
            if users_can_change(&f, &m, self.ctx.uid) {
                return Err(Stop::Refuse(format!(
                    "the interpreter {} is installed where you can change it ({what}, {}), so the standard library it loads is code nobody approved; scripts are identified only under an interpreter installed by root (use the system's, or a compiled client)",
                    exe.display(),
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// Opens a directory the user may change; `Ok(None)` when absent or not the user's.
    /// A directory of the user's must not have changed since the process started.
    fn settled_dir(&self, dir: &Path) -> Result<Option<File>, Stop> {
        let Ok(f) = File::open(dir) else {
            return Ok(None);
        };
        let m = metadata(&f)?;
        if !m.is_dir() || !users_can_change(&f, &m, self.ctx.uid) {
            return Ok(None);
        }
        if Stamp::ctime_of(&m) > self.bound() {
            return Err(Stop::Refuse(format!(
                "{} changed after (or just before) the interpreter started, and code the interpreter runs at startup comes from there; run it again once nothing is changing there{}",
                dir.display(),
                cache_hint(dir, Stamp::ctime_of(&m))
            )));
        }
        Ok(Some(f))
    }

    /// Pins a file (following links), which must not have changed since the start.
    fn pin(&mut self, path: &Path) -> Result<(), Stop> {
        let Ok(f) = File::open(path) else {
            return Err(Stop::Refuse(format!(
                "{} is read at startup but cannot be opened to be hashed",
                path.display()
            )));
        };
        let m = metadata(&f)?;
        if !m.is_file() {
            return Err(Stop::Refuse(format!(
                "{} is read at startup but is not a regular file",
                path.display()
            )));
        }
        if Stamp::ctime_of(&m) > self.bound() {
            return Err(Stop::Refuse(format!(
                "{} changed after (or just before) the interpreter started, so what it ran may not be what is there now; run it again once nothing is changing it",
                path.display()
            )));
        }
        if self.files.len() >= MAX_BESIDE {
            return Err(Stop::Refuse(format!(
                "more than {MAX_BESIDE} files beside it would run as its code; keep the script in a directory of its own, or run it with python3 -P"
            )));
        }
        self.files.push((path.to_path_buf(), f));
        Ok(())
    }

    fn python_site(
        &mut self,
        p: &Process<'_>,
        argv0: &str,
        user_site: bool,
        home: Option<&str>,
    ) -> Result<(), Stop> {
        let Some(found) = resolve_argv0(p.cwd, argv0, p.env) else {
            return Err(Stop::Refuse(format!(
                "its argv[0] ({argv0:?}) names no file it can be run from, and the interpreter finds its installation from argv[0]"
            )));
        };
        let bin = found.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Some(name) = found.file_name().and_then(|n| n.to_str()) {
            let pth = bin.join(format!("{name}._pth"));
            if pth.exists() {
                return Err(Stop::Refuse(format!(
                    "{} beside its argv[0] replaces Python's module search path",
                    pth.display()
                )));
            }
        }
        let mut roots: Vec<PathBuf> = Vec::new();
        // A venv: pyvenv.cfg beside argv[0] or one directory up makes that the prefix.
        let venv = [Some(bin.as_path()), bin.parent()]
            .into_iter()
            .flatten()
            .find(|d| d.join("pyvenv.cfg").is_file())
            .map(Path::to_path_buf);
        if let Some(v) = venv {
            if let Some(dir) = self.settled_dir(&v)? {
                drop(dir);
                self.pin(&v.join("pyvenv.cfg"))?;
            }
            roots.push(v);
        }
        roots.extend(installation_prefixes(p.interpreter));
        if user_site {
            if let Some(h) = home.filter(|h| h.starts_with('/')) {
                // When ~/.local itself is absent, nothing of it is checked: a tree made
                // and removed again there would show only in the home directory, which
                // changes all the time (see the threat model).
                roots.push(PathBuf::from(h).join(".local"));
            }
        }
        for prefix in roots {
            self.site_prefix(&prefix)?;
        }
        Ok(())
    }

    /// `lib/python3*/{site,dist}-packages` under a prefix: each directory of the user's
    /// on the way must be unchanged (a directory made and removed again shows in the one
    /// above it), and the files `site` runs from them are pinned.
    fn site_prefix(&mut self, prefix: &Path) -> Result<(), Stop> {
        let lib = prefix.join("lib");
        if !lib.is_dir() {
            // Nothing to read; its absence must not be new either.
            self.settled_dir(prefix)?;
            return Ok(());
        }
        self.settled_dir(&lib)?;
        let Some(versions) = python_versions(&lib) else {
            return Ok(());
        };
        for v in versions {
            self.settled_dir(&v)?;
            for sub in ["site-packages", "dist-packages"] {
                let site = v.join(sub);
                let Some(_dir) = self.settled_dir(&site)? else {
                    // Root's (or absent): root's files need no pin.
                    continue;
                };
                let Ok(entries) = std::fs::read_dir(&site) else {
                    continue;
                };
                let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                names.sort();
                let mut customize = Vec::new();
                for path in names {
                    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    let runs_at_start = name.ends_with(".pth")
                        || name.starts_with("sitecustomize")
                        || name.starts_with("usercustomize");
                    if !runs_at_start {
                        continue;
                    }
                    if path.is_dir() {
                        return Err(Stop::Refuse(format!(
                            "{} is a package Python imports at startup, which keychain-auth cannot pin",
                            path.display()
                        )));
                    }
                    self.pin(&path)?;
                    if let Some(stem) = name.strip_suffix(".py") {
                        customize.push(stem.to_string());
                    }
                }
                self.compiled_forms(&site, &customize)?;
            }
        }
        Ok(())
    }

    /// The modules beside the script that shadow one of the interpreter's own (the
    /// script's directory is first on `sys.path`), with their compiled forms, when the
    /// directory is the user's; and the directory must not have changed since the start
    /// (a shadowing module that removed itself leaves it changed).
    fn beside_script(&mut self, p: &Process<'_>) -> Result<(), Stop> {
        let Some(dir) = p.script.parent() else {
            return Ok(());
        };
        let Some(f) = File::open(dir).ok() else {
            return Ok(());
        };
        let m = metadata(&f)?;
        if !m.is_dir() || !users_can_change(&f, &m, self.ctx.uid) {
            // Root's: nothing the user can add there.
            return Ok(());
        }
        if !self.ctx.own_dirs.iter().any(|d| d == dir) {
            self.script_dir_settled(dir, Stamp::ctime_of(&m))?;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Err(Stop::Refuse(format!(
                "{} cannot be listed to see what Python would import from it",
                dir.display()
            )));
        };
        let known = installed_modules(p.interpreter);
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        let mut shadowing = Vec::new();
        for path in names {
            if path == p.script {
                continue;
            }
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Ok(m) = std::fs::metadata(&path) else {
                // A dangling link imports nothing.
                continue;
            };
            let module = if m.is_dir() {
                is_package(&path).then(|| name.to_string())
            } else if m.is_file() {
                module_name(name)
            } else {
                None
            };
            let Some(module) = module.filter(|n| known.contains(n)) else {
                continue;
            };
            if m.is_dir() {
                self.package(&path, 0)?;
            } else {
                self.pin(&path)?;
            }
            shadowing.push(module);
        }
        self.compiled_forms(dir, &shadowing)
    }

    /// The compiled forms of the modules `stems` of `dir`, in its `__pycache__`: Python
    /// runs one instead of its source when the source's size and time (recorded in it,
    /// and so forgeable) match. The cache must not have changed since the start either:
    /// a compiled form that ran and removed itself leaves it changed. (Python writes
    /// there itself on the first run after a source changed: that run is refused, the
    /// next one is not.)
    fn compiled_forms(&mut self, dir: &Path, stems: &[String]) -> Result<(), Stop> {
        if stems.is_empty() {
            return Ok(());
        }
        let cache = dir.join("__pycache__");
        if self.settled_dir(&cache)?.is_none() {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(&cache) else {
            return Ok(());
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let stem = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.split('.').next())
                .unwrap_or("");
            if stems.iter().any(|s| s == stem) && path.is_file() {
                self.pin(&path)?;
            }
        }
        Ok(())
    }

    /// The script's directory must not have changed since the start, held to the strict
    /// bound: a shadowing module that removed itself at once leaves only the directory's
    /// change time. A change in the few milliseconds around the start is allowed when an
    /// entry still there explains it (its own change time is as late: a file written, or
    /// renamed into place, just before the script ran, the script itself included); a
    /// removal leaves nothing to explain it.
    fn script_dir_settled(&self, dir: &Path, changed: Stamp) -> Result<(), Stop> {
        let refuse = || {
            Stop::Refuse(format!(
                "{} changed after (or just before) the interpreter started, and a module Python imported from there may have removed itself; run it again once nothing is changing there{}",
                dir.display(),
                cache_hint(dir, changed)
            ))
        };
        if changed <= self.ctx.strict_not_after {
            return Ok(());
        }
        if changed > self.ctx.not_after {
            return Err(refuse());
        }
        let explained = std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                std::fs::symlink_metadata(e.path())
                    .is_ok_and(|m| Stamp::ctime_of(&m) >= changed.minus_ms(EXPLAINS_MS))
            })
        });
        if explained {
            Ok(())
        } else {
            Err(refuse())
        }
    }

    /// Every module file of a package (and its subpackages and caches), pinned.
    fn package(&mut self, dir: &Path, depth: usize) -> Result<(), Stop> {
        if depth > MAX_DEPTH {
            return Err(Stop::Refuse(format!(
                "{} nests packages deeper than {MAX_DEPTH}; keep the script in a directory of its own, or run it with python3 -P",
                dir.display()
            )));
        }
        self.settled_dir(dir)?;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Err(Stop::Refuse(format!(
                "{} cannot be listed to see what Python would import from it",
                dir.display()
            )));
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if m.is_dir() {
                if name == "__pycache__" {
                    self.every_file_in(&path)?;
                } else {
                    self.package(&path, depth + 1)?;
                }
            } else if m.is_file() && module_name(name).is_some() {
                self.pin(&path)?;
            }
        }
        Ok(())
    }

    fn every_file_in(&mut self, dir: &Path) -> Result<(), Stop> {
        if self.settled_dir(dir)?.is_none() {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            if path.is_file() {
                self.pin(&path)?;
            }
        }
        Ok(())
    }
}

/// When a directory's change (at `changed`) is what Python's own compiled-module cache
/// would make, a hint that the next run will not be refused for it. Only a hint: a
/// module that removed itself can leave the same traces, so the run is refused anyway.
fn cache_hint(dir: &Path, changed: Stamp) -> &'static str {
    const HINT: &str = " (Python writes compiled modules to __pycache__ on the first run after a module changed, and that run is refused: the next one is not)";
    let is_cache = dir.file_name().is_some_and(|n| n == "__pycache__");
    let cache_is_new = std::fs::symlink_metadata(dir.join("__pycache__"))
        .is_ok_and(|m| Stamp::ctime_of(&m) >= changed.minus_ms(EXPLAINS_MS));
    if is_cache || cache_is_new {
        HINT
    } else {
        ""
    }
}

/// A file name Python's path finder imports a module from.
fn is_module_file(name: &str) -> bool {
    name.ends_with(".py") || name.ends_with(".pyc") || name.ends_with(".so")
}

/// The module a file is imported as: `json.py`, `json.pyc`,
/// `_json.cpython-311-x86_64-linux-gnu.so` (everything before the first dot).
fn module_name(file: &str) -> Option<String> {
    if !is_module_file(file) {
        return None;
    }
    file.split('.')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// Where an interpreter's own installation is: its executable's directory's parent, and
/// for `/usr` also `/usr/local` (Debian's site reads its dist-packages).
fn installation_prefixes(interpreter: &str) -> Vec<PathBuf> {
    let real = Path::new(
        interpreter
            .strip_suffix(" (deleted)")
            .unwrap_or(interpreter),
    );
    let mut out = Vec::new();
    if let Some(prefix) = real.parent().and_then(Path::parent) {
        out.push(prefix.to_path_buf());
        if prefix == Path::new("/usr") {
            out.push(PathBuf::from("/usr/local"));
        }
    }
    out
}

/// A directory and its modification time (which changes when an entry is added or
/// removed) when it was listed.
type Listed = (PathBuf, Option<(i64, i64)>);

/// Installed module names per interpreter, with the directories they were read from:
/// read again when one of them changed.
type ModuleCache = HashMap<String, (Vec<Listed>, Arc<HashSet<String>>)>;

fn mtime(dir: &Path) -> Option<(i64, i64)> {
    std::fs::metadata(dir)
        .ok()
        .map(|m| (m.mtime(), m.mtime_nsec()))
}

/// The names of the modules an interpreter's own installation provides: its standard
/// library (`lib/python3.X`, `lib-dynload`) and the site directories of its prefixes.
/// A module of one of these names beside a script would shadow it.
fn installed_modules(interpreter: &str) -> Arc<HashSet<String>> {
    static CACHE: Mutex<Option<ModuleCache>> = Mutex::new(None);
    let mut guard = crate::lock::lock(&CACHE);
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some((dirs, names)) = cache.get(interpreter) {
        if dirs.iter().all(|(d, t)| mtime(d) == *t) {
            return names.clone();
        }
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for prefix in installation_prefixes(interpreter) {
        let lib = prefix.join("lib");
        dirs.push(lib.clone());
        let Some(versions) = python_versions(&lib) else {
            continue;
        };
        for v in versions {
            dirs.push(v.join("lib-dynload"));
            dirs.push(v.join("site-packages"));
            dirs.push(v.join("dist-packages"));
            dirs.push(v);
        }
    }
    let mut names = HashSet::new();
    for d in &dirs {
        let Ok(entries) = std::fs::read_dir(d) else {
            continue;
        };
        for e in entries.flatten() {
            let n = e.file_name();
            let n = n.to_string_lossy();
            let name = if e.file_type().is_ok_and(|t| t.is_dir()) {
                Some(n.to_string())
            } else {
                module_name(&n)
            };
            if let Some(name) = name.filter(|n| !n.starts_with("__")) {
                names.insert(name);
            }
        }
    }
    let names = Arc::new(names);
    let listed = dirs
        .into_iter()
        .map(|d| {
            let t = mtime(&d);
            (d, t)
        })
        .collect();
    cache.insert(interpreter.to_string(), (listed, names.clone()));
    names
}

/// A directory Python imports as a regular package (an `__init__` module in it).
fn is_package(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with("__init__.") && is_module_file(&n)
        })
    })
}

/// The file `argv[0]` names as the process would find it: a path with a `/` against its
/// working directory, a bare name on its `PATH`.
pub fn resolve_argv0(cwd: &Path, argv0: &str, env: &Env) -> Option<PathBuf> {
    if argv0.contains('/') {
        let p = if argv0.starts_with('/') {
            PathBuf::from(argv0)
        } else {
            cwd.join(argv0)
        };
        return p.is_file().then_some(p);
    }
    env.get("PATH")?
        .split(':')
        .map(|d| {
            if d.is_empty() || !d.starts_with('/') {
                cwd.join(d)
            } else {
                PathBuf::from(d)
            }
        })
        .map(|d| d.join(argv0))
        .find(|p| p.is_file())
}

/// The `python3*` directories of an installation's `lib`, sorted; `None` when `lib`
/// cannot be read.
fn python_versions(lib: &Path) -> Option<Vec<PathBuf>> {
    let entries = std::fs::read_dir(lib).ok()?;
    let mut versions: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path())
        .collect();
    versions.sort();
    Some(versions)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn module_files_and_packages_are_what_python_imports() {
        for n in [
            "json.py",
            "x.pyc",
            "_x.cpython-311-x86_64-linux-gnu.so",
            "y.abi3.so",
        ] {
            assert!(is_module_file(n), "{n}");
        }
        for n in ["README", "data.json", "x.py~", "notes.txt"] {
            assert!(!is_module_file(n), "{n}");
        }
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("pkg")).unwrap();
        std::fs::create_dir(d.path().join("ns")).unwrap();
        std::fs::write(d.path().join("pkg/__init__.py"), "").unwrap();
        std::fs::write(d.path().join("ns/mod.py"), "").unwrap();
        assert!(is_package(&d.path().join("pkg")));
        // A directory without __init__ is a namespace package, which never shadows a
        // module found later on the path.
        assert!(!is_package(&d.path().join("ns")));
        assert_eq!(
            module_name("_json.cpython-311-x86_64-linux-gnu.so").as_deref(),
            Some("_json")
        );
        assert_eq!(module_name("subprocess.py").as_deref(), Some("subprocess"));
        assert_eq!(module_name("notes.txt"), None);
    }

    #[test]
    fn the_installed_modules_are_read_from_the_interpreters_own_prefix() {
        // A fake installation: prefix/bin/python3, prefix/lib/python3.11/…
        let d = tempfile::tempdir().unwrap();
        let lib = d.path().join("lib/python3.11");
        std::fs::create_dir_all(lib.join("json")).unwrap();
        std::fs::create_dir_all(lib.join("lib-dynload")).unwrap();
        std::fs::create_dir_all(lib.join("site-packages/requests")).unwrap();
        std::fs::write(lib.join("subprocess.py"), "").unwrap();
        std::fs::write(
            lib.join("lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so"),
            "",
        )
        .unwrap();
        let exe = d.path().join("bin/python3").display().to_string();
        let names = installed_modules(&exe);
        for n in ["json", "subprocess", "_ssl", "requests"] {
            assert!(names.contains(n), "{n}");
        }
        assert!(!names.contains("helper"));
        // A module installed later is seen (its directory's time changed).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(lib.join("helper.py"), "").unwrap();
        assert!(installed_modules(&exe).contains("helper"));
    }

    #[test]
    fn argv0_is_found_as_the_process_would() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bin")).unwrap();
        std::fs::write(d.path().join("bin/py"), "").unwrap();
        let env = Env::parse(format!("PATH=/nonexistent:{}/bin\0", d.path().display()).as_bytes());
        assert_eq!(
            resolve_argv0(d.path(), "py", &env),
            Some(d.path().join("bin/py"))
        );
        assert_eq!(
            resolve_argv0(d.path(), "./bin/py", &env),
            Some(d.path().join("./bin/py"))
        );
        assert_eq!(resolve_argv0(d.path(), "nothere", &env), None);
    }
}
