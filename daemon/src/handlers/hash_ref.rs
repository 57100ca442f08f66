//! A hash as a person gives it: the whole `sha256:<64 hex>`, or a unique prefix of at
//! least 12 hex digits (what a notification and the window show), with or without
//! `sha256:`, in either case. Resolved here, in the daemon, for every client, against
//! what it knows: pending entries, approved tools and deny rules
//! ([`Daemon::full_hashes`], called before `approve`, `deny`, `revoke` and `undeny`).

use super::{error, Daemon};
use keychain_auth_sdk::protocol::{ErrorCode, Request, Response};

/// Fewest hex digits accepted as a prefix: as many as a shortened hash shows.
pub const MIN_PREFIX: usize = 12;

/// Hex digits in a whole SHA-256 hash.
const FULL: usize = 64;

/// A hash the daemon knows, and what to call it in a list of matches.
pub struct Known {
    /// `sha256:<64 hex>`.
    pub hash: String,
    /// Its label or path.
    pub name: String,
}

/// Why a hash reference does not name one hash.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// Not a hash, or too short to be a prefix (for a person).
    Bad(String),
    /// A well-formed prefix that nothing known starts with (for a person).
    NotFound(String),
}

impl From<Unresolved> for Response {
    fn from(u: Unresolved) -> Response {
        match u {
            Unresolved::Bad(why) => error(ErrorCode::BadRequest, why),
            Unresolved::NotFound(why) => error(ErrorCode::NotFound, why),
        }
    }
}

