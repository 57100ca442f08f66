//! Which script an interpreter runs, and whether nothing but that script decides what
//! code runs first. An interpreter is never approved as a whole binary; a process running
//! one is identified by interpreter + script path + script hash instead, and only when
//! its command line and environment load no other code: per interpreter, the options and
//! variables that load or inject code (`NODE_OPTIONS=--require`, `perl -M`, `BASH_ENV`,
//! exported bash functions, `PYTHONPATH`, …) refuse the identity, options this module
//! does not know refuse it too, and startup files read without any option are named for
//! the OS code to hash into the identity (Python's site files) or refuse it (zsh's
//! `.zshenv` without `-f`, …). Each interpreter's rules are in docs/threat-model.md.
//!
//! The command line and environment are the process's own and could be rewritten by code
//! already running in it, so this stops code that does not hide itself; see the threat
//! model. This module only reads arguments and variables; files are the OS code's.

/// A process's environment, parsed from its NUL-separated block.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// Parses `/proc/<pid>/environ` (or macOS's procargs environment).
    pub fn parse(block: &[u8]) -> Env {
        Env {
            vars: block
                .split(|&b| b == 0)
                .filter_map(|kv| {
                    let kv = String::from_utf8_lossy(kv);
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect(),
        }
    }

    /// The value of a variable, when set (to anything, even empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a variable is set to something non-empty.
    fn set(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }

    /// The first variable whose name starts with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.as_str())
    }
}

/// Startup files an interpreter reads without being told to, which the OS code must hash
/// into the script's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// Nothing beyond the script (and root's files).
    None,
    /// CPython's startup: when `site`, the `.pth` files and `sitecustomize` /
    /// `usercustomize` of the prefix (a venv found from `argv[0]`, or the interpreter's
    /// own), and of the user site when `user_site` (under `home`, the process's `HOME`);
    /// when `script_dir`, the modules beside the script, whose directory comes first on
    /// `sys.path` and so shadows the standard library.
    Python {
        /// `argv[0]` as given: Python finds its prefix (a venv) from it.
        argv0: String,
        /// `site` runs (no `-S`).
        site: bool,
        /// The user site directory is read.
        user_site: bool,
        /// The process's `HOME`.
        home: Option<String>,
        /// The script's directory is put first on `sys.path` (no `-P`, `-I` or
        /// `PYTHONSAFEPATH`).
        script_dir: bool,
    },
    /// PHP reads `php.ini` beside `argv[0]` (or its `PATH` match): `argv[0]` must name the
    /// interpreter's own executable.
    Argv0IsExe(String),
}

/// What an interpreter's command line and environment say it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// A script file, as the command line names it (maybe relative to the cwd), and what
    /// it reads at startup besides.
    Script {
        /// The script as named.
        path: String,
        /// Startup files to hash into the identity.
        startup: Startup,
    },
    /// Code that is not in a file: `-c`, `-e`, `-m`, standard input, a subcommand…
    Inline(String),
    /// No script at all: an interactive interpreter or shell.
    Interactive,
    /// A script, but other code may run first (why, for a person): no identity.
    Refused(String),
}

/// Interpreter families, each read by its own rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Python,
    Bash,
    /// dash, sh, ash, ksh, mksh and busybox's sh: POSIX-style options, nothing read at
    /// startup for a script.
    Posix,
    Zsh,
    Fish,
    Csh,
    Node,
    Perl,
    Ruby,
    Php,
    Lua,
    Tcl,
    Awk,
    Expect,
    /// Interpreters that load code from too many places beside the script (Java, Deno,
    /// Bun, Guile, Racket, BEAM, Julia, R, PowerShell, …): no script identity.
    Unsupported,
}

impl Family {
    fn of(base: &str) -> Family {
        let b = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
        match b {
            "python" | "pypy" => Family::Python,
            "bash" => Family::Bash,
            "sh" | "dash" | "ash" | "ksh" | "mksh" | "lksh" => Family::Posix,
            "zsh" => Family::Zsh,
            "fish" => Family::Fish,
            "csh" | "tcsh" => Family::Csh,
            "node" | "nodejs" => Family::Node,
            "perl" => Family::Perl,
            "ruby" => Family::Ruby,
            "php" => Family::Php,
            "lua" | "luajit" => Family::Lua,
            "tclsh" | "wish" => Family::Tcl,
            "awk" | "gawk" | "mawk" | "nawk" => Family::Awk,
            "expect" => Family::Expect,
            _ => Family::Unsupported,
        }
    }

    /// Whether the interpreter keeps its script open while it runs, so the daemon can
    /// hash the very file it runs (bash: descriptor 255; dash, ksh and busybox's ash
    /// likewise above 10).
    pub fn keeps_script_open(self) -> bool {
        matches!(self, Family::Bash | Family::Posix)
    }
}

/// Whether an interpreter (by the file name of its executable, or busybox's applet)
/// keeps its script open while it runs.
pub fn keeps_script_open(exe_base: &str, argv: &[String]) -> bool {
    Family::of(&applet(exe_base, argv).0).keeps_script_open()
}

/// The interpreter's name and its arguments: for busybox, `argv[0]` (or the first
/// argument of `busybox APPLET`) names the applet.
fn applet<'a>(exe_base: &str, argv: &'a [String]) -> (String, Vec<&'a str>) {
    let mut args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut base = exe_base.to_ascii_lowercase();
    if base == "busybox" {
        let arg0 = args.first().copied().unwrap_or("");
        let arg0 = arg0.rsplit('/').next().unwrap_or(arg0);
        if arg0 == "busybox" && !args.is_empty() {
            // `busybox sh script`: the applet is the first argument.
            args.remove(0);
        }
        base = args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default();
    }
    (base, args)
}

/// Reads an interpreter's command line (`argv[0]` first) and environment. `exe_base` is
/// the file name of the executable the kernel reports.
pub fn runs(exe_base: &str, argv: &[String], env: &Env) -> Runs {
    let (base, args) = applet(exe_base, argv);
    if base.is_empty() {
        return Runs::Interactive;
    }
    let family = Family::of(&base);
    if family == Family::Unsupported {
        return Runs::Refused(format!(
            "{base} loads code from too many places besides a script file (its own options, variables, caches and package directories) for keychain-auth to name what it runs; run the code from a compiled client, or a Python, Node, Perl or shell script"
        ));
    }
    let login = args.first().is_some_and(|a| a.starts_with('-'));
    let shell = matches!(
        family,
        Family::Bash | Family::Posix | Family::Zsh | Family::Fish | Family::Csh
    );
    if login && shell {
        return Runs::Refused(
            "it is a login shell (its name starts with '-'), which reads your profile files before the script".into(),
        );
    }
    let rest = args.get(1..).unwrap_or(&[]);
    match family {
        Family::Python => python(rest, env, args.first().copied().unwrap_or("")),
        Family::Bash => bash(rest, env, &base),
        Family::Posix => posix(rest, env, &base),
        Family::Zsh => zsh(rest, env),
        Family::Fish => fish(rest),
        Family::Csh => csh(rest),
        Family::Node => node(rest, env),
        Family::Perl => perl(rest, env),
        Family::Ruby => ruby(rest, env),
        Family::Php => php(rest, env, args.first().copied().unwrap_or("")),
        Family::Lua => lua(rest, env, &base),
        Family::Tcl => tcl(rest, env),
        Family::Awk => awk(rest, env),
        Family::Expect => expect(rest, env),
        Family::Unsupported => unreachable!("handled above"),
    }
}

fn refused(why: impl Into<String>) -> Runs {
    Runs::Refused(why.into())
}

fn script(path: &str) -> Runs {
    Runs::Script {
        path: path.to_string(),
        startup: Startup::None,
    }
}

