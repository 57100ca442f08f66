//! The tray menu as data: a pure function ([`build`], in `layout.rs`) from what the daemon
//! knows to the items the tray shows, and the ids those items send back. This file holds
//! the model: [`MenuState`], [`Item`], [`Action`] and its ids, label text, scope toggling.
//! The hosting app turns [`Item`]s into native menu entries and [`Action::parse`]s the ids
//! of clicks; nothing here touches a platform API. Linux trays give no click events on the
//! icon, so everything is here.

use crate::audit::Record;
use keychain_auth_sdk::protocol::{Lasts, PendingEntry, Tool};

mod layout;
pub use layout::build;

/// Pending binaries listed before "more in the window".
pub const MAX_PENDING: usize = 10;
/// Audit events listed under "Recent activity".
pub const MAX_RECENT: usize = 10;
/// Secret names listed per tool before "more in the window".
pub const MAX_NAMES: usize = 25;

/// What the menu shows.
#[derive(Debug, Clone, Copy)]
pub struct MenuState<'a> {
    /// Whether every secret request is being refused.
    pub paused: bool,
    /// Binaries waiting for a decision (oldest first, as in pending.json).
    pub pending: &'a [PendingEntry],
    /// Approved tools.
    pub tools: &'a [Tool],
    /// Every secret name in the store (sorted).
    pub names: &'a [String],
    /// The newest audit records, oldest first.
    pub recent: &'a [Record],
    /// What the machine's ptrace policy lets a program do to an approved tool, when it
    /// lets it write its memory ([`crate::ptrace::Scope::warning`]); `None` when safe.
    pub ptrace_warning: Option<&'a str>,
    /// Why widening decisions are not proven, when they are not
    /// ([`crate::presence::Presence::warning`]).
    pub presence_warning: Option<&'a str>,
}

/// One menu entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A clickable entry.
    Action {
        /// What a click sends back ([`Action::id`]).
        id: String,
        /// Text (mnemonic-safe: `&` is doubled).
        label: String,
    },
    /// A checkable entry; `enabled: false` shows it greyed out.
    Check {
        /// What a click sends back.
        id: String,
        /// Text.
        label: String,
        /// Whether it is checked.
        checked: bool,
        /// Whether it can be clicked.
        enabled: bool,
    },
    /// A nested menu.
    Submenu {
        /// Text.
        label: String,
        /// Its entries.
        items: Vec<Item>,
    },
    /// Greyed-out text.
    Text(String),
    /// A line.
    Separator,
}

/// What a click asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Approve a pending binary with what it asked for, for this long.
    Approve(String, Lasts),
    /// Deny a pending binary.
    Deny(String),
    /// Re-pin the approved tool a pending binary is an update of (`upgrade`).
    KeepAccess(String),
    /// Add or remove one exact secret name from a tool's scopes.
    ToggleScope {
        /// The tool's hash.
        hash: String,
        /// The secret name.
        name: String,
    },
    /// Show the window.
    Open,
    /// Pause (`true`) or resume.
    Pause(bool),
    /// Quit the app (and the daemon it hosts).
    Quit,
}

impl Action {
    /// The menu id carrying this action.
    pub fn id(&self) -> String {
        match self {
            Action::Approve(h, Lasts::Seconds(3600)) => format!("approve-hour:{h}"),
            Action::Approve(h, Lasts::UntilLogout) => format!("approve-logout:{h}"),
            Action::Approve(h, _) => format!("approve:{h}"),
            Action::Deny(h) => format!("deny:{h}"),
            Action::KeepAccess(h) => format!("keep:{h}"),
            Action::ToggleScope { hash, name } => format!("scope:{hash}:{name}"),
            Action::Open => "open".into(),
            Action::Pause(true) => "pause".into(),
            Action::Pause(false) => "resume".into(),
            Action::Quit => "quit".into(),
        }
    }

