//! Which programs own keychain-auth's own Keychain items (macOS). The tray app and the
//! CLI (`keychain-auth start`, the LaunchAgent) can both host the daemon, so an item
//! either one creates names, in its access list, the host and the other program, but
//! the other only when it is signed by the host's own team: only then does securityd's
//! partition check (`teamid:<team>`) let it read the item without asking, and only
//! then is it named by a requirement that survives its updates. Pure path and
//! requirement logic, tested everywhere; the Security calls are `keychain.rs`'s.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The CLI's file name.
pub const CLI_NAME: &str = "keychain-auth";
/// The tray app's executable name outside a bundle (`cargo build`, `scripts/start --app`).
pub const APP_NAME: &str = "keychain-auth-app";
/// The tray app's bundle name (`productName` in src-tauri/tauri.conf.json).
pub const APP_BUNDLE: &str = "keychain-auth.app";

/// Which program hosts the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The tray app (`keychain-auth-app`, bundled or not).
    App,
    /// The `keychain-auth` CLI.
    Cli,
}

/// The bundle an executable runs from (`X.app` for `X.app/Contents/MacOS/exe`).
pub fn bundle_of(exe: &Path) -> Option<&Path> {
    let macos = exe.parent()?;
    let contents = macos.parent()?;
    let bundle = contents.parent()?;
    (macos.file_name()? == "MacOS"
        && contents.file_name()? == "Contents"
        && bundle.extension()? == "app")
        .then_some(bundle)
}

/// Which program `exe` is: by its file name, else the app when it runs from a bundle
/// (the release ships the CLI inside the app, as `Contents/MacOS/keychain-auth`).
pub fn host_of(exe: &Path) -> Host {
    match exe.file_name().and_then(OsStr::to_str) {
        Some(CLI_NAME) => Host::Cli,
        Some(APP_NAME) => Host::App,
        _ if bundle_of(exe).is_some() => Host::App,
        _ => Host::Cli,
    }
}

