//! The socket server. [`run`] takes a bound listener, the daemon's [`State`] and a
//! shutdown future from its caller (the CLI's `start`, the tray app, or a test), accepts
//! connections, identifies each peer from the kernel, and serves framed requests with
//! idle and per-frame timeouts. What each request does is in [`crate::requests`].

use crate::audit::{self, Entry};
use crate::clock::Clock;
use crate::config::{Config, FileError, PendingFile};
use crate::desktop::approver::Approver;
use crate::digest::HashCache;
use crate::peer::{Peer, PeerError, Recv};
use crate::pending;
use crate::store::SecretStore;
use keychain_auth_sdk::frame::{self, FrameError, MAX_FRAME};
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{ErrorBody, ErrorCode, Request, Response, PROTOCOL_VERSION};
use std::future::Future;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Notify, Semaphore};

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
/// Most connections served at once; further ones wait in the kernel's backlog. Lower
/// when the file descriptor limit is too small to hold this many (see
/// [`connection_limit`]).
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
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 64;
    }
    let fit = lim.rlim_cur.saturating_sub(FDS_RESERVED) / FDS_PER_CONNECTION;
    (fit as usize).clamp(8, MAX_CONNECTIONS)
}

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
    /// The daemon whose log holds lines this thread queued.
    static QUEUED_HERE: std::cell::RefCell<Option<std::sync::Weak<State>>> =
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
    let Some(state) = QUEUED_HERE.take().and_then(|w| w.upgrade()) else {
        return;
    };
    let _ = state.flush_audit();
    state.touched();
}

/// `keychain-auth/<version>`.
pub fn server_name() -> String {
    format!("keychain-auth/{}", env!("CARGO_PKG_VERSION"))
}

/// What the daemon is built from; given by its caller.
pub struct Deps {
    /// Where its files are.
    pub paths: Paths,
    /// The secret store.
    pub store: Arc<dyn SecretStore>,
    /// Who asks a person about pending binaries.
    pub approver: Arc<dyn Approver>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Hashes of the binaries allowed to send admin requests (the keychain-auth CLI).
    pub admin_hashes: Vec<String>,
}

/// The daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// config.json or pending.json is unusable.
    #[error(transparent)]
    File(#[from] FileError),
    /// The audit log is unusable.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

/// Everything the daemon knows, shared by all connections.
pub struct State {
    pub(crate) paths: Paths,
    pub(crate) store: Arc<dyn SecretStore>,
    pub(crate) approver: Arc<dyn Approver>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) admin_hashes: Vec<String>,
    pub(crate) cache: HashCache,
    pub(crate) config: RwLock<Arc<Config>>,
    /// Serialises config changes (the file write happens under it).
    pub(crate) config_write: tokio::sync::Mutex<()>,
    pub(crate) pending: Mutex<pending::Queue>,
    /// Serialises writes of pending.json (see `save_pending`).
    pub(crate) pending_save: Mutex<()>,
    /// Bounds how often the approver is asked.
    pub(crate) prompts: Mutex<crate::desktop::limiter::PromptLimiter>,
    pub(crate) audit: Mutex<audit::Log>,
    /// Refusals that repeat are counted instead of each written (see [`crate::repeats`]).
    pub(crate) repeats: Mutex<crate::repeats::Repeats>,
    /// Bumped after every config change; waiting `get`s watch it.
    pub(crate) changes: watch::Sender<u64>,
    /// Bumped after anything a person would see changed: config, pending, audit, pause.
    /// The hosting app watches it to refresh its tray menu and window.
    pub(crate) activity: watch::Sender<u64>,
    /// While set, every secret request is refused (the tray's "Pause").
    pub(crate) paused: std::sync::atomic::AtomicBool,
    /// Hashes allowed one request on the desktop ("Allow once"), with when.
    pub(crate) once: Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Requests waiting for a decision (`wait_ms`), capped per binary and in all.
    pub(crate) waits: crate::waits::Waits,
    pub(crate) shutdown: Notify,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("paths", &self.paths).finish()
    }
}

