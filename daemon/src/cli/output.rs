//! What the command line prints for a person: an audit line, an approved tool (and
//! what an approve changed), the pending binaries, the denied ones, the words of
//! `status`.

use crate::audit;
use keychain_auth_sdk::protocol::{DenyRule, PendingEntry, Response, Tool};

pub(super) fn describe(r: &audit::Record) -> String {
    let e = &r.entry;
    let mut s = format!("{} #{} {} {}", r.time, r.seq, e.event, e.decision);
    if let Some(op) = &e.op {
        s.push_str(&format!(" {op}"));
    }
    if let Some(via) = &e.via {
        s.push_str(&format!(" (via {via})"));
    }
    if !e.names.is_empty() {
        s.push_str(&format!(" [{}]", e.names.join(", ")));
    }
    if let Some(p) = &e.path {
        s.push_str(&format!(" {p}"));
    }
    if let Some(h) = &e.hash {
        s.push_str(&format!(" {}", crate::naming::short_hash(h)));
    }
    if !e.reason.is_empty() {
        s.push_str(&format!(" — {}", e.reason));
    }
    s
}

pub(super) fn print_tool(verb: &str, resp: Response) {
    if let Response::Tool { tool, changes, .. } = resp {
        println!("{verb} {}", tool.label);
        // What changed of a tool that was approved (or denied) already.
        for c in &changes {
            println!("  {c}");
        }
        print_tool_lines(&tool);
    }
}

/// `list --denied`, for a person: each denied binary, or script as the script.
pub(super) fn print_denied(denied: &[DenyRule]) {
    for d in denied {
        println!("{}", d.hash);
        match &d.script {
            Some(sc) => {
                println!("    script:   {} run by {}", sc.path, sc.interpreter);
                println!(
                    "              contents {}",
                    crate::naming::short_hash(&sc.hash)
                );
            }
            None if d.path.is_empty() => {
                println!("    path:     (unknown: it was denied by hash)")
            }
            None => println!("    path:     {}", d.path),
        }
        println!("    denied:   {}", d.at);
        println!(
            "    lift it:  keychain-auth undeny {} (asked about again), or keychain-auth approve {} --scope 'PATTERN'",
            d.hash, d.hash
        );
    }
}

/// " (in 3h 2m)", or " (expired)", for an RFC 3339 time.
fn remaining(at: &str) -> String {
    let Ok(when) = humantime::parse_rfc3339(at) else {
        return String::new();
    };
    match when.duration_since(std::time::SystemTime::now()) {
        Ok(d) => format!(
            " (in {})",
            humantime::format_duration(std::time::Duration::from_secs(d.as_secs().max(1)))
        ),
        Err(_) => " (expired)".into(),
    }
}

pub(super) fn print_tool_lines(t: &Tool) {
    println!("{}  {}", t.label, t.hash);
    println!("    path:   {}", t.path);
    match (&t.expires_at, t.until_logout) {
        (Some(at), _) => println!("    lasts:  until {at}{}", remaining(at)),
        (None, true) => println!("    lasts:  until logout (the daemon's session ends)"),
        (None, false) => println!("    lasts:  always"),
    }
    if let Some(chain) = &t.chain {
        println!("    asked via: {chain} (when approved)");
    }
    if let Some(d) = t.only_through {
        println!(
            "    only through: {d} (a direct request, or one through another deputy, is refused)"
        );
    }
    if t.terminal_session {
        println!(
            "    covers: every interactive shell in a terminal held by this program, and so every program started from one (what is typed there asks as you; see docs/git.md)"
        );
    }
    if let Some(sc) = &t.script {
        println!(
            "    script: run by {} ({})",
            sc.interpreter, sc.interpreter_hash
        );
        println!(
            "            contents {} (advisory: see docs/threat-model.md)",
            sc.hash
        );
        for f in &sc.startup {
            println!(
                "    pinned: {} ({}), read before the script",
                f.path,
                crate::naming::short_hash(&f.hash)
            );
        }
    }
    println!("    scopes: {}", t.scopes.join(", "));
    println!("    access: {}", t.access);
    for l in &t.libraries {
        println!(
            "    pinned: {} ({})",
            l.path,
            crate::naming::short_hash(&l.hash)
        );
    }
    if t.unbound_get {
        println!("    get:    served through keychain-auth get even from a shell's $(…) (--allow-unbound-get)");
    }
    println!("    since:  {} (via {})", t.approved_at, t.approved_via);
}

