//! The shells: bash, the POSIX family (sh, dash, ksh, mksh, busybox's sh), zsh, fish and
//! csh/tcsh: option clusters, the variables and startup files that run code first.

use super::{deny_vars, refused, script, Env, Runs};

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
pub(super) const BASH_LONG: &[&str] = &[
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

pub(super) fn bash(args: &[&str], env: &Env, base: &str) -> Runs {
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
    let a = match not_login(parsed) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if a.options.contains(&"extdebug") {
        return refused("extdebug runs the debugger's code before the script");
    }
    if let Some(r) = unknown_letter(&a, "aBbCEefHhkmnPrTtuvD") {
        return r;
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

/// The parsed arguments of bash or a POSIX shell, refused when `-l` makes it a login
/// shell (which reads the user's profile files before the script).
fn not_login(parsed: ShellParse<'_>) -> Result<ShellArgs<'_>, Runs> {
    let a = match parsed {
        ShellParse::Args(a) => a,
        ShellParse::Done(r) => return Err(r),
    };
    if a.letters.contains(&'l') {
        return Err(refused(
            "-l makes it a login shell, which reads your profile files before the script",
        ));
    }
    Ok(a)
}

/// A refusal when the shell was given a one-letter option outside `known`.
fn unknown_letter(a: &ShellArgs<'_>, known: &str) -> Option<Runs> {
    a.letters.iter().find(|c| !known.contains(**c)).map(|bad| {
        refused(format!(
            "it was given -{bad}, an option keychain-auth does not know"
        ))
    })
}

pub(super) fn posix(args: &[&str], env: &Env, base: &str) -> Runs {
    let parsed = shell_args(
        args,
        |name| {
            Err(refused(format!(
                "it was given --{name}, an option keychain-auth does not know"
            )))
        },
        false,
    );
    let a = match not_login(parsed) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Some(r) = unknown_letter(&a, "aCefnuvEbmhT") {
        return r;
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

pub(super) fn zsh(args: &[&str], env: &Env) -> Runs {
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

pub(super) fn fish(args: &[&str]) -> Runs {
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

pub(super) fn csh(args: &[&str]) -> Runs {
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