impl State {
    /// Loads config.json (creating a default one if absent), pending.json and the audit
    /// log. A damaged file stops here, named in the error, and is left untouched.
    pub fn load(deps: Deps) -> Result<State, StartError> {
        let config = match Config::load(&deps.paths.config)? {
            Some(c) => c,
            None => {
                let c = Config::default();
                c.save(&deps.paths.config)?;
                c
            }
        };
        let pending_file = PendingFile::load(&deps.paths.pending)?;
        let log =
            audit::Log::open_with(&deps.paths.audit, config.audit_max_bytes, config.audit_keep)?;
        let queue = pending::Queue::new(pending_file.pending, config.pending_limit);
        Ok(State {
            paths: deps.paths,
            store: deps.store,
            approver: deps.approver,
            clock: deps.clock,
            admin_hashes: deps.admin_hashes,
            cache: HashCache::new(),
            config: RwLock::new(Arc::new(config)),
            config_write: tokio::sync::Mutex::new(()),
            pending: Mutex::new(queue),
            pending_save: Mutex::new(()),
            prompts: Mutex::new(crate::desktop::limiter::PromptLimiter::default()),
            audit: Mutex::new(log),
            repeats: Mutex::new(crate::repeats::Repeats::new(std::time::Instant::now())),
            changes: watch::channel(0).0,
            activity: watch::channel(0).0,
            paused: std::sync::atomic::AtomicBool::new(false),
            once: Mutex::default(),
            waits: crate::waits::Waits::new(connection_limit()),
            shutdown: Notify::new(),
        })
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Asks the server to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Appends an audit line. A failure is logged, never fatal to the request.
    ///
    /// Non-durable lines recorded while a request is being answered (the daemon sends
    /// reads' access lines this way) are held until the answer has been sent, then
    /// written (see [`DEFERRED`]); admin changes are written and fsynced before they are
    /// acknowledged.
    pub(crate) fn audit(&self, entry: Entry, durable: bool) {
        let mut entry = Some(entry);
        if !durable {
            let _ = DEFERRED.try_with(|d| {
                if let Some(e) = entry.take() {
                    d.borrow_mut().push(e);
                }
            });
        }
        if let Some(entry) = entry {
            self.write_audit(entry, durable);
        }
    }

    /// Adds the access lines held back while answering the current request to the log:
    /// on the daemon runtime's threads queued until the thread runs out of work (see
    /// [`audit_when_idle`]), elsewhere written at once.
    pub(crate) fn flush_deferred(self: &Arc<Self>) {
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
                let _ = other.flush_audit();
                other.touched();
            }
        }
        let now = self.clock.rfc3339();
        let mut log = self.audit.lock().unwrap_or_else(|p| p.into_inner());
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
    /// else counted into a summary line written later (see [`crate::repeats`]), so that
    /// no client can fill the log. Reads' lines may follow their answer (see
    /// [`DEFERRED`]).
    pub(crate) fn audit_refusal(&self, mut entry: Entry) {
        let verdict = self.repeats.lock().unwrap_or_else(|p| p.into_inner()).note(
            &mut entry,
            std::time::Instant::now(),
            &self.clock.rfc3339(),
        );
        if verdict == crate::repeats::Verdict::Counted {
            return;
        }
        if matches!(entry.op.as_deref(), Some("get" | "list") | None) {
            self.audit(entry, false);
        } else {
            self.write_audit(entry, false);
        }
    }

    /// Writes the summary lines of counted refusals whose window ended (all of them,
    /// counts so far, when `everything`).
    pub(crate) fn write_repeat_summaries(&self, everything: bool) {
        let due = self
            .repeats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .due(std::time::Instant::now(), everything);
        for e in due {
            self.write_audit(e, false);
        }
    }

