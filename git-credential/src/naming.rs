//! Secret names for git credentials: `git/<protocol>/<host>[/<path>]/<username>`.
//!
//! Each part is percent-encoded except ASCII letters, digits and `-._~` (and `:` in the
//! host, for its port; `/` between path segments), so a user name holding `/` or `@`, or
//! a part that is `.` or `..`, still gives exactly one valid name, and the user name is
//! always the last segment.

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

/// `git/<protocol>/<host>[/<path>]/`: every name of this credential's site starts so.
pub fn prefix(c: &Credential) -> Result<String, NameError> {
    let protocol = required(c.protocol.as_deref(), "protocol")?;
    let host = required(c.host.as_deref(), "host")?;
    let mut name = format!("git/{}/{}/", encode(protocol, b""), encode(host, b":"));
    if let Some(path) = c.path.as_deref() {
        let path = path.trim_matches('/');
        if !path.is_empty() {
            let segments: Vec<String> = path.split('/').map(|s| encode(s, b"")).collect();
            name.push_str(&segments.join("/"));
            name.push('/');
        }
    }
    Ok(name)
}

/// The full name of a credential that has a user name.
pub fn name(c: &Credential) -> Result<String, NameError> {
    let user = required(c.username.as_deref(), "username")?;
    let name = prefix(c)? + &encode(user, b"");
    validate_name(&name).map_err(|e| NameError(format!("git credential name: {e}")))?;
    Ok(name)
}

/// The user name of a listed secret under `prefix`, if it is one (nothing deeper).
pub fn username_under(prefix: &str, listed: &str) -> Option<String> {
    let rest = listed.strip_prefix(prefix)?;
    if rest.is_empty() || rest.contains('/') {
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
        assert_eq!(username_under("git/https/h/", "git/https/h/"), None);
        assert_eq!(username_under("git/https/h/", "git/https/other/bob"), None);
    }
}
