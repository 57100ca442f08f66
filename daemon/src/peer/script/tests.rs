//! What `runs` makes of command lines and environments, interpreter by interpreter.

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

#[test]
fn shells_without_a_script_are_told_apart_by_what_they_run() {
    let s = |exe: &str, a: &[&str]| {
        shell_runs(exe, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    use crate::peer::ShellRuns::{Commands, Inline};
    assert_eq!(
        s("dash", &["sh", "-c", "git credential fill"]),
        Some(Inline)
    );
    assert_eq!(s("bash", &["bash", "-ec", "x"]), Some(Inline));
    assert_eq!(
        s("bash", &["bash", "-o", "pipefail", "-c", "x"]),
        Some(Inline)
    );
    assert_eq!(s("fish", &["fish", "--command=x"]), Some(Inline));
    assert_eq!(s("busybox", &["sh", "-c", "x"]), Some(Inline));
    // Interactive, login and standard-input shells read commands as they come.
    assert_eq!(s("bash", &["-bash"]), Some(Commands));
    assert_eq!(s("bash", &["bash", "-i"]), Some(Commands));
    assert_eq!(s("zsh", &["zsh", "-l"]), Some(Commands));
    assert_eq!(s("dash", &["sh", "-s", "a"]), Some(Commands));
    assert_eq!(s("bash", &["bash", "--rcfile", "f"]), Some(Commands));
    assert_eq!(s("bash", &["bash", "-"]), Some(Commands));
    // A script, or no shell at all: none.
    assert_eq!(s("bash", &["bash", "deploy.sh"]), None);
    assert_eq!(s("bash", &["bash", "--", "deploy.sh"]), None);
    assert_eq!(s("bash", &["bash", "-o", "c", "deploy.sh"]), None);
    assert_eq!(s("bash", &["bash", "+c", "deploy.sh"]), None);
    assert_eq!(s("python3", &["python3", "-c", "x"]), None);
    assert_eq!(s("git", &["git", "-c", "x"]), None);
}
