//! What an `approve` sets and what it changed: the scopes it asks for (replaced with
//! `--scope`, edited with `--add-scope`/`--remove-scope`, else kept or what the binary
//! asked for), and the lines a person reads about a tool that was approved (or denied)
//! already (`scopes: git/* → git/*, api/*`, `access: read → read-write`).

use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, PendingEntry, Response, Tool};

/// The scope part of an approve, as asked.
#[derive(Debug, Default)]
pub(super) struct ScopeEdit {
    /// `--scope`: the whole new set.
    pub(super) set: Vec<String>,
    /// `--add-scope`: patterns added, the others kept.
    pub(super) add: Vec<String>,
    /// `--remove-scope`: patterns taken off.
    pub(super) remove: Vec<String>,
}

/// The scopes an approve of `hash` sets. With `--add-scope`/`--remove-scope`: the
/// approved tool's scopes edited (refused for a tool not approved, when mixed with
/// `--scope`, for an invalid pattern, a scope it does not have, or none left). Else
/// `--scope`'s, or what an approved tool had, or what its pending entry asked for.
pub(super) fn approved_scopes(
    hash: &str,
    existing: Option<&Tool>,
    entry: Option<&PendingEntry>,
    denied: bool,
    edit: ScopeEdit,
) -> Result<Vec<String>, Refusal> {
    let bad = |m: String| Err(Refusal(ErrorCode::BadRequest, m));
    if edit.add.is_empty() && edit.remove.is_empty() {
        if !edit.set.is_empty() {
            return Ok(edit.set);
        }
        let kept = existing
            .map(|t| t.scopes.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| entry.map(crate::pending::grants))
            .unwrap_or_default();
        if kept.is_empty() && denied {
            return bad(format!(
                "{hash} is denied and is not asking for anything now, so there is no scope to grant it by default: approve it with `keychain-auth approve {hash} --scope 'PATTERN'`, or lift the deny with `keychain-auth undeny {hash}` (it is then asked about when it next asks)"
            ));
        }
        return Ok(kept);
    }
    if !edit.set.is_empty() {
        return bad(
            "--scope replaces a tool's scopes and --add-scope/--remove-scope edit them: use one or the other".into(),
        );
    }
    let Some(tool) = existing else {
        return bad(format!(
            "{hash} is not approved, so it has no scopes to edit: --add-scope and --remove-scope change an approved tool's scopes. Approve it first with `keychain-auth approve {hash} --scope 'PATTERN'`"
        ));
    };
    for p in &edit.add {
        if let Err(e) = crate::scope::validate(p) {
            return bad(format!(
                "--add-scope {p:?} is not a scope pattern: {e}. Nothing was changed"
            ));
        }
    }
    let mut scopes = tool.scopes.clone();
    let mut removed: Vec<&String> = Vec::new();
    for p in &edit.remove {
        match scopes.iter().position(|s| s == p) {
            Some(i) => {
                scopes.remove(i);
                removed.push(p);
            }
            // Named twice.
            None if removed.contains(&p) => {}
            None => {
                return bad(format!(
                    "{} has no scope {p:?}; its scopes are: {}. Remove one of those exactly as written. Nothing was changed",
                    tool.label,
                    quoted_list(&tool.scopes)
                ))
            }
        }
    }
    for p in edit.add {
        if !scopes.contains(&p) {
            scopes.push(p);
        }
    }
    if scopes.is_empty() {
        return bad(format!(
            "removing {} would leave {} no scope at all: to stop it reading anything, revoke it with `keychain-auth revoke {}`. Nothing was changed",
            quoted_list(&edit.remove),
            tool.label,
            tool.hash
        ));
    }
    Ok(scopes)
}

