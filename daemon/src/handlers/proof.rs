//! The presence gate: every widening decision, whoever started it (the CLI, a
//! notification, the tray or the window), passes [`Daemon::prove`] after the daemon has
//! decided exactly what the change is and before it is applied. What needs proof and
//! how it is asked is [`crate::presence`]; which changes widen is [`widens`].
//! A proof that fails is audited (`deny`, with why) and nothing changes.

use super::{error, Actor, Daemon};
use crate::audit::{Decision, Entry, Event};
use crate::peer::Peer;
use crate::presence::{Change, NotProven, Presence, Setting, DEFAULT_TIMEOUT_S};
use keychain_auth_sdk::protocol::{Access, ErrorCode, Response, Tool};

/// What a tool approval widens, compared with what it had (`None`: not approved).
/// Narrowing (fewer scopes, `read` instead of `read-write`, a deputy restriction added)
/// and re-stating the same approval widen nothing.
pub fn widens(old: Option<&Tool>, new: &Tool) -> bool {
    let Some(old) = old else { return true };
    let more_scopes = new
        .scopes
        .iter()
        .any(|s| !crate::scope::covered(&old.scopes, s));
    let more_access = new.access == Access::ReadWrite && old.access != Access::ReadWrite;
    let unbound = new.unbound_get && !old.unbound_get;
    let through = match (old.only_through, new.only_through) {
        (Some(a), Some(b)) => a != b,
        (Some(_), None) => true,
        (None, _) => false,
    };
    let longer = super::expiry::lasts_longer(old, new);
    let follows = new.follow.is_some() && new.follow != old.follow;
    more_scopes || more_access || unbound || through || longer || follows || old.path != new.path
}

/// The change an approval makes, as the person proving it reads it: the program (and
/// the chain it asked through), what it may do with which secrets, for how long.
pub fn describe(verb: &str, t: &Tool) -> Change {
    let what = match t.access {
        Access::Read => "read",
        Access::ReadWrite => "read and write",
    };
    let mut text = format!(
        "keychain-auth: {verb} {} ({}, {})",
        t.label,
        t.path,
        crate::naming::short_hash(&t.hash)
    );
    if t.terminal_session {
        text.push_str(", a terminal session: every program started in it");
    }
    if let Some(c) = &t.chain {
        text.push_str(&format!(", asking through {c}"));
    }
    text.push_str(&format!(" to {what} {}", t.scopes.join(", ")));
    if let Some(d) = t.only_through {
        text.push_str(&format!(", only through {d}"));
    }
    if t.unbound_get {
        text.push_str(", printing to any output");
    }
    match &t.follow {
        Some(keychain_auth_sdk::protocol::Follow::Package { package }) => text.push_str(&format!(
            ", following updates installed by the package {package} without asking"
        )),
        Some(keychain_auth_sdk::protocol::Follow::Signer {
            team_id,
            identifier,
        }) => text.push_str(&format!(
            ", following updates signed by the team {team_id} as {identifier} without asking"
        )),
        None => {}
    }
    match (&t.expires_at, t.until_logout) {
        (Some(at), _) => text.push_str(&format!(", until {at}")),
        (None, true) => text.push_str(", until you log out"),
        (None, false) => text.push_str(", always"),
    }
    Change::new(text)
}

/// How long after a proof the next one may start.
const AGENT_GONE: std::time::Duration = std::time::Duration::from_millis(500);

/// How proof was given, for the audit line's `presence` field.
pub type Proof = &'static str;

impl Daemon {
    /// What the daemon does about presence now.
    pub fn presence(&self) -> Presence {
        Presence::of(
            self.state.config().presence,
            self.state.presence().mechanism(),
        )
    }

