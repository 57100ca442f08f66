//! Secret names for git credentials: `git/<protocol>/<host>[/<path>]/<username>`.
//!
//! Each part is percent-encoded except ASCII letters, digits and `-._~` (and `:` in the
//! host, for its port; `/` between path segments), so a user name holding `/` or `@`, or
//! a part that is `.` or `..`, still gives exactly one valid name, and the user name is
//! always the last segment. An empty user name (git stores one for some single-sign-on
//! hosts) is an empty last segment: `git/https/sso.example/`.

use crate::credential::{percent_decode, Credential};
use keychain_auth_sdk::protocol::validate_name;

/// The scope this helper asks for when the user approves it.
pub const SCOPE: &str = "git/*";

/// A credential that cannot be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl std::fmt::Display for NameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// `git/<protocol>/<host>/`: every name of this credential's site starts so, whatever
/// its path.
pub fn site(c: &Credential) -> Result<String, NameError> {
    let protocol = required(c.protocol.as_deref(), "protocol")?;
    let host = required(c.host.as_deref(), "host")?;
    Ok(format!(
        "git/{}/{}/",
        encode(protocol, b""),
        encode(host, b":")
    ))
}

/// The credential's path as it appears in names (segments encoded, joined by `/`);
/// `None` without a path, or with one that is empty or only slashes.
fn path_part(c: &Credential) -> Option<String> {
    let path = c.path.as_deref()?.trim_matches('/');
    if path.is_empty() {
        return None;
    }
    let segments: Vec<String> = path.split('/').map(|s| encode(s, b"")).collect();
    Some(segments.join("/"))
}

/// `git/<protocol>/<host>[/<path>]/`: every name of this credential's site and path
/// starts so.
pub fn prefix(c: &Credential) -> Result<String, NameError> {
    let mut name = site(c)?;
    if let Some(path) = path_part(c) {
        name.push_str(&path);
        name.push('/');
    }
    Ok(name)
}

/// The full name of a credential that has a user name (which may be empty).
pub fn name(c: &Credential) -> Result<String, NameError> {
    let user = c
        .username
        .as_deref()
        .ok_or_else(|| NameError("git sent no username".into()))?;
    let name = prefix(c)? + &encode(user, b"");
    validate_name(&name).map_err(|e| NameError(format!("git credential name: {e}")))?;
    Ok(name)
}