/// The first variable of `names` that is set to something, refused with `what`.
fn deny_vars(env: &Env, names: &[&str], what: &str) -> Option<Runs> {
    names
        .iter()
        .find(|n| env.set(n))
        .map(|n| refused(format!("{n} is set in its environment, which {what}")))
}

// ---------------------------------------------------------------- Python

/// `-X` keys that only tune diagnostics or the runtime.
const PYTHON_SAFE_X: &[&str] = &[
    "importtime",
    "dev",
    "faulthandler",
    "tracemalloc",
    "utf8",
    "showrefcount",
    "warn_default_encoding",
    "no_debug_ranges",
    "frozen_modules",
    "int_max_str_digits",
    "perf",
    "perf_jit",
    "cpu_count",
    "gil",
];

/// A `-W`/`PYTHONWARNINGS` filter that imports a module (a dotted category).
fn python_warning_imports(spec: &str) -> bool {
    spec.split(',')
        .any(|f| f.split(':').nth(2).is_some_and(|c| c.contains('.')))
}

fn python(args: &[&str], env: &Env, argv0: &str) -> Runs {
    let mut o = PythonOptions::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return match args.get(i + 1) {
                Some(s) => python_script(s, env, argv0, o),
                None => Runs::Interactive,
            };
        }
        if a == "-" {
            return Runs::Inline("code from standard input".into());
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            match name {
                "check-hash-based-pycs" => {
                    let v = match value {
                        Some(v) => v,
                        None => {
                            i += 1;
                            args.get(i).copied().unwrap_or("")
                        }
                    };
                    if v == "never" {
                        return refused(
                            "--check-hash-based-pycs never lets stale compiled modules run",
                        );
                    }
                }
                n if n.starts_with("help") || n == "version" => return Runs::Interactive,
                n => {
                    return refused(format!(
                        "it was given --{n}, an option keychain-auth does not know"
                    ))
                }
            }
            i += 1;
            continue;
        }
        if !a.starts_with('-') || a.len() < 2 {
            return python_script(a, env, argv0, o);
        }
        // A cluster of letters; `c m W X` take the rest or the next argument.
        let letters: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < letters.len() {
            let ch = letters[k];
            let attached: String = letters[k + 1..].iter().collect();
            let mut value = || -> String {
                if attached.is_empty() {
                    i += 1;
                    args.get(i).map(|s| s.to_string()).unwrap_or_default()
                } else {
                    attached.clone()
                }
            };
            match ch {
                'c' => return Runs::Inline("code given with -c".into()),
                'm' => return Runs::Inline("a module given with -m".into()),
                'i' => return refused("-i reads more code from standard input after the script"),
                'W' => {
                    if python_warning_imports(&value()) {
                        return refused("its -W warning filter names a dotted category, which imports a module before the script");
                    }
                    break;
                }
                'X' => {
                    let v = value();
                    let key = v.split('=').next().unwrap_or("");
                    if !PYTHON_SAFE_X.contains(&key) {
                        return refused(format!("it was given -X {key}, which keychain-auth does not know to load no code (-X pycache_prefix runs compiled files from elsewhere)"));
                    }
                    break;
                }
                'E' => o.ignore_env = true,
                'I' => {
                    o.ignore_env = true;
                    o.no_user_site = true;
                    o.safe_path = true;
                }
                's' => o.no_user_site = true,
                'S' => o.no_site = true,
                'P' => o.safe_path = true,
                'b' | 'B' | 'd' | 'O' | 'q' | 'R' | 'u' | 'v' | 'x' => {}
                'h' | 'V' | '?' => return Runs::Interactive,
                other => {
                    return refused(format!(
                        "it was given -{other}, an option keychain-auth does not know"
                    ))
                }
            }
            k += 1;
        }
        i += 1;
    }
    Runs::Interactive
}

/// The options of a Python command line that decide what it reads at startup.
#[derive(Debug, Clone, Copy, Default)]
struct PythonOptions {
    /// `-E` (or `-I`): `PYTHON*` variables are ignored.
    ignore_env: bool,
    /// `-s` (or `-I`): no user site directory.
    no_user_site: bool,
    /// `-S`: no `site` at all.
    no_site: bool,
    /// `-P` (or `-I`): the script's directory is not put on `sys.path`.
    safe_path: bool,
}

fn python_script(path: &str, env: &Env, argv0: &str, o: PythonOptions) -> Runs {
    let PythonOptions {
        ignore_env,
        no_user_site,
        no_site,
        safe_path,
    } = o;
    if !ignore_env {
        if let Some(r) = deny_vars(
            env,
            &[
                "PYTHONPATH",
                "PYTHONHOME",
                "PYTHONPLATLIBDIR",
                "PYTHONPYCACHEPREFIX",
                "PYTHONINSPECT",
                "PYTHON_PRESITE",
            ],
            "makes Python load code from elsewhere, or read more of it after the script",
        ) {
            return r;
        }
        if env
            .get("PYTHONBREAKPOINT")
            .is_some_and(|v| !v.is_empty() && v != "0")
        {
            return refused("PYTHONBREAKPOINT is set in its environment, which names code for breakpoint() to import and run");
        }
        if env
            .get("PYTHONWARNINGS")
            .is_some_and(python_warning_imports)
        {
            return refused(
                "PYTHONWARNINGS names a dotted category, which imports a module before the script",
            );
        }
    }
    // Read even under -E (site.py asks os.environ itself).
    if !no_user_site && !no_site && env.set("PYTHONUSERBASE") {
        return refused("PYTHONUSERBASE is set in its environment, which moves the user site-packages Python runs startup code from");
    }
    let user_site = !no_site && !no_user_site && (ignore_env || !env.set("PYTHONNOUSERSITE"));
    let safe_path = safe_path || (!ignore_env && env.set("PYTHONSAFEPATH"));
    Runs::Script {
        path: path.to_string(),
        startup: Startup::Python {
            argv0: argv0.to_string(),
            site: !no_site,
            user_site,
            home: env.get("HOME").map(str::to_string),
            script_dir: !safe_path,
        },
    }
}

// ---------------------------------------------------------------- shells

/// A POSIX-style shell's options, shared by bash, sh, zsh: `-x`/`+x` letters in
/// clusters, `-o NAME`/`+o NAME` (and bash's `-O`/`+O`) taking the next argument.
struct ShellArgs<'a> {
    script: Option<&'a str>,
    xtrace: bool,
    privileged: bool,
    letters: Vec<char>,
    options: Vec<&'a str>,
}

enum ShellParse<'a> {
    Args(ShellArgs<'a>),
    Done(Runs),
}

/// bash's long options, which it also takes with a single dash (`-login`).
const BASH_LONG: &[&str] = &[
    "login",
    "debugger",
    "norc",
    "noprofile",
    "noediting",
    "posix",
    "restricted",
    "verbose",
    "version",
    "help",
    "rcfile",
    "init-file",
    "dump-strings",
    "dump-po-strings",
    "pretty-print",
];