    /// Proves that the person approves `change` (an `event` about `hash` at `path`), or
    /// says why not. `Ok` carries the audit line's `presence` word. One proof at a
    /// time: a second change waits, so that each prompt is for the change it shows.
    pub(super) async fn prove(
        &self,
        by: Actor<'_>,
        event: Event,
        subject: (&str, &str),
        change: &Change,
    ) -> Result<Proof, Response> {
        let mechanism = match self.presence() {
            Presence::Off(_) => return Ok("none"),
            Presence::Unavailable(why) => {
                let r = NotProven::Broken(why);
                self.audit_not_proven(by, event, subject, change, None, &r);
                return Err(not_proven(change, &r));
            }
            Presence::Required(m) => m,
        };
        let timeout = self
            .state
            .config()
            .presence_timeout_s
            .unwrap_or(DEFAULT_TIMEOUT_S);
        let one = self.state.proving().clone().lock_owned().await;
        tracing::info!(change = %change.text, via = by.via(), "asking for proof of presence");
        let proven = self.state.presence().prove(change, timeout).await;
        // The next proof waits a moment more: the agent a CLI started for this one
        // stays registered until that CLI has its answer and stops it, and the next
        // change's prompt must not appear in that CLI's terminal.
        tokio::spawn(async move {
            tokio::time::sleep(AGENT_GONE).await;
            drop(one);
        });
        match proven {
            Ok(()) => Ok(mechanism.word()),
            Err(r) => {
                self.audit_not_proven(by, event, subject, change, Some(mechanism.word()), &r);
                Err(not_proven(change, &r))
            }
        }
    }

    /// `presence required|off`. Turning it off widens (every program of the user can
    /// then approve itself), so it is proven first; turning it on is not.
    pub(super) async fn set_presence(&self, by: Actor<'_>, word: &str) -> Response {
        let setting = match word {
            "required" => Setting::Required,
            "off" => Setting::Off,
            other => {
                return error(
                    ErrorCode::BadRequest,
                    format!("presence is `required` or `off`, not {other:?}"),
                )
            }
        };
        let mut proof = None;
        if setting == Setting::Off && self.state.config().presence != Some(Setting::Off) {
            let change = Change::new("keychain-auth: turn proof of presence off, so that any program of yours can approve itself without your password");
            match self.prove(by, Event::Settings, ("", ""), &change).await {
                Ok(p) => proof = Some(p),
                Err(r) => return r,
            }
        }
        if let Err(r) = self
            .change_config(move |c| {
                c.presence = Some(setting);
                Ok(())
            })
            .await
        {
            return r;
        }
        let mut e = self.admin_entry(by, Event::Settings, format!("presence: {word}"));
        e.presence = proof.map(str::to_string);
        self.state.audit().record(e, true);
        Response::Ok
    }

    /// `protect NAME` (needs no proof) and `unprotect NAME` (proven: approved programs
    /// then read it without asking).
    pub(super) async fn protect(&self, by: Actor<'_>, name: &str, protect: bool) -> Response {
        if let Err(e) = keychain_auth_sdk::protocol::validate_name(name) {
            return error(ErrorCode::BadRequest, e.to_string());
        }
        let mut proof = None;
        if !protect && self.state.config().is_protected(name) {
            let change = Change::new(format!(
                "keychain-auth: let approved programs read {name} without asking you each time"
            ));
            match self.prove(by, Event::Settings, ("", ""), &change).await {
                Ok(p) => proof = Some(p),
                Err(r) => return r,
            }
        }
        let n = name.to_string();
        if let Err(r) = self
            .change_config(move |c| {
                c.protected.retain(|x| *x != n);
                if protect {
                    c.protected.push(n);
                }
                Ok(())
            })
            .await
        {
            return r;
        }
        let what = if protect { "always" } else { "never" };
        let mut e = self.admin_entry(by, Event::Settings, format!("{name}: confirm {what}"));
        e.names = vec![name.to_string()];
        e.presence = proof.map(str::to_string);
        self.state.audit().record(e, true);
        Response::Ok
    }

