//! Perl and Ruby: `-M`/`-r`-style options and the variables (`PERL5LIB`, `RUBYOPT`, …)
//! that load other code before the script.

use super::{deny_vars, refused, script, Env, Runs};

pub(super) fn perl(args: &[&str], env: &Env) -> Runs {
    let mut taint = false;
    let found = switches(args, |a| {
        let letters: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < letters.len() {
            let ch = letters[k];
            k += 1;
            match ch {
                'e' | 'E' => return Some(Runs::Inline(format!("code given with -{ch}"))),
                'M' | 'm' => {
                    return Some(refused(format!("-{ch} loads a module before the script")))
                }
                'I' => {
                    return Some(refused(
                        "-I puts other directories first where modules are loaded from",
                    ))
                }
                'd' => {
                    return Some(refused(
                        "-d runs a debugger (and its startup files) around the script",
                    ))
                }
                'S' => {
                    return Some(refused(
                        "-S searches PATH for the script, so its path does not say which file runs",
                    ))
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
                'v' | 'h' => return Some(Runs::Interactive),
                other => {
                    return Some(refused(format!(
                        "it was given -{other}, an option keychain-auth does not know"
                    )));
                }
            }
        }
        None
    });
    let path = match found {
        Ok(path) => path,
        Err(runs) => return runs,
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

/// Walks the options before the script the way perl and ruby both read them: `--` ends
/// them, `-` reads the program from standard input, the first word that is not an option
/// is the script. `each` sees every option and stops the walk with what it decided.
/// With no script named the interpreter is interactive.
fn switches<'a>(
    args: &[&'a str],
    mut each: impl FnMut(&'a str) -> Option<Runs>,
) -> Result<&'a str, Runs> {
    for (i, &a) in args.iter().enumerate() {
        if a == "--" {
            return args.get(i + 1).copied().ok_or(Runs::Interactive);
        }
        if a == "-" {
            return Err(Runs::Inline("code from standard input".into()));
        }
        if !a.starts_with('-') || a.len() < 2 {
            return Ok(a);
        }
        if let Some(runs) = each(a) {
            return Err(runs);
        }
    }
    Err(Runs::Interactive)
}

// ---------------------------------------------------------------- ruby

pub(super) fn ruby(args: &[&str], env: &Env) -> Runs {
    let mut no_gems = false;
    let found = switches(args, |a| {
        if let Some(long) = a.strip_prefix("--") {
            let disabled = long
                .strip_prefix("disable=")
                .or_else(|| long.strip_prefix("disable-"));
            if let Some(list) = disabled {
                if list.split(',').any(|x| x == "gems" || x == "all") {
                    no_gems = true;
                }
            } else if long.starts_with("crash-report") {
                return Some(refused("--crash-report can run a command"));
            } else if !["verbose", "yjit", "jit", "rjit", "mjit"]
                .iter()
                .any(|s| long.starts_with(s))
                && !long.starts_with("enable")
                && !long.starts_with("encoding")
                && !long.starts_with("external-encoding")
                && !long.starts_with("internal-encoding")
                && !long.starts_with("backtrace-limit")
            {
                return Some(refused(format!(
                    "it was given {a}, an option keychain-auth does not know"
                )));
            }
            return None;
        }
        match a.chars().nth(1) {
            Some('e') => Some(Runs::Inline("code given with -e".into())),
            Some('r') => Some(refused("-r loads a library before the script")),
            Some('I') => Some(refused(
                "-I puts other directories first where libraries are loaded from",
            )),
            Some('S') => Some(refused("-S searches PATH for the script")),
            Some('C') => Some(refused("-C changes directory before the script is found")),
            Some('h') | Some('v') if a.len() == 2 => Some(Runs::Interactive),
            _ => None,
        }
    });
    let path = match found {
        Ok(path) => path,
        Err(runs) => return runs,
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