/// The whole hash `given` names among `known`: a whole hash is itself (known or not, as
/// a deny rule may name a binary never seen); a prefix must match exactly one.
pub fn resolve<'a>(
    given: &str,
    known: impl IntoIterator<Item = &'a Known>,
) -> Result<String, Unresolved> {
    let lower = given.trim().to_ascii_lowercase();
    let hex = lower.strip_prefix("sha256:").unwrap_or(&lower);
    let bad = |why: String| {
        Unresolved::Bad(format!("{given:?} {why}; give the whole hash or at least its first {MIN_PREFIX} hex digits (with or without sha256:), as `keychain-auth list-pending` and `keychain-auth list` show them"))
    };
    if hex.is_empty() {
        return Err(bad("has no hex digits".into()));
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "is not a hash: only hex digits may follow sha256:".into()
        ));
    }
    if hex.len() > FULL {
        return Err(bad(format!(
            "is longer than a SHA-256 hash ({} hex digits, not {FULL})",
            hex.len()
        )));
    }
    if hex.len() < MIN_PREFIX {
        return Err(bad(format!(
            "is too short to name a binary ({} hex digits, fewer than {MIN_PREFIX})",
            hex.len()
        )));
    }
    let full = format!("sha256:{hex}");
    if hex.len() == FULL {
        return Ok(full);
    }
    let mut matches: Vec<&Known> = Vec::new();
    for k in known {
        if k.hash.starts_with(&full) && !matches.iter().any(|m| m.hash == k.hash) {
            matches.push(k);
        }
    }
    match matches.as_slice() {
        [one] => Ok(one.hash.clone()),
        [] => Err(Unresolved::NotFound(format!(
            "no pending, approved or denied binary has a hash starting with {full}; see `keychain-auth list-pending` and `keychain-auth list`"
        ))),
        many => Err(Unresolved::Bad(format!(
            "{full} is the start of {} hashes; give more of its digits to say which:\n{}",
            many.len(),
            many.iter()
                .map(|m| format!("  {}  {}", m.hash, m.name))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

impl Daemon {
    /// Every hash the daemon knows: pending entries (the script a pending interpreter
    /// runs, else the path), approved tools (label and path) and deny rules (path).
    fn known_hashes(&self) -> Vec<Known> {
        let mut out: Vec<Known> = self
            .state
            .pending()
            .entries()
            .into_iter()
            .map(|e| Known {
                name: format!(
                    "{} (pending)",
                    e.script.as_ref().map_or(&e.path, |s| &s.path)
                ),
                hash: e.hash,
            })
            .collect();
        let config = self.state.config();
        out.extend(config.tools.iter().map(|t| Known {
            hash: t.hash.clone(),
            name: format!("{} ({}, approved)", t.label, t.path),
        }));
        out.extend(config.denied.iter().map(|d| Known {
            hash: d.hash.clone(),
            name: format!("{} (denied)", d.path),
        }));
        out
    }

    /// The whole hash a person's `given` names ([`resolve`]).
    pub(super) fn full_hash(&self, given: &str) -> Result<String, Unresolved> {
        resolve(given, &self.known_hashes())
    }

    /// An admin request with the hash a person gave (maybe a prefix) made whole: in
    /// `approve`, `deny`, `undeny`, and in `revoke` unless it names a tool exactly (by
    /// label or hash) or is not a hash at all (then it is a label).
    pub(super) fn full_hashes(&self, mut req: Request) -> Result<Request, Unresolved> {
        match &mut req {
            Request::Approve { hash, .. } | Request::Deny { hash } | Request::Undeny { hash } => {
                *hash = self.full_hash(hash)?;
            }
            Request::Revoke { tool } => {
                let exact = self
                    .state
                    .config()
                    .tools
                    .iter()
                    .any(|t| t.label == *tool || t.hash == *tool);
                if !exact {
                    match resolve(tool, &self.known_hashes()) {
                        Ok(h) => *tool = h,
                        // Not a hash: a label, refused later if none has it.
                        Err(Unresolved::Bad(_)) if !looks_like_hash(tool) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            _ => {}
        }
        Ok(req)
    }
}

/// Whether a string is meant as a hash: `sha256:` and anything, or hex digits only.
fn looks_like_hash(s: &str) -> bool {
    let lower = s.trim().to_ascii_lowercase();
    lower.starts_with("sha256:")
        || (!lower.is_empty()
            && lower.bytes().all(|b| b.is_ascii_hexdigit())
            && lower.len() >= MIN_PREFIX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn known(hashes: &[(&str, &str)]) -> Vec<Known> {
        hashes
            .iter()
            .map(|(h, n)| Known {
                hash: h.to_string(),
                name: n.to_string(),
            })
            .collect()
    }

    fn full(prefix: &str, fill: char) -> String {
        format!(
            "sha256:{prefix}{}",
            fill.to_string().repeat(64 - prefix.len())
        )
    }

    #[test]
    fn a_unique_prefix_names_its_hash_in_any_case_with_or_without_sha256() {
        let a = full("0123456789ab", 'c');
        let b = full("0123456789ff", 'd');
        let k = known(&[(&a, "tool-a"), (&b, "tool-b")]);
        for given in [
            "0123456789ab",
            "sha256:0123456789ab",
            "SHA256:0123456789AB",
            "0123456789aBcc",
            "  sha256:0123456789ab\n",
        ] {
            assert_eq!(resolve(given, &k), Ok(a.clone()), "{given}");
        }
        assert_eq!(resolve(&b, &k), Ok(b.clone()));
        assert_eq!(resolve(&b.to_ascii_uppercase(), &k), Ok(b.clone()));
        // A whole hash is itself even when unknown (a deny of a binary never seen).
        let unknown = full("", 'e');
        assert_eq!(resolve(&unknown, &k), Ok(unknown.clone()));
        assert_eq!(resolve(&unknown["sha256:".len()..], &k), Ok(unknown));
        // The same hash known twice (pending and denied) is one match.
        let twice = known(&[(&a, "pending"), (&a, "denied")]);
        assert_eq!(resolve("0123456789ab", &twice), Ok(a));
    }

    #[test]
    fn an_ambiguous_prefix_lists_every_match() {
        let a = full("0123456789ab", 'c');
        let b = full("0123456789ab", 'd');
        let k = known(&[(&a, "tool-a"), (&b, "/x/tool-b")]);
        let Err(Unresolved::Bad(why)) = resolve("sha256:0123456789ab", &k) else {
            panic!("ambiguous prefix resolved");
        };
        assert!(why.contains(&a) && why.contains("tool-a"), "{why}");
        assert!(why.contains(&b) && why.contains("/x/tool-b"), "{why}");
        assert_eq!(resolve("0123456789abc", &k), Ok(a));
    }

    #[test]
    fn hostile_and_malformed_references_are_refused() {
        let a = full("0123456789ab", 'c');
        let k = known(&[(&a, "tool-a")]);
        for given in [
            "",
            "sha256:",
            "SHA256:",
            "   ",
            "0123456789a",
            "sha256:0123",
            "0123456789ag",
            "sha256:0123456789ab!",
            "sha256:-0123456789ab",
            "0x0123456789ab",
            "sha256:０１２３４５６７８９ａｂ",
            "sha256:0123456789abé",
            "é0123456789ab",
            "sha256:sha256:0123456789ab",
            "0123456789ab\0",
            "sha512:0123456789ab",
            "../../0123456789ab",
        ] {
            assert!(
                matches!(resolve(given, &k), Err(Unresolved::Bad(_))),
                "{given:?}"
            );
        }
        let long = format!("{}0", &a);
        let Err(Unresolved::Bad(why)) = resolve(&long, &k) else {
            panic!("65 digits accepted");
        };
        assert!(why.contains("longer"), "{why}");
        let Err(Unresolved::Bad(why)) = resolve("0123456789a", &k) else {
            panic!("11 digits accepted");
        };
        assert!(why.contains("too short") && why.contains("12"), "{why}");
    }

    #[test]
    fn a_prefix_nothing_starts_with_is_not_found() {
        let k = known(&[(&full("0123456789ab", 'c'), "tool-a")]);
        let r = resolve("ffffffffffff", &k);
        assert!(
            matches!(&r, Err(Unresolved::NotFound(m)) if m.contains("sha256:ffffffffffff") && m.contains("list-pending")),
            "{r:?}"
        );
        assert!(matches!(
            resolve("ffffffffffff", &[]),
            Err(Unresolved::NotFound(_))
        ));
    }

    #[test]
    fn only_hash_like_strings_are_taken_for_hashes_in_revoke() {
        assert!(looks_like_hash("sha256:"));
        assert!(looks_like_hash("0123456789ab"));
        assert!(!looks_like_hash("deploy-bot"));
        assert!(!looks_like_hash("cafe"));
        assert!(!looks_like_hash(""));
    }
}
