//! The command line in the shell, through the real binary and real shells: bash completes
//! subcommands and their flags from `keychain-auth completions bash`, zsh and fish load
//! theirs (fish completes from it), `man -l` renders the pages `keychain-auth man DIR`
//! writes, a shell nobody knows is a usage error, and `scripts/start --shell-only` puts
//! the scripts and pages where it says, where bash, fish, zsh and man then find them.
//! No daemon is needed.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{bin, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a program, failing the test with a hint when the program is not installed.
fn run(cmd: &mut Command) -> Output {
    match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!(
            "{:?}: {e}; scripts/deps installs bash, zsh, fish and man",
            cmd.get_program()
        ),
    }
}

/// `keychain-auth completions SHELL`'s script, written to a file in `dir`.
fn script(shell: &str, dir: &Path) -> PathBuf {
    let o = run(Command::new(bin("keychain-auth")).args(["completions", shell]));
    assert!(o.status.success(), "completions {shell}: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "completions {shell}: {}", stderr(&o));
    let p = dir.join(format!("keychain-auth.{shell}"));
    std::fs::write(&p, &o.stdout).unwrap();
    p
}

/// What bash's completion function for keychain-auth, loaded from `script`, offers for the
/// command line `words` (the last word is the one being completed), one per line.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let body = format!(
        r#"source "$1" || exit 9
f=$(complete -p keychain-auth | sed -E 's/.* -F ([^ ]+) .*/\1/')
[ -n "$f" ] || {{ echo "no completion registered for keychain-auth" >&2; exit 8; }}
COMP_WORDS=({words})
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$f" keychain-auth "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        words = quoted.join(" ")
    );
    let o = run(Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &body, "bash"])
        .arg(script));
    assert!(o.status.success(), "bash {words:?}: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "bash {words:?}: {}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

/// What fish offers for `line` (`complete -C`), the candidates without their descriptions.
/// `setup` runs first (loading the script); with none, fish autoloads the completion from
/// its directories, as it does once the command is on PATH and the config is read: `env`
/// then sets HOME (or XDG_CONFIG_HOME) and PATH.
fn fish_complete(setup: &str, line: &str, env: &[(&str, &std::ffi::OsStr)]) -> Vec<String> {
    let mut cmd = Command::new("fish");
    if !setup.is_empty() {
        cmd.arg("--no-config");
    }
    cmd.arg("-c").arg(format!("{setup}\ncomplete -C '{line}'"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "fish {line:?}: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "fish {line:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

/// A man page rendered by `man -l`, wide enough that no flag is broken across lines (as
/// plain text: stdout is no terminal, so man uses no pager and drops the overstrikes).
fn render_man(page: &Path) -> String {
    let o = run(Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .env_remove("MANOPT")
        .env_remove("MANPAGER")
        .env_remove("PAGER"));
    assert!(
        o.status.success(),
        "man -l {}: {}",
        page.display(),
        stderr(&o)
    );
    assert!(
        o.stderr.is_empty(),
        "man -l {}: {}",
        page.display(),
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn bash_completes_subcommands_and_their_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script("bash", tmp.path());
    let top = bash_complete(&s, &["keychain-auth", "app"]);
    assert_eq!(top, ["approve"], "keychain-auth app<TAB>");
    let all = bash_complete(&s, &["keychain-auth", ""]);
    for sub in [
        "approve",
        "list-pending",
        "completions",
        "man",
        "service",
        "audit",
    ] {
        assert!(all.iter().any(|w| w == sub), "{sub} not offered: {all:?}");
    }
    // A subcommand's own flags: the arms clap_complete labels apart from where its loop
    // arrives for a hyphenated binary name (clap-rs/clap#6421) complete nothing.
    assert_eq!(
        bash_complete(&s, &["keychain-auth", "approve", "--add"]),
        ["--add-scope"]
    );
    let flags = bash_complete(&s, &["keychain-auth", "list-pending", "--"]);
    assert!(flags.iter().any(|w| w == "--json"), "{flags:?}");
    let nested = bash_complete(&s, &["keychain-auth", "service", "install", "--no"]);
    assert_eq!(nested, ["--notify", "--no-start"]);
    let shells = bash_complete(&s, &["keychain-auth", "completions", ""]);
    for sh in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|w| w == sh),
            "{sh} not offered: {shells:?}"
        );
    }
}

#[test]
fn zsh_loads_its_script_from_fpath() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("site-functions");
    std::fs::create_dir(&dir).unwrap();
    let s = script("zsh", tmp.path());
    std::fs::rename(&s, dir.join("_keychain-auth")).unwrap();
    // As a user's .zshrc has it: the directory on fpath, then compinit, which reads each
    // file's #compdef line and binds the function to the command.
    let o = run(Command::new("zsh")
        .arg("-fc")
        .arg(
            r#"fpath=("$1" $fpath); autoload -Uz compinit; compinit -u -D
print -r -- "${_comps[keychain-auth]}"
autoload -Uz _keychain-auth && whence -w _keychain-auth"#,
        )
        .arg("zsh")
        .arg(&dir)
        .env_remove("ZDOTDIR"));
    assert!(o.status.success(), "zsh: {}", stderr(&o));
    assert!(o.stderr.is_empty(), "zsh: {}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "_keychain-auth\n_keychain-auth: function\n",
        "compinit did not bind keychain-auth's completion"
    );
    // Sourced whole, the script parses without an error.
    let sourced = run(Command::new("zsh")
        .arg("-fc")
        .arg(r#"autoload -Uz compinit; compinit -u -D; source "$1""#)
        .arg("zsh")
        .arg(tmp.path().join("site-functions/_keychain-auth")));
    assert!(sourced.status.success(), "zsh source: {}", stderr(&sourced));
    assert!(
        sourced.stderr.is_empty(),
        "zsh source: {}",
        stderr(&sourced)
    );
}

#[test]
fn fish_completes_from_its_script() {
    let tmp = tempfile::tempdir().unwrap();
    let s = script("fish", tmp.path());
    let setup = format!("source '{}'", s.display());
    assert_eq!(
        fish_complete(&setup, "keychain-auth appr", &[]),
        ["approve"]
    );
    assert_eq!(
        fish_complete(&setup, "keychain-auth approve --add", &[]),
        ["--add-scope"]
    );
}

#[test]
fn man_pages_render_one_per_command() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new/man1");
    let o = run(Command::new(bin("keychain-auth")).arg("man").arg(&dir));
    assert!(o.status.success(), "man: {}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("man pages into {}", dir.display())),
        "{}",
        stdout(&o)
    );
    let main = render_man(&dir.join("keychain-auth.1"));
    assert!(main.contains("keychain-auth-approve(1)"), "{main}");
    assert!(main.contains("keychain-auth-completions(1)"), "{main}");
    let approve = render_man(&dir.join("keychain-auth-approve.1"));
    assert!(approve.contains("--add-scope <PATTERN>"), "{approve}");
    assert!(approve.contains("keychain-auth-approve"), "{approve}");
    let nested = render_man(&dir.join("keychain-auth-service-install.1"));
    assert!(nested.contains("--no-start"), "{nested}");
    // Run again: the same pages, replaced, nothing left beside them.
    let before: Vec<_> = list(&dir);
    let again = run(Command::new(bin("keychain-auth")).arg("man").arg(&dir));
    assert!(again.status.success(), "man again: {}", stderr(&again));
    assert_eq!(list(&dir), before);
}

/// PATH with `dir` first.
fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

/// The file names in a directory, sorted.
fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unknown_shell_or_unusable_dir_is_refused_clearly() {
    let o = run(Command::new(bin("keychain-auth")).args(["completions", "powershell-nonsense"]));
    assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("invalid value 'powershell-nonsense'"), "{err}");
    assert!(err.contains("possible values: bash"), "{err}");
    let none = run(Command::new(bin("keychain-auth")).arg("completions"));
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    // A file where the directory should be: said, naming it, exit 1.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let m = run(Command::new(bin("keychain-auth")).arg("man").arg(&file));
    assert_eq!(m.status.code(), Some(1), "{}", stderr(&m));
    assert!(
        stderr(&m).contains(&format!("creating {} for the man pages", file.display())),
        "{}",
        stderr(&m)
    );
}

/// `scripts/start --shell-only` for a user whose home is `home`, with keychain-auth
/// installed in `home/prefix/bin` (this build's, linked); `xdg` sets XDG_DATA_HOME and
/// XDG_CONFIG_HOME.
fn start_shell_only(home: &Path, xdg: Option<(&Path, &Path)>) -> Output {
    let bin_dir = home.join("prefix/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let link = bin_dir.join("keychain-auth");
    if !link.exists() {
        std::os::unix::fs::symlink(bin("keychain-auth"), &link).unwrap();
    }
    let mut cmd = Command::new(repo().join("scripts/start"));
    cmd.arg("--shell-only")
        .env("HOME", home)
        .env("PREFIX", home.join("prefix"))
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("ZDOTDIR");
    if let Some((data, config)) = xdg {
        cmd.env("XDG_DATA_HOME", data)
            .env("XDG_CONFIG_HOME", config);
    }
    run(&mut cmd)
}

#[test]
fn start_installs_completion_and_man_pages_where_it_says() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let o = start_shell_only(home, None);
    assert!(o.status.success(), "start --shell-only: {}", stderr(&o));
    let out = stdout(&o);
    let bash_file = home.join(".local/share/bash-completion/completions/keychain-auth");
    let zsh_dir = home.join(".local/share/zsh/site-functions");
    let fish_file = home.join(".config/fish/completions/keychain-auth.fish");
    let man_dir = home.join(".local/share/man/man1");
    for p in [
        &bash_file,
        &zsh_dir.join("_keychain-auth"),
        &fish_file,
        &man_dir,
    ] {
        assert!(p.exists(), "{} not installed; it said: {out}", p.display());
        assert!(
            out.contains(&p.display().to_string()),
            "not said where: {out}"
        );
    }
    // Not on zsh's fpath: the line to add, naming the directory.
    let fpath_line = format!("fpath=({} $fpath)", zsh_dir.display());
    assert!(out.contains(&fpath_line), "{out}");
    // Neither a build nor a daemon.
    assert!(!out.contains("installed"), "{out}");

    // Found where each finds its own: bash-completion's user directory, fish's
    // completions under XDG_CONFIG_HOME (its default, autoloaded), man through the
    // installed binary's directory on PATH, zsh through the fpath line.
    assert_eq!(
        bash_complete(&bash_file, &["keychain-auth", "approve", "--add"]),
        ["--add-scope"]
    );
    let path = path_with(&home.join("prefix/bin"));
    assert_eq!(
        fish_complete(
            "",
            "keychain-auth appr",
            &[("HOME", home.as_os_str()), ("PATH", &path)]
        ),
        ["approve"]
    );
    // man-db looks in DIR/../share/man for each DIR/bin on PATH: ~/.local/bin, where
    // keychain-auth is installed by default.
    std::fs::create_dir_all(home.join(".local/bin")).unwrap();
    let man = run(Command::new("man")
        .arg("keychain-auth-approve")
        .env("HOME", home)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", home.join(".local/bin").display()),
        )
        .env("MANWIDTH", "200")
        .env_remove("MANPATH"));
    assert!(
        man.status.success(),
        "man keychain-auth-approve: {}",
        stderr(&man)
    );
    assert!(
        stdout(&man).contains("--add-scope <PATTERN>"),
        "{}",
        stdout(&man)
    );
    std::fs::write(home.join(".zshrc"), format!("{fpath_line}\n")).unwrap();
    let z = run(Command::new("zsh")
        .arg("-fc")
        .arg("source ~/.zshrc; autoload -Uz compinit; compinit -u -D; print -r -- ${_comps[keychain-auth]}")
        .env("HOME", home)
        .env_remove("ZDOTDIR"));
    assert_eq!(stdout(&z), "_keychain-auth\n", "zsh: {}", stderr(&z));

    // Again, with the fpath line in .zshrc: the same files, replaced whole, and no fpath
    // line to add.
    let files = |root: &Path| {
        let mut all = Vec::new();
        for d in [
            root.join(".local/share/bash-completion/completions"),
            root.join(".local/share/zsh/site-functions"),
            root.join(".config/fish/completions"),
            root.join(".local/share/man/man1"),
        ] {
            all.extend(list(&d).into_iter().map(|n| d.join(n)));
        }
        all
    };
    let before = files(home);
    let again = start_shell_only(home, None);
    assert!(again.status.success(), "again: {}", stderr(&again));
    assert_eq!(files(home), before);
    assert!(!stdout(&again).contains("fpath=("), "{}", stdout(&again));
}

#[test]
fn start_follows_xdg_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let data = tmp.path().join("data");
    let config = tmp.path().join("config");
    let o = start_shell_only(&home, Some((&data, &config)));
    assert!(o.status.success(), "start --shell-only: {}", stderr(&o));
    for p in [
        data.join("bash-completion/completions/keychain-auth"),
        data.join("zsh/site-functions/_keychain-auth"),
        config.join("fish/completions/keychain-auth.fish"),
        data.join("man/man1/keychain-auth.1"),
        data.join("man/man1/keychain-auth-approve.1"),
    ] {
        assert!(p.exists(), "{} not installed: {}", p.display(), stdout(&o));
    }
    assert!(!home.join(".local").exists() && !home.join(".config").exists());
    assert_eq!(
        fish_complete(
            "",
            "keychain-auth approve --add",
            &[
                ("HOME", home.as_os_str()),
                ("XDG_CONFIG_HOME", config.as_os_str()),
                ("PATH", &path_with(&home.join("prefix/bin"))),
            ]
        ),
        ["--add-scope"]
    );

    let bad = run(Command::new(repo().join("scripts/start")).arg("--shell-onl"));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--shell-only"), "{}", stderr(&bad));
}