    /// Writes the queued audit lines now (with the summaries of refusals counted so
    /// far), and says which line the file ends with: its sequence number and hash.
    pub(crate) fn flush_audit(&self) -> (u64, String) {
        self.write_repeat_summaries(true);
        let mut log = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.flush() {
            tracing::error!("audit write failed: {e}");
        }
        (log.seq(), log.head().to_string())
    }

    /// Appends an audit line now, whatever request is being answered.
    pub(crate) fn write_audit(&self, entry: Entry, durable: bool) {
        let now = self.clock.rfc3339();
        let mut log = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = log.append(entry, &now, durable) {
            tracing::error!("audit write failed: {e}");
        }
        drop(log);
        self.touched();
    }

    /// Tells watchers of [`State::activity`] that something changed.
    pub(crate) fn touched(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes after anything a person would see changed (config, pending
    /// binaries, audit lines, pause). Many changes may arrive as one wake-up.
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.activity.subscribe()
    }
}

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
    state.audit(
        Entry {
            event: "daemon".into(),
            decision: "ok".into(),
            reason: format!("started ({}, store {})", server_name(), state.store.kind()),
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
                st.write_repeat_summaries(false);
            }
        }
    });
    tokio::pin!(shutdown);
    let conns = Arc::new(Conns::default());
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            _ = state.shutdown.notified() => break,
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
                    _ = state.shutdown.notified() => break,
                    p = limit.clone().acquire_owned() => p.map_err(std::io::Error::other)?,
                }
            }
        };
        let (st, table) = (state.clone(), conns.clone());
        tokio::spawn(async move {
            let slot = table.open();
            serve_connection(st, stream, &table, &slot).await;
            table.close(&slot);
            drop(permit);
        });
    }
    summaries.abort();
    state.write_repeat_summaries(true);
    state.audit(
        Entry {
            event: "daemon".into(),
            decision: "ok".into(),
            reason: "stopped".into(),
            ..Entry::default()
        },
        true,
    );
    Ok(())
}

/// The start of an access audit line about a peer.
pub(crate) fn access_entry(peer: &Peer, op: Option<&str>) -> Entry {
    Entry {
        event: "access".into(),
        pid: Some(peer.pid),
        uid: Some(peer.uid),
        // For a script, the script: the interpreter is in its identity, not its name.
        path: Some(
            peer.script
                .as_ref()
                .map_or_else(|| peer.path.clone(), |s| s.path.clone()),
        ),
        hash: Some(peer.hash.clone()),
        op: op.map(str::to_string),
        via: peer.via.clone(),
        ..Entry::default()
    }
}

/// An access line for a connection refused because the peer changed.
fn peer_refusal(peer: &Peer, op: Option<&str>, e: &PeerError) -> Entry {
    Entry {
        decision: "deny".into(),
        reason: e.to_string(),
        ..access_entry(peer, op)
    }
}

/// An error response.
pub fn error(code: ErrorCode, message: impl Into<String>) -> Response {
    Response::Error(ErrorBody {
        code,
        message: message.into(),
        hash: None,
        pending: None,
    })
}

async fn identify(state: &Arc<State>, stream: &UnixStream) -> Result<Peer, PeerError> {
    // A known executable is identified right here; only hashing a new one (which may
    // read hundreds of megabytes) moves to the blocking pool, so it delays nobody else.
    match Peer::identify_cached(stream.as_fd(), &state.cache) {
        Err(PeerError::NeedsHash) => {}
        other => return other,
    }
    let fd = stream
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| PeerError::Inspect(format!("dup: {e}")))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || Peer::identify(fd.as_fd(), &st.cache))
        .await
        .map_err(|e| PeerError::Inspect(format!("identification task failed: {e}")))?
}

/// The connections being served, and since when each has been idle: waiting for the
/// first byte of its next request (or of its hello), or with a frame half sent.
#[derive(Debug, Default)]
struct Conns {
    inner: Mutex<ConnTable>,
}

