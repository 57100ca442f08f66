//! Which script an interpreter runs, from its command line. An interpreter is never
//! approved as a whole binary; a process running one is identified by interpreter +
//! script path + script hash instead. The command line is self-reported (a process can
//! rewrite its own argv), so this identity is advisory — see docs/threat-model.md.
//!
//! This module only reads the arguments; opening and hashing the file is the OS code's.

/// What an interpreter's command line says it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runs {
    /// A script file, as the command line names it (maybe relative to the cwd).
    Script(String),
    /// Code that is not in a file: `-c`, `-e`, `-m`, standard input, a subcommand…
    Inline(String),
    /// No script at all: an interactive interpreter or shell.
    Interactive,
}

/// Interpreter families whose options are read differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Python,
    Shell,
    Node,
    Perl,
    Ruby,
    Java,
    DenoBun,
    Other,
}

impl Family {
    fn of(base: &str) -> Family {
        let b = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
        match b {
            "python" | "pypy" => Family::Python,
            "sh" | "bash" | "dash" | "zsh" | "ksh" | "mksh" | "fish" | "tcsh" | "csh" => {
                Family::Shell
            }
            "node" | "nodejs" => Family::Node,
            "perl" => Family::Perl,
            "ruby" | "irb" => Family::Ruby,
            "java" => Family::Java,
            "deno" | "bun" => Family::DenoBun,
            _ => Family::Other,
        }
    }

    /// Options whose presence means the code does not come from a script file.
    fn inline(self) -> &'static [&'static str] {
        match self {
            Family::Python => &["-c", "-m"],
            Family::Shell => &["-c", "-s"],
            Family::Node => &["-e", "--eval", "-p", "--print", "-i", "--interactive"],
            Family::Perl => &["-e", "-E"],
            Family::Ruby => &["-e"],
            Family::Java => &["-m", "--module"],
            Family::DenoBun => &["-e", "--eval"],
            Family::Other => &["-e", "-c", "--eval"],
        }
    }

    /// Options that take the next argument as their value.
    fn takes_value(self) -> &'static [&'static str] {
        match self {
            Family::Python => &["-W", "-X", "--check-hash-based-pycs"],
            Family::Shell => &["-o", "+o", "-O", "+O", "--rcfile", "--init-file"],
            Family::Node => &[
                "-r",
                "--require",
                "--import",
                "--loader",
                "--experimental-loader",
                "-C",
                "--conditions",
                "--env-file",
                "--input-type",
            ],
            Family::Perl => &[],
            Family::Ruby => &["-I", "-r", "-C", "-E", "--encoding"],
            Family::Java => &[
                "-cp",
                "-classpath",
                "--class-path",
                "-p",
                "--module-path",
                "--add-modules",
                "--add-opens",
                "--add-exports",
                "--add-reads",
                "--enable-native-access",
            ],
            Family::DenoBun => &["--config", "-c", "--import-map", "--cwd", "--env-file"],
            Family::Other => &[],
        }
    }

    /// Letters whose value is attached (`perl -Ilib`): the rest of the cluster is theirs.
    fn attached(self) -> &'static str {
        match self {
            Family::Perl => "IMmx0ldDiCV",
            _ => "",
        }
    }

    /// Whether a cluster of short options (`-uB`) is split into single letters.
    fn clusters(self) -> bool {
        matches!(
            self,
            Family::Python | Family::Shell | Family::Perl | Family::Ruby
        )
    }
}