/// Reads shell options up to the script. `long` decides what a `--name` (or bash's
/// `-name`) means: `Ok(())` to go on, `Err(runs)` to stop.
fn shell_args<'a>(
    args: &[&'a str],
    long: impl Fn(&str) -> Result<(), Runs>,
    single_dash_long: bool,
) -> ShellParse<'a> {
    let mut out = ShellArgs {
        script: None,
        xtrace: false,
        privileged: false,
        letters: Vec::new(),
        options: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" || a == "-" {
            if a == "-" {
                return ShellParse::Done(Runs::Inline("commands from standard input".into()));
            }
            out.script = args.get(i + 1).copied();
            break;
        }
        let is_opt = (a.starts_with('-') || a.starts_with('+')) && a.len() > 1;
        if !is_opt {
            out.script = Some(a);
            break;
        }
        let body = &a[1..];
        if let Some(name) = a.strip_prefix("--") {
            if let Err(r) = long(name) {
                return ShellParse::Done(r);
            }
            i += 1;
            continue;
        }
        if single_dash_long && a.starts_with('-') && BASH_LONG.contains(&body) {
            if let Err(r) = long(body) {
                return ShellParse::Done(r);
            }
            i += 1;
            continue;
        }
        let plus = a.starts_with('+');
        for ch in body.chars() {
            match ch {
                'o' | 'O' => {
                    i += 1;
                    let name = args.get(i).copied().unwrap_or("");
                    if !plus {
                        if name == "xtrace" {
                            out.xtrace = true;
                        }
                        if name == "privileged" {
                            out.privileged = true;
                        }
                        out.options.push(name);
                    }
                }
                'c' if !plus => return ShellParse::Done(Runs::Inline("code given with -c".into())),
                's' if !plus => {
                    return ShellParse::Done(Runs::Inline("commands from standard input".into()))
                }
                'i' if !plus => return ShellParse::Done(Runs::Interactive),
                'x' if !plus => out.xtrace = true,
                'p' if !plus => out.privileged = true,
                c if !plus => out.letters.push(c),
                _ => {}
            }
        }
        i += 1;
    }
    ShellParse::Args(out)
}

fn shell_script(a: &ShellArgs<'_>) -> Runs {
    match a.script {
        Some(s) => script(s),
        None => Runs::Interactive,
    }
}

fn bash(args: &[&str], env: &Env, base: &str) -> Runs {
    let posix_mode = std::cell::Cell::new(base == "sh");
    let parsed = shell_args(
        args,
        |name| match name {
            "login" => Err(refused(
                "--login reads your profile files before the script",
            )),
            "debugger" => Err(refused(
                "--debugger runs the debugger's code before the script",
            )),
            "posix" => {
                posix_mode.set(true);
                Ok(())
            }
            "norc" | "noprofile" | "noediting" | "restricted" | "verbose" | "version" | "help"
            | "dump-strings" | "dump-po-strings" | "pretty-print" => Ok(()),
            // Only read by an interactive shell, which is refused anyway; its file name
            // is the next argument, which this parser would take for the script.
            "rcfile" | "init-file" => Err(refused("--rcfile/--init-file name startup files")),
            n => Err(refused(format!(
                "it was given --{n}, an option keychain-auth does not know"
            ))),
        },
        true,
    );
    let a = match parsed {
        ShellParse::Args(a) => a,
        ShellParse::Done(r) => return r,
    };
    if a.letters.contains(&'l') {
        return refused(
            "-l makes it a login shell, which reads your profile files before the script",
        );
    }
    if a.options.contains(&"extdebug") {
        return refused("extdebug runs the debugger's code before the script");
    }
    if let Some(bad) = a
        .letters
        .iter()
        .find(|c| !"aBbCEefHhkmnPrTtuvD".contains(**c))
    {
        return refused(format!(
            "it was given -{bad}, an option keychain-auth does not know"
        ));
    }
    if !a.privileged {
        if !posix_mode.get() && !env.set("POSIXLY_CORRECT") {
            if let Some(r) = deny_vars(env, &["BASH_ENV"], "bash runs as a file before the script")
            {
                return r;
            }
        }
        if let Some(f) = env.with_prefix("BASH_FUNC_") {
            return refused(format!(
                "{f} is set in its environment: an exported function, which bash imports and which can stand in for any command the script runs"
            ));
        }
        if let Some(r) = deny_vars(
            env,
            &["SHELLOPTS", "BASHOPTS"],
            "sets shell options at startup (xtrace with PS4 runs code, extdebug the debugger)",
        ) {
            return r;
        }
    }
    if a.xtrace && env.get("PS4").is_some() {
        return refused("PS4 is set in its environment and the script is traced (-x): bash expands PS4, command substitutions included, before every command");
    }
    shell_script(&a)
}

fn posix(args: &[&str], env: &Env, base: &str) -> Runs {
    let parsed = shell_args(
        args,
        |name| {
            Err(refused(format!(
                "it was given --{name}, an option keychain-auth does not know"
            )))
        },
        false,
    );
    let a = match parsed {
        ShellParse::Args(a) => a,
        ShellParse::Done(r) => return r,
    };
    if a.letters.contains(&'l') {
        return refused(
            "-l makes it a login shell, which reads your profile files before the script",
        );
    }
    if let Some(bad) = a.letters.iter().find(|c| !"aCefnuvEbmhT".contains(**c)) {
        return refused(format!(
            "it was given -{bad}, an option keychain-auth does not know"
        ));
    }
    if a.xtrace && env.get("PS4").is_some() {
        return refused("PS4 is set in its environment and the script is traced (-x): the shell expands PS4, command substitutions included, before every command");
    }
    if matches!(base, "ksh" | "mksh" | "lksh") {
        if let Some(r) = deny_vars(
            env,
            &["FPATH"],
            "ksh searches for function files to run in place of commands the script calls",
        ) {
            return r;
        }
    }
    shell_script(&a)
}

fn zsh(args: &[&str], env: &Env) -> Runs {
    let no_rcs = std::cell::Cell::new(false);
    let parsed = shell_args(
        args,
        |name| match name {
            "no-rcs" | "norcs" => {
                no_rcs.set(true);
                Ok(())
            }
            "login" => Err(refused(
                "--login reads your profile files before the script",
            )),
            n => Err(refused(format!(
                "it was given --{n}, an option keychain-auth does not know"
            ))),
        },
        false,
    );
    let a = match parsed {
        ShellParse::Args(a) => a,
        ShellParse::Done(r) => return r,
    };
    if a.letters.contains(&'f') || a.options.iter().any(|o| *o == "norcs" || *o == "no_rcs") {
        no_rcs.set(true);
    }
    if !no_rcs.get() {
        return refused("zsh runs ~/.zshenv (from HOME or ZDOTDIR) before every script; run it with zsh -f (#!/bin/zsh -f) for it to be identified");
    }
    if a.letters.contains(&'l') {
        return refused(
            "-l makes it a login shell, which reads your profile files before the script",
        );
    }
    if let Some(r) = deny_vars(
        env,
        &["FPATH"],
        "zsh loads functions from for commands the script autoloads",
    ) {
        return r;
    }
    if a.xtrace && env.get("PS4").is_some() {
        return refused("PS4 is set in its environment and the script is traced (-x)");
    }
    shell_script(&a)
}

fn fish(args: &[&str]) -> Runs {
    let mut no_config = false;
    for (i, a) in args.iter().enumerate() {
        match *a {
            "-N" | "--no-config" => no_config = true,
            "-c" | "--command" => return Runs::Inline("code given with -c".into()),
            "-C" | "--init-command" => {
                return refused("--init-command runs code before the script")
            }
            "-i" | "--interactive" | "-l" | "--login" => return Runs::Interactive,
            s if s.starts_with("--init-command=") => {
                return refused("--init-command runs code before the script")
            }
            s if s.starts_with('-') => {}
            s => {
                let _ = i;
                if !no_config {
                    return refused("fish runs your config files and autoloads your functions for every script; run it with fish -N (--no-config) for it to be identified");
                }
                return script(s);
            }
        }
    }
    Runs::Interactive
}

fn csh(args: &[&str]) -> Runs {
    let mut fast = false;
    for a in args {
        match *a {
            "-c" => return Runs::Inline("code given with -c".into()),
            "-i" | "-l" => return Runs::Interactive,
            "-s" => return Runs::Inline("commands from standard input".into()),
            s if s.starts_with('-') => fast |= s.contains('f'),
            s => {
                if !fast {
                    return refused("csh runs ~/.cshrc before every script; run it with csh -f for it to be identified");
                }
                return script(s);
            }
        }
    }
    Runs::Interactive
}

