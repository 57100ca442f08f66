//! How the daemon writes its audit log while it answers requests: admin changes written
//! and fsynced before they are acknowledged; the access lines of reads held back until
//! their answer has been sent and then written in batches when a runtime thread runs out
//! of work; refusals that repeat counted into summary lines (see [`crate::audit::repeats`]).
//! The log itself (append, rotation, verification) is the rest of [`crate::audit`].

use crate::audit::{self, Entry};
use crate::clock::Clock;
use crate::lock::lock;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;

tokio::task_local! {
    /// Audit lines of the read being answered (`get`, `list`). They join the log's chain
    /// right after the answer is sent and reach the file when the runtime thread has no
    /// more work (see [`audit_when_idle`]), with the lines of the other reads it answered
    /// meanwhile, in one `write`. So the `write` is not on the client's wait, and a busy
    /// daemon makes one for many reads. A daemon killed in that moment loses those
    /// lines, never an approval or a write.
    static DEFERRED: std::cell::RefCell<Vec<Entry>>;
}

thread_local! {
    /// Set on the threads of the daemon's runtime, which write queued audit lines when
    /// they run out of work ([`audit_when_idle`]). Elsewhere lines are written at once.
    static WRITES_WHEN_IDLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The recorder whose log holds lines this thread queued.
    static QUEUED_HERE: std::cell::RefCell<Option<Weak<Recorder>>> =
        const { std::cell::RefCell::new(None) };
}

/// Marks this thread as one of the daemon runtime's (its `on_thread_start`).
pub fn runtime_thread_started() {
    WRITES_WHEN_IDLE.set(true);
}

/// Writes the audit lines this thread queued; the daemon runtime calls it each time a
/// thread runs out of work (its `on_thread_park`). Lines wait at most for that, or until
/// [`audit::MAX_QUEUED_LINES`] are queued.
pub fn audit_when_idle() {
    let Some(recorder) = QUEUED_HERE.take().and_then(|w| w.upgrade()) else {
        return;
    };
    recorder.flush_and_tell();
}

/// Runs `answer` (a request being answered and its answer being sent) with the access
/// lines it records held back until it completes; then they join the log (see
/// [`Recorder::flush_deferred`]).
pub async fn holding_reads<F: Future>(recorder: &Arc<Recorder>, answer: F) -> F::Output {
    DEFERRED
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let out = answer.await;
            recorder.flush_deferred();
            out
        })
        .await
}

/// The daemon's audit log, as requests write to it.
pub struct Recorder {
    log: Mutex<audit::Log>,
    repeats: Mutex<crate::audit::repeats::Repeats>,
    clock: Arc<dyn Clock>,
    /// Bumped after a line reaches the file (see `State::activity`).
    activity: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder over an open log; `activity` is told when lines were written.
    pub fn new(
        log: audit::Log,
        clock: Arc<dyn Clock>,
        activity: Arc<watch::Sender<u64>>,
    ) -> Recorder {
        Recorder {
            log: Mutex::new(log),
            repeats: Mutex::new(crate::audit::repeats::Repeats::new(
                std::time::Instant::now(),
            )),
            clock,
            activity,
        }
    }

    fn touched(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Appends an audit line. A failure is logged, never fatal to the request.
    ///
    /// Non-durable lines recorded while a request is being answered (the daemon sends
    /// reads' access lines this way) are held until the answer has been sent, then
    /// written (see [`DEFERRED`]); admin changes are written and fsynced before they are
    /// acknowledged.
    pub fn record(&self, entry: Entry, durable: bool) {
        let mut entry = Some(entry);
        if !durable {
            let _ = DEFERRED.try_with(|d| {
                if let Some(e) = entry.take() {
                    d.borrow_mut().push(e);
                }
            });
        }
        if let Some(entry) = entry {
            self.write(entry, durable);
        }
    }

    /// Adds the access lines held back while answering the current request to the log:
    /// on the daemon runtime's threads queued until the thread runs out of work (see
    /// [`audit_when_idle`]), elsewhere written at once.
    pub fn flush_deferred(self: &Arc<Self>) {
        let held = DEFERRED
            .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
            .unwrap_or_default();
        if held.is_empty() {
            return;
        }
        let later = WRITES_WHEN_IDLE.get();
        if later {
            let other =
                QUEUED_HERE.with_borrow_mut(|q| match q.as_ref().and_then(|w| w.upgrade()) {
                    Some(s) if Arc::ptr_eq(&s, self) => None,
                    _ => q.replace(Arc::downgrade(self)),
                });
            // Another daemon's lines queued on this thread (tests run several) go first.
            if let Some(other) = other.and_then(|w| w.upgrade()) {
                other.flush_and_tell();
            }
        }
        let now = self.clock.rfc3339();
        let mut log = lock(&self.log);
        for e in held {
            if let Err(e) = log.queue(e, &now) {
                tracing::error!("audit write failed: {e}");
            }
        }
        if !later {
            if let Err(e) = log.flush() {
                tracing::error!("audit write failed: {e}");
            }
        }
        let written = log.queued() == 0;
        drop(log);
        if written {
            self.touched();
        }
    }

    /// Records a refused request: written when it is the first of its kind in a while,
    /// else counted into a summary line written later (see [`crate::audit::repeats`]), so that
    /// no client can fill the log. Reads' lines may follow their answer (see
    /// [`DEFERRED`]).
    pub fn refusal(&self, mut entry: Entry) {
        let verdict =
            lock(&self.repeats).note(&mut entry, std::time::Instant::now(), &self.clock.rfc3339());
        if verdict == crate::audit::repeats::Verdict::Counted {
            return;
        }
        if matches!(entry.op.as_deref(), Some("get" | "list") | None) {
            self.record(entry, false);
        } else {
            self.write(entry, false);
        }
    }

    /// Writes the summary lines of counted refusals whose window ended (all of them,
    /// counts so far, when `everything`).
    pub fn write_repeat_summaries(&self, everything: bool) {
        let due = lock(&self.repeats).due(std::time::Instant::now(), everything);
        for e in due {
            self.write(e, false);
        }
    }

    /// Writes the queued audit lines now (with the summaries of refusals counted so
    /// far), and says which line the file ends with: its sequence number and hash.
    pub fn flush(&self) -> (u64, String) {
        self.write_repeat_summaries(true);
        let mut log = lock(&self.log);
        if let Err(e) = log.flush() {
            tracing::error!("audit write failed: {e}");
        }
        (log.seq(), log.head().to_string())
    }

    /// [`Recorder::flush`], then tells watchers.
    fn flush_and_tell(&self) {
        let _ = self.flush();
        self.touched();
    }

    /// Appends an audit line now, whatever request is being answered.
    pub fn write(&self, entry: Entry, durable: bool) {
        let now = self.clock.rfc3339();
        let mut log = lock(&self.log);
        if let Err(e) = log.append(entry, &now, durable) {
            tracing::error!("audit write failed: {e}");
        }
        drop(log);
        self.touched();
    }
}