/// Where the other host of the daemon may be installed, most likely first, each once,
/// never `exe` itself. From the app: the CLI beside it (inside the bundle, where the
/// release puts it), in each absolute `PATH` directory, and where installers put it (an
/// app started from the Finder has a short `PATH`). From the CLI: the bundle it ships
/// in, the app beside it, and the app in `/Applications` and `~/Applications`. Whether
/// one exists and is signed by the host's team is checked by the caller.
pub fn co_host_candidates(
    exe: &Path,
    home: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Vec<PathBuf> {
    let beside = exe.parent();
    let own_bundle = bundle_of(exe);
    let mut out: Vec<PathBuf> = Vec::new();
    let host = host_of(exe);
    match host {
        Host::App => {
            out.extend(beside.map(|d| d.join(CLI_NAME)));
            if let Some(p) = path_var {
                out.extend(
                    std::env::split_paths(p)
                        .filter(|d| d.is_absolute())
                        .map(|d| d.join(CLI_NAME)),
                );
            }
            for d in ["/usr/local/bin", "/opt/homebrew/bin"] {
                out.push(Path::new(d).join(CLI_NAME));
            }
            if let Some(h) = home {
                for d in [".local/bin", ".cargo/bin"] {
                    out.push(h.join(d).join(CLI_NAME));
                }
            }
        }
        Host::Cli => {
            match own_bundle {
                Some(b) => out.push(b.to_path_buf()),
                None => out.extend(beside.map(|d| d.join(APP_NAME))),
            }
            out.push(Path::new("/Applications").join(APP_BUNDLE));
            out.extend(home.map(|h| h.join("Applications").join(APP_BUNDLE)));
        }
    }
    // The app is itself (`SecTrustedApplicationCreateFromPath(NULL)`), bundle and all.
    let itself = (host == Host::App).then_some(own_bundle).flatten();
    let mut unique: Vec<PathBuf> = Vec::new();
    for c in out {
        if c != exe && Some(c.as_path()) != itself && !unique.contains(&c) {
            unique.push(c);
        }
    }
    unique
}

/// The code requirement "signed with an Apple-issued certificate of this team" for a
/// team identifier (ten upper-case letters or digits); `None` for anything else.
pub fn team_requirement(team: &str) -> Option<String> {
    let valid = team.len() == 10
        && team
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    valid.then(|| format!("anchor apple generic and certificate leaf[subject.OU] = \"{team}\""))
}

/// What the daemon logs at start about who owns the items it creates.
pub fn summary(host: Host, team: Option<&str>, co_owners: &[PathBuf]) -> String {
    let other = match host {
        Host::App => "the keychain-auth CLI",
        Host::Cli => "the keychain-auth app",
    };
    match team {
        None => format!(
            "this keychain-auth is not signed with a Developer ID team (ad hoc or unsigned): \
             the Keychain items it creates trust it by its cdhash only, so macOS asks again \
             after each update of it, and when {other} hosts the daemon (docs/macos.md)"
        ),
        Some(t) if co_owners.is_empty() => format!(
            "Keychain items created from now on are shared with no other program: no copy \
             of {other} signed by team {t} was found"
        ),
        Some(t) => format!(
            "Keychain items created from now on trust this program and {} (team {t})",
            co_owners
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLED: &str = "/Applications/keychain-auth.app/Contents/MacOS/keychain-auth-app";

    fn paths(all: &[&str]) -> Vec<PathBuf> {
        all.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn the_app_is_known_by_its_bundle_or_its_name() {
        assert_eq!(host_of(Path::new(BUNDLED)), Host::App);
        assert_eq!(
            bundle_of(Path::new(BUNDLED)),
            Some(Path::new("/Applications/keychain-auth.app"))
        );
        // a bundle's executable under another name (tauri's `mainBinaryName`)
        assert_eq!(
            host_of(Path::new("/Applications/x.app/Contents/MacOS/KeychainAuth")),
            Host::App
        );
        assert_eq!(
            host_of(Path::new("/Users/a/.local/bin/keychain-auth-app")),
            Host::App
        );
        assert_eq!(
            host_of(Path::new("/Users/a/.local/bin/keychain-auth")),
            Host::Cli
        );
        assert_eq!(host_of(Path::new("/opt/x.app/keychain-auth")), Host::Cli);
        // the CLI the release ships inside the app is the CLI
        assert_eq!(
            host_of(Path::new(
                "/Applications/keychain-auth.app/Contents/MacOS/keychain-auth"
            )),
            Host::Cli
        );
        assert_eq!(bundle_of(Path::new("/opt/Contents/MacOS/x")), None);
    }

    #[test]
    fn the_app_looks_for_the_cli_beside_it_on_path_and_where_installers_put_it() {
        let path =
            std::env::join_paths(["/usr/bin", "relative/bin", "/opt/homebrew/bin"]).expect("join");
        let got = co_host_candidates(Path::new(BUNDLED), Some(Path::new("/Users/a")), Some(&path));
        let want = paths(&[
            "/Applications/keychain-auth.app/Contents/MacOS/keychain-auth",
            "/usr/bin/keychain-auth",
            "/opt/homebrew/bin/keychain-auth",
            "/usr/local/bin/keychain-auth",
            "/Users/a/.local/bin/keychain-auth",
            "/Users/a/.cargo/bin/keychain-auth",
        ]);
        assert_eq!(
            got, want,
            "relative PATH entries are skipped, duplicates once"
        );
    }

    #[test]
    fn the_cli_looks_for_the_app_beside_it_and_in_applications_never_itself() {
        let got = co_host_candidates(
            Path::new("/Users/a/.local/bin/keychain-auth"),
            Some(Path::new("/Users/a")),
            Some(OsStr::new("/Users/a/.local/bin")),
        );
        let want = paths(&[
            "/Users/a/.local/bin/keychain-auth-app",
            "/Applications/keychain-auth.app",
            "/Users/a/Applications/keychain-auth.app",
        ]);
        assert_eq!(got, want);
        // An app beside the CLI on PATH never lists the app's own executable.
        let own = co_host_candidates(
            Path::new("/Users/a/.local/bin/keychain-auth-app"),
            None,
            Some(OsStr::new("/Users/a/.local/bin")),
        );
        assert_eq!(own[0], PathBuf::from("/Users/a/.local/bin/keychain-auth"));
        assert!(!own.iter().any(|p| p.ends_with("keychain-auth-app")));
    }

    #[test]
    fn the_cli_inside_the_app_names_the_bundle_it_ships_in() {
        let got = co_host_candidates(
            Path::new("/Applications/keychain-auth.app/Contents/MacOS/keychain-auth"),
            Some(Path::new("/Users/a")),
            None,
        );
        let want = paths(&[
            "/Applications/keychain-auth.app",
            "/Users/a/Applications/keychain-auth.app",
        ]);
        assert_eq!(got, want);
        // and the bundled app names the CLI beside it, never its own bundle
        let app = co_host_candidates(Path::new(BUNDLED), None, None);
        assert_eq!(
            app[0],
            PathBuf::from("/Applications/keychain-auth.app/Contents/MacOS/keychain-auth")
        );
        assert!(!app.contains(&PathBuf::from("/Applications/keychain-auth.app")));
    }

    #[test]
    fn only_a_well_formed_team_gives_a_requirement() {
        assert_eq!(
            team_requirement("ABCDE12345").as_deref(),
            Some("anchor apple generic and certificate leaf[subject.OU] = \"ABCDE12345\"")
        );
        for bad in ["", "abcde12345", "ABCDE1234", "ABCDE123456", "ABCDE\"1234"] {
            assert_eq!(team_requirement(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_summary_says_what_an_ad_hoc_build_will_do() {
        let s = summary(Host::Cli, None, &[]);
        assert!(s.contains("ad hoc or unsigned"), "{s}");
        assert!(s.contains("after each update"), "{s}");
        assert!(s.contains("the keychain-auth app hosts"), "{s}");
        let s = summary(Host::App, Some("ABCDE12345"), &[]);
        assert!(s.contains("no copy of the keychain-auth CLI"), "{s}");
        let s = summary(
            Host::App,
            Some("ABCDE12345"),
            &[PathBuf::from("/usr/local/bin/keychain-auth")],
        );
        assert!(
            s.contains("/usr/local/bin/keychain-auth (team ABCDE12345)"),
            "{s}"
        );
    }
}