    /// Proves that the person lets `peer` read the protected secret `name` this once.
    /// Refused when presence is not being proven at all: a protected secret is never
    /// read without it.
    pub(super) async fn prove_read(&self, peer: &Peer, name: &str) -> Result<Proof, Response> {
        let path = peer
            .script
            .as_ref()
            .map_or_else(|| peer.path.clone(), |s| s.path.clone());
        if let Presence::Off(why) | Presence::Unavailable(why) = self.presence() {
            let msg = format!(
                "{name} is protected (confirm: always): each read needs proof of presence, and {why}"
            );
            self.audit_access(peer, "get", &[name], crate::audit::Decision::Deny, &msg);
            return Err(error(ErrorCode::Denied, msg));
        }
        let who = match &peer.via {
            Some(chain) => format!("{path} (through {chain})"),
            None => path.clone(),
        };
        let change = Change {
            text: format!(
                "keychain-auth: let {who} ({}) read {name}, this once",
                crate::naming::short_hash(&peer.hash)
            ),
            names: vec![name.to_string()],
        };
        self.prove(
            Actor::Cli(peer),
            Event::Access,
            (&peer.hash, &path),
            &change,
        )
        .await
    }

    fn audit_not_proven(
        &self,
        by: Actor<'_>,
        event: Event,
        (hash, path): (&str, &str),
        change: &Change,
        mechanism: Option<&str>,
        why: &NotProven,
    ) {
        let mut e: Entry = self.admin_entry(
            by,
            event,
            format!("presence not proven ({why}): {}", change.text),
        );
        e.decision = Decision::Deny.into();
        e.hash = (!hash.is_empty()).then(|| hash.to_string());
        e.path = (!path.is_empty()).then(|| path.to_string());
        e.presence = mechanism.map(str::to_string);
        e.names = change.names.clone();
        self.state.audit().record(e, true);
    }
}

/// The refusal of a change whose proof failed.
fn not_proven(change: &Change, why: &NotProven) -> Response {
    let code = match why {
        NotProven::Broken(_) => ErrorCode::Forbidden,
        _ => ErrorCode::Denied,
    };
    error(
        code,
        format!(
            "nothing changed: presence was not proven ({why}) for: {}",
            change.text
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keychain_auth_sdk::protocol::Deputy;

    fn tool() -> Tool {
        crate::fixtures::tool(
            "sha256:aa",
            "tool",
            "/usr/bin/tool",
            &["git/*"],
            Access::Read,
        )
    }

    #[test]
    fn only_more_than_a_tool_had_needs_proof() {
        let old = tool();
        assert!(widens(None, &old), "a new approval");
        assert!(!widens(Some(&old), &old.clone()), "the same again");
        let mut fewer = old.clone();
        fewer.scopes.clear();
        assert!(!widens(Some(&old), &fewer));
        let mut more = old.clone();
        more.scopes.push("api/*".into());
        assert!(widens(Some(&old), &more));
        let mut one = old.clone();
        one.scopes = vec!["git/https/example.com".into()];
        assert!(!widens(Some(&old), &one), "one name of git/* narrows");
        let mut rw = old.clone();
        rw.access = Access::ReadWrite;
        assert!(widens(Some(&old), &rw));
        assert!(!widens(Some(&rw), &old), "read-write to read narrows");
        let mut unbound = old.clone();
        unbound.unbound_get = true;
        assert!(widens(Some(&old), &unbound));
        let mut through = old.clone();
        through.only_through = Some(Deputy::Git);
        assert!(
            !widens(Some(&old), &through),
            "restricting to a deputy narrows"
        );
        assert!(
            widens(Some(&through), &old),
            "lifting the restriction widens"
        );
        let mut moved = old.clone();
        moved.path = "/tmp/tool".into();
        assert!(widens(Some(&old), &moved));
        let mut timed = old.clone();
        timed.expires_at = Some("2026-12-01T10:00:00Z".into());
        assert!(!widens(Some(&old), &timed), "a time limit added narrows");
        assert!(widens(Some(&timed), &old), "a time limit lifted widens");
        let mut later = timed.clone();
        later.expires_at = Some("2026-12-01T11:00:00Z".into());
        assert!(
            widens(Some(&timed), &later),
            "a time limit moved later widens"
        );
    }
}