/// Reads an interpreter's command line (`argv[0]` first). `exe_base` is the file name
/// of the executable the kernel reports (for busybox, `argv[0]` names the applet).
pub fn runs(exe_base: &str, argv: &[String]) -> Runs {
    let mut args: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut base = exe_base.to_ascii_lowercase();
    if base == "busybox" {
        let arg0 = args.first().copied().unwrap_or("");
        let arg0 = arg0.rsplit('/').next().unwrap_or(arg0);
        if arg0 == "busybox" {
            // `busybox sh script`: the applet is the first argument.
            args.remove(0);
        }
        base = args
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a).to_string())
            .unwrap_or_default();
    }
    let family = Family::of(&base);
    let mut i = 1;
    let mut subcommand_seen = false;
    while i < args.len() {
        let a = args[i];
        if a == "--" {
            return match args.get(i + 1) {
                Some(s) => Runs::Script((*s).to_string()),
                None => Runs::Interactive,
            };
        }
        if a == "-" {
            return Runs::Inline("code from standard input".into());
        }
        if family == Family::Java && a == "-jar" {
            return match args.get(i + 1) {
                Some(s) => Runs::Script((*s).to_string()),
                None => Runs::Interactive,
            };
        }
        if a.starts_with('-') || (family == Family::Shell && a.starts_with('+')) {
            let name = a.split_once('=').map_or(a, |(n, _)| n);
            if family.inline().contains(&name) {
                return Runs::Inline(format!("code given with {name}"));
            }
            if family == Family::Shell && (a == "-i" || a == "--interactive") {
                return Runs::Interactive;
            }
            if family.takes_value().contains(&a) {
                i += 2;
                continue;
            }
            if family.clusters() && !a.starts_with("--") && a.len() > 2 {
                // `-uBc code`: each letter is an option; one taking a value ends the
                // cluster (the value is the rest, or the next argument).
                let letters: Vec<char> = a[1..].chars().collect();
                let mut skip_next = false;
                for (k, ch) in letters.iter().enumerate() {
                    if family.attached().contains(*ch) {
                        break;
                    }
                    let opt = format!("-{ch}");
                    if family.inline().contains(&opt.as_str()) {
                        return Runs::Inline(format!("code given with {opt}"));
                    }
                    if family.takes_value().contains(&opt.as_str()) {
                        skip_next = k + 1 == letters.len();
                        break;
                    }
                }
                i += if skip_next { 2 } else { 1 };
                continue;
            }
            i += 1;
            continue;
        }
        match family {
            Family::Java => return Runs::Inline(format!("class {a} from the class path")),
            Family::DenoBun if !subcommand_seen => {
                subcommand_seen = true;
                match a {
                    "run" => {
                        i += 1;
                        continue;
                    }
                    "eval" | "repl" => return Runs::Inline(format!("`{base} {a}`")),
                    // `bun script.ts` runs the file; deno's other subcommands
                    // (test, task, fmt…) are not a script.
                    _ if base == "bun" => return Runs::Script(a.to_string()),
                    _ => return Runs::Inline(format!("`{base} {a}`")),
                }
            }
            _ => return Runs::Script(a.to_string()),
        }
    }
    Runs::Interactive
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(exe: &str, argv: &[&str]) -> Runs {
        let v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        runs(exe, &v)
    }

    fn script(s: &str) -> Runs {
        Runs::Script(s.into())
    }

    #[test]
    fn scripts_are_found_past_options() {
        assert_eq!(
            r("python3", &["python3", "tool.py", "-c", "x"]),
            script("tool.py")
        );
        assert_eq!(
            r(
                "python3.11",
                &["/usr/bin/python3", "-u", "-W", "ignore", "/opt/t.py"]
            ),
            script("/opt/t.py")
        );
        assert_eq!(r("python3", &["python3", "-uB", "t.py"]), script("t.py"));
        assert_eq!(
            r("python3", &["python3", "-X", "dev", "--", "-odd.py"]),
            script("-odd.py")
        );
        assert_eq!(
            r(
                "bash",
                &["bash", "-eu", "-o", "pipefail", "./deploy.sh", "arg"]
            ),
            script("./deploy.sh")
        );
        assert_eq!(r("bash", &["/bin/bash", "--norc", "s.sh"]), script("s.sh"));
        assert_eq!(
            r(
                "node",
                &[
                    "node",
                    "--require",
                    "x.js",
                    "--max-old-space-size=99",
                    "app.js"
                ]
            ),
            script("app.js")
        );
        assert_eq!(
            r("perl", &["perl", "-w", "-Ilibexec", "t.pl"]),
            script("t.pl")
        );
        assert_eq!(r("ruby", &["ruby", "-r", "json", "t.rb"]), script("t.rb"));
        assert_eq!(
            r(
                "java",
                &["java", "-Xmx1g", "-cp", "a.jar", "-jar", "app.jar"]
            ),
            script("app.jar")
        );
        assert_eq!(
            r("deno", &["deno", "run", "--allow-net", "main.ts"]),
            script("main.ts")
        );
        assert_eq!(r("bun", &["bun", "script.ts"]), script("script.ts"));
        assert_eq!(r("busybox", &["sh", "/etc/job.sh"]), script("/etc/job.sh"));
        assert_eq!(
            r("busybox", &["busybox", "sh", "/etc/job.sh"]),
            script("/etc/job.sh")
        );
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
            ("ruby", &["ruby", "-e", "p 1"]),
            ("java", &["java", "-cp", "x", "Main"]),
            ("deno", &["deno", "eval", "1"]),
            ("deno", &["deno", "test"]),
        ] {
            assert!(matches!(r(exe, argv), Runs::Inline(_)), "{argv:?}");
        }
    }

    #[test]
    fn bare_and_interactive_shells_run_no_script() {
        assert_eq!(r("bash", &["bash"]), Runs::Interactive);
        assert_eq!(r("bash", &["-bash"]), Runs::Interactive);
        assert_eq!(r("bash", &["bash", "-i"]), Runs::Interactive);
        assert_eq!(r("zsh", &["zsh", "-l"]), Runs::Interactive);
        assert_eq!(r("python3", &["python3"]), Runs::Interactive);
        assert_eq!(r("python3", &["python3", "-u"]), Runs::Interactive);
        assert_eq!(r("bash", &[]), Runs::Interactive);
        assert_eq!(r("busybox", &[]), Runs::Interactive);
    }
}
