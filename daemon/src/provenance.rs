//! Where an executable came from, on evidence an ordinary user cannot forge, for
//! approvals that follow their tool's updates (`approve --follow`):
//!
//! - **package** (Linux, dpkg): the file is listed in a package's file list
//!   (`/var/lib/dpkg/info/<package>.list`) and its MD5 equals the digest dpkg recorded
//!   when it installed the package (`<package>.md5sums`). Those files, and every
//!   directory above them, must be owned by root and writable by no one else, so a
//!   program of the user can neither add a package nor change a digest. What it proves:
//!   the bytes are the ones root's package manager installed at that path. What it does
//!   not: that the package came from a trusted repository (root may `dpkg -i` anything),
//!   or anything against root. MD5 is broken for collisions, so a package author could
//!   ship a pair of files with one digest; a user who did not write the package would need
//!   a second preimage of its file, which is not known for MD5.
//! - **signer** (macOS): the running code's signature is valid, not ad hoc, with the
//!   same Team ID and signing identifier as the approved one. Judged from the
//!   [`Facts`] the peer was identified with.
//!
//! The reading is done here; the re-pin is `crate::handlers`.

use crate::peer::signing::Facts;
use keychain_auth_sdk::protocol::Follow;
use md5::{Digest, Md5};
use sha2::Sha256;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The evidence that proved an update: what the audit line says.
pub type Evidence = String;

/// dpkg's database, read as evidence.
#[derive(Debug, Clone)]
pub struct Dpkg {
    /// `/var/lib/dpkg` (another directory in tests).
    root: PathBuf,
    /// Who must own the database's files: root (another uid in tests).
    owner: u32,
    /// Whether the directories above `root` are checked too (the system's database);
    /// a test's database lives under a temporary directory anyone may write.
    check_above: bool,
}

/// What a file's contents are, hashed both ways in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// `sha256:<hex>`, as approvals pin.
    pub sha256: String,
    /// Hex MD5, as dpkg records.
    pub md5: String,
}

/// Hashes a file's contents with SHA-256 and MD5 in one read.
pub fn contents_of(path: &Path) -> std::io::Result<Contents> {
    let mut f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let (mut sha, mut md5) = (Sha256::new(), Md5::new());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok(Contents {
        sha256: format!("sha256:{}", hex::encode(sha.finalize())),
        md5: hex::encode(md5.finalize()),
    })
}

impl Dpkg {
    /// The system's dpkg database.
    pub fn system() -> Dpkg {
        Dpkg {
            root: PathBuf::from("/var/lib/dpkg"),
            owner: 0,
            check_above: true,
        }
    }

    /// A database at `root` whose files `owner` owns (tests).
    pub fn at(root: PathBuf, owner: u32) -> Dpkg {
        Dpkg {
            root,
            owner,
            check_above: false,
        }
    }

    fn info(&self) -> PathBuf {
        self.root.join("info")
    }

    /// Reads one of the database's files, if it is owned by the database's owner and
    /// writable by no one else, as is every directory above it.
    fn read_trusted(&self, path: &Path) -> Result<Option<String>, String> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        self.trusted(path, &meta)?;
        let mut dir = path.parent();
        while let Some(d) = dir {
            if !self.check_above && !d.starts_with(&self.root) {
                break;
            }
            let m = std::fs::metadata(d).map_err(|e| format!("{}: {e}", d.display()))?;
            self.trusted(d, &m)?;
            dir = d.parent();
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // File lists of packages hold UTF-8 paths; anything else is not evidence.
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{} is not UTF-8", path.display()))
    }

    fn trusted(&self, path: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
        if meta.file_type().is_symlink() {
            return Err(format!("{} is a symbolic link", path.display()));
        }
        // Directories owned by root above the database (`/`, `/var`) qualify too.
        let owner_ok = meta.uid() == self.owner || meta.uid() == 0;
        if !owner_ok || meta.mode() & 0o022 != 0 {
            return Err(format!(
                "{} is not owned by {} and writable only by it (uid {}, mode {:o}): not evidence",
                path.display(),
                if self.owner == 0 {
                    "root".to_string()
                } else {
                    format!("uid {}", self.owner)
                },
                meta.uid(),
                meta.mode() & 0o7777
            ));
        }
        Ok(())
    }