/// Whether a listed name is a credential `c` describes, the way git's own stores match:
/// protocol and host must be the same; a path or a user name `c` does not give matches
/// any (so an `erase` without `path` reaches the credentials stored with one too).
pub fn describes(c: &Credential, listed: &str) -> Result<bool, NameError> {
    let Some(rest) = listed.strip_prefix(&site(c)?) else {
        return Ok(false);
    };
    let (path, user) = match rest.rsplit_once('/') {
        Some((path, user)) => (Some(path), user),
        None => (None, rest),
    };
    if c.path.is_some() && path != path_part(c).as_deref() {
        return Ok(false);
    }
    // Names this helper writes are encoded, so compare encoded forms: exact, and no
    // decoding of a name someone else wrote.
    if let Some(u) = c.username.as_deref() {
        if encode(u, b"") != user {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The user name of a listed secret under `prefix`, if it is one (nothing deeper); the
/// prefix itself is the credential with an empty user name.
pub fn username_under(prefix: &str, listed: &str) -> Option<String> {
    let rest = listed.strip_prefix(prefix)?;
    if rest.contains('/') {
        return None;
    }
    Some(percent_decode(rest))
}

fn required<'a>(v: Option<&'a str>, what: &str) -> Result<&'a str, NameError> {
    v.filter(|s| !s.is_empty())
        .ok_or_else(|| NameError(format!("git sent no {what}")))
}

/// Percent-encodes every byte but ASCII letters, digits, `-._~` and `keep`; a part that
/// is `.` or `..` has its dots encoded too.
fn encode(s: &str, keep: &[u8]) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cred(input: &str) -> Credential {
        Credential::parse(input.as_bytes()).unwrap()
    }

    #[test]
    fn names_follow_the_documented_shape() {
        let c = cred("protocol=https\nhost=github.com\nusername=alice\n");
        assert_eq!(name(&c).unwrap(), "git/https/github.com/alice");
        let c =
            cred("protocol=https\nhost=git.example:8443\npath=/team/repo.git/\nusername=a@b/c\n");
        assert_eq!(
            name(&c).unwrap(),
            "git/https/git.example:8443/team/repo.git/a%40b%2Fc"
        );
        assert_eq!(
            username_under(&prefix(&c).unwrap(), &name(&c).unwrap()).as_deref(),
            Some("a@b/c")
        );
    }

    #[test]
    fn dots_slashes_and_control_characters_cannot_escape_their_part() {
        let c = cred("protocol=https\nhost=..\npath=a/../.\nusername=.\n");
        let n = name(&c).unwrap();
        assert_eq!(n, "git/https/%2E%2E/a/%2E%2E/%2E/%2E");
        assert!(validate_name(&n).is_ok());
        let c = cred("protocol=https\nhost=h/x\nusername=a\tb\u{7f}\n");
        assert_eq!(name(&c).unwrap(), "git/https/h%2Fx/a%09b%7F");
    }

    #[test]
    fn missing_parts_and_overlong_names_are_errors() {
        assert!(name(&cred("host=h\nusername=u\n"))
            .unwrap_err()
            .0
            .contains("protocol"));
        assert!(name(&cred("protocol=https\nusername=u\n"))
            .unwrap_err()
            .0
            .contains("host"));
        assert!(name(&cred("protocol=https\nhost=h\n"))
            .unwrap_err()
            .0
            .contains("username"));
        let long = format!("protocol=https\nhost=h\nusername={}\n", "é".repeat(200));
        assert!(name(&cred(&long)).unwrap_err().0.contains("limit is 1024"));
    }

    #[test]
    fn only_direct_children_of_the_prefix_are_user_names() {
        assert_eq!(
            username_under("git/https/h/", "git/https/h/bob").as_deref(),
            Some("bob")
        );
        assert_eq!(username_under("git/https/h/", "git/https/h/repo/bob"), None);
        assert_eq!(username_under("git/https/h/", "git/https/other/bob"), None);
        // The prefix itself: the credential with an empty user name.
        assert_eq!(
            username_under("git/https/h/", "git/https/h/").as_deref(),
            Some("")
        );
        assert_eq!(username_under("git/https/h/", "git/https/h/repo/"), None);
    }

    #[test]
    fn an_empty_user_name_is_an_empty_last_segment_and_no_user_name_is_an_error() {
        let c = cred("protocol=https\nhost=sso.tld\nusername=\n");
        assert_eq!(name(&c).unwrap(), "git/https/sso.tld/");
        assert!(validate_name(&name(&c).unwrap()).is_ok());
        let c = cred("protocol=https\nhost=sso.tld\npath=team/r.git\nusername=\n");
        assert_eq!(name(&c).unwrap(), "git/https/sso.tld/team/r.git/");
        assert_eq!(
            username_under(&prefix(&c).unwrap(), &name(&c).unwrap()).as_deref(),
            Some("")
        );
        let e = name(&cred("protocol=https\nhost=sso.tld\n")).unwrap_err();
        assert!(e.0.contains("no username"), "{e}");
    }

    #[test]
    fn a_missing_path_or_user_name_matches_any_the_way_git_stores_match() {
        let stored = [
            "git/https/h/alice",
            "git/https/h/bob",
            "git/https/h/",
            "git/https/h/team/r.git/alice",
            "git/https/h/team/r.git/",
            "git/https/h/other.git/carol",
            "git/https/h2/alice",
            "git/http/h/alice",
            "git/https/h",
            "unrelated/https/h/alice",
        ];
        let matching = |input: &str| -> Vec<&str> {
            let c = cred(input);
            stored
                .iter()
                .copied()
                .filter(|n| describes(&c, n).unwrap())
                .collect()
        };
        assert_eq!(
            matching("protocol=https\nhost=h\n"),
            [
                "git/https/h/alice",
                "git/https/h/bob",
                "git/https/h/",
                "git/https/h/team/r.git/alice",
                "git/https/h/team/r.git/",
                "git/https/h/other.git/carol",
            ]
        );
        assert_eq!(
            matching("protocol=https\nhost=h\nusername=alice\n"),
            ["git/https/h/alice", "git/https/h/team/r.git/alice"]
        );
        assert_eq!(
            matching("protocol=https\nhost=h\nusername=\n"),
            ["git/https/h/", "git/https/h/team/r.git/"]
        );
        assert_eq!(
            matching("protocol=https\nhost=h\npath=/team/r.git/\n"),
            ["git/https/h/team/r.git/alice", "git/https/h/team/r.git/"]
        );
        assert_eq!(
            matching("protocol=https\nhost=h\npath=team/r.git\nusername=alice\n"),
            ["git/https/h/team/r.git/alice"]
        );
        // A path that is given but empty is a path: only credentials stored without one.
        assert_eq!(
            matching("protocol=https\nhost=h\npath=\nusername=alice\n"),
            ["git/https/h/alice"]
        );
        // User names compare encoded: a name with escapes someone else wrote is not
        // decoded into a match.
        let c = cred("protocol=https\nhost=h\nusername=a@b\n");
        assert!(describes(&c, "git/https/h/a%40b").unwrap());
        assert!(!describes(&c, "git/https/h/a@b").unwrap());
        assert!(!describes(&c, "git/https/h/a%40b/x").unwrap());
        assert!(describes(&cred("host=h\n"), "git/https/h/a").is_err());
    }
}
