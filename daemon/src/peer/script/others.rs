//! PHP, Lua, Tcl, awk and expect: the smaller interpreters, each with the options and
//! variables that load other code, and PHP's `php.ini` beside `argv[0]`.

use super::{deny_vars, refused, script, Env, Runs, Startup};

pub(super) fn php(args: &[&str], env: &Env, argv0: &str) -> Runs {
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

pub(super) fn lua(args: &[&str], env: &Env, base: &str) -> Runs {
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

pub(super) fn tcl(args: &[&str], env: &Env) -> Runs {
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

pub(super) fn awk<'a>(args: &[&'a str], env: &Env) -> Runs {
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

pub(super) fn expect(args: &[&str], env: &Env) -> Runs {
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
