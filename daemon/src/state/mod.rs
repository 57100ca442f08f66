//! Everything the daemon knows, shared by all connections: [`State`], built once by
//! [`State::load`] from its [`Deps`] and the files, with private fields reached through
//! methods. Config and pending binaries are owned sub-stores ([`ConfigStore`],
//! [`PendingStore`]); the audit log is written through a [`Recorder`].
//!
//! What a request does with this is in [`crate::handlers`]; how connections are served
//! is [`crate::server`]. Nothing here decides anything or knows about sockets.

mod config;
mod pending;

pub use config::{ConfigStore, Refusal};
pub use pending::PendingStore;

use crate::audit;
use crate::audit::Recorder;
use crate::capacity::{connection_limit, Waits};
use crate::clock::Clock;
use crate::config::{Config, FileError, PendingFile};
use crate::desktop::approver::Approver;
use crate::digest::HashCache;
use crate::store::SecretStore;
use keychain_auth_sdk::paths::Paths;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// `keychain-auth/<version>`: how the daemon names itself to clients.
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
    /// Who proves that a person approves a widening change ([`crate::presence::system`]).
    pub presence: Arc<dyn crate::presence::Prover>,
    /// Hashes of the other deputies (the git helper): their requests are decided for
    /// the origin of their caller chain.
    pub deputy_hashes: Vec<String>,
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
    paths: Paths,
    store: Arc<dyn SecretStore>,
    approver: Arc<dyn Approver>,
    presence: Arc<dyn crate::presence::Prover>,
    /// Held while a proof of presence is asked for: one at a time, so that the prompt a
    /// person answers is for the change it shows.
    proving: Arc<tokio::sync::Mutex<()>>,
    clock: Arc<dyn Clock>,
    admin_hashes: Vec<String>,
    pass_throughs: crate::deputies::PassThroughs,
    cache: HashCache,
    config: ConfigStore,
    pending: PendingStore,
    audit: Arc<Recorder>,
    /// Bumped after anything a person would see changed: config, pending, audit, pause.
    /// The hosting app watches it to refresh its tray menu and window.
    activity: Arc<watch::Sender<u64>>,
    /// While set, every secret request is refused (the tray's "Pause").
    paused: AtomicBool,
    /// Set when the tray app hosts the daemon in its own process (`status` says so).
    in_app: AtomicBool,
    /// Requests waiting for a decision (`wait_ms`), capped per binary and in all.
    waits: Waits,
    shutdown: Notify,
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
        let queue = crate::pending::Queue::new(pending_file.pending, config.pending_limit);
        let activity = Arc::new(watch::channel(0).0);
        Ok(State {
            audit: Arc::new(Recorder::new(log, deps.clock.clone(), activity.clone())),
            pending: PendingStore::new(queue, deps.paths.pending.clone()),
            config: ConfigStore::new(config, deps.paths.config.clone()),
            paths: deps.paths,
            store: deps.store,
            approver: deps.approver,
            presence: deps.presence,
            proving: Arc::new(tokio::sync::Mutex::new(())),
            clock: deps.clock,
            pass_throughs: crate::deputies::PassThroughs::new(
                deps.deputy_hashes
                    .into_iter()
                    .chain(deps.admin_hashes.iter().cloned())
                    .collect(),
            ),
            admin_hashes: deps.admin_hashes,
            cache: HashCache::new(),
            activity,
            paused: AtomicBool::new(false),
            in_app: AtomicBool::new(false),
            waits: Waits::new(connection_limit()),
            shutdown: Notify::new(),
        })
    }

    /// The current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.current()
    }

    /// config.json: read, changed, watched.
    pub fn configs(&self) -> &ConfigStore {
        &self.config
    }

    /// Applies a config change (see [`ConfigStore::change`]) and tells watchers.
    pub async fn change_config<T>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let out = self.config.change(change).await?;
        self.touched();
        Ok(out)
    }

    /// The binaries waiting for a decision.
    pub fn pending(&self) -> &PendingStore {
        &self.pending
    }

    /// The audit log, as requests write to it.
    pub fn audit(&self) -> &Arc<Recorder> {
        &self.audit
    }

    /// Where the daemon's files are.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// The secret store.
    pub fn store(&self) -> &Arc<dyn SecretStore> {
        &self.store
    }

    /// Who asks a person about pending binaries.
    pub fn approver(&self) -> &Arc<dyn Approver> {
        &self.approver
    }

    /// Who proves presence.
    pub fn presence(&self) -> &Arc<dyn crate::presence::Prover> {
        &self.presence
    }

    /// Taken while a proof of presence is being asked for.
    pub fn proving(&self) -> &Arc<tokio::sync::Mutex<()>> {
        &self.proving
    }

    /// The time source.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Whether a hash is one of the binaries allowed to send admin requests.
    pub fn is_admin_hash(&self, hash: &str) -> bool {
        self.admin_hashes.iter().any(|h| h == hash)
    }

    /// The programs caller chains pass through (deputies, git, inline shells).
    pub fn pass_throughs(&self) -> &crate::deputies::PassThroughs {
        &self.pass_throughs
    }

    /// Executable hashes, cached by file identity.
    pub fn cache(&self) -> &HashCache {
        &self.cache
    }

    /// Requests waiting for a decision.
    pub fn waits(&self) -> &Waits {
        &self.waits
    }

    /// Whether every secret request is being refused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Sets the pause; returns whether it was already so.
    pub fn swap_paused(&self, paused: bool) -> bool {
        self.paused.swap(paused, Ordering::SeqCst)
    }

    /// Whether the tray app hosts the daemon (else `keychain-auth start` runs it).
    pub fn in_app(&self) -> bool {
        self.in_app.load(Ordering::SeqCst)
    }

    /// Records that the tray app hosts the daemon; set once, at start.
    pub fn set_in_app(&self) {
        self.in_app.store(true, Ordering::SeqCst);
    }

    /// Tells watchers of [`State::activity`] that something changed.
    pub fn touched(&self) {
        self.activity.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes after anything a person would see changed (config, pending
    /// binaries, audit lines, pause). Many changes may arrive as one wake-up.
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.activity.subscribe()
    }

    /// Asks the server to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.notify_one();
    }

    /// Completes when [`State::request_shutdown`] was called.
    pub async fn shutdown_requested(&self) {
        self.shutdown.notified().await
    }
}