    /// The action a menu id stands for; `None` for ids this module did not make.
    pub fn parse(id: &str) -> Option<Action> {
        let hash_ok = |h: &str| keychain_auth_sdk::protocol::validate_hash(h).is_ok();
        match id {
            "open" => return Some(Action::Open),
            "pause" => return Some(Action::Pause(true)),
            "resume" => return Some(Action::Pause(false)),
            "quit" => return Some(Action::Quit),
            _ => {}
        }
        for (prefix, lasts) in [
            ("approve:", Lasts::Always),
            ("approve-hour:", Lasts::Seconds(3600)),
            ("approve-logout:", Lasts::UntilLogout),
        ] {
            if let Some(h) = id.strip_prefix(prefix) {
                return hash_ok(h).then(|| Action::Approve(h.into(), lasts));
            }
        }
        if let Some(h) = id.strip_prefix("deny:") {
            return hash_ok(h).then(|| Action::Deny(h.into()));
        }
        if let Some(h) = id.strip_prefix("keep:") {
            return hash_ok(h).then(|| Action::KeepAccess(h.into()));
        }
        let rest = id.strip_prefix("scope:")?;
        // "sha256:" + 64 hex digits, then ':' and the name (which may hold ':').
        let (hash, name) = (rest.get(..71)?, rest.get(71..)?.strip_prefix(':')?);
        (hash_ok(hash) && !name.is_empty()).then(|| Action::ToggleScope {
            hash: hash.into(),
            name: name.into(),
        })
    }
}

/// A tool's scopes after the person clicked `name`: the scope that is exactly that name
/// is removed, else it is added, as a literal pattern (a name such as `a/*` never
/// becomes the pattern `a/*`). Patterns are left alone (edit them in the window).
pub fn toggled_scopes(scopes: &[String], name: &str) -> Vec<String> {
    let exact = crate::scope::literal(name);
    if scopes.contains(&exact) {
        scopes.iter().filter(|s| **s != exact).cloned().collect()
    } else {
        let mut v = scopes.to_vec();
        v.push(exact);
        v
    }
}

/// Text safe to show as a menu label: `&` would mark a mnemonic, so it is doubled;
/// control characters become spaces; long text is cut.
pub fn label(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 80 {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&&"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn every_id_round_trips_and_foreign_ids_are_ignored() {
        for a in [
            Action::Approve(hash('a'), Lasts::Always),
            Action::Approve(hash('a'), Lasts::Seconds(3600)),
            Action::Approve(hash('a'), Lasts::UntilLogout),
            Action::Deny(hash('b')),
            Action::KeepAccess(hash('d')),
            Action::ToggleScope {
                hash: hash('c'),
                name: "odd:name/with:colons".into(),
            },
            Action::Open,
            Action::Pause(true),
            Action::Pause(false),
            Action::Quit,
        ] {
            assert_eq!(Action::parse(&a.id()), Some(a));
        }
        for bad in [
            "",
            "approve:",
            "approve:sha256:zz",
            "deny:md5:00",
            "keep:",
            "keep:sha256:00",
            "scope:",
            &format!("scope:{}", hash('a')),
            &format!("scope:{}:", hash('a')),
            &format!("scope:{}x", hash('a')),
            "tray-icon",
        ] {
            assert_eq!(Action::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn toggling_adds_or_removes_only_the_exact_name() {
        let s = vec!["a".to_string(), "b/*".to_string()];
        assert_eq!(toggled_scopes(&s, "a"), vec!["b/*".to_string()]);
        assert_eq!(
            toggled_scopes(&s, "c"),
            vec!["a".to_string(), "b/*".to_string(), "c".to_string()]
        );
        // A name that looks like a pattern is ticked as that one name, and unticked again.
        let ticked = toggled_scopes(&s, "b/*");
        assert_eq!(ticked[2], "b/\\*");
        assert!(!crate::scope::any_matches(&ticked[2..], "b/other"));
        assert_eq!(toggled_scopes(&ticked, "b/*"), s);
    }

    #[test]
    fn labels_cannot_make_mnemonics_or_break_lines() {
        assert_eq!(label("a&b\nc"), "a&&b c");
        assert_eq!(label(&"x".repeat(100)).chars().count(), 81);
    }
}
