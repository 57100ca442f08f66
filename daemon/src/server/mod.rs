//! The socket server: [`run`] takes a bound listener, the daemon's [`State`] and a
//! shutdown future from its caller (the CLI's `start`, the tray app, or a test), accepts
//! connections up to the daemon's capacity ([`crate::capacity`]), identifies each peer
//! from the kernel, and serves it ([`connection`]: framing, timeouts; [`handshake`]: the
//! `hello`). What each request does is [`crate::handlers`].

mod connection;
mod handshake;

use crate::audit::{Decision, Entry, Event};
use crate::capacity::{connection_limit, MAX_CONNECTIONS};
use crate::handlers::Daemon;
use crate::state::{server_name, State};
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::{Notify, Semaphore};

pub use crate::audit::{audit_when_idle, runtime_thread_started};
pub use crate::state::{Deps, StartError};

/// How long a connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the rest of a frame may take once its first byte arrived.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection may take to start its `hello` (the rest of the frame then
/// has [`FRAME_TIMEOUT`]). A real client sends it at once; a connection that says
/// nothing is dropped early instead of holding a slot for the idle timeout (slowloris).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing an answer may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `shutdown` completes or an admin `shutdown` request arrives. The listener
/// is the caller's; so is removing the socket file afterwards.
pub async fn run(
    listener: UnixListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::peer::prepare_listener(listener.as_fd())?;
    let max = connection_limit();
    if max < MAX_CONNECTIONS {
        tracing::warn!(
            "the file descriptor limit allows {max} connections at once (not {MAX_CONNECTIONS}); more wait in the backlog"
        );
    }
    let limit = Arc::new(Semaphore::new(max));
    let daemon = Daemon::new(state.clone());
    state.audit().record(
        Entry {
            event: Event::Daemon.into(),
            decision: Decision::Ok.into(),
            reason: format!(
                "started ({}, store {})",
                server_name(),
                state.store().kind()
            ),
            ..Entry::default()
        },
        true,
    );
    let summaries = tokio::spawn({
        let st = state.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                st.audit().write_repeat_summaries(false);
            }
        }
    });
    tokio::pin!(shutdown);
    let conns = Arc::new(Conns::default());
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            _ = state.shutdown_requested() => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Every slot taken: close the connection idle the longest (one waiting for its
        // next request, or still for its hello) to make room, then wait for its slot.
        // Connections that are being answered, waiting requests among them (a part of
        // the slots at most, see crate::waits), are never closed for this.
        let permit = match limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                conns.evict_longest_idle();
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = state.shutdown_requested() => break,
                    p = limit.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
                }
            }
        };
        let (d, table) = (daemon.clone(), conns.clone());
        tokio::spawn(async move {
            let slot = table.open();
            connection::serve(d, stream, &table, &slot).await;
            table.close(&slot);
            drop(permit);
        });
    }
    summaries.abort();
    state.audit().write_repeat_summaries(true);
    state.audit().record(
        Entry {
            event: Event::Daemon.into(),
            decision: Decision::Ok.into(),
            reason: "stopped".into(),
            ..Entry::default()
        },
        true,
    );
    Ok(())
}

/// The connections being served, and since when each has been idle: waiting for the
/// first byte of its next request (or of its hello), or with a frame half sent.
#[derive(Debug, Default)]
pub(crate) struct Conns {
    inner: Mutex<ConnTable>,
}

#[derive(Debug, Default)]
struct ConnTable {
    next: u64,
    idle: std::collections::HashMap<u64, (tokio::time::Instant, Arc<Notify>)>,
    evict: std::collections::HashMap<u64, Arc<Notify>>,
}

/// One connection's place in [`Conns`].
pub(crate) struct ConnSlot {
    id: u64,
    /// Notified when the connection is to be closed to make room.
    pub(crate) evict: Arc<Notify>,
}

impl Conns {
    fn table(&self) -> std::sync::MutexGuard<'_, ConnTable> {
        crate::lock::lock(&self.inner)
    }

    fn open(&self) -> ConnSlot {
        let mut t = self.table();
        t.next += 1;
        let (id, evict) = (t.next, Arc::new(Notify::new()));
        t.evict.insert(id, evict.clone());
        ConnSlot { id, evict }
    }

    fn close(&self, slot: &ConnSlot) {
        let mut t = self.table();
        t.idle.remove(&slot.id);
        t.evict.remove(&slot.id);
    }

    pub(crate) fn idle(&self, slot: &ConnSlot) {
        self.table()
            .idle
            .insert(slot.id, (tokio::time::Instant::now(), slot.evict.clone()));
    }

    pub(crate) fn busy(&self, slot: &ConnSlot) {
        self.table().idle.remove(&slot.id);
    }

    /// Tells the connection idle the longest to close; false when none is idle.
    fn evict_longest_idle(&self) -> bool {
        let mut t = self.table();
        let oldest = t
            .idle
            .iter()
            .min_by_key(|(_, (since, _))| *since)
            .map(|(id, _)| *id);
        match oldest.and_then(|id| t.idle.remove(&id)) {
            Some((_, evict)) => {
                evict.notify_one();
                true
            }
            None => false,
        }
    }
}