    /// The database file of a package with this suffix (`list`, `md5sums`): plain, or
    /// with an architecture qualifier (`libfoo:amd64.list`).
    fn package_file(&self, package: &str, suffix: &str) -> Result<Option<String>, String> {
        valid_package(package)?;
        if let Some(s) = self.read_trusted(&self.info().join(format!("{package}.{suffix}")))? {
            return Ok(Some(s));
        }
        let prefix = format!("{package}:");
        let entries = match std::fs::read_dir(self.info()) {
            Ok(e) => e,
            Err(e) => return Err(format!("cannot read {}: {e}", self.info().display())),
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(&format!(".{suffix}")) {
                return self.read_trusted(&e.path());
            }
        }
        Ok(None)
    }

    /// The package whose file list holds `path` exactly, if one does.
    pub fn owner_of(&self, path: &str) -> Result<Option<String>, String> {
        let entries = std::fs::read_dir(self.info())
            .map_err(|e| format!("no dpkg database at {}: {e}", self.info().display()))?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".list"))
            .collect();
        names.sort();
        for name in names {
            let list = self.info().join(&name);
            // Cheap filter first; trust is checked on the one that matches.
            let Ok(text) = std::fs::read_to_string(&list) else {
                continue;
            };
            if text.lines().any(|l| l == path) {
                let Some(text) = self.read_trusted(&list)? else {
                    continue;
                };
                if text.lines().any(|l| l == path) {
                    let pkg = name.trim_end_matches(".list");
                    let pkg = pkg.split(':').next().unwrap_or(pkg);
                    return Ok(Some(pkg.to_string()));
                }
            }
        }
        Ok(None)
    }

    /// The installed version of a package (from `status`), for the audit line.
    fn version_of(&self, package: &str) -> Option<String> {
        let status = self.read_trusted(&self.root.join("status")).ok()??;
        let mut in_pkg = false;
        for line in status.lines() {
            if let Some(p) = line.strip_prefix("Package: ") {
                in_pkg = p == package;
            } else if in_pkg {
                if let Some(v) = line.strip_prefix("Version: ") {
                    return Some(v.to_string());
                }
            }
        }
        None
    }

    /// Whether `package` installed the file at `path` with exactly these contents: the
    /// evidence in words, or why not.
    pub fn proves(
        &self,
        package: &str,
        path: &str,
        contents: &Contents,
    ) -> Result<Evidence, String> {
        let list = self
            .package_file(package, "list")?
            .ok_or_else(|| format!("dpkg has no package {package:?} installed"))?;
        if !list.lines().any(|l| l == path) {
            return Err(format!("{path} is not a file of the package {package}"));
        }
        let sums = self
            .package_file(package, "md5sums")?
            .ok_or_else(|| format!("dpkg recorded no digests for the package {package}"))?;
        let relative = path.trim_start_matches('/');
        let recorded = md5sums_entry(&sums, relative).ok_or_else(|| {
            format!("dpkg recorded no digest of {path} for the package {package}")
        })?;
        if !recorded.eq_ignore_ascii_case(&contents.md5) {
            return Err(format!(
                "{path} is not the file the package {package} installed: its MD5 is {}, dpkg recorded {recorded}",
                contents.md5
            ));
        }
        let version = self
            .version_of(package)
            .map(|v| format!(" {v}"))
            .unwrap_or_default();
        Ok(format!(
            "installed by the package {package}{version}: its MD5 {} is the one in {}",
            contents.md5,
            self.info().join(format!("{package}.md5sums")).display()
        ))
    }
}

/// A package name as dpkg allows it (so that it cannot name another file).
fn valid_package(p: &str) -> Result<(), String> {
    let ok = !p.is_empty()
        && p.len() <= 200
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && !p.starts_with(['.', '-', '+']);
    if ok {
        Ok(())
    } else {
        Err(format!("{p:?} is not a package name"))
    }
}

/// The digest an md5sums file records for a path (relative to `/`): lines are
/// `<32 hex>  <path>`.
fn md5sums_entry<'a>(sums: &'a str, relative: &str) -> Option<&'a str> {
    sums.lines().find_map(|l| {
        let (digest, file) = l.split_once("  ")?;
        (file == relative && digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(digest)
    })
}

