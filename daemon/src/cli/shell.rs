//! What makes the command line fit the shell: `completions SHELL` prints a completion
//! script and `man DIR` writes the manual pages, both generated from the clap definitions
//! in [`super::args`], so they name exactly the commands and flags this build parses.
//! `scripts/start` runs both to install them for the user.

use super::args::Cli;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The name completions and man pages are written for: the installed binary's.
const BIN: &str = "keychain-auth";

/// The completion script for `shell`, as text.
pub(super) fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    if shell == clap_complete::Shell::Bash {
        script = fix_bash_states(&script);
    }
    script
}

/// clap_complete's bash script spells the state of a subcommand of a hyphenated binary two
/// ways (clap-rs/clap#6421): the loop over the words reaches `keychain__auth__subcmd__approve`,
/// the arm that completes approve's flags is labelled `keychain__subcmd__auth__subcmd__approve`,
/// so no flag of any subcommand would complete. The arms are relabelled the loop's way
/// (nothing to do once clap_complete spells them alike).
fn fix_bash_states(script: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(script);
    let loop_prefix = format!("{}__subcmd__", BIN.replace('-', "__"));
    let arm_prefix = format!("{}__subcmd__", BIN.replace('-', "__subcmd__"));
    text.replace(&arm_prefix, &loop_prefix).into_bytes()
}

/// `completions SHELL`: prints the script on stdout (generated in memory first, so a
/// closed pipe is an error message, not a panic).
pub(super) fn print_completions(shell: clap_complete::Shell) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(&completion_script(shell))
        .and_then(|()| out.flush())
        .context("writing the completion script to stdout")
}

/// `man DIR`: writes `keychain-auth.1` and one page per (non-hidden) subcommand, named
/// `keychain-auth-SUB.1` (`keychain-auth-service-install.1` for a nested one), into
/// `dir`, creating it. Returns the files written, the main page first.
pub(super) fn write_man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating {} for the man pages", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(cmd, dir, &mut written)?;
    Ok(written)
}

/// The help's typographic characters (`…`, `→`, `—`) in ASCII: troff has no glyph
/// for them outside a UTF-8 locale and warns on every page (`man` in a plain `C` locale,
/// as on a fresh machine or over SSH).
fn ascii_typography(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        match c {
            '…' => out.push_str("..."),
            '→' => out.push_str("->"),
            '←' => out.push_str("<-"),
            '—' => out.push_str("\\-\\-"),
            '–' => out.push_str("\\-"),
            '‘' | '’' => out.push('\''),
            '“' | '”' => out.push('"'),
            '·' => out.push('*'),
            '≥' => out.push_str(">="),
            '≤' => out.push_str("<="),
            '×' => out.push('x'),
            c => out.push(c),
        }
    }
    out
}

/// Writes `cmd`'s page, then its subcommands' (a built command's display name is
/// `keychain-auth-approve`: the page's name and title).
fn write_pages(cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let man = clap_mangen::Man::new(cmd);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)
        .with_context(|| format!("rendering {}", path.display()))?;
    let page = ascii_typography(&String::from_utf8_lossy(&page));
    // Written beside and renamed: a reader never sees half a page, and a rerun replaces it.
    let tmp = dir.join(format!(".{}.tmp", man.get_filename()));
    std::fs::write(&tmp, &page).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in subs {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_script_names_the_binary_and_its_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let s = String::from_utf8(completion_script(shell)).expect("utf-8");
            assert!(s.contains("keychain-auth"), "{shell}: {s}");
            assert!(s.contains("list-pending"), "{shell}");
            assert!(s.contains("add-scope"), "{shell}");
        }
    }

    #[test]
    fn bash_arms_are_spelled_as_the_loop_reaches_them() {
        let s = String::from_utf8(completion_script(clap_complete::Shell::Bash)).expect("utf-8");
        assert!(s.contains("cmd=\"keychain__auth__subcmd__approve\""), "{s}");
        assert!(
            s.contains("        keychain__auth__subcmd__approve)"),
            "{s}"
        );
        assert!(!s.contains("keychain__subcmd__auth"), "{s}");
    }

    #[test]
    fn man_pages_one_per_subcommand() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_man_pages(dir.path()).expect("man pages");
        assert_eq!(written[0], dir.path().join("keychain-auth.1"));
        let approve = std::fs::read_to_string(dir.path().join("keychain-auth-approve.1"))
            .expect("approve page");
        assert!(approve.contains("add\\-scope"), "{approve}");
        for page in std::fs::read_dir(dir.path()).expect("read_dir") {
            let text = std::fs::read_to_string(page.expect("entry").path()).expect("page");
            assert!(
                text.is_ascii(),
                "troff warns on non-ASCII outside UTF-8: {text}"
            );
        }
        assert!(dir.path().join("keychain-auth-service-install.1").exists());
        assert!(!dir.path().join("keychain-auth-help.1").exists());
        // A second run replaces them, leaving no temporary file behind.
        assert_eq!(write_man_pages(dir.path()).expect("again"), written);
        let names = std::fs::read_dir(dir.path()).expect("read_dir").count();
        assert_eq!(names, written.len());
    }
}
