//! How much the daemon takes on at once. Connections: as many as fit in the process's
//! file descriptor limit ([`connection_limit`]), at most [`MAX_CONNECTIONS`]; further
//! ones wait in the kernel's backlog. Waiting requests (`get` with `wait_ms`): at most
//! [`PER_BINARY`] per identity and [`Waits::limit`] in all, a part of the connections,
//! so that waiting requests can never take the slots of requests that do not wait. A
//! request that finds no room is answered at once instead of waiting. A [`Slot`] is held
//! while a request waits and given back when it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most connections served at once; fewer when the file descriptor limit is too small
/// to hold this many (see [`connection_limit`]).
pub const MAX_CONNECTIONS: usize = 4096;
/// Descriptors one connection may hold at once: the socket, its pidfd, its /proc
/// directory, and a duplicate of the socket while a new executable is hashed.
const FDS_PER_CONNECTION: u64 = 4;
/// Descriptors kept for everything else: listener, runtime, files, store.
const FDS_RESERVED: u64 = 64;

/// How many connections fit in the process's file descriptor limit, at most
/// [`MAX_CONNECTIONS`]. Serving more would make `accept` (or the /proc reads that
/// identify a peer) fail with EMFILE instead of leaving the extra clients waiting in
/// the backlog.
pub fn connection_limit() -> usize {
    let Ok((soft, _)) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
    else {
        return 64;
    };
    let fit = soft.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION;
    (fit as usize).clamp(8, MAX_CONNECTIONS)
}

/// Waiting requests one identity (binary or script) may have at once.
pub const PER_BINARY: usize = 4;
/// Waiting requests in all, at most; fewer when the daemon serves fewer connections
/// (see [`Waits::new`]).
pub const MAX_TOTAL: usize = 256;

#[derive(Debug, Default)]
struct Book {
    total: usize,
    by_hash: HashMap<String, usize>,
}

/// The daemon's waiting requests.
#[derive(Debug)]
pub struct Waits {
    book: Arc<Mutex<Book>>,
    limit: usize,
}

/// Room for one waiting request; given back on drop.
#[derive(Debug)]
pub struct Slot {
    book: Arc<Mutex<Book>>,
    hash: String,
}

impl Waits {
    /// Bookkeeping for a daemon serving `connections` at once: waiting requests may
    /// take at most a quarter of them (and [`MAX_TOTAL`]).
    pub fn new(connections: usize) -> Waits {
        Waits {
            book: Arc::default(),
            limit: (connections / 4).clamp(1, MAX_TOTAL),
        }
    }

    /// The most requests that may wait at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Room for one more waiting request of `hash`, or `None` when that identity or the
    /// daemon has as many waiting as allowed.
    pub fn take(&self, hash: &str) -> Option<Slot> {
        let mut b = crate::lock::lock(&self.book);
        let mine = b.by_hash.get(hash).copied().unwrap_or(0);
        if b.total >= self.limit || mine >= PER_BINARY {
            return None;
        }
        b.total += 1;
        *b.by_hash.entry(hash.to_string()).or_default() += 1;
        Some(Slot {
            book: self.book.clone(),
            hash: hash.to_string(),
        })
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        crate::lock::lock(&self.book).total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut b = crate::lock::lock(&self.book);
        b.total = b.total.saturating_sub(1);
        if let Some(n) = b.by_hash.get_mut(&self.hash) {
            *n -= 1;
            if *n == 0 {
                b.by_hash.remove(&self.hash);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_binary_and_total_limits_hold_and_slots_come_back() {
        let w = Waits::new(40);
        assert_eq!(w.limit(), 10);
        let mine: Vec<Slot> = (0..PER_BINARY)
            .map(|_| w.take("a").expect("room"))
            .collect();
        assert!(w.take("a").is_none(), "one binary has its share");
        let others: Vec<Slot> = (0..6)
            .map(|i| w.take(&format!("h{i}")).expect("room"))
            .collect();
        assert_eq!(w.waiting(), 10);
        assert!(w.take("new").is_none(), "the daemon has its share");
        drop(mine);
        assert_eq!(w.waiting(), 6);
        assert!(w.take("a").is_some() && w.take("new").is_some());
        drop(others);
        assert_eq!(Waits::new(4).limit(), 1);
        assert_eq!(Waits::new(1_000_000).limit(), MAX_TOTAL);
    }
}
