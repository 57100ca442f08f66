//! The order and content of the tray menu: [`build`] lays out the header, the binaries
//! waiting for approval, recent activity and approved tools from a [`MenuState`]. The
//! types it builds, and the ids of clicks, are the model in `mod.rs`.

use super::{label, Action, Item, MenuState, MAX_NAMES, MAX_PENDING, MAX_RECENT};
use crate::audit::Record;
use crate::desktop::prompt_text::{approvable, base_name, program_name, program_path, short_hash};
use keychain_auth_sdk::protocol::{Lasts, Tool};

/// "11-27 10:42" from an RFC 3339 time.
fn short_time(t: &str) -> &str {
    t.get(5..16).unwrap_or(t)
}

fn recent_line(r: &Record) -> String {
    let e = &r.entry;
    let who = e.path.as_deref().map(base_name).unwrap_or("");
    let what = match e.event.as_str() {
        "access" => format!(
            "{} {} {}",
            e.decision,
            e.op.as_deref().unwrap_or(""),
            e.names.join(", ")
        ),
        ev => format!("{ev}: {}", e.reason),
    };
    let who = if who.is_empty() {
        String::new()
    } else {
        format!(" · {who}")
    };
    label(&format!(
        "{} {}{who}",
        short_time(&r.time).replace('T', " "),
        what.split_whitespace().collect::<Vec<_>>().join(" ")
    ))
}

/// The whole tray menu.
pub fn build(s: &MenuState<'_>) -> Vec<Item> {
    let mut items = Vec::new();
    items.push(Item::Text(if s.paused {
        "keychain-auth is paused: every request is refused".into()
    } else {
        format!(
            "keychain-auth: {} approved, {} waiting",
            s.tools.len(),
            s.pending.len()
        )
    }));
    if let Some(w) = s.ptrace_warning {
        // What to do about it is in the window and `keychain-auth status`.
        items.push(Item::Text(label(&format!("Warning: {w}"))));
    }
    if let Some(w) = s.presence_warning {
        items.push(Item::Text(label(&format!("Warning: {w}"))));
    }
    items.push(Item::Separator);

    // Newest first: the binary that just asked is on top.
    if s.pending.is_empty() {
        items.push(Item::Text("Nothing is waiting for approval".into()));
    } else {
        items.push(Item::Text(format!(
            "Waiting for approval ({})",
            s.pending.len()
        )));
        for p in s.pending.iter().rev().take(MAX_PENDING) {
            let grants = crate::pending::grants(p).join(", ");
            let mut sub = vec![
                Item::Text(label(&format!(
                    "{} {}",
                    program_path(p),
                    short_hash(&p.hash)
                ))),
                Item::Text(label(&format!("asked for: {}", p.names.join(", ")))),
            ];
            if let Some(chain) = &p.chain {
                sub.push(Item::Text(label(&format!("asked via: {chain}"))));
            }
            if p.terminal.is_some() {
                sub.push(Item::Text(
                    "a terminal session: approving it covers every program started from one".into(),
                ));
            }
            if let Some(facts) = crate::peer::signing::Facts::from_entry(p) {
                sub.push(Item::Text(label(&facts.describe())));
            }
            if let Some(u) = &p.update_of {
                sub.push(Item::Text(label(&format!(
                    "an update of {} ({} → {})",
                    u.label,
                    short_hash(&u.hash),
                    short_hash(&p.hash)
                ))));
                sub.push(Item::Action {
                    id: Action::KeepAccess(p.hash.clone()).id(),
                    label: label(&format!("Keep access (re-pin {})", u.label)),
                });
            } else if !approvable(p) {
                sub.push(Item::Text(
                    "a script interpreter: it cannot be approved as a whole".into(),
                ));
            } else {
                if p.script.is_some() {
                    sub.push(Item::Text(
                        "a script: its identity is advisory (see the window)".into(),
                    ));
                }
                sub.push(Item::Action {
                    id: Action::Approve(p.hash.clone(), Lasts::Always).id(),
                    label: label(&format!("Approve (grants {grants})")),
                });
                sub.push(Item::Action {
                    id: Action::Approve(p.hash.clone(), Lasts::Seconds(3600)).id(),
                    label: "For 1 hour".into(),
                });
                sub.push(Item::Action {
                    id: Action::Approve(p.hash.clone(), Lasts::UntilLogout).id(),
                    label: "Until logout".into(),
                });
            }
            sub.push(Item::Action {
                id: Action::Deny(p.hash.clone()).id(),
                label: "Deny".into(),
            });
            items.push(Item::Submenu {
                label: label(&format!("{} ({})", program_name(p), short_hash(&p.hash))),
                items: sub,
            });
        }
        if s.pending.len() > MAX_PENDING {
            items.push(Item::Text(format!(
                "… {} more in the window",
                s.pending.len() - MAX_PENDING
            )));
        }
    }
    items.push(Item::Separator);

    let recent: Vec<Item> = s
        .recent
        .iter()
        .rev()
        .take(MAX_RECENT)
        .map(|r| Item::Text(recent_line(r)))
        .collect();
    items.push(Item::Submenu {
        label: "Recent activity".into(),
        items: if recent.is_empty() {
            vec![Item::Text("Nothing yet".into())]
        } else {
            recent
        },
    });

    let tools: Vec<Item> = s.tools.iter().map(|t| tool_menu(t, s.names)).collect();
    items.push(Item::Submenu {
        label: format!("Approved tools ({})", s.tools.len()),
        items: if tools.is_empty() {
            vec![Item::Text("No tool is approved yet".into())]
        } else {
            tools
        },
    });
    items.push(Item::Separator);
    items.push(Item::Action {
        id: Action::Open.id(),
        label: "Open keychain-auth…".into(),
    });
    items.push(Item::Check {
        id: Action::Pause(!s.paused).id(),
        label: "Pause (deny all new requests)".into(),
        checked: s.paused,
        enabled: true,
    });
    items.push(Item::Action {
        id: Action::Quit.id(),
        label: "Quit".into(),
    });
    items
}