// ---------------------------------------------------------------- node

/// node options that load or run other code, or open a way in.
fn node_denied(name: &str) -> Option<&'static str> {
    Some(match name {
        "require" | "r" => "--require loads a module before the script",
        "import" => "--import loads a module before the script",
        "loader" | "experimental-loader" => "--loader runs a module that handles every import",
        "env-file" | "env-file-if-exists" => {
            "--env-file reads variables, NODE_OPTIONS among them, from a file"
        }
        "openssl-config" | "openssl-shared-config" => {
            "--openssl-config reads an OpenSSL configuration that can load code"
        }
        "snapshot-blob" | "build-snapshot" => {
            "--snapshot-blob starts from a snapshot's code instead of the script"
        }
        "experimental-network-imports" => {
            "--experimental-network-imports imports code from the network"
        }
        "experimental-sea-config" | "test-reporter" => "it runs other code (a build or test mode)",
        n if n.starts_with("inspect") || n.starts_with("debug") => {
            "--inspect opens a debugger, through which anyone can run code in it"
        }
        _ => return None,
    })
}

/// node options known to change nothing about which code runs (a value after `=` or in
/// the next argument where marked).
fn node_safe(name: &str) -> Option<bool> {
    // Some(true): takes a value.
    Some(match name {
        "max-old-space-size"
        | "max-semi-space-size"
        | "stack-size"
        | "stack-trace-limit"
        | "title"
        | "dns-result-order"
        | "unhandled-rejections"
        | "diagnostic-dir"
        | "redirect-warnings"
        | "icu-data-dir"
        | "conditions"
        | "C"
        | "input-type"
        | "experimental-default-type"
        | "heapsnapshot-signal"
        | "heapsnapshot-near-heap-limit"
        | "secure-heap"
        | "secure-heap-min"
        | "tls-cipher-list"
        | "tls-keylog"
        | "tls-min-v1.0"
        | "report-dir"
        | "report-directory"
        | "report-filename"
        | "report-signal"
        | "cpu-prof-dir"
        | "cpu-prof-name"
        | "heap-prof-dir"
        | "heap-prof-name"
        | "max-http-header-size"
        | "zero-fill-buffers-size"
        | "watch-path"
        | "disable-warning"
        | "trace-event-categories"
        | "trace-event-file-pattern"
        | "v8-pool-size"
        | "localstorage-file" => true,
        "no-warnings"
        | "no-deprecation"
        | "trace-warnings"
        | "trace-deprecation"
        | "throw-deprecation"
        | "pending-deprecation"
        | "enable-source-maps"
        | "jitless"
        | "expose-gc"
        | "abort-on-uncaught-exception"
        | "preserve-symlinks"
        | "preserve-symlinks-main"
        | "use-openssl-ca"
        | "use-bundled-ca"
        | "cpu-prof"
        | "heap-prof"
        | "prof"
        | "report-on-signal"
        | "report-uncaught-exception"
        | "report-on-fatalerror"
        | "report-compact"
        | "frozen-intrinsics"
        | "disable-proto"
        | "disallow-code-generation-from-strings"
        | "experimental-permission"
        | "permission"
        | "experimental-detect-module"
        | "experimental-require-module"
        | "experimental-strip-types"
        | "experimental-transform-types"
        | "experimental-vm-modules"
        | "experimental-wasm-modules"
        | "watch"
        | "trace-sigint"
        | "trace-exit"
        | "trace-uncaught"
        | "trace-sync-io"
        | "trace-tls"
        | "trace-atomics-wait"
        | "force-fips"
        | "enable-fips"
        | "insecure-http-parser"
        | "no-global-search-paths"
        | "no-experimental-fetch"
        | "no-experimental-global-webcrypto"
        | "experimental-global-webcrypto"
        | "no-addons"
        | "addons"
        | "check"
        | "c"
        | "allow-fs-read"
        | "allow-fs-write"
        | "allow-child-process"
        | "allow-worker"
        | "allow-addons"
        | "allow-wasi"
        | "experimental-websocket"
        | "no-experimental-websocket"
        | "experimental-eventsource"
        | "node-memory-debug"
        | "huge-max-old-generation-size"
        | "interpreted-frames-native-stack"
        | "experimental-print-required-tla" => false,
        _ => return None,
    })
}

/// Judges node options from the command line (`cli`) or from `NODE_OPTIONS`: `Ok` with
/// where the script is (an index into `args`) when all are safe.
fn node_options(args: &[&str], cli: bool) -> Result<Option<usize>, Runs> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return Ok(cli.then_some(i + 1));
        }
        if a == "-" {
            return Err(Runs::Inline("code from standard input".into()));
        }
        let Some(stripped) = a.strip_prefix('-') else {
            return Ok(cli.then_some(i));
        };
        let long = stripped.strip_prefix('-');
        let (raw, has_value) = match long {
            Some(l) => l.split_once('=').map_or((l, false), |(n, _)| (n, true)),
            None => (stripped, false),
        };
        let full = raw.replace('_', "-");
        let name = if node_safe(&full).is_some() || node_denied(&full).is_some() {
            full.clone()
        } else {
            full.strip_prefix("no-").unwrap_or(&full).to_string()
        };
        match name.as_str() {
            "e" | "eval" | "p" | "print" => {
                return Err(Runs::Inline(format!("code given with {a}")))
            }
            "i" | "interactive" => return Err(Runs::Interactive),
            "run" | "test" => return Err(Runs::Inline(format!("`node {a}`"))),
            "h" | "help" | "v" | "version" | "V8-options" | "v8-options" => {
                return Err(Runs::Interactive)
            }
            _ => {}
        }
        if let Some(why) = node_denied(&name) {
            return Err(refused(why));
        }
        // V8 options given to node (`--max-lazy`, …) pass through; only those in the
        // list are known to load nothing.
        match node_safe(&name) {
            Some(true) if !has_value => i += 2,
            Some(_) => i += 1,
            None => {
                return Err(refused(format!(
                    "it was given {a}, an option keychain-auth does not know to load no code"
                )))
            }
        }
    }
    Ok(None)
}

fn node(args: &[&str], env: &Env) -> Runs {
    let at = match node_options(args, true) {
        Ok(Some(at)) => at,
        Ok(None) => return Runs::Interactive,
        Err(r) => return r,
    };
    let Some(path) = args.get(at) else {
        return Runs::Interactive;
    };
    if let Some(opts) = env.get("NODE_OPTIONS").filter(|v| !v.trim().is_empty()) {
        let tokens: Vec<&str> = opts.split_whitespace().collect();
        if let Err(r) = node_options(&tokens, false) {
            return match r {
                Runs::Refused(why) => refused(format!("NODE_OPTIONS in its environment: {why}")),
                _ => refused("NODE_OPTIONS in its environment names code to run"),
            };
        }
    }
    if let Some(r) = deny_vars(
        env,
        &["NODE_PATH", "NODE_COMPILE_CACHE"],
        "makes node load modules or compiled code from elsewhere",
    ) {
        return r;
    }
    script(path)
}

// ---------------------------------------------------------------- perl