#[derive(Debug, Default)]
struct ConnTable {
    next: u64,
    idle: std::collections::HashMap<u64, (tokio::time::Instant, Arc<Notify>)>,
    evict: std::collections::HashMap<u64, Arc<Notify>>,
}

/// One connection's place in [`Conns`].
struct ConnSlot {
    id: u64,
    /// Notified when the connection is to be closed to make room.
    evict: Arc<Notify>,
}

impl Conns {
    fn table(&self) -> std::sync::MutexGuard<'_, ConnTable> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
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

    fn idle(&self, slot: &ConnSlot) {
        self.table()
            .idle
            .insert(slot.id, (tokio::time::Instant::now(), slot.evict.clone()));
    }

    fn busy(&self, slot: &ConnSlot) {
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

/// Completes when the client of a request that is waiting has gone away (hung up), or
/// sent more while it should be waiting for its answer, so the wait can end. Only for
/// a connection whose read bytes were all taken off the socket first (see
/// [`FrameReader::finish`]): anything readable is then new.
pub(crate) struct Gone<'a>(Option<&'a UnixStream>);

impl Gone<'_> {
    /// For a request that has no connection (in-process callers, benchmarks).
    pub(crate) fn never() -> Gone<'static> {
        Gone(None)
    }

    pub(crate) async fn wait(&self) {
        let Some(stream) = self.0 else {
            return std::future::pending().await;
        };
        loop {
            let ready = match stream.ready(Interest::READABLE).await {
                Ok(r) => r,
                Err(_) => return,
            };
            if ready.is_read_closed() {
                return;
            }
            let mut byte = [0u8; 1];
            // A peek of one byte tells a hang-up (0) from data; readiness that was stale
            // (WouldBlock) is cleared and waited on again.
            match stream.try_io(Interest::READABLE, || {
                crate::peer::recv_with_sender(stream.as_fd(), &mut byte, Recv::Peek)
            }) {
                Ok(_) => return,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(_) => return,
            }
        }
    }
}

async fn serve_connection(
    state: Arc<State>,
    mut stream: UnixStream,
    conns: &Conns,
    slot: &ConnSlot,
) {
    let peer = match identify(&state, &stream).await {
        Ok(p) => p,
        Err(e) => {
            tracing::info!("refusing connection: {e}");
            let code = match e {
                PeerError::WrongUser { .. } => ErrorCode::Forbidden,
                _ => ErrorCode::Denied,
            };
            state.audit_refusal(Entry {
                event: "access".into(),
                decision: "deny".into(),
                reason: e.to_string(),
                ..Entry::default()
            });
            let _ = write_response(&mut stream, &error(code, e.to_string())).await;
            return;
        }
    };
    let mut reader = FrameReader::new(&peer, &stream);
    converse(&state, &peer, &mut stream, &mut reader, (conns, slot)).await;
    // Bytes left in the socket would make the client's next read fail with
    // "connection reset" instead of reaching the end of the stream.
    let _ = reader.finish(&stream);
}

