//! The pending queue: binaries that asked and are not approved, deduplicated by hash and
//! bounded (when full, the entry seen least recently is evicted). Pure in-memory logic;
//! the daemon persists it to pending.json through [`crate::config::PendingFile`].

use keychain_auth_sdk::protocol::PendingEntry;

/// Most secret names remembered per pending binary.
pub const MAX_NAMES_PER_ENTRY: usize = 32;

/// What [`Queue::record`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// A hash not seen before was added.
    New,
    /// An existing entry gained a secret name.
    NewName,
    /// Only counters and times changed.
    Seen,
}

/// The bounded pending queue.
#[derive(Debug, Clone, Default)]
pub struct Queue {
    entries: Vec<PendingEntry>,
    limit: usize,
}

/// One sighting of an unknown binary.
#[derive(Debug, Clone)]
pub struct Sighting<'a> {
    /// `sha256:<hex>`.
    pub hash: &'a str,
    /// Executable path.
    pub path: &'a str,
    /// The secret name asked for, if any.
    pub name: Option<&'a str>,
    /// Whether the executable is an interpreter.
    pub interpreter: bool,
    /// What its `hello` asked for, if anything.
    pub wants: Option<&'a crate::peer::Wants>,
    /// The script, when the identity is an interpreter's script.
    pub script: Option<&'a keychain_auth_sdk::protocol::ScriptIdentity>,
    /// macOS code-signing facts.
    pub signing: Option<&'a crate::peer::signing::Facts>,
    /// Files the user can change that it runs code from (the latest seen is kept).
    pub libraries: &'a [keychain_auth_sdk::protocol::PinnedFile],
    /// Its caller chain, when it asked through deputies (the latest seen is kept).
    pub chain: Option<&'a str>,
    /// For a terminal session, its terminal.
    pub terminal: Option<String>,
    /// The approved tool at its path, when it is an update of one.
    pub update_of: Option<keychain_auth_sdk::protocol::UpdateOf>,
    /// RFC 3339 now.
    pub now: &'a str,
}

/// What approving a pending binary grants when the person names no scope: the scopes
/// its `hello` asked for (patterns it chose, shown as such), else exactly the secret
/// names it asked for, each as a literal pattern (a name such as `demo/*` grants that
/// one name, never every name under `demo/`). `keychain-auth approve`, `list-pending`,
/// the notification, the tray and the window all show and use this.
pub fn grants(entry: &PendingEntry) -> Vec<String> {
    if entry.requested_scopes.is_empty() {
        entry
            .names
            .iter()
            .map(|n| crate::scope::literal(n))
            .collect()
    } else {
        entry.requested_scopes.clone()
    }
}

impl Queue {
    /// A queue holding `entries`, bounded to `limit` (excess oldest entries dropped).
    pub fn new(mut entries: Vec<PendingEntry>, limit: usize) -> Queue {
        let limit = limit.max(1);
        while entries.len() > limit {
            evict_oldest(&mut entries);
        }
        Queue { entries, limit }
    }

    /// Entries, in insertion order.
    pub fn entries(&self) -> &[PendingEntry] {
        &self.entries
    }

    /// The entry for a hash.
    pub fn get(&self, hash: &str) -> Option<&PendingEntry> {
        self.entries.iter().find(|e| e.hash == hash)
    }

