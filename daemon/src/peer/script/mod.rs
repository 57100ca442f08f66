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
//!
//! Here: the parsed environment, what a command line runs ([`Runs`], [`Startup`]) and the
//! dispatch by interpreter family; each family's rules are in its own file (`python.rs`,
//! `shell.rs`, `node.rs`, `perl_ruby.rs`, `others.rs`), their tests in `tests.rs`.

mod node;
mod others;
mod perl_ruby;
mod python;
mod shell;
#[cfg(test)]
mod tests;

use crate::peer::ShellRuns;
use node::node;
use others::{awk, expect, lua, php, tcl};
use perl_ruby::{perl, ruby};
use python::python;
use shell::{bash, csh, fish, posix, zsh};

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

/// What a shell runs when its command line names no script: code given with `-c`
/// ([`ShellRuns::Inline`]) or commands as they come, from a terminal or standard input
/// ([`ShellRuns::Commands`]). `None` for a shell that runs a script file, and for every
/// program that is not a shell. Only the command line is read: the variables and
/// options that make a script's identity unsafe do not matter here, since inline code
/// and typed commands are their author's (the shell's parent, or the person at the
/// terminal).
pub fn shell_runs(exe_base: &str, argv: &[String]) -> Option<ShellRuns> {
    let (base, args) = applet(exe_base, argv);
    if !matches!(
        Family::of(&base),
        Family::Bash | Family::Posix | Family::Zsh | Family::Fish | Family::Csh
    ) {
        return None;
    }
    let rest = args.get(1..).unwrap_or(&[]);
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i];
        if a == "--" {
            return match rest.get(i + 1) {
                Some(_) => None,
                None => Some(ShellRuns::Commands),
            };
        }
        if a == "-" {
            return Some(ShellRuns::Commands);
        }
        if let Some(long) = a.strip_prefix("--") {
            if long == "command" || long.starts_with("command=") {
                return Some(ShellRuns::Inline);
            }
            if matches!(long, "rcfile" | "init-file" | "init-command") {
                i += 1;
            }
            i += 1;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            let body = &a[1..];
            if a.starts_with('-') && shell::BASH_LONG.contains(&body) {
                if matches!(body, "rcfile" | "init-file") {
                    i += 1;
                }
            } else {
                if a.starts_with('-') && body.contains('c') {
                    return Some(ShellRuns::Inline);
                }
                // `-s`: commands from standard input; what follows are its arguments.
                if a.starts_with('-') && body.contains('s') {
                    return Some(ShellRuns::Commands);
                }
                // `-o NAME` (and bash's `-O NAME`) take the next argument.
                i += body.chars().filter(|c| matches!(c, 'o' | 'O')).count();
            }
            i += 1;
            continue;
        }
        return None;
    }
    Some(ShellRuns::Commands)
}

/// Whether an executable (by its file name) is a shell: bash, the POSIX shells, zsh,
/// fish, csh. A shell never makes itself a subreaper.
pub fn is_shell(exe_base: &str) -> bool {
    matches!(
        Family::of(&exe_base.to_ascii_lowercase()),
        Family::Bash | Family::Posix | Family::Zsh | Family::Fish | Family::Csh
    )
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