/// Answers one identified peer's requests until the connection ends.
async fn converse(
    state: &Arc<State>,
    peer: &Peer,
    stream: &mut UnixStream,
    reader: &mut FrameReader<'_>,
    (conns, slot): (&Conns, &ConnSlot),
) {
    let mut greeted = false;
    loop {
        let wait = if greeted { IDLE_TIMEOUT } else { HELLO_TIMEOUT };
        conns.idle(slot);
        let next = tokio::select! {
            n = reader.next(&mut *stream, wait) => n,
            _ = slot.evict.notified() => return,
        };
        conns.busy(slot);
        let payload = match next {
            Ok(p) => p,
            Err(ReadError::Closed) | Err(ReadError::Idle) | Err(ReadError::Io) => return,
            Err(ReadError::Sender(e)) => {
                state.audit_refusal(peer_refusal(peer, None, &e));
                let _ =
                    write_response(&mut *stream, &error(ErrorCode::Denied, e.to_string())).await;
                return;
            }
            Err(ReadError::Frame(e)) => {
                let code = match e {
                    FrameError::TooLarge(_) => ErrorCode::FrameTooLarge,
                    _ => ErrorCode::BadRequest,
                };
                let _ = write_response(&mut *stream, &error(code, e.to_string())).await;
                return;
            }
        };
        let req = frame::decode::<Request>(&payload);
        keychain_auth_sdk::secret::wipe(&mut { payload });
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                let _ = write_response(&mut *stream, &error(ErrorCode::BadRequest, e.to_string()))
                    .await;
                return;
            }
        };
        if !greeted {
            let (resp, ok) = match req {
                Request::Hello {
                    protocol,
                    scopes,
                    access,
                    ..
                } if protocol == PROTOCOL_VERSION => match check_wants(scopes, access) {
                    Ok(wants) => {
                        let _ = peer.wants.set(wants);
                        (
                            Response::Hello {
                                protocol: PROTOCOL_VERSION,
                                server: server_name(),
                            },
                            true,
                        )
                    }
                    Err(e) => (error(ErrorCode::BadRequest, e), false),
                },
                Request::Hello { protocol, .. } => (
                    error(
                        ErrorCode::UnsupportedProtocol,
                        format!(
                            "this daemon ({}) speaks protocol {PROTOCOL_VERSION}, the client asked for {protocol}; update the older of the two",
                            server_name()
                        ),
                    ),
                    false,
                ),
                other => (
                    error(
                        ErrorCode::BadRequest,
                        format!(
                            "the first request must be hello, not {}",
                            other.kind()
                        ),
                    ),
                    false,
                ),
            };
            if write_response(&mut *stream, &resp).await.is_err() || !ok {
                return;
            }
            greeted = true;
            continue;
        }
        if matches!(req, Request::Hello { .. }) {
            let _ = write_response(
                &mut *stream,
                &error(
                    ErrorCode::BadRequest,
                    "hello was already sent on this connection",
                ),
            )
            .await;
            return;
        }
        if let Err(e) = peer.recheck() {
            state.audit_refusal(peer_refusal(peer, Some(req.kind()), &e));
            let _ = write_response(&mut *stream, &error(ErrorCode::Denied, e.to_string())).await;
            return;
        }
        let shutting_down = matches!(req, Request::Shutdown {});
        // A request that may wait for a decision watches its connection, so the wait ends
        // when the client goes away. Everything read is taken off the socket first, so
        // that what becomes readable then is new.
        let may_wait = matches!(
            &req,
            Request::Get { wait_ms: Some(w), .. } | Request::GetForParent { wait_ms: Some(w), .. } if *w > 0
        );
        if may_wait && reader.finish(stream).is_err() {
            return;
        }
        let (resp, written) = DEFERRED
            .scope(std::cell::RefCell::new(Vec::new()), async {
                let resp = {
                    let gone = Gone(may_wait.then_some(&*stream));
                    state.handle_with(peer, req, &gone).await
                };
                let written = write_response(&mut *stream, &resp).await;
                state.flush_deferred();
                (resp, written)
            })
            .await;
        if written.is_err() {
            return;
        }
        // A malformed request ends the conversation: the client is broken or hostile.
        if matches!(&resp, Response::Error(b) if b.code == ErrorCode::BadRequest) {
            return;
        }
        if shutting_down && matches!(resp, Response::Ok) {
            state.request_shutdown();
            return;
        }
    }
}

/// Checks the scopes and access a `hello` asks for.
fn check_wants(
    scopes: Vec<String>,
    access: Option<keychain_auth_sdk::protocol::Access>,
) -> Result<crate::peer::Wants, String> {
    if scopes.len() > keychain_auth_sdk::protocol::MAX_REQUESTED_SCOPES {
        return Err(format!(
            "hello asks for {} scopes; at most {} may be asked for",
            scopes.len(),
            keychain_auth_sdk::protocol::MAX_REQUESTED_SCOPES
        ));
    }
    for s in &scopes {
        crate::scope::validate(s).map_err(|e| format!("hello asks for scope {s:?}: {e}"))?;
    }
    Ok(crate::peer::Wants { scopes, access })
}