    /// Records one sighting.
    pub fn record(&mut self, s: &Sighting<'_>) -> Recorded {
        if let Some(e) = self.entries.iter_mut().find(|e| e.hash == s.hash) {
            e.attempts = e.attempts.saturating_add(1);
            e.last_seen = s.now.to_string();
            e.path = s.path.to_string();
            if let Some(w) = s.wants {
                e.requested_scopes = w.scopes.clone();
                e.requested_access = w.access;
            }
            e.libraries = s.libraries.to_vec();
            e.update_of = s.update_of.clone();
            if s.chain.is_some() {
                e.chain = s.chain.map(str::to_string);
                e.terminal = s.terminal.clone();
            }
            if let Some(n) = s.name {
                if !e.names.iter().any(|x| x == n) && e.names.len() < MAX_NAMES_PER_ENTRY {
                    e.names.push(n.to_string());
                    return Recorded::NewName;
                }
            }
            return Recorded::Seen;
        }
        if self.entries.len() >= self.limit {
            evict_oldest(&mut self.entries);
        }
        self.entries.push(PendingEntry {
            hash: s.hash.to_string(),
            path: s.path.to_string(),
            first_seen: s.now.to_string(),
            last_seen: s.now.to_string(),
            attempts: 1,
            names: s.name.map(|n| vec![n.to_string()]).unwrap_or_default(),
            interpreter: s.interpreter,
            requested_scopes: s.wants.map(|w| w.scopes.clone()).unwrap_or_default(),
            requested_access: s.wants.and_then(|w| w.access),
            script: s.script.cloned(),
            macos: s.signing.and_then(|f| serde_json::to_value(f).ok()),
            libraries: s.libraries.to_vec(),
            chain: s.chain.map(str::to_string),
            terminal: s.terminal.clone(),
            update_of: s.update_of.clone(),
        });
        Recorded::New
    }

    /// Removes and returns the entry for a hash.
    pub fn remove(&mut self, hash: &str) -> Option<PendingEntry> {
        let i = self.entries.iter().position(|e| e.hash == hash)?;
        Some(self.entries.remove(i))
    }
}

fn evict_oldest(entries: &mut Vec<PendingEntry>) {
    // RFC 3339 UTC strings of one format sort in time order.
    if let Some((i, _)) = entries
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.last_seen.cmp(&b.1.last_seen))
    {
        entries.remove(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn see<'a>(hash: &'a str, name: Option<&'a str>, now: &'a str) -> Sighting<'a> {
        Sighting {
            hash,
            path: "/bin/x",
            name,
            interpreter: false,
            wants: None,
            script: None,
            signing: None,
            libraries: &[],
            chain: None,
            terminal: None,
            update_of: None,
            now,
        }
    }

    #[test]
    fn deduplicates_by_hash_and_collects_names() {
        let mut q = Queue::new(vec![], 4);
        assert_eq!(q.record(&see("h1", Some("a"), "t1")), Recorded::New);
        assert_eq!(q.record(&see("h1", Some("a"), "t2")), Recorded::Seen);
        assert_eq!(q.record(&see("h1", Some("b"), "t3")), Recorded::NewName);
        let e = q.get("h1").expect("entry");
        assert_eq!(e.attempts, 3);
        assert_eq!(e.names, vec!["a", "b"]);
        assert_eq!(e.first_seen, "t1");
        assert_eq!(e.last_seen, "t3");
        assert_eq!(q.entries().len(), 1);
    }

    #[test]
    fn bounded_and_evicts_least_recently_seen() {
        let mut q = Queue::new(vec![], 3);
        q.record(&see("h1", None, "2026-01-01T00:00:01Z"));
        q.record(&see("h2", None, "2026-01-01T00:00:02Z"));
        q.record(&see("h3", None, "2026-01-01T00:00:03Z"));
        q.record(&see("h1", None, "2026-01-01T00:00:04Z"));
        q.record(&see("h4", None, "2026-01-01T00:00:05Z"));
        let hashes: Vec<_> = q.entries().iter().map(|e| e.hash.as_str()).collect();
        assert_eq!(hashes, vec!["h1", "h3", "h4"]);
        for i in 0..1000 {
            let h = format!("x{i}");
            q.record(&see(&h, None, "2026-01-02T00:00:00Z"));
        }
        assert_eq!(q.entries().len(), 3);
    }

    #[test]
    fn names_per_entry_are_bounded() {
        let mut q = Queue::new(vec![], 2);
        let names: Vec<String> = (0..100).map(|i| format!("n{i}")).collect();
        for n in &names {
            q.record(&see("h", Some(n), "t"));
        }
        assert_eq!(q.get("h").expect("entry").names.len(), MAX_NAMES_PER_ENTRY);
    }
}
