//! Refused requests that repeat, so that no client can fill the audit log and force its
//! rotation (and with it the removal of old history). The first refusal of a kind (same
//! binary, request, decision and reason) in a window is written as usual; the ones that
//! follow are counted and written as one summary line when the window ends (or when
//! the daemon reports its last line). At most [`WRITTEN_PER_WINDOW`] refusals are written
//! one by one per window across all binaries; the rest go into one more summary line.
//! Pure bookkeeping: the caller writes the lines.

use crate::audit::{Decision, Entry, Event};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long refusals of one kind are counted before their summary is written.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Refusals written one by one in one window, whatever binaries they come from.
pub const WRITTEN_PER_WINDOW: usize = 20;
/// Names kept in a summary line.
const NAMES_KEPT: usize = 8;
/// Longest path or name written in a refusal line, in bytes; longer ones are cut.
pub const MAX_FIELD: usize = 256;

/// What a refusal line is grouped by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Kind {
    hash: Option<String>,
    op: Option<String>,
    decision: String,
    reason: String,
}

impl Kind {
    fn of(e: &Entry) -> Kind {
        Kind {
            hash: e.hash.clone(),
            op: e.op.clone(),
            decision: e.decision.clone(),
            reason: e.reason.clone(),
        }
    }
}

#[derive(Debug)]
struct Counted {
    since: Instant,
    /// Repeats after the first (which was written).
    more: u64,
    first_time: String,
    last_time: String,
    names: BTreeSet<String>,
    /// The last refusal of this kind, the summary's template.
    last: Entry,
}

/// The refusal bookkeeping of one daemon.
#[derive(Debug)]
pub struct Repeats {
    kinds: HashMap<Kind, Counted>,
    window_start: Instant,
    written: usize,
    /// Refusals in this window that were neither written nor counted under their kind.
    others: u64,
    other_hashes: BTreeSet<String>,
    others_since: String,
}

/// Whether to write a refusal line now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it.
    Write,
    /// It was counted; a summary will say so.
    Counted,
}

impl Repeats {
    /// Empty bookkeeping starting at `now`.
    pub fn new(now: Instant) -> Repeats {
        Repeats {
            kinds: HashMap::new(),
            window_start: now,
            written: 0,
            others: 0,
            other_hashes: BTreeSet::new(),
            others_since: String::new(),
        }
    }

    /// Notes one refusal at `now` (`time`: the same moment in RFC 3339) and says whether
    /// to write it. Long paths and names in `e` are cut to [`MAX_FIELD`] bytes first.
    pub fn note(&mut self, e: &mut Entry, now: Instant, time: &str) -> Verdict {
        shorten(e);
        if now.duration_since(self.window_start) >= WINDOW {
            self.window_start = now;
            self.written = 0;
        }
        let kind = Kind::of(e);
        if let Some(c) = self.kinds.get_mut(&kind) {
            c.more += 1;
            c.last_time = time.to_string();
            if c.names.len() < NAMES_KEPT {
                c.names.extend(e.names.iter().cloned());
            }
            c.last = e.clone();
            return Verdict::Counted;
        }
        if self.written >= WRITTEN_PER_WINDOW {
            if self.others == 0 {
                self.others_since = time.to_string();
            }
            self.others += 1;
            if let Some(h) = &e.hash {
                if self.other_hashes.len() < 4096 {
                    self.other_hashes.insert(h.clone());
                }
            }
            return Verdict::Counted;
        }
        self.written += 1;
        self.kinds.insert(
            kind,
            Counted {
                since: now,
                more: 0,
                first_time: time.to_string(),
                last_time: time.to_string(),
                names: e.names.iter().cloned().collect(),
                last: e.clone(),
            },
        );
        Verdict::Write
    }

    /// The summary lines due at `now`: kinds whose window ended (all of them when
    /// `everything`), and the refusals counted beyond the per-window limit. Kinds whose
    /// window ended without a repeat are forgotten silently; with `everything`, kinds
    /// stay tracked (their counts start again) so a flood goes on being summarised.
    pub fn due(&mut self, now: Instant, everything: bool) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut ended = Vec::new();
        for (kind, c) in self.kinds.iter_mut() {
            let over = now.duration_since(c.since) >= WINDOW;
            if c.more > 0 && (over || everything) {
                out.push(summary(c));
                c.more = 0;
                c.names.clear();
                c.first_time = c.last_time.clone();
            }
            if over {
                ended.push(kind.clone());
            }
        }
        for k in ended {
            self.kinds.remove(&k);
        }
        let window_over = now.duration_since(self.window_start) >= WINDOW;
        if self.others > 0 && (window_over || everything) {
            out.push(Entry {
                event: Event::Access.into(),
                decision: Decision::Deny.into(),
                reason: format!(
                    "{} more refused requests from {} binaries between {} and now were not written one by one (more than {WRITTEN_PER_WINDOW} refusals a minute)",
                    self.others,
                    self.other_hashes.len(),
                    self.others_since
                ),
                ..Entry::default()
            });
            self.others = 0;
            self.other_hashes.clear();
        }
        out
    }
}

