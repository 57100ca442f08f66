//! The text of prompts, shared by every desktop notifier (freedesktop on Linux,
//! UserNotifications on macOS) and the tray menu: where else the person can answer,
//! whether Approve is offered, how a pending binary is named to a person (its short hash,
//! its program's name), and the title and text of a notification about it. It shows
//! nothing itself; the notifiers are `super::notify`, the menu `super::menu`.

use keychain_auth_sdk::protocol::PendingEntry;

/// Where else the person can answer, besides the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elsewhere {
    /// Only the CLI (`keychain-auth start --notify`).
    Cli,
    /// The tray menu of the app hosting the daemon (and the CLI).
    Tray,
}

impl Elsewhere {
    /// What a refused tool's message adds about where the person is being asked.
    pub fn where_asked(self) -> &'static str {
        match self {
            Elsewhere::Cli => "or answer the notification on your desktop",
            Elsewhere::Tray => {
                "or answer the notification on your desktop, or use the keychain-auth tray menu"
            }
        }
    }
}

/// Whether the notification offers Approve: a bare script interpreter is never approved.
pub fn approvable(entry: &PendingEntry) -> bool {
    crate::policy::approvable(
        program_path(entry),
        entry.script.is_some(),
        entry.interpreter,
    )
    .is_ok()
}

pub(crate) use crate::naming::{base_name, short_hash};

/// The path a person knows a pending binary by: its script's, if it is one.
pub(crate) fn program_path(entry: &PendingEntry) -> &str {
    entry
        .script
        .as_ref()
        .map_or(entry.path.as_str(), |s| s.path.as_str())
}

/// The name a pending binary is shown under: the base name of [`program_path`].
pub(crate) fn program_name(entry: &PendingEntry) -> &str {
    base_name(program_path(entry))
}

/// The title of a notification for a pending binary.
pub fn summary(entry: &PendingEntry) -> String {
    match &entry.update_of {
        Some(u) => format!("{} was updated: keep its access?", u.label),
        None => format!("{} wants a secret", program_name(entry)),
    }
}