/// `list-pending`, for a person.
/// A listing: JSON alone on stdout, else `none` when it is empty, else `print`'s lines.
pub(super) fn print_listing<T: serde::Serialize>(
    items: &[T],
    json: bool,
    none: &str,
    print: fn(&[T]),
) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        println!("{none}");
    } else {
        print(items);
    }
    Ok(())
}

pub(super) fn print_pending(pending: &[PendingEntry]) {
    for p in pending {
        println!("{}", p.hash);
        println!("    path:      {}", p.path);
        if let Some(u) = &p.update_of {
            println!(
                "    update of: {} ({} -> {}): keep its access with: keychain-auth upgrade {}",
                u.label,
                crate::naming::short_hash(&u.hash),
                crate::naming::short_hash(&p.hash),
                crate::naming::shell_quote(&u.path)
            );
        }
        if let Some(facts) = crate::peer::signing::Facts::from_entry(p) {
            println!("    signature: {}", facts.describe());
        }
        if let Some(chain) = &p.chain {
            println!("    asked via: {chain}");
        }
        if let Some(tty) = &p.terminal {
            println!("    terminal:  {tty}: approving it approves every interactive shell in a terminal of this program, and so every program started from one");
        }
        println!(
            "    asked for: {}",
            if p.names.is_empty() {
                "(no name)".into()
            } else {
                p.names.join(", ")
            }
        );
        let grants = crate::pending::grants(p);
        if !grants.is_empty() {
            println!(
                "    grants:    {} ({}): what approving it grants unless you pass --scope/--access",
                grants.join(", "),
                p.requested_access.unwrap_or_default()
            );
        }
        println!(
            "    attempts:  {} (first {}, last {})",
            p.attempts, p.first_seen, p.last_seen
        );
        if let Some(sc) = &p.script {
            println!("    script:    {} run by {}", sc.path, sc.interpreter);
            println!("    note:      a script's identity is interpreter + path + contents, and which script runs is read from the process's own command line (advisory)");
            for f in &sc.startup {
                println!(
                    "    runs code: {} ({}), read before the script from a place you can change: approving pins it",
                    f.path,
                    crate::naming::short_hash(&f.hash)
                );
            }
        }
        if p.interpreter {
            println!(
                "    note:      a script interpreter. {}",
                crate::policy::WHOLE_INTERPRETER
            );
        }
        for l in &p.libraries {
            println!(
                "    runs code: {} ({}), a file you can change: approving pins it",
                l.path,
                crate::naming::short_hash(&l.hash)
            );
        }
    }
}

/// `status`'s host: who runs the daemon (`Status::host`).
pub(super) fn host(host: &str) -> String {
    match host {
        "app" => {
            "the tray app (keychain-auth-app); quit it from its menu to stop the daemon".into()
        }
        "cli" => "keychain-auth start (headless; `keychain-auth stop` stops it)".into(),
        other => other.into(),
    }
}

/// `status`'s notifications line.
pub(super) fn notifications(on: bool, host: Option<&str>) -> &'static str {
    match (on, host) {
        (true, _) => "on: a new binary is announced by a desktop notification with Approve / Deny",
        (false, Some("cli")) => "off: approve with `keychain-auth list-pending` and `keychain-auth approve`; for notifications, `keychain-auth stop` then `keychain-auth start --notify`",
        (false, _) => "off: approve with `keychain-auth list-pending` and `keychain-auth approve`",
    }
}

/// `status`'s pause line.
pub(super) fn paused(paused: bool) -> &'static str {
    if paused {
        "yes: every secret request is refused; `keychain-auth resume` answers them again"
    } else {
        "no"
    }
}

/// What `get --wait` says before it waits: for how long, and how to decide (`refused`:
/// the daemon's `not_approved` message, which names the exact `approve` command and the
/// notification when there is one).
pub(super) fn waiting(secs: u64, refused: &str) -> String {
    format!(
        "keychain-auth: waiting up to {secs} s for your decision (`keychain-auth list-pending` shows what is waiting): {refused}"
    )
}
