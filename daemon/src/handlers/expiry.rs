//! Approvals that run out (`approve --for`): what a [`Lasts`] makes of an approval, the
//! end of the daemon's session (approvals `until_logout` are removed when it starts
//! again), and the sweeper that removes an approval the moment its time is up, audited
//! (`expire`). The policy refuses an expired approval by itself
//! ([`crate::policy`]), so a late sweep never serves one; and no request, status
//! included, moves an expiry.

use super::Daemon;
use crate::audit::{Decision, Entry, Event};
use crate::state::Refusal;
use keychain_auth_sdk::protocol::{ErrorCode, Lasts, Tool};
use std::time::{Duration, SystemTime};

/// The longest a time-boxed approval may be given for: a year.
pub const MAX_SECONDS: u64 = 366 * 24 * 3600;

/// The approval's `expires_at` and `until_logout` for `lasts`, counted from `now`.
pub fn lifetime(lasts: Lasts, now: SystemTime) -> Result<(Option<String>, bool), Refusal> {
    match lasts {
        Lasts::Always => Ok((None, false)),
        Lasts::UntilLogout => Ok((None, true)),
        Lasts::Seconds(s) if (1..=MAX_SECONDS).contains(&s) => {
            let at = now + Duration::from_secs(s);
            Ok((
                Some(humantime::format_rfc3339_seconds(at).to_string()),
                false,
            ))
        }
        Lasts::Seconds(s) => Err(Refusal(
            ErrorCode::BadRequest,
            format!("an approval lasts 1 s to a year, not {s} s"),
        )),
    }
}

/// Whether `new` lasts longer than `old` (or might: a deadline and the end of the
/// session cannot be compared, so a switch between them counts as longer).
pub fn lasts_longer(old: &Tool, new: &Tool) -> bool {
    let forever = |t: &Tool| t.expires_at.is_none() && !t.until_logout;
    if forever(old) {
        return false;
    }
    if forever(new) {
        return true;
    }
    match (&old.expires_at, &new.expires_at) {
        (Some(a), Some(b)) => b > a,
        (None, None) => false,
        _ => true,
    }
}

/// Whether `t` has run out at `now` (with `session_ended`, also if it lasted until
/// logout).
fn ran_out(t: &Tool, now: &str, session_ended: bool) -> bool {
    (session_ended && t.until_logout) || t.expires_at.as_deref().is_some_and(|e| e <= now)
}

impl Daemon {
    /// Removes the approvals that lasted until the daemon's session ended (run once, as
    /// the daemon starts), and those whose time ran out while it was not running.
    pub async fn end_of_session(&self) {
        self.remove_expired(true).await;
    }

    /// Removes every approval whose time is up (with `session_ended`, also those that
    /// lasted until logout), each audited as `expire`.
    async fn remove_expired(&self, session_ended: bool) {
        let now = self.state.clock().rfc3339();
        if !self
            .state
            .config()
            .tools
            .iter()
            .any(|t| ran_out(t, &now, session_ended))
        {
            return;
        }
        let at = now.clone();
        let removed = self
            .change_config(move |c| {
                let (out, kept) = std::mem::take(&mut c.tools)
                    .into_iter()
                    .partition(|t| ran_out(t, &at, session_ended));
                c.tools = kept;
                Ok::<Vec<Tool>, _>(out)
            })
            .await;
        let Ok(removed) = removed else {
            tracing::warn!("could not save the removal of expired approvals");
            return;
        };
        for t in removed {
            let why = match &t.expires_at {
                Some(at) if at.as_str() <= now.as_str() => format!("{} expired at {at}", t.label),
                _ => format!("{} lasted until the daemon's session ended", t.label),
            };
            self.state.audit().record(
                Entry {
                    event: Event::Expire.into(),
                    decision: Decision::Ok.into(),
                    reason: why,
                    hash: Some(t.hash.clone()),
                    path: Some(t.path.clone()),
                    scopes: t.scopes.clone(),
                    ..Entry::default()
                },
                true,
            );
        }
    }

    /// Sleeps until the next approval runs out, removes it, and goes on; until the daemon
    /// stops. A change of config.json (an approval added) wakes it to look again.
    pub async fn sweep_expired(self) {
        let mut changes = self.state.configs().watch();
        loop {
            let next = self
                .state
                .config()
                .tools
                .iter()
                .filter_map(|t| t.expires_at.as_deref())
                .filter_map(|e| humantime::parse_rfc3339(e).ok())
                .min();
            let now = self.state.clock().now();
            let wait = next
                .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600))
                // Never a busy loop (a removal that could not be saved is retried).
                .max(Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep(wait) => self.remove_expired(false).await,
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keychain_auth_sdk::protocol::Access;

    #[test]
    fn lifetimes_are_counted_from_now_and_bounded() {
        let now = humantime::parse_rfc3339("2026-12-01T10:00:00Z").expect("time");
        assert_eq!(lifetime(Lasts::Always, now).ok(), Some((None, false)));
        assert_eq!(lifetime(Lasts::UntilLogout, now).ok(), Some((None, true)));
        assert_eq!(
            lifetime(Lasts::Seconds(3600), now).ok(),
            Some((Some("2026-12-01T11:00:00Z".into()), false))
        );
        assert!(lifetime(Lasts::Seconds(0), now).is_err());
        assert!(lifetime(Lasts::Seconds(MAX_SECONDS + 1), now).is_err());
        assert!(lifetime(Lasts::Seconds(u64::MAX), now).is_err());
    }

    #[test]
    fn only_a_longer_life_counts_as_longer() {
        let t = |exp: Option<&str>, logout: bool| {
            let mut t = crate::fixtures::tool("sha256:aa", "t", "/t", &["x"], Access::Read);
            t.expires_at = exp.map(str::to_string);
            t.until_logout = logout;
            t
        };
        let always = t(None, false);
        let hour = t(Some("2026-12-01T11:00:00Z"), false);
        let later = t(Some("2026-12-01T12:00:00Z"), false);
        let logout = t(None, true);
        assert!(!lasts_longer(&always, &hour));
        assert!(!lasts_longer(&always, &logout));
        assert!(lasts_longer(&hour, &always));
        assert!(lasts_longer(&logout, &always));
        assert!(lasts_longer(&hour, &later));
        assert!(!lasts_longer(&later, &hour));
        assert!(!lasts_longer(&hour, &hour.clone()));
        assert!(lasts_longer(&hour, &logout), "not comparable: asked");
        assert!(lasts_longer(&logout, &hour), "not comparable: asked");
        assert!(!lasts_longer(&logout, &logout.clone()));
    }
}