/// One approved tool: a checkable entry per secret name in the store. A name its exact
/// scope grants can be unchecked; one granted only by a pattern is shown checked and
/// greyed out (patterns are edited in the window).
fn tool_menu(t: &Tool, names: &[String]) -> Item {
    let lasts = match (&t.expires_at, t.until_logout) {
        (Some(at), _) => format!("until {at}"),
        (None, true) => "until logout".into(),
        (None, false) => "always".into(),
    };
    let mut items = vec![Item::Text(label(&format!(
        "{} {} · {} · {lasts}",
        t.path,
        short_hash(&t.hash),
        t.access
    )))];
    let patterns: Vec<&String> = t
        .scopes
        .iter()
        .filter(|s| !crate::scope::is_literal(s))
        .collect();
    if !patterns.is_empty() {
        items.push(Item::Text(label(&format!(
            "patterns: {}",
            patterns
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))));
    }
    if names.is_empty() {
        items.push(Item::Text("No secret is stored yet".into()));
    }
    for n in names.iter().take(MAX_NAMES) {
        let literal = crate::scope::literal(n);
        let exact = t.scopes.contains(&literal);
        let by_pattern = t
            .scopes
            .iter()
            .any(|s| *s != literal && crate::scope::matches(s, n));
        items.push(Item::Check {
            id: Action::ToggleScope {
                hash: t.hash.clone(),
                name: n.clone(),
            }
            .id(),
            label: label(&if by_pattern && !exact {
                format!("{n} (by a pattern)")
            } else {
                n.clone()
            }),
            checked: exact || by_pattern,
            enabled: exact || !by_pattern,
        });
    }
    if names.len() > MAX_NAMES {
        items.push(Item::Text(format!(
            "… {} more names in the window",
            names.len() - MAX_NAMES
        )));
    }
    Item::Submenu {
        label: label(&t.label),
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Entry;
    use keychain_auth_sdk::protocol::{Access, PendingEntry};

    fn hash(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn pending(c: char, path: &str) -> PendingEntry {
        PendingEntry {
            hash: hash(c),
            path: path.into(),
            first_seen: String::new(),
            last_seen: String::new(),
            attempts: 1,
            names: vec!["git/https/h/alice".into()],
            interpreter: false,
            requested_scopes: vec![],
            requested_access: None,
            script: None,
            macos: None,
            libraries: Vec::new(),
            chain: None,
            terminal: None,
            update_of: None,
        }
    }

    fn tool(c: char, scopes: &[&str]) -> Tool {
        crate::fixtures::tool(&hash(c), "gh", "/usr/bin/gh", scopes, Access::Read)
    }

    fn find<'a>(items: &'a [Item], label_start: &str) -> &'a Item {
        items
            .iter()
            .find(|i| match i {
                Item::Submenu { label, .. } | Item::Action { label, .. } => {
                    label.starts_with(label_start)
                }
                Item::Check { label, .. } => label.starts_with(label_start),
                Item::Text(t) => t.starts_with(label_start),
                Item::Separator => false,
            })
            .unwrap_or_else(|| panic!("no item {label_start:?} in {items:#?}"))
    }

    fn sub<'a>(items: &'a [Item], label_start: &str) -> &'a [Item] {
        match find(items, label_start) {
            Item::Submenu { items, .. } => items,
            other => panic!("{other:?} is not a submenu"),
        }
    }

    fn empty() -> MenuState<'static> {
        MenuState {
            paused: false,
            pending: &[],
            tools: &[],
            names: &[],
            recent: &[],
            ptrace_warning: None,
            presence_warning: None,
        }
    }

    #[test]
    fn an_empty_daemon_says_so_and_always_offers_open_pause_quit() {
        let items = build(&empty());
        find(&items, "keychain-auth: 0 approved, 0 waiting");
        find(&items, "Nothing is waiting");
        assert_eq!(
            sub(&items, "Recent activity"),
            &[Item::Text("Nothing yet".into())]
        );
        find(sub(&items, "Approved tools (0)"), "No tool");
        assert!(matches!(find(&items, "Open"), Item::Action { id, .. } if id == "open"));
        assert!(
            matches!(find(&items, "Pause"), Item::Check { id, checked: false, .. } if id == "pause")
        );
        assert!(matches!(find(&items, "Quit"), Item::Action { id, .. } if id == "quit"));
    }

    #[test]
    fn an_unsafe_ptrace_policy_is_shown_under_the_header() {
        let unsafe_one = crate::ptrace::Scope::Yama(1)
            .warning()
            .expect("1 is unsafe");
        let items = build(&MenuState {
            ptrace_warning: Some(&unsafe_one),
            ..empty()
        });
        assert!(matches!(
            find(&items, "Warning: ptrace_scope 1"),
            Item::Text(t) if t.contains("a parent can write") && !t.ends_with('…')
        ));
        let items = build(&empty());
        assert!(!items
            .iter()
            .any(|i| matches!(i, Item::Text(t) if t.starts_with("Warning"))));
        let items = build(&MenuState {
            presence_warning: Some("presence is off in config.json"),
            ..empty()
        });
        find(&items, "Warning: presence is off");
    }

    #[test]
    fn paused_is_shown_and_the_item_resumes() {
        let items = build(&MenuState {
            paused: true,
            ..empty()
        });
        find(&items, "keychain-auth is paused");
        assert!(
            matches!(find(&items, "Pause"), Item::Check { id, checked: true, .. } if id == "resume")
        );
    }

    #[test]
    fn pending_binaries_newest_first_with_approve_and_deny_and_a_cap() {
        let mut p: Vec<PendingEntry> = "abcdefghijkl"
            .chars()
            .map(|c| pending(c, &format!("/opt/{c}/tool-{c}")))
            .collect();
        p[11].requested_scopes = vec!["git/*".into()];
        let items = build(&MenuState {
            pending: &p,
            ..empty()
        });
        find(&items, "Waiting for approval (12)");
        let newest = sub(&items, "tool-l");
        assert!(newest.contains(&Item::Action {
            id: Action::Approve(hash('l'), Lasts::Always).id(),
            label: "Approve (grants git/*)".into()
        }));
        for (lasts, label) in [
            (Lasts::Seconds(3600), "For 1 hour"),
            (Lasts::UntilLogout, "Until logout"),
        ] {
            assert!(newest.contains(&Item::Action {
                id: Action::Approve(hash('l'), lasts).id(),
                label: label.into()
            }));
        }
        assert!(newest.contains(&Item::Action {
            id: Action::Deny(hash('l')).id(),
            label: "Deny".into()
        }));
        find(sub(&items, "tool-k"), "Approve (grants git/https/h/alice)");
        find(&items, "… 2 more in the window");
        let shown = items
            .iter()
            .filter(|i| matches!(i, Item::Submenu { label, .. } if label.starts_with("tool-")))
            .count();
        assert_eq!(shown, MAX_PENDING);
    }

    #[test]
    fn a_pending_binary_shows_what_its_signature_says() {
        let mut p = pending('a', "/usr/local/bin/tool");
        p.macos = Some(serde_json::json!({"signed": false, "flags": 0}));
        let items = build(&MenuState {
            pending: std::slice::from_ref(&p),
            ..empty()
        });
        find(
            sub(&items, "tool"),
            "unsigned: identified by its SHA-256 only",
        );
    }

    #[test]
    fn an_interpreter_has_no_approve_and_a_script_is_marked() {
        let mut interp = pending('a', "/usr/bin/python3");
        interp.interpreter = true;
        let items = build(&MenuState {
            pending: std::slice::from_ref(&interp),
            ..empty()
        });
        let s = sub(&items, "python3");
        assert!(!s
            .iter()
            .any(|i| matches!(i, Item::Action { label, .. } if label.starts_with("Approve"))));
        find(s, "a script interpreter");
    }

    #[test]
    fn tools_get_a_check_per_name_exact_toggles_pattern_is_greyed() {
        let t = [tool('a', &["github/token", "aws/*"])];
        let names: Vec<String> = ["aws/key", "github/token", "npm/token"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let items = build(&MenuState {
            tools: &t,
            names: &names,
            ..empty()
        });
        let gh = sub(sub(&items, "Approved tools (1)"), "gh");
        let says = |items: &[Item], what: &str| {
            items
                .iter()
                .any(|i| matches!(i, Item::Text(t) if t.ends_with(what)))
        };
        assert!(says(gh, "· read · always"), "{gh:?}");
        let mut timed = t.clone();
        timed[0].expires_at = Some("2026-12-01T11:00:00Z".into());
        let timed_items = build(&MenuState {
            tools: &timed,
            ..empty()
        });
        assert!(says(
            sub(sub(&timed_items, "Approved tools (1)"), "gh"),
            "· until 2026-12-01T11:00:00Z"
        ));
        let check = |n: &str| {
            gh.iter()
                .find_map(|i| match i {
                    Item::Check {
                        id,
                        checked,
                        enabled,
                        ..
                    } if Action::parse(id)
                        == Some(Action::ToggleScope {
                            hash: hash('a'),
                            name: n.into(),
                        }) =>
                    {
                        Some((*checked, *enabled))
                    }
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no check for {n}"))
        };
        assert_eq!(check("github/token"), (true, true));
        assert_eq!(check("aws/key"), (true, false));
        assert_eq!(check("npm/token"), (false, true));
        find(gh, "patterns: aws/*");
    }

    #[test]
    fn recent_activity_shows_the_last_ten_newest_first() {
        let recent: Vec<Record> = (1..=12)
            .map(|i| Record {
                seq: i,
                time: format!("2026-11-27T10:{i:02}:00Z"),
                entry: Entry {
                    event: "access".into(),
                    decision: "allow".into(),
                    op: Some("get".into()),
                    names: vec![format!("s{i}")],
                    path: Some("/usr/bin/gh".into()),
                    ..Entry::default()
                },
                prev: String::new(),
            })
            .collect();
        let items = build(&MenuState {
            recent: &recent,
            ..empty()
        });
        let r = sub(&items, "Recent activity");
        assert_eq!(r.len(), MAX_RECENT);
        assert_eq!(r[0], Item::Text("11-27 10:12 allow get s12 · gh".into()));
    }
}