fn summary(c: &Counted) -> Entry {
    Entry {
        reason: format!(
            "{}: {} more times between {} and {} (not written one by one)",
            c.last.reason, c.more, c.first_time, c.last_time
        ),
        names: c.names.iter().cloned().collect(),
        pid: None,
        ..c.last.clone()
    }
}

/// Cuts a string to at most `MAX_FIELD` bytes at a character boundary, marking the cut.
fn cut(s: &mut String) {
    if s.len() > MAX_FIELD {
        let mut end = MAX_FIELD - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

fn shorten(e: &mut Entry) {
    if let Some(p) = e.path.as_mut() {
        cut(p);
    }
    for n in e.names.iter_mut() {
        cut(n);
    }
    cut(&mut e.reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(hash: &str, name: &str) -> Entry {
        Entry {
            event: "access".into(),
            decision: "not_approved".into(),
            reason: "binary not approved; queued as pending".into(),
            hash: Some(hash.into()),
            path: Some(format!("/{}", "d".repeat(3000))),
            op: Some("get".into()),
            names: vec![name.into()],
            ..Entry::default()
        }
    }

    #[test]
    fn one_binary_repeating_is_written_once_then_summarised() {
        let t0 = Instant::now();
        let mut r = Repeats::new(t0);
        let mut written = 0;
        for i in 0..5000 {
            let mut e = refusal("sha256:aa", &format!("n{}", i % 3));
            if r.note(&mut e, t0, "T0") == Verdict::Write {
                written += 1;
                assert!(
                    e.path.as_ref().expect("path").len() <= MAX_FIELD,
                    "long paths are cut"
                );
            }
        }
        assert_eq!(written, 1);
        assert!(
            r.due(t0 + Duration::from_secs(1), false).is_empty(),
            "not yet"
        );
        let s = r.due(t0 + WINDOW, false);
        assert_eq!(s.len(), 1);
        assert!(s[0].reason.contains("4999 more times"), "{}", s[0].reason);
        assert_eq!(s[0].names, vec!["n0", "n1", "n2"]);
        assert!(
            r.due(t0 + WINDOW * 2, false).is_empty(),
            "nothing left to say"
        );
        // The next window writes the first one again.
        let mut e = refusal("sha256:aa", "n0");
        assert_eq!(r.note(&mut e, t0 + WINDOW * 2, "T2"), Verdict::Write);
    }

    #[test]
    fn many_binaries_are_limited_per_window_and_counted() {
        let t0 = Instant::now();
        let mut r = Repeats::new(t0);
        let written = (0..1000)
            .filter(|i| {
                let mut e = refusal(&format!("sha256:{i}"), "x");
                r.note(&mut e, t0, "T0") == Verdict::Write
            })
            .count();
        assert_eq!(written, WRITTEN_PER_WINDOW);
        let s = r.due(t0 + WINDOW, false);
        assert_eq!(
            s.len(),
            1,
            "the kinds written never repeated; the rest in one line"
        );
        assert!(
            s[0].reason
                .contains("980 more refused requests from 980 binaries"),
            "{}",
            s[0].reason
        );
    }

    #[test]
    fn everything_can_be_reported_early_and_counting_goes_on() {
        let t0 = Instant::now();
        let mut r = Repeats::new(t0);
        for _ in 0..3 {
            let mut e = refusal("sha256:bb", "x");
            r.note(&mut e, t0, "T0");
        }
        let s = r.due(t0, true);
        assert_eq!(s.len(), 1);
        assert!(s[0].reason.contains("2 more times"));
        let mut e = refusal("sha256:bb", "x");
        assert_eq!(r.note(&mut e, t0, "T0"), Verdict::Counted, "still tracked");
        assert!(r.due(t0 + WINDOW, false)[0].reason.contains("1 more times"));
    }

    #[test]
    fn cutting_respects_characters() {
        let mut s = "é".repeat(300);
        cut(&mut s);
        assert!(s.len() <= MAX_FIELD && s.ends_with('…'));
        let mut short = "short".to_string();
        cut(&mut short);
        assert_eq!(short, "short");
    }
}