fn perl(args: &[&str], env: &Env) -> Runs {
    let mut taint = false;
    let mut i = 0;
    let mut found = None;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            found = args.get(i + 1).copied();
            break;
        }
        if a == "-" {
            return Runs::Inline("code from standard input".into());
        }
        if !a.starts_with('-') || a.len() < 2 {
            found = Some(a);
            break;
        }
        let letters: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < letters.len() {
            let ch = letters[k];
            k += 1;
            match ch {
                'e' | 'E' => return Runs::Inline(format!("code given with -{ch}")),
                'M' | 'm' => return refused(format!("-{ch} loads a module before the script")),
                'I' => {
                    return refused("-I puts other directories first where modules are loaded from")
                }
                'd' => {
                    return refused("-d runs a debugger (and its startup files) around the script")
                }
                'S' => {
                    return refused(
                        "-S searches PATH for the script, so its path does not say which file runs",
                    )
                }
                'T' | 't' => taint = true,
                // An optional number follows; the letters after it are further switches.
                '0' | 'l' | 'C' => {
                    while k < letters.len() && (letters[k].is_ascii_hexdigit() || letters[k] == 'x')
                    {
                        k += 1;
                    }
                }
                // These take the rest of the cluster as their value.
                'D' | 'F' | 'i' | 'x' | 'V' => break,
                'a' | 'c' | 'f' | 'n' | 'p' | 's' | 'u' | 'U' | 'w' | 'W' | 'X' | 'g' => {}
                'v' | 'h' => return Runs::Interactive,
                other => {
                    return refused(format!(
                        "it was given -{other}, an option keychain-auth does not know"
                    ));
                }
            }
        }
        i += 1;
    }
    let Some(path) = found else {
        return Runs::Interactive;
    };
    if !taint {
        if let Some(r) = deny_vars(
            env,
            &["PERL5OPT", "PERL5LIB", "PERLLIB", "PERL_USE_UNSAFE_INC"],
            "makes perl load modules from elsewhere or as if given -M",
        ) {
            return r;
        }
    }
    script(path)
}

// ---------------------------------------------------------------- ruby

fn ruby(args: &[&str], env: &Env) -> Runs {
    let mut no_gems = false;
    let mut i = 0;
    let mut found = None;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            found = args.get(i + 1).copied();
            break;
        }
        if a == "-" {
            return Runs::Inline("code from standard input".into());
        }
        if let Some(long) = a.strip_prefix("--") {
            let disabled = long
                .strip_prefix("disable=")
                .or_else(|| long.strip_prefix("disable-"));
            if let Some(list) = disabled {
                if list.split(',').any(|x| x == "gems" || x == "all") {
                    no_gems = true;
                }
            } else if long.starts_with("crash-report") {
                return refused("--crash-report can run a command");
            } else if !["verbose", "yjit", "jit", "rjit", "mjit"]
                .iter()
                .any(|s| long.starts_with(s))
                && !long.starts_with("enable")
                && !long.starts_with("encoding")
                && !long.starts_with("external-encoding")
                && !long.starts_with("internal-encoding")
                && !long.starts_with("backtrace-limit")
            {
                return refused(format!(
                    "it was given {a}, an option keychain-auth does not know"
                ));
            }
            i += 1;
            continue;
        }
        if !a.starts_with('-') || a.len() < 2 {
            found = Some(a);
            break;
        }
        match a.chars().nth(1) {
            Some('e') => return Runs::Inline("code given with -e".into()),
            Some('r') => return refused("-r loads a library before the script"),
            Some('I') => {
                return refused("-I puts other directories first where libraries are loaded from")
            }
            Some('S') => return refused("-S searches PATH for the script"),
            Some('C') => return refused("-C changes directory before the script is found"),
            Some('h') | Some('v') if a.len() == 2 => return Runs::Interactive,
            _ => {}
        }
        i += 1;
    }
    let Some(path) = found else {
        return Runs::Interactive;
    };
    if !no_gems {
        return refused("ruby loads RubyGems at startup, which activates gems from your home and GEM_PATH before the script; run it with ruby --disable-gems for it to be identified");
    }
    if let Some(r) = deny_vars(
        env,
        &["RUBYOPT", "RUBYLIB", "BUNDLER_SETUP", "RUBY_CRASH_REPORT"],
        "makes ruby load libraries from elsewhere or as if given -r",
    ) {
        return r;
    }
    script(path)
}

// ---------------------------------------------------------------- php, lua, tcl, awk, expect

fn php(args: &[&str], env: &Env, argv0: &str) -> Runs {
    let mut no_ini = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        match a {
            "--" => {
                return args.get(i + 1).map_or(Runs::Interactive, |s| php_script(s, env, argv0, no_ini))
            }
            "-n" => no_ini = true,
            "-f" => {
                return args.get(i + 1).map_or(Runs::Interactive, |s| php_script(s, env, argv0, no_ini))
            }
            "-r" | "-B" | "-R" | "-F" | "-E" => return Runs::Inline(format!("code given with {a}")),
            "-a" => return Runs::Interactive,
            "-S" | "-t" => return refused("it runs a web server"),
            s if s.starts_with("-d") || s.starts_with("-c") || s.starts_with("-z") => {
                return refused(format!("{s} changes its configuration, which can load code before the script (auto_prepend_file, extensions)"))
            }
            "-e" | "-H" | "-q" => {}
            s if s.starts_with('-') => return refused(format!("it was given {s}, an option keychain-auth does not know")),
            s => return php_script(s, env, argv0, no_ini),
        }
        i += 1;
    }
    Runs::Interactive
}

fn php_script(path: &str, env: &Env, argv0: &str, no_ini: bool) -> Runs {
    if !no_ini {
        if let Some(r) = deny_vars(
            env,
            &["PHPRC", "PHP_INI_SCAN_DIR"],
            "names configuration files, which can load code before the script",
        ) {
            return r;
        }
        return Runs::Script {
            path: path.to_string(),
            startup: Startup::Argv0IsExe(argv0.to_string()),
        };
    }
    script(path)
}

fn lua(args: &[&str], env: &Env, base: &str) -> Runs {
    let mut ignore_env = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        match a {
            "--" => {
                return args
                    .get(i + 1)
                    .map_or(Runs::Interactive, |s| lua_script(s, env, ignore_env))
            }
            "-" => return Runs::Inline("code from standard input".into()),
            "-E" => ignore_env = true,
            "-i" => return refused("-i reads more code from standard input after the script"),
            "-v" | "-W" => {}
            s if s.starts_with("-e") => return Runs::Inline("code given with -e".into()),
            s if s.starts_with("-l") => return refused("-l loads a module before the script"),
            s if base.starts_with("luajit") && (s.starts_with("-j") || s.starts_with("-b")) => {
                return refused(format!(
                    "{s} loads a jit module, searched in the current directory first"
                ))
            }
            s if s.starts_with("-O") => {}
            s if s.starts_with('-') => {
                return refused(format!(
                    "it was given {s}, an option keychain-auth does not know"
                ))
            }
            s => return lua_script(s, env, ignore_env),
        }
        i += 1;
    }
    Runs::Interactive
}

fn lua_script(path: &str, env: &Env, ignore_env: bool) -> Runs {
    if !ignore_env {
        for v in [
            "LUA_INIT",
            "LUA_INIT_5_1",
            "LUA_INIT_5_2",
            "LUA_INIT_5_3",
            "LUA_INIT_5_4",
        ] {
            if env.set(v) {
                return refused(format!("{v} is set in its environment: code (or a file of it) that lua runs before the script"));
            }
        }
        if let Some(v) = env
            .with_prefix("LUA_PATH")
            .or_else(|| env.with_prefix("LUA_CPATH"))
        {
            return refused(format!(
                "{v} is set in its environment, which changes where modules are loaded from"
            ));
        }
    }
    script(path)
}

fn tcl(args: &[&str], env: &Env) -> Runs {
    if let Some(r) = deny_vars(
        env,
        &["TCL_LIBRARY", "TK_LIBRARY", "TCLLIBPATH"],
        "makes the interpreter run library code from elsewhere at startup",
    ) {
        return r;
    }
    let mut i = 0;
    while i < args.len() {
        match args[i] {
            "-encoding" | "-display" | "-geometry" | "-name" | "-use" | "-visual" | "-colormap" => {
                i += 2
            }
            "-sync" | "--" => i += 1,
            s if s.starts_with('-') => {
                return refused(format!(
                    "it was given {s}, an option keychain-auth does not know"
                ))
            }
            s => return script(s),
        }
    }
    Runs::Interactive
}

