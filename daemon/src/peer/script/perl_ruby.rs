//! Perl and Ruby: `-M`/`-r`-style options and the variables (`PERL5LIB`, `RUBYOPT`, …)
//! that load other code before the script.

use super::{deny_vars, refused, script, Env, Runs};

pub(super) fn perl(args: &[&str], env: &Env) -> Runs {
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

pub(super) fn ruby(args: &[&str], env: &Env) -> Runs {
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