enum ReadError {
    Closed,
    Idle,
    Io,
    Frame(FrameError),
    Sender(PeerError),
}

/// Reads frames from a connection through one buffer. Every read is checked to come from
/// the peer that connected (an inherited socket fails). Consumed bytes are wiped (a `set`
/// carries a secret value).
///
/// Where the OS keeps a peek offset (Linux), requests are read with peeks that continue
/// in turn, so they stay queued in the socket after they are answered. They are taken
/// off in one go once [`KEPT_FRAMES`] or [`KEPT_BYTES`] have piled up, once no byte has
/// come for [`KEPT_LINGER`], before waiting for the rest of a frame (the writer may need
/// the room), and when the connection ends. Taking bytes off a Unix socket frees the
/// writer's send buffer, and Linux then wakes the writer even though it waits for an
/// answer, not for room: taken one by one, every request would wake its client once for
/// nothing. Elsewhere each read takes the bytes.
struct FrameReader<'p> {
    /// Bytes read and not yet returned as a frame.
    buf: Vec<u8>,
    peer: &'p Peer,
    /// Reads are peeks in turn (see [`crate::peer::peek_in_turn`]).
    peeks: bool,
    /// Bytes read that are still queued in the socket: the last ones read, so those of
    /// answered frames followed by (the end of) `buf`.
    queued: usize,
    /// Frames returned since the socket was last emptied of answered ones.
    kept_frames: usize,
}

/// The size of one read.
const CHUNK: usize = 8192;
/// Answered requests left in the socket before they are taken off. Each counts against
/// the client's send buffer (about 1 KiB for a small one, of the usual 208 KiB).
const KEPT_FRAMES: usize = 16;
/// Bytes of answered requests left in the socket before they are taken off.
const KEPT_BYTES: usize = 16 * 1024;
/// How long answered requests stay in the socket of a quiet connection. A client whose
/// send buffer is smaller than the kept requests waits this long for room.
const KEPT_LINGER: Duration = Duration::from_millis(1);

impl<'p> FrameReader<'p> {
    fn new(peer: &'p Peer, stream: &UnixStream) -> FrameReader<'p> {
        FrameReader {
            buf: Vec::new(),
            peer,
            peeks: crate::peer::peek_in_turn(stream.as_fd()),
            queued: 0,
            kept_frames: 0,
        }
    }

    /// Bytes of answered frames still queued in the socket.
    fn kept(&self) -> usize {
        self.queued.saturating_sub(self.buf.len())
    }

    /// Reads more bytes into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self, stream: &mut UnixStream) -> Result<bool, ReadError> {
        let buf = &mut self.buf;
        let how = if self.peeks { Recv::Peek } else { Recv::Take };
        // The read buffer lives only inside the readiness callback, not in the waiting
        // future, so an idle connection costs no more than its (empty) frame buffer.
        let (n, sender) = stream
            .async_io(Interest::READABLE, || {
                let mut chunk = [0u8; CHUNK];
                let (n, sender) = crate::peer::recv_with_sender(stream.as_fd(), &mut chunk, how)?;
                buf.extend_from_slice(&chunk[..n]);
                keychain_auth_sdk::secret::wipe(&mut chunk[..n]);
                Ok((n, sender))
            })
            .await
            .map_err(|_| ReadError::Io)?;
        if n > 0 {
            self.peer.check_sender(sender).map_err(ReadError::Sender)?;
            if self.peeks {
                self.queued += n;
            }
        }
        Ok(n > 0)
    }