/// `'a', 'b'`: patterns as a person would type them back.
fn quoted_list(patterns: &[String]) -> String {
    patterns
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How long an approval lasts, in words.
fn lasts(t: &Tool) -> String {
    match (&t.expires_at, t.until_logout) {
        (Some(at), _) => format!("until {at}"),
        (None, true) => "until logout".into(),
        (None, false) => "always".into(),
    }
}

/// What approving `new` changed of `had` (the tool as it was approved, if it was), one
/// line each; `unchanged: …` when it was approved exactly so. Empty for a new approval.
pub(super) fn changes(had: Option<&Tool>, new: &Tool, lifts_deny: bool) -> Vec<String> {
    let mut out = Vec::new();
    if lifts_deny {
        out.push("deny lifted".to_string());
    }
    let Some(old) = had else { return out };
    if old.scopes != new.scopes {
        out.push(format!(
            "scopes: {} → {}",
            old.scopes.join(", "),
            new.scopes.join(", ")
        ));
    }
    if old.access != new.access {
        out.push(format!("access: {} → {}", old.access, new.access));
    }
    if old.label != new.label {
        out.push(format!("label: {} → {}", old.label, new.label));
    }
    if lasts(old) != lasts(new) {
        out.push(format!("lasts: {} → {}", lasts(old), lasts(new)));
    }
    if old.only_through != new.only_through {
        let word = |d: Option<keychain_auth_sdk::protocol::Deputy>| {
            d.map_or("any way".to_string(), |d| format!("only through {d}"))
        };
        out.push(format!(
            "served: {} → {}",
            word(old.only_through),
            word(new.only_through)
        ));
    }
    if old.unbound_get != new.unbound_get {
        out.push(format!(
            "allow-unbound-get: {} → {}",
            old.unbound_get, new.unbound_get
        ));
    }
    for l in &new.libraries {
        if !old.libraries.iter().any(|o| o.hash == l.hash) {
            out.push(format!(
                "pinned: {} ({})",
                l.path,
                crate::naming::short_hash(&l.hash)
            ));
        }
    }
    if out.is_empty() {
        out.push("unchanged: it was already approved exactly so".into());
    }
    out
}

/// An approve's answer, with a note on its scopes line when `--scope` replaced scopes
/// the tool had and did not keep (`--add-scope` keeps them).
pub(super) fn note_replaced(mut r: Response, replaced: bool, had: Option<&Tool>) -> Response {
    let Response::Tool { tool, changes, .. } = &mut r else {
        return r;
    };
    let dropped = had.is_some_and(|old| old.scopes.iter().any(|s| !tool.scopes.contains(s)));
    if replaced && dropped {
        if let Some(line) = changes.iter_mut().find(|l| l.starts_with("scopes: ")) {
            line.push_str(" (replaced by --scope; --add-scope keeps the others)");
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use keychain_auth_sdk::protocol::Access;

    fn tool(scopes: &[&str]) -> Tool {
        crate::fixtures::tool(
            &format!("sha256:{}", "a".repeat(64)),
            "t",
            "/bin/t",
            scopes,
            Access::Read,
        )
    }

    fn edit(add: &[&str], remove: &[&str]) -> ScopeEdit {
        ScopeEdit {
            set: Vec::new(),
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn message(r: Result<Vec<String>, Refusal>) -> String {
        match r {
            Err(Refusal(code, message)) => {
                assert_eq!(code, ErrorCode::BadRequest);
                message
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn adding_and_removing_keep_the_other_scopes_in_order() {
        let t = tool(&["git/*", "api/a"]);
        let got = approved_scopes(
            "h",
            Some(&t),
            None,
            false,
            edit(&["x/*", "git/*"], &["api/a"]),
        );
        assert_eq!(got.expect("edited"), vec!["git/*", "x/*"]);
    }

    #[test]
    fn edits_are_refused_with_what_to_do() {
        let t = tool(&["git/*", "api/a"]);
        let m = message(approved_scopes("h", None, None, false, edit(&["x"], &[])));
        assert!(m.contains("not approved") && m.contains("--scope"), "{m}");
        let m = message(approved_scopes(
            "h",
            Some(&t),
            None,
            false,
            edit(&[], &["nope"]),
        ));
        assert!(m.contains("'git/*', 'api/a'"), "names its scopes: {m}");
        let m = message(approved_scopes(
            "h",
            Some(&t),
            None,
            false,
            edit(&[], &["git/*", "api/a"]),
        ));
        assert!(m.contains("keychain-auth revoke"), "{m}");
        let m = message(approved_scopes(
            "h",
            Some(&t),
            None,
            false,
            edit(&["a\u{7}"], &[]),
        ));
        assert!(m.contains("--add-scope"), "{m}");
        let mixed = ScopeEdit {
            set: vec!["y".into()],
            ..edit(&["x"], &[])
        };
        let m = message(approved_scopes("h", Some(&t), None, false, mixed));
        assert!(m.contains("one or the other"), "{m}");
    }

    #[test]
    fn changes_name_what_differs() {
        let old = tool(&["git/*"]);
        let mut new = tool(&["git/*", "api/*"]);
        new.access = Access::ReadWrite;
        assert_eq!(
            changes(Some(&old), &new, false),
            vec!["scopes: git/* → git/*, api/*", "access: read → read-write"]
        );
        assert_eq!(
            changes(Some(&old), &old, false),
            vec!["unchanged: it was already approved exactly so"]
        );
        assert_eq!(changes(None, &new, true), vec!["deny lifted"]);
        assert!(changes(None, &new, false).is_empty());
    }
}
