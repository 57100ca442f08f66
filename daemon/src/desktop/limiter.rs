//! Limits how often the daemon asks a person about pending binaries, so a flood of new
//! hashes cannot flood the desktop: a token bucket for all prompts together, and a
//! cooldown per hash so one binary asking again and again prompts once. Pure logic over
//! caller-supplied instants; the daemon calls it before [`super::approver::Approver`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Prompts allowed in a burst.
pub const BURST: u32 = 5;
/// One more prompt is allowed after each interval.
pub const REFILL_EVERY: Duration = Duration::from_secs(10);
/// The same hash prompts at most once per this period.
pub const PER_HASH_COOLDOWN: Duration = Duration::from_secs(300);
/// Most hashes whose cooldown is remembered.
const REMEMBERED: usize = 1024;

/// The prompt limiter.
#[derive(Debug)]
pub struct PromptLimiter {
    tokens: u32,
    last_refill: Option<Instant>,
    recent: HashMap<String, Instant>,
}

impl Default for PromptLimiter {
    fn default() -> Self {
        PromptLimiter {
            tokens: BURST,
            last_refill: None,
            recent: HashMap::new(),
        }
    }
}

impl PromptLimiter {
    /// Whether a prompt about `hash` may be shown at `now`; if so, it is counted.
    pub fn allow(&mut self, hash: &str, now: Instant) -> bool {
        let last = *self.last_refill.get_or_insert(now);
        let refills = now.saturating_duration_since(last).as_secs() / REFILL_EVERY.as_secs();
        if refills > 0 {
            self.tokens = (self.tokens + refills.min(u64::from(BURST)) as u32).min(BURST);
            self.last_refill = Some(last + REFILL_EVERY * refills as u32);
        }
        if let Some(at) = self.recent.get(hash) {
            if now.saturating_duration_since(*at) < PER_HASH_COOLDOWN {
                return false;
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        if self.recent.len() >= REMEMBERED {
            self.recent
                .retain(|_, at| now.saturating_duration_since(*at) < PER_HASH_COOLDOWN);
            if self.recent.len() >= REMEMBERED {
                self.recent.clear();
            }
        }
        self.recent.insert(hash.to_string(), now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_new_hashes_gets_a_burst_then_a_trickle() {
        let mut l = PromptLimiter::default();
        let t0 = Instant::now();
        let allowed = (0..10_000)
            .filter(|i| l.allow(&format!("h{i}"), t0))
            .count();
        assert_eq!(allowed, BURST as usize);
        // a minute later: six more intervals have passed, capped at the burst size
        let t1 = t0 + Duration::from_secs(60);
        let allowed = (0..100)
            .filter(|i| l.allow(&format!("later{i}"), t1))
            .count();
        assert_eq!(allowed, BURST as usize);
        let t2 = t1 + REFILL_EVERY;
        assert!(l.allow("one-more", t2));
        assert!(!l.allow("and-another", t2));
    }

    #[test]
    fn one_hash_prompts_once_per_cooldown() {
        let mut l = PromptLimiter::default();
        let t0 = Instant::now();
        assert!(l.allow("same", t0));
        for s in 1..60 {
            assert!(!l.allow("same", t0 + Duration::from_secs(s)));
        }
        assert!(l.allow("same", t0 + PER_HASH_COOLDOWN));
    }
}