fn awk<'a>(args: &[&'a str], env: &Env) -> Runs {
    let mut file: Option<&'a str> = None;
    let mut take_file = |f: Option<&'a str>| -> Result<(), Runs> {
        if file.is_some() {
            return Err(refused(
                "it was given several program files; only a single one is identified",
            ));
        }
        file = f;
        Ok(())
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        let next = args.get(i + 1).copied();
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, value) = long
                .split_once('=')
                .map_or((long, None), |(n, v)| (n, Some(v)));
            match name {
                "file" | "exec" => {
                    if let Err(r) = take_file(value.or(next)) {
                        return r;
                    }
                    i += if value.is_some() { 1 } else { 2 };
                    if name == "exec" {
                        break;
                    }
                    continue;
                }
                "source" => return Runs::Inline("program text given with --source".into()),
                "include" => return refused("--include includes another source file"),
                "load" => return refused("--load loads a shared-library extension"),
                "debug" => return refused("--debug runs a debugger reading commands"),
                "assign" | "field-separator" => {
                    i += if value.is_some() { 1 } else { 2 };
                    continue;
                }
                "posix"
                | "traditional"
                | "compat"
                | "lint"
                | "lint-old"
                | "sandbox"
                | "characters-as-bytes"
                | "csv"
                | "re-interval"
                | "non-decimal-data"
                | "optimize"
                | "no-optimize"
                | "use-lc-numeric"
                | "bignum"
                | "dump-variables"
                | "profile"
                | "pretty-print"
                | "gen-pot"
                | "version"
                | "help"
                | "copyright"
                | "usage" => {
                    i += 1;
                    continue;
                }
                n => {
                    return refused(format!(
                        "it was given --{n}, an option keychain-auth does not know"
                    ))
                }
            }
        }
        let letter = a[1..].chars().next().unwrap_or(' ');
        let attached = &a[1 + letter.len_utf8()..];
        let value = if attached.is_empty() {
            next
        } else {
            Some(attached)
        };
        let step = if attached.is_empty() { 2 } else { 1 };
        match letter {
            'f' | 'E' => {
                if let Err(r) = take_file(value) {
                    return r;
                }
                i += step;
                if letter == 'E' {
                    break;
                }
            }
            'v' | 'F' | 'W' => i += step,
            'e' => return Runs::Inline("program text given with -e".into()),
            'i' => return refused("-i includes another source file"),
            'l' => return refused("-l loads a shared-library extension"),
            'D' => return refused("-D runs a debugger reading commands"),
            // Flags (some take an optional value attached, never the next argument).
            'b' | 'c' | 'C' | 'd' | 'g' | 'h' | 'k' | 'L' | 'M' | 'n' | 'N' | 'o' | 'O' | 'p'
            | 'P' | 'r' | 's' | 'S' | 't' | 'V' | 'Y' => i += 1,
            other => {
                return refused(format!(
                    "it was given -{other}, an option keychain-auth does not know"
                ))
            }
        }
    }
    let Some(path) = file else {
        return Runs::Inline("program text on its command line".into());
    };
    if let Some(r) = deny_vars(
        env,
        &["AWKPATH", "AWKLIBPATH", "GAWK_PERSIST_FILE"],
        "changes which program file or extension awk reads, or brings back functions from an earlier run",
    ) {
        return r;
    }
    script(path)
}

fn expect(args: &[&str], env: &Env) -> Runs {
    let mut no_rc = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        match a {
            "-c" => return refused("-c runs commands before the script"),
            "-i" => return Runs::Interactive,
            "-f" | "-b" => {
                return match args.get(i + 1) {
                    Some(s) => expect_script(s, env, no_rc),
                    None => Runs::Interactive,
                }
            }
            "--" => {
                return args
                    .get(i + 1)
                    .map_or(Runs::Interactive, |s| expect_script(s, env, no_rc))
            }
            s if s.starts_with('-') => {
                if s.contains('D') {
                    return refused("-D starts a debugger");
                }
                if s.contains('c') {
                    return refused("-c runs commands before the script");
                }
                no_rc |= s.contains('n');
                if s.ends_with('f') || s.ends_with('b') {
                    return match args.get(i + 1) {
                        Some(f) => expect_script(f, env, no_rc),
                        None => Runs::Interactive,
                    };
                }
            }
            s => return expect_script(s, env, no_rc),
        }
        i += 1;
    }
    Runs::Interactive
}

