//! Lifting a deny (`keychain-auth undeny`, the window's Undeny): the binary is unknown
//! again, so it is queued and asked about when it next asks. Lifting widens (a program
//! that was refused may ask again), so it is proven like an approval, and audited.
//! Denying and approving a denied hash (which lifts its deny too) are
//! [`super::approvals`]; the list of deny rules is [`super::info`].

use super::{error, Actor, Daemon};
use crate::audit::Event;
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, Hash, Response};

impl Daemon {
    /// `undeny`: removes the deny rule of a hash.
    pub(super) async fn undeny(&self, by: Actor<'_>, hash: String) -> Response {
        let hash = match Hash::parse(&hash) {
            Ok(h) => String::from(h),
            Err(e) => return error(ErrorCode::BadRequest, e),
        };
        let Some(rule) = self.state.config().deny_rule(&hash).cloned() else {
            return error(
                ErrorCode::NotFound,
                format!("{hash} is not denied; see `keychain-auth list --denied`"),
            );
        };
        let who = match &rule.script {
            Some(s) => format!("the script {} (run by {})", s.path, s.interpreter),
            None if rule.path.is_empty() => "a binary".to_string(),
            None => rule.path.clone(),
        };
        let change = crate::presence::Change::new(format!(
            "keychain-auth: lift the deny of {who} ({}): it may ask for secrets again",
            crate::naming::short_hash(&hash)
        ));
        let presence = match self
            .prove(by, Event::Undeny, (&hash, &rule.path), &change)
            .await
        {
            Ok(p) => p,
            Err(r) => return r,
        };
        let h = hash.clone();
        let res = self
            .change_config(move |c| {
                let before = c.denied.len();
                c.denied.retain(|d| d.hash != h);
                if c.denied.len() == before {
                    return Err(Refusal(
                        ErrorCode::NotFound,
                        format!("{h} is no longer denied"),
                    ));
                }
                Ok(())
            })
            .await;
        if let Err(r) = res {
            return r;
        }
        let mut e = self.admin_entry(by, Event::Undeny, format!("lifted the deny of {who}"));
        e.hash = Some(hash);
        e.path = Some(rule.path);
        e.presence = Some(presence.to_string());
        self.state.audit().record(e, true);
        Response::Ok
    }
}