/// The text of a notification for a pending binary.
pub fn body(entry: &PendingEntry, has_actions: bool, elsewhere: Elsewhere) -> String {
    let short = short_hash(&entry.hash);
    let who = match &entry.script {
        Some(s) => format!(
            "the script {} run by {} (a script's identity is advisory)",
            s.path, s.interpreter
        ),
        None => entry.path.clone(),
    };
    let names = if entry.names.is_empty() {
        "(no name yet)".to_string()
    } else {
        entry.names.join(", ")
    };
    let mut text = format!("{who}\n{short}…\nasks for: {names}");
    if let Some(u) = &entry.update_of {
        text.push_str(&format!(
            "\nan update of the approved tool {} ({} → {}): Keep access re-pins it with the scopes and access it had",
            u.label,
            short_hash(&u.hash),
            short_hash(&entry.hash)
        ));
        if !has_actions {
            text.push_str(&format!(
                "\nThis desktop's notifications have no buttons: run keychain-auth upgrade {}",
                crate::naming::shell_quote(&u.path)
            ));
        }
        return text;
    }
    if let Some(chain) = &entry.chain {
        text.push_str(&format!(
            "\nasking through: {chain} (a deputy serves the program that ran it, so that program is asked for, not the deputy)"
        ));
    }
    if let Some(tty) = &entry.terminal {
        text.push_str(&format!(
            "\na terminal session ({tty}): approving it covers every program started from a terminal of this program"
        ));
    }
    if !approvable(entry) {
        text.push_str("\nA script interpreter cannot be approved as a whole (every command run in it could read the secret): run the command from a script file.");
        return text;
    }
    let startup: Vec<&str> = entry
        .script
        .iter()
        .flat_map(|s| s.startup.iter().map(|f| f.path.as_str()))
        .collect();
    if !startup.is_empty() {
        text.push_str(&format!(
            "\nruns code before the script from files you can change: {} (injected? approving pins them)",
            startup.join(", ")
        ));
    }
    if !entry.libraries.is_empty() {
        text.push_str(&format!(
            "\nruns code from files you can change: {} (injected? approving pins them)",
            entry
                .libraries
                .iter()
                .map(|l| l.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let grants = crate::pending::grants(entry);
    if !grants.is_empty() {
        text.push_str(&format!("\napproving grants: {}", grants.join(", ")));
    }
    if !has_actions {
        text.push_str(&match elsewhere {
            Elsewhere::Cli => format!(
                "\nThis desktop's notifications have no buttons: run keychain-auth approve {}",
                entry.hash
            ),
            Elsewhere::Tray => format!(
                "\nThis desktop's notifications have no buttons: use the keychain-auth tray menu (Waiting for approval), or run keychain-auth approve {}",
                entry.hash
            ),
        });
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_the_binary_its_names_and_what_to_do_without_buttons() {
        let e = PendingEntry {
            libraries: Vec::new(),
            chain: None,
            terminal: None,
            update_of: None,
            hash: format!("sha256:{}", "ab".repeat(32)),
            path: "/usr/local/bin/tool".into(),
            first_seen: String::new(),
            last_seen: String::new(),
            attempts: 1,
            names: vec!["git/https/h/alice".into()],
            interpreter: false,
            requested_scopes: vec!["git/*".into()],
            requested_access: None,
            script: None,
            macos: None,
        };
        let b = body(&e, true, Elsewhere::Cli);
        assert!(b.contains("/usr/local/bin/tool"));
        assert!(b.contains("sha256:abababababab"));
        assert!(b.contains("git/https/h/alice"));
        assert!(b.contains("approving grants: git/*"));
        assert!(!b.contains("keychain-auth approve"));
        assert!(
            body(&e, false, Elsewhere::Cli).contains(&format!("keychain-auth approve {}", e.hash))
        );
        assert!(body(&e, false, Elsewhere::Tray).contains("tray menu"));
        assert!(!body(&e, true, Elsewhere::Tray).contains("tray menu"));
        assert!(!b.contains("asking through"));
        let chained = PendingEntry {
            chain: Some("python3 /h/sync.py → git → git-credential-keychain-auth".into()),
            terminal: Some("/dev/pts/3, session 42".into()),
            ..e.clone()
        };
        let b = body(&chained, true, Elsewhere::Cli);
        assert!(
            b.contains("asking through: python3 /h/sync.py → git"),
            "{b}"
        );
        assert!(b.contains("not the deputy"), "{b}");
        assert!(
            b.contains("a terminal session (/dev/pts/3, session 42)"),
            "{b}"
        );
        let interp = PendingEntry {
            path: "/usr/bin/python3".into(),
            interpreter: true,
            ..e
        };
        assert!(!approvable(&interp));
        assert!(body(&interp, true, Elsewhere::Cli).contains("cannot be approved as a whole"));
    }

    #[test]
    fn an_update_says_old_to_new_and_offers_keep_access() {
        let e = PendingEntry {
            libraries: Vec::new(),
            chain: None,
            terminal: None,
            update_of: Some(keychain_auth_sdk::protocol::UpdateOf {
                hash: format!("sha256:{}", "cd".repeat(32)),
                label: "tool".into(),
                path: "/h/my tools/tool".into(),
            }),
            hash: format!("sha256:{}", "ab".repeat(32)),
            path: "/h/my tools/tool".into(),
            first_seen: String::new(),
            last_seen: String::new(),
            attempts: 1,
            names: vec!["api/x".into()],
            interpreter: false,
            requested_scopes: Vec::new(),
            requested_access: None,
            script: None,
            macos: None,
        };
        assert_eq!(summary(&e), "tool was updated: keep its access?");
        let b = body(&e, true, Elsewhere::Cli);
        assert!(
            b.contains("sha256:cdcdcdcdcdcd → sha256:abababababab"),
            "{b}"
        );
        assert!(!b.contains("approving grants"), "{b}");
        let plain = body(&e, false, Elsewhere::Cli);
        assert!(
            plain.contains("keychain-auth upgrade '/h/my tools/tool'"),
            "{plain}"
        );
        assert_eq!(
            crate::desktop::notify::actions_for(&e)[0],
            ("keep", "Keep access")
        );
    }
}
