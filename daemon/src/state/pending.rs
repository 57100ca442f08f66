//! The binaries waiting for a decision, as the daemon holds them: the bounded queue
//! ([`crate::pending::Queue`]) saved to pending.json after every change, how often a
//! person may be asked about one ([`crate::desktop::limiter`]), and the "Allow once" answers
//! given on the desktop.

use crate::config::{PendingFile, FILE_VERSION};
use crate::desktop::limiter::PromptLimiter;
use crate::lock::lock;
use crate::pending::{Queue, Recorded, Sighting};
use keychain_auth_sdk::protocol::PendingEntry;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an "Allow once" waits for the request it allows.
const ONCE_FOR: Duration = Duration::from_secs(120);

/// pending.json, as the daemon holds it.
#[derive(Debug)]
pub struct PendingStore {
    path: PathBuf,
    queue: Mutex<Queue>,
    /// Serialises writes of pending.json (see [`PendingStore::save`]).
    save: Mutex<()>,
    /// Bounds how often the approver is asked.
    prompts: Mutex<PromptLimiter>,
    /// Hashes allowed one request on the desktop ("Allow once"), with when.
    once: Mutex<HashMap<String, Instant>>,
}

impl PendingStore {
    /// Holds `queue`, saved at `path`.
    pub fn new(queue: Queue, path: PathBuf) -> PendingStore {
        PendingStore {
            path,
            queue: Mutex::new(queue),
            save: Mutex::new(()),
            prompts: Mutex::new(PromptLimiter::default()),
            once: Mutex::default(),
        }
    }

    /// Records a sighting and saves the queue. Returns the entry when a person should
    /// be asked about it now: it is new (or asked for a new name) and the limiter allows.
    pub fn record(&self, s: &Sighting<'_>) -> Option<PendingEntry> {
        let (recorded, entry) = {
            let mut q = lock(&self.queue);
            let r = q.record(s);
            (r, q.get(s.hash).cloned())
        };
        self.save();
        if !matches!(recorded, Recorded::New | Recorded::NewName) {
            return None;
        }
        let allowed = lock(&self.prompts).allow(s.hash, Instant::now());
        entry.filter(|_| allowed)
    }

    /// The entry for a hash.
    pub fn get(&self, hash: &str) -> Option<PendingEntry> {
        lock(&self.queue).get(hash).cloned()
    }

    /// Whether a hash is pending.
    pub fn contains(&self, hash: &str) -> bool {
        lock(&self.queue).get(hash).is_some()
    }

    /// Removes a hash's entry (saving the queue when there was one).
    pub fn remove(&self, hash: &str) -> Option<PendingEntry> {
        let removed = lock(&self.queue).remove(hash);
        if removed.is_some() {
            self.save();
        }
        removed
    }

    /// The pending binaries, most recently seen last.
    pub fn entries(&self) -> Vec<PendingEntry> {
        lock(&self.queue).entries().to_vec()
    }

    /// How many binaries are pending.
    pub fn len(&self) -> usize {
        lock(&self.queue).entries().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Allows one request of a hash ("Allow once" on the desktop).
    pub fn allow_once(&self, hash: &str) {
        lock(&self.once).insert(hash.to_string(), Instant::now());
    }

    /// Consumes an "Allow once" for a hash, if one was given in the last two minutes.
    pub fn take_once(&self, hash: &str) -> bool {
        let mut once = lock(&self.once);
        once.retain(|_, at| at.elapsed() < ONCE_FOR);
        once.remove(hash).is_some()
    }

    /// Writes pending.json. Saves take turns and each writes the queue as it is when its
    /// turn comes, so the file always ends with the newest queue, whichever of several
    /// requests saved last.
    fn save(&self) {
        let _turn = lock(&self.save);
        let file = PendingFile {
            version: FILE_VERSION,
            pending: self.entries(),
        };
        if let Err(e) = file.save(&self.path) {
            tracing::error!("{e}");
        }
    }
}