    /// Takes the first `count` queued bytes off the socket. They were read already, so
    /// this never waits.
    fn take(&mut self, stream: &UnixStream, count: usize) -> Result<(), ReadError> {
        let mut left = count.min(self.queued);
        while left > 0 {
            let mut chunk = [0u8; CHUNK];
            let want = left.min(CHUNK);
            let got = crate::peer::recv_with_sender(stream.as_fd(), &mut chunk[..want], Recv::Take);
            keychain_auth_sdk::secret::wipe(&mut chunk[..want]);
            let (n, sender) = got.map_err(|_| ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Io);
            }
            self.peer.check_sender(sender).map_err(ReadError::Sender)?;
            // n <= want <= left <= queued: the kernel returns at most what was asked.
            left -= n;
            self.queued -= n;
        }
        Ok(())
    }

    /// Takes the answered frames off the socket.
    fn release(&mut self, stream: &UnixStream) -> Result<(), ReadError> {
        self.kept_frames = 0;
        self.take(stream, self.kept())
    }

    /// Takes everything read so far off the socket, before the connection is closed: the
    /// answered frames and the start of any frame still incomplete.
    fn finish(&mut self, stream: &UnixStream) -> Result<(), ReadError> {
        self.kept_frames = 0;
        self.take(stream, self.queued)
    }

    /// The next frame. Its first byte may take up to `idle`; the rest must follow within
    /// [`FRAME_TIMEOUT`].
    async fn next(
        &mut self,
        stream: &mut UnixStream,
        idle: Duration,
    ) -> Result<Vec<u8>, ReadError> {
        if self.kept() >= KEPT_BYTES || self.kept_frames >= KEPT_FRAMES {
            self.release(stream)?;
        }
        let mut deadline = tokio::time::Instant::now() + idle;
        let mut started = false;
        loop {
            if let Some(n) = whole_frame(&self.buf).map_err(ReadError::Frame)? {
                debug_assert!(n <= MAX_FRAME);
                let payload = self.buf[4..4 + n].to_vec();
                keychain_auth_sdk::secret::wipe(&mut self.buf[..4 + n]);
                self.buf.drain(..4 + n);
                self.kept_frames += 1;
                return Ok(payload);
            }
            if !self.buf.is_empty() {
                if !started {
                    started = true;
                    deadline = tokio::time::Instant::now() + FRAME_TIMEOUT;
                }
                // The rest may not fit in the writer's send buffer beside what it holds.
                self.finish(stream)?;
            }
            let linger = (self.queued > 0).then(|| tokio::time::Instant::now() + KEPT_LINGER);
            let until = linger.map_or(deadline, |l| l.min(deadline));
            match tokio::time::timeout_at(until, self.fill(stream)).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) if self.buf.is_empty() => return Err(ReadError::Closed),
                Ok(Ok(false)) => return Err(ReadError::Io),
                Ok(Err(e)) => return Err(e),
                Err(_) if until < deadline => self.release(stream)?,
                Err(_) => return Err(ReadError::Idle),
            }
        }
    }
}

/// The payload length of the frame at the start of `bytes` if all of it is there,
/// `None` if more must arrive; an error as soon as the header is bad.
fn whole_frame(bytes: &[u8]) -> Result<Option<usize>, FrameError> {
    match *bytes {
        [a, b, c, d, ..] => {
            let len = frame::check_len([a, b, c, d])?;
            Ok((4 + len <= bytes.len()).then_some(len))
        }
        _ => Ok(None),
    }
}

impl Drop for FrameReader<'_> {
    fn drop(&mut self) {
        keychain_auth_sdk::secret::wipe(&mut self.buf);
    }
}

async fn write_response(stream: &mut UnixStream, resp: &Response) -> Result<(), ()> {
    let mut bytes = match frame::encode(resp) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("encoding a response failed: {e}");
            frame::encode(&error(
                ErrorCode::StoreUnavailable,
                "the answer could not be encoded",
            ))
            .map_err(|_| ())?
        }
    };
    let res = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await;
    keychain_auth_sdk::secret::wipe(&mut bytes);
    match res {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