/// Whether a macOS peer's signature proves it is the same signer's update of an
/// approval that follows `team_id`/`identifier`: the evidence, or why not.
pub fn signer_proves(
    facts: Option<&Facts>,
    team_id: &str,
    identifier: &str,
) -> Result<Evidence, String> {
    let f = facts.ok_or("it carries no code signature")?;
    if !f.signed {
        return Err("it is not signed".into());
    }
    // CS_ADHOC: an ad-hoc signature names no one.
    if f.flags & 0x2 != 0 {
        return Err("it is signed ad hoc, which names no signer".into());
    }
    let status = f.status.unwrap_or(0);
    if status & 0x1 == 0 {
        return Err("its running code is not validly signed (CS_VALID is off)".into());
    }
    match (&f.team_id, &f.identifier) {
        (Some(t), Some(i)) if t == team_id && i == identifier => Ok(format!(
            "signed validly by the team {t} with the identifier {i}, as the approved binary was"
        )),
        (t, i) => Err(format!(
            "it is signed by {} as {}, not by the team {team_id} as {identifier}",
            t.as_deref().unwrap_or("no team"),
            i.as_deref().unwrap_or("no identifier")
        )),
    }
}

/// The rule an approval records for `--follow`, judged on the file it approves (its
/// path and contents, and for `signer` its signature): the rule, or why it cannot follow.
pub fn rule_for(
    kind: keychain_auth_sdk::protocol::FollowKind,
    dpkg: &Dpkg,
    path: &str,
    contents: &Contents,
    facts: Option<&Facts>,
) -> Result<Follow, String> {
    use keychain_auth_sdk::protocol::FollowKind;
    match kind {
        FollowKind::Package => {
            let package = dpkg.owner_of(path)?.ok_or_else(|| {
                format!("{path} belongs to no package of dpkg, so its updates cannot be followed by package")
            })?;
            dpkg.proves(&package, path, contents)?;
            Ok(Follow::Package { package })
        }
        FollowKind::Signer => {
            let f = facts.ok_or("--follow signer needs a binary signed with a Developer ID (macOS); this one carries no code signature")?;
            let (Some(team_id), Some(identifier)) = (f.team_id.clone(), f.identifier.clone())
            else {
                return Err("--follow signer needs a Developer ID signature with a Team ID; this binary has none".into());
            };
            signer_proves(Some(f), &team_id, &identifier)?;
            Ok(Follow::Signer {
                team_id,
                identifier,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    /// A dpkg database in a temp dir with one package holding `/usr/bin/tool`.
    fn db(contents: &[u8]) -> (tempfile::TempDir, Dpkg, Contents) {
        let d = tempfile::tempdir().expect("works");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("works");
        let info = d.path().join("info");
        std::fs::create_dir(&info).expect("works");
        let file = d.path().join("tool");
        std::fs::write(&file, contents).expect("works");
        let c = contents_of(&file).expect("works");
        std::fs::write(
            info.join("tool.list"),
            "/.\n/usr\n/usr/bin\n/usr/bin/tool\n",
        )
        .expect("works");
        std::fs::write(
            info.join("tool.md5sums"),
            format!(
                "{}  usr/bin/tool\n{}  usr/share/doc/tool/copyright\n",
                c.md5,
                "0".repeat(32)
            ),
        )
        .expect("works");
        std::fs::write(
            d.path().join("status"),
            "Package: other\nVersion: 9\n\nPackage: tool\nStatus: install ok installed\nVersion: 1.2-1\n",
        )
        .expect("works");
        let dpkg = Dpkg::at(d.path().to_path_buf(), me());
        (d, dpkg, c)
    }

    #[test]
    fn the_installed_file_is_proven_and_any_other_content_is_not() {
        let (_d, dpkg, c) = db(b"the packaged tool");
        assert_eq!(
            dpkg.owner_of("/usr/bin/tool").expect("works").as_deref(),
            Some("tool")
        );
        assert_eq!(dpkg.owner_of("/usr/bin/other").expect("works"), None);
        let ev = dpkg.proves("tool", "/usr/bin/tool", &c).expect("works");
        assert!(ev.contains("tool 1.2-1"), "{ev}");
        let edited = Contents {
            md5: hex::encode(Md5::digest(b"edited by hand")),
            ..c.clone()
        };
        let e = dpkg
            .proves("tool", "/usr/bin/tool", &edited)
            .expect_err("not evidence");
        assert!(e.contains("not the file the package tool installed"), "{e}");
        let e = dpkg
            .proves("tool", "/usr/bin/elsewhere", &c)
            .expect_err("not evidence");
        assert!(e.contains("not a file of the package"), "{e}");
        let e = dpkg
            .proves("nope", "/usr/bin/tool", &c)
            .expect_err("not evidence");
        assert!(e.contains("no package"), "{e}");
    }

    #[test]
    fn a_database_file_others_can_write_or_a_link_is_not_evidence() {
        let (d, dpkg, c) = db(b"x");
        let sums = d.path().join("info/tool.md5sums");
        std::fs::set_permissions(&sums, std::fs::Permissions::from_mode(0o666)).expect("works");
        let e = dpkg
            .proves("tool", "/usr/bin/tool", &c)
            .expect_err("not evidence");
        assert!(e.contains("not evidence"), "{e}");
        std::fs::set_permissions(&sums, std::fs::Permissions::from_mode(0o644)).expect("works");
        std::fs::set_permissions(
            d.path().join("info"),
            std::fs::Permissions::from_mode(0o777),
        )
        .expect("works");
        assert!(
            dpkg.proves("tool", "/usr/bin/tool", &c).is_err(),
            "a writable directory"
        );
        std::fs::set_permissions(
            d.path().join("info"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("works");
        std::fs::rename(&sums, d.path().join("real.md5sums")).expect("works");
        std::os::unix::fs::symlink(d.path().join("real.md5sums"), &sums).expect("works");
        let e = dpkg
            .proves("tool", "/usr/bin/tool", &c)
            .expect_err("not evidence");
        assert!(e.contains("symbolic link"), "{e}");
        // Owned by someone else than the database's owner (and not root).
        let other = Dpkg::at(d.path().to_path_buf(), me().wrapping_add(1));
        if me() != 0 {
            assert!(other.proves("tool", "/usr/bin/tool", &c).is_err());
        }
    }

    #[test]
    fn hostile_package_names_and_md5sums_lines_are_not_read_as_evidence() {
        let (d, dpkg, c) = db(b"y");
        for p in [
            "../status",
            "",
            "a/b",
            "Tool",
            ".hidden",
            "x\0y",
            &"a".repeat(300),
        ] {
            assert!(dpkg.proves(p, "/usr/bin/tool", &c).is_err(), "{p:?}");
        }
        for sums in [
            format!("{}usr/bin/tool\n", c.md5),
            format!("{} usr/bin/tool\n", c.md5),
            format!("{}  usr/bin/tool \n", c.md5),
            format!("{}zz  usr/bin/tool\n", &c.md5[..30]),
            "\u{0}\u{ff}garbage".to_string(),
            String::new(),
        ] {
            std::fs::write(d.path().join("info/tool.md5sums"), &sums).expect("works");
            assert!(
                dpkg.proves("tool", "/usr/bin/tool", &c).is_err(),
                "{sums:?}"
            );
        }
        std::fs::write(d.path().join("info/tool.md5sums"), [0xffu8, 0xfe]).expect("works");
        assert!(dpkg
            .proves("tool", "/usr/bin/tool", &c)
            .expect_err("not evidence")
            .contains("UTF-8"));
    }

    #[test]
    fn an_architecture_qualified_package_is_found() {
        let (d, dpkg, c) = db(b"z");
        for s in ["list", "md5sums"] {
            std::fs::rename(
                d.path().join(format!("info/tool.{s}")),
                d.path().join(format!("info/tool:amd64.{s}")),
            )
            .expect("works");
        }
        assert_eq!(
            dpkg.owner_of("/usr/bin/tool").expect("works").as_deref(),
            Some("tool")
        );
        assert!(dpkg.proves("tool", "/usr/bin/tool", &c).is_ok());
    }

    fn signed(team: &str, id: &str) -> Facts {
        Facts {
            signed: true,
            cdhash: None,
            identifier: Some(id.into()),
            team_id: Some(team.into()),
            flags: 0x10000,
            get_task_allow: false,
            allow_dyld_environment: false,
            disable_library_validation: false,
            status: Some(0x1 | 0x10000),
        }
    }

    #[test]
    fn only_a_valid_signature_of_the_same_team_and_identifier_follows() {
        let good = signed("ABCDE12345", "com.example.tool");
        assert!(signer_proves(Some(&good), "ABCDE12345", "com.example.tool").is_ok());
        for (f, why) in [
            (signed("OTHER00000", "com.example.tool"), "team"),
            (signed("ABCDE12345", "com.example.other"), "identifier"),
            (
                Facts {
                    flags: 0x2,
                    ..good.clone()
                },
                "ad hoc",
            ),
            (
                Facts {
                    status: Some(0),
                    ..good.clone()
                },
                "CS_VALID",
            ),
            (
                Facts {
                    signed: false,
                    ..good.clone()
                },
                "not signed",
            ),
        ] {
            assert!(
                signer_proves(Some(&f), "ABCDE12345", "com.example.tool").is_err(),
                "{why}"
            );
        }
        assert!(signer_proves(None, "ABCDE12345", "com.example.tool").is_err());
    }
}