fn expect_script(path: &str, env: &Env, no_rc: bool) -> Runs {
    if !no_rc {
        return refused("expect runs ~/.expect.rc before every script; run it with expect -n (#!/usr/bin/expect -nf) for it to be identified");
    }
    if let Some(r) = deny_vars(
        env,
        &["TCL_LIBRARY", "TCLLIBPATH"],
        "makes Tcl run library code from elsewhere at startup",
    ) {
        return r;
    }
    script(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(exe: &str, argv: &[&str]) -> Runs {
        re(exe, argv, &[])
    }

    fn re(exe: &str, argv: &[&str], env: &[(&str, &str)]) -> Runs {
        let v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let block: Vec<u8> = env
            .iter()
            .flat_map(|(k, v)| format!("{k}={v}\0").into_bytes())
            .collect();
        runs(exe, &v, &Env::parse(&block))
    }

    fn path_of(r: &Runs) -> Option<&str> {
        match r {
            Runs::Script { path, .. } => Some(path),
            _ => None,
        }
    }

    fn refused_for(r: &Runs, needle: &str) -> bool {
        matches!(r, Runs::Refused(why) if why.contains(needle))
    }

    #[test]
    fn scripts_are_found_past_safe_options() {
        for (exe, argv, want) in [
            ("python3", &["python3", "tool.py", "-c", "x"][..], "tool.py"),
            (
                "python3.11",
                &["/usr/bin/python3", "-u", "-W", "ignore", "/opt/t.py"],
                "/opt/t.py",
            ),
            ("python3", &["python3", "-uB", "t.py"], "t.py"),
            (
                "python3",
                &["python3", "-X", "dev", "--", "-odd.py"],
                "-odd.py",
            ),
            (
                "python3",
                &["python3", "-Wignore::DeprecationWarning", "t.py"],
                "t.py",
            ),
            ("python3", &["python3", "-I", "t.py"], "t.py"),
            (
                "bash",
                &["bash", "-eu", "-o", "pipefail", "./deploy.sh", "arg"],
                "./deploy.sh",
            ),
            ("bash", &["/bin/bash", "--norc", "s.sh"], "s.sh"),
            ("bash", &["bash", "-x", "s.sh"], "s.sh"),
            ("dash", &["sh", "-e", "s.sh"], "s.sh"),
            (
                "node",
                &["node", "--max-old-space-size=99", "--no-warnings", "app.js"],
                "app.js",
            ),
            ("node", &["node", "--stack-size", "900", "app.js"], "app.js"),
            ("perl", &["perl", "-w", "-T", "t.pl"], "t.pl"),
            ("perl", &["perl", "-lne", "x"], ""),
            ("ruby", &["ruby", "--disable-gems", "t.rb"], "t.rb"),
            ("zsh", &["zsh", "-f", "s.zsh"], "s.zsh"),
            ("fish", &["fish", "-N", "s.fish"], "s.fish"),
            ("gawk", &["gawk", "-f", "/opt/p.awk", "input"], "/opt/p.awk"),
            ("lua5.4", &["lua", "-E", "s.lua"], "s.lua"),
            ("busybox", &["sh", "/etc/job.sh"], "/etc/job.sh"),
            ("busybox", &["busybox", "sh", "/etc/job.sh"], "/etc/job.sh"),
            ("expect", &["expect", "-nf", "s.exp"], "s.exp"),
        ] {
            let got = r(exe, argv);
            if want.is_empty() {
                assert!(matches!(got, Runs::Inline(_)), "{argv:?}: {got:?}");
            } else {
                assert_eq!(path_of(&got), Some(want), "{argv:?}: {got:?}");
            }
        }
    }

    #[test]
    fn inline_code_is_never_a_script() {
        for (exe, argv) in [
            ("python3", &["python3", "-c", "print(1)"][..]),
            ("python3", &["python3", "-Bc", "print(1)"]),
            ("python3", &["python3", "-m", "http.server"]),
            ("python3", &["python3", "-"]),
            ("bash", &["bash", "-c", "echo hi"]),
            ("bash", &["bash", "-ec", "echo hi"]),
            ("sh", &["sh", "-s"]),
            ("node", &["node", "-e", "1"]),
            ("node", &["node", "--eval=1"]),
            ("perl", &["perl", "-we", "print 1"]),
            ("gawk", &["gawk", "{print}"]),
        ] {
            assert!(matches!(r(exe, argv), Runs::Inline(_)), "{argv:?}");
        }
    }

    #[test]
    fn bare_and_interactive_shells_run_no_script() {
        assert_eq!(r("bash", &["bash"]), Runs::Interactive);
        assert_eq!(r("bash", &["bash", "-i"]), Runs::Interactive);
        assert_eq!(r("python3", &["python3"]), Runs::Interactive);
        assert_eq!(r("python3", &["python3", "-u"]), Runs::Interactive);
        assert_eq!(r("bash", &[]), Runs::Interactive);
        assert_eq!(r("busybox", &[]), Runs::Interactive);
        // A login shell reads profile files before anything: no identity at all.
        assert!(refused_for(&r("bash", &["-bash"]), "login shell"));
        assert!(refused_for(&r("bash", &["-bash", "s.sh"]), "login shell"));
        assert!(refused_for(&r("bash", &["bash", "-l", "s.sh"]), "login"));
        assert!(refused_for(
            &r("bash", &["bash", "-login", "s.sh"]),
            "login"
        ));
        assert!(refused_for(
            &r("bash", &["bash", "--login", "s.sh"]),
            "login"
        ));
    }

    #[test]
    fn options_that_load_code_refuse_the_identity() {
        for (exe, argv, needle) in [
            (
                "node",
                &["node", "--require", "x.js", "app.js"][..],
                "--require",
            ),
            ("node", &["node", "-r", "./x", "app.js"], "--require"),
            ("node", &["node", "--import=./x.mjs", "app.js"], "--import"),
            ("node", &["node", "--loader", "x", "app.js"], "--loader"),
            (
                "node",
                &["node", "--experimental-loader=x", "app.js"],
                "--loader",
            ),
            ("node", &["node", "--inspect", "app.js"], "debugger"),
            (
                "node",
                &["node", "--inspect-brk=9229", "app.js"],
                "debugger",
            ),
            ("node", &["node", "--inspect_brk", "app.js"], "debugger"),
            ("node", &["node", "--env-file=.env", "app.js"], "--env-file"),
            ("node", &["node", "--openssl-config=x", "app.js"], "OpenSSL"),
            (
                "node",
                &["node", "--some-new-flag", "app.js"],
                "does not know",
            ),
            ("perl", &["perl", "-MEvil", "t.pl"], "-M"),
            ("perl", &["perl", "-mEvil", "t.pl"], "-m"),
            ("perl", &["perl", "-Ilib", "t.pl"], "-I"),
            ("perl", &["perl", "-w", "-I", "lib", "t.pl"], "-I"),
            ("perl", &["perl", "-d:Trace", "t.pl"], "debugger"),
            ("perl", &["perl", "-S", "t.pl"], "PATH"),
            (
                "ruby",
                &["ruby", "--disable-gems", "-r", "json", "t.rb"],
                "-r",
            ),
            ("ruby", &["ruby", "--disable-gems", "-rjson", "t.rb"], "-r"),
            ("ruby", &["ruby", "t.rb"], "--disable-gems"),
            ("python3", &["python3", "-i", "t.py"], "-i"),
            (
                "python3",
                &["python3", "-W", "ignore::evil.Warning", "t.py"],
                "dotted",
            ),
            (
                "python3",
                &["python3", "-X", "pycache_prefix=/tmp/x", "t.py"],
                "pycache_prefix",
            ),
            (
                "python3",
                &["python3", "-Xpycache_prefix=/tmp/x", "t.py"],
                "pycache_prefix",
            ),
            ("python3", &["python3", "-J", "t.py"], "does not know"),
            ("bash", &["bash", "--debugger", "s.sh"], "debugger"),
            ("bash", &["bash", "-O", "extdebug", "s.sh"], "extdebug"),
            ("bash", &["bash", "--rcfile", "x", "s.sh"], "rcfile"),
            ("zsh", &["zsh", "s.zsh"], "zshenv"),
            ("fish", &["fish", "s.fish"], "config"),
            (
                "fish",
                &["fish", "-N", "-C", "evil", "s.fish"],
                "init-command",
            ),
            ("tcsh", &["tcsh", "s.csh"], "cshrc"),
            ("lua", &["lua", "-l", "evil", "s.lua"], "-l"),
            ("luajit", &["luajit", "-jevil", "s.lua"], "jit"),
            ("gawk", &["gawk", "-i", "inc.awk", "-f", "p.awk"], "-i"),
            ("gawk", &["gawk", "-f", "a.awk", "-f", "b.awk"], "several"),
            // Attached and long forms, and options after the program file.
            ("gawk", &["gawk", "-f", "p.awk", "-levil"], "-l"),
            ("gawk", &["gawk", "--load=evil", "-f", "p.awk"], "--load"),
            (
                "gawk",
                &["gawk", "--include=x.awk", "-f", "p.awk"],
                "--include",
            ),
            (
                "gawk",
                &["gawk", "-f", "p.awk", "--frobnicate"],
                "does not know",
            ),
            ("gawk", &["gawk", "-Ievil", "-f", "p.awk"], "does not know"),
            (
                "php",
                &["php", "-d", "auto_prepend_file=/tmp/x", "s.php"],
                "configuration",
            ),
            (
                "php",
                &["php", "-dauto_prepend_file=/tmp/x", "s.php"],
                "configuration",
            ),
            ("expect", &["expect", "s.exp"], "expect.rc"),
            ("expect", &["expect", "-n", "-c", "evil", "s.exp"], "-c"),
            ("java", &["java", "-jar", "app.jar"], "too many places"),
            ("deno", &["deno", "run", "main.ts"], "too many places"),
            ("bun", &["bun", "script.ts"], "too many places"),
            ("guile", &["guile", "s.scm"], "too many places"),
            ("julia", &["julia", "s.jl"], "too many places"),
        ] {
            let got = r(exe, argv);
            assert!(refused_for(&got, needle), "{argv:?}: {got:?}");
        }
    }

    #[test]
    fn variables_that_load_code_refuse_the_identity() {
        for (exe, argv, env, needle) in [
            (
                "bash",
                &["bash", "s.sh"][..],
                ("BASH_ENV", "/tmp/evil"),
                "BASH_ENV",
            ),
            (
                "bash",
                &["bash", "s.sh"],
                ("BASH_FUNC_ls%%", "() { evil; }"),
                "exported function",
            ),
            (
                "bash",
                &["bash", "s.sh"],
                ("SHELLOPTS", "xtrace"),
                "SHELLOPTS",
            ),
            (
                "bash",
                &["bash", "s.sh"],
                ("BASHOPTS", "extdebug"),
                "BASHOPTS",
            ),
            ("bash", &["bash", "-x", "s.sh"], ("PS4", "$(evil)"), "PS4"),
            ("dash", &["sh", "-x", "s.sh"], ("PS4", "$(evil)"), "PS4"),
            ("ksh", &["ksh", "s.sh"], ("FPATH", "/tmp/f"), "FPATH"),
            ("zsh", &["zsh", "-f", "s.zsh"], ("FPATH", "/tmp/f"), "FPATH"),
            (
                "node",
                &["node", "app.js"],
                ("NODE_OPTIONS", "--require /tmp/x.js"),
                "NODE_OPTIONS",
            ),
            (
                "node",
                &["node", "app.js"],
                ("NODE_OPTIONS", "--import=/tmp/x.mjs"),
                "NODE_OPTIONS",
            ),
            (
                "node",
                &["node", "app.js"],
                ("NODE_OPTIONS", "--inspect"),
                "NODE_OPTIONS",
            ),
            (
                "node",
                &["node", "app.js"],
                ("NODE_PATH", "/tmp/m"),
                "NODE_PATH",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONPATH", "/tmp/evil"),
                "PYTHONPATH",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONHOME", "/tmp/evil"),
                "PYTHONHOME",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONINSPECT", "1"),
                "PYTHONINSPECT",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONPYCACHEPREFIX", "/tmp/c"),
                "PYTHONPYCACHEPREFIX",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONWARNINGS", "ignore::evil.W"),
                "PYTHONWARNINGS",
            ),
            (
                "python3",
                &["python3", "t.py"],
                ("PYTHONBREAKPOINT", "evil.hook"),
                "PYTHONBREAKPOINT",
            ),
            (
                "python3",
                &["python3", "-E", "t.py"],
                ("PYTHONUSERBASE", "/tmp/u"),
                "PYTHONUSERBASE",
            ),
            (
                "perl",
                &["perl", "t.pl"],
                ("PERL5OPT", "-MEvil"),
                "PERL5OPT",
            ),
            (
                "perl",
                &["perl", "t.pl"],
                ("PERL5LIB", "/tmp/lib"),
                "PERL5LIB",
            ),
            (
                "perl",
                &["perl", "t.pl"],
                ("PERLLIB", "/tmp/lib"),
                "PERLLIB",
            ),
            (
                "ruby",
                &["ruby", "--disable-gems", "t.rb"],
                ("RUBYOPT", "-revil"),
                "RUBYOPT",
            ),
            (
                "ruby",
                &["ruby", "--disable-gems", "t.rb"],
                ("RUBYLIB", "/tmp"),
                "RUBYLIB",
            ),
            (
                "lua",
                &["lua", "s.lua"],
                ("LUA_INIT", "@/tmp/evil.lua"),
                "LUA_INIT",
            ),
            (
                "lua",
                &["lua", "s.lua"],
                ("LUA_INIT_5_4", "os.execute('x')"),
                "LUA_INIT_5_4",
            ),
            (
                "lua",
                &["lua", "s.lua"],
                ("LUA_PATH", "/tmp/?.lua"),
                "LUA_PATH",
            ),
            (
                "tclsh",
                &["tclsh", "s.tcl"],
                ("TCLLIBPATH", "/tmp"),
                "TCLLIBPATH",
            ),
            (
                "gawk",
                &["gawk", "-f", "p.awk"],
                ("AWKPATH", "/tmp"),
                "AWKPATH",
            ),
            ("php", &["php", "s.php"], ("PHPRC", "/tmp/php.ini"), "PHPRC"),
        ] {
            let got = re(exe, argv, &[env]);
            assert!(refused_for(&got, needle), "{argv:?} {env:?}: {got:?}");
        }
    }

    #[test]
    fn options_that_turn_off_the_environment_make_its_variables_harmless() {
        for (exe, argv, env) in [
            (
                "python3",
                &["python3", "-E", "t.py"][..],
                ("PYTHONPATH", "/tmp/evil"),
            ),
            (
                "python3",
                &["python3", "-I", "t.py"],
                ("PYTHONINSPECT", "1"),
            ),
            ("perl", &["perl", "-T", "t.pl"], ("PERL5OPT", "-MEvil")),
            ("bash", &["bash", "-p", "s.sh"], ("BASH_ENV", "/tmp/evil")),
            (
                "bash",
                &["bash", "--posix", "s.sh"],
                ("BASH_ENV", "/tmp/evil"),
            ),
            ("lua", &["lua", "-E", "s.lua"], ("LUA_INIT", "evil()")),
            (
                "node",
                &["node", "app.js"],
                ("NODE_OPTIONS", "--max-old-space-size=512"),
            ),
            ("bash", &["bash", "s.sh"], ("PS4", "+ ")),
        ] {
            let got = re(exe, argv, &[env]);
            assert!(path_of(&got).is_some(), "{argv:?} {env:?}: {got:?}");
        }
    }

    #[test]
    fn python_startup_files_are_named_for_the_identity() {
        let got = re("python3.11", &["python3", "t.py"], &[("HOME", "/home/u")]);
        assert_eq!(
            got,
            Runs::Script {
                path: "t.py".into(),
                startup: Startup::Python {
                    argv0: "python3".into(),
                    site: true,
                    user_site: true,
                    home: Some("/home/u".into()),
                    script_dir: true,
                }
            }
        );
        let got = re("python3", &["python3", "-s", "t.py"], &[]);
        assert!(matches!(
            got,
            Runs::Script {
                startup: Startup::Python {
                    user_site: false,
                    ..
                },
                ..
            }
        ));
        let got = re(
            "python3",
            &["python3", "t.py"],
            &[("PYTHONNOUSERSITE", "1")],
        );
        assert!(matches!(
            got,
            Runs::Script {
                startup: Startup::Python {
                    user_site: false,
                    ..
                },
                ..
            }
        ));
        let got = re("python3", &["python3", "-S", "t.py"], &[]);
        assert!(matches!(
            got,
            Runs::Script {
                startup: Startup::Python {
                    site: false,
                    user_site: false,
                    script_dir: true,
                    ..
                },
                ..
            }
        ));
        // -P, -I and PYTHONSAFEPATH keep the script's directory off sys.path; -E ignores
        // the variable.
        for (args, env, expect) in [
            (&["python3", "-P", "t.py"][..], &[][..], false),
            (&["python3", "-I", "t.py"][..], &[][..], false),
            (
                &["python3", "t.py"][..],
                &[("PYTHONSAFEPATH", "1")][..],
                false,
            ),
            (
                &["python3", "-E", "t.py"][..],
                &[("PYTHONSAFEPATH", "1")][..],
                true,
            ),
        ] {
            match re("python3", args, env) {
                Runs::Script {
                    startup: Startup::Python { script_dir, .. },
                    ..
                } => assert_eq!(script_dir, expect, "{args:?} {env:?}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
        let got = re("php", &["/usr/bin/php", "s.php"], &[]);
        assert_eq!(
            got,
            Runs::Script {
                path: "s.php".into(),
                startup: Startup::Argv0IsExe("/usr/bin/php".into())
            }
        );
    }

    #[test]
    fn which_interpreters_keep_their_script_open() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(keeps_script_open("bash", &v(&["bash", "s.sh"])));
        assert!(keeps_script_open("dash", &v(&["sh", "s.sh"])));
        assert!(keeps_script_open("busybox", &v(&["sh", "s.sh"])));
        assert!(!keeps_script_open("python3.11", &v(&["python3", "t.py"])));
        assert!(!keeps_script_open("node", &v(&["node", "a.js"])));
    }

    #[test]
    fn the_environment_block_parses() {
        let e = Env::parse(b"A=1\0B=\0C=x=y\0junk\0\0");
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), Some(""));
        assert!(!e.set("B"));
        assert_eq!(e.get("C"), Some("x=y"));
        assert_eq!(e.get("junk"), None);
    }
}
