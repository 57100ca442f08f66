//! Python (CPython and PyPy): the options and variables that load other code, and the
//! startup files (`site`, the script's directory) named for the OS code to pin.

use super::{deny_vars, refused, Env, Runs, Startup};

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

pub(super) fn python(args: &[&str], env: &Env, argv0: &str) -> Runs {
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
