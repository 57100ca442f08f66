//! Starting and stopping the daemon: `start --foreground` prepares the private
//! directories, takes the instance lock, loads the files, opens the store, binds the
//! socket 0600 and serves; `start` runs that in the background and returns once the
//! socket answers; `stop` asks the running daemon to exit over the admin path. What the
//! desktop adds to a started daemon (notifications and following their answers) is
//! `crate::desktop::follower`; serving the socket is `crate::server`.

use crate::clock::SystemClock;
use crate::config::{Config, StoreChoice};
use crate::desktop::follower;
use crate::dirs::ensure_private_dir;
use crate::handlers::Daemon;
use crate::server;
use crate::state::{Deps, State};
use anyhow::{anyhow, bail, Context, Result};
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{Request, Response};
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `start` waits for the background daemon's socket to answer.
const START_WAIT: Duration = Duration::from_secs(20);

/// Hash of the executable this process runs: the keychain-auth CLI that may send admin
/// requests. On Linux, `/proc/self/exe` is the running inode even if the file was replaced.
pub fn self_hash() -> Result<String> {
    #[cfg(target_os = "linux")]
    let path = std::path::PathBuf::from("/proc/self/exe");
    #[cfg(not(target_os = "linux"))]
    let path = std::env::current_exe().context("locating the keychain-auth executable")?;
    let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    crate::digest::hash_reader(f).context("hashing the keychain-auth executable")
}

/// Creates every directory the daemon uses, checked and 0700.
pub fn prepare_dirs(paths: &Paths) -> Result<()> {
    for d in [&paths.socket_dir, &paths.config_dir, &paths.state_dir] {
        ensure_private_dir(d)?;
    }
    Ok(())
}

/// Another daemon serves this home already (its instance lock is held, or its socket
/// answers). `start --foreground` started by a service manager exits successfully on it
/// ([`crate::service::already_running_is_success`]).
#[derive(Debug, thiserror::Error)]
#[error("keychain-auth is already running ({0}); `keychain-auth stop` stops it")]
pub struct AlreadyRunning(String);

/// Holds the instance lock (`agent.lock` beside the socket) for as long as it lives.
#[derive(Debug)]
pub struct InstanceLock {
    _file: nix::fcntl::Flock<File>,
}

/// Takes the instance lock, or fails if another daemon holds it.
pub fn lock_instance(paths: &Paths) -> Result<InstanceLock> {
    let lock_path = paths.socket_dir.join("agent.lock");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(InstanceLock { _file: locked }),
        Err(_) => Err(AlreadyRunning(format!("socket {}", paths.socket.display())).into()),
    }
}

/// Removes a stale socket left by a daemon that died; refuses anything that is not a
/// socket of ours, and a socket something still answers on.
fn clear_stale_socket(socket: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("inspecting {}", socket.display())),
    };
    if !meta.file_type().is_socket() || meta.uid() != crate::dirs::euid() {
        bail!(
            "refusing to replace {}: it is not a socket owned by you. Remove it by hand if you trust it",
            socket.display()
        );
    }
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(AlreadyRunning(format!("at {}", socket.display())).into());
    }
    std::fs::remove_file(socket).with_context(|| format!("removing stale {}", socket.display()))
}

/// What a daemon started in this process is given.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Overrides config.json's `store`.
    pub store: Option<StoreChoice>,
    /// Ask on the desktop (notifications).
    pub notify: bool,
    /// Where else a person can answer: the CLI only, or also a tray menu.
    pub hosted_in_tray: bool,
    /// Hashes of the binaries allowed to send admin requests over the socket.
    pub admin_hashes: Vec<String>,
}

/// A daemon serving in this process: its state, for in-process callers (the tray app),
/// and the task that serves the socket.
#[derive(Debug)]
pub struct Serving {
    /// The daemon; the hosting app calls it directly.
    pub daemon: Daemon,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    socket: std::path::PathBuf,
    bound_ino: u64,
    _lock: InstanceLock,
}

impl Serving {
    /// Waits until the daemon stops (its shutdown future, an admin `shutdown`, or
    /// [`State::request_shutdown`]), then removes the socket if it is still ours.
    pub async fn finished(self) -> Result<()> {
        let result = self.task.await.context("the server task failed")?;
        // Remove the socket only if it is still the one we bound.
        if std::fs::symlink_metadata(&self.socket)
            .map(|m| m.ino())
            .ok()
            == Some(self.bound_ino)
        {
            let _ = std::fs::remove_file(&self.socket);
        }
        result.context("serving")
    }
}

/// Starts the daemon on the current tokio runtime: prepares the private directories,
/// takes the instance lock (failing with a clear message if a daemon already runs),
/// loads the files, opens the store, binds the socket 0600 and serves until `shutdown`.
pub async fn serve(
    paths: Paths,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Serving> {
    prepare_dirs(&paths)?;
    let lock = lock_instance(&paths)?;
    let config = Config::load(&paths.config)?.unwrap_or_default();
    let choice = opts.store.unwrap_or(config.store);
    let (store, warning) = crate::store::open(choice, &config.namespace)
        .await
        .map_err(|e| anyhow!("cannot open the secret store ({choice:?}): {e}"))?;
    if let Some(w) = warning {
        log_line(&format!("keychain-auth: WARNING: {w}"));
    }
    let store: Arc<dyn crate::store::SecretStore> = match config.value_cache_ms {
        0 => store,
        ms => crate::store::cache::ValueCache::new(store, Duration::from_millis(ms)),
    };
    let (approver, desktop) = follower::approver(opts.notify, opts.hosted_in_tray);
    let state = Arc::new(State::load(Deps {
        paths: paths.clone(),
        store,
        approver,
        presence: crate::presence::system(),
        clock: Arc::new(SystemClock),
        deputy_hashes: helper_hashes(),
        admin_hashes: opts.admin_hashes,
    })?);
    if opts.hosted_in_tray {
        state.set_in_app();
    }
    if let Some(w) = Daemon::new(state.clone()).presence().warning() {
        log_line(&format!("keychain-auth: WARNING: {w}"));
    }
    // Approvals until logout end with the session that made them; expired ones go.
    Daemon::new(state.clone()).end_of_session().await;
    tokio::spawn(Daemon::new(state.clone()).sweep_expired());
    let deputies = Daemon::new(state.clone()).deputy_approvals();
    if !deputies.is_empty() {
        tracing::warn!(
            "{} approved itself: a deputy's approval no longer serves whoever runs it; each program that asks through it is asked for once (docs/git.md)",
            deputies.join(", ")
        );
    }
    if let Some(events) = desktop {
        tokio::spawn(follower::follow(Daemon::new(state.clone()), events));
    }
    clear_stale_socket(&paths.socket)?;
    let listener = tokio::net::UnixListener::bind(&paths.socket)
        .with_context(|| format!("binding {}", paths.socket.display()))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", paths.socket.display()))?;
    let bound_ino = std::fs::symlink_metadata(&paths.socket)?.ino();
    tracing::info!("listening on {}", paths.socket.display());
    let task = tokio::spawn(server::run(listener, state.clone(), shutdown));
    Ok(Serving {
        daemon: Daemon::new(state),
        task,
        socket: paths.socket.clone(),
        bound_ino,
        _lock: lock,
    })
}

/// A tokio runtime sized for the daemon: hashing new executables runs on its blocking
/// pool, so a storm of them queues instead of spawning hundreds of threads. Its threads
/// write the audit lines of the reads they answered when they run out of work.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    // Shortens the kernel's possession check on keyutils reads. Done before any runtime
    // thread exists, so that every one of them shares the keyring.
    #[cfg(target_os = "linux")]
    if let Err(e) = crate::store::keyutils::link_user_keyring_into_process_keyring() {
        tracing::debug!("no process keyring for faster keyutils reads: {e}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(8)
        .on_thread_start(server::runtime_thread_started)
        .on_thread_park(server::audit_when_idle)
        .build()
        .context("starting the async runtime")
}

/// The git helpers installed beside this executable and on `PATH`: deputies, whose
/// requests are decided for the program that ran them.
fn helper_hashes() -> Vec<String> {
    let Ok(exe) = std::env::current_exe() else {
        return Vec::new();
    };
    let found = crate::deputies::installed(&exe, crate::deputies::HELPER);
    for (path, hash) in &found {
        tracing::info!(
            "deputy: {} ({hash}) is served for the program that runs it",
            path.display()
        );
    }
    found.into_iter().map(|(_, h)| h).collect()
}

/// Runs the daemon in this process until SIGINT, SIGTERM or an admin `shutdown`.
pub fn run_foreground(store_override: Option<StoreChoice>, notify: bool) -> Result<()> {
    let paths = Paths::from_env()?;
    for failure in crate::hardening::harden_process() {
        tracing::warn!("hardening step failed: {failure}");
    }
    let opts = ServeOptions {
        store: store_override,
        notify,
        hosted_in_tray: false,
        admin_hashes: vec![self_hash()?],
    };
    let served = runtime()?.block_on(async move {
        serve(paths, opts, shutdown_signal())
            .await?
            .finished()
            .await
    });
    match served {
        Err(e)
            if e.downcast_ref::<AlreadyRunning>().is_some()
                && crate::service::already_running_is_success(
                    std::env::var_os(crate::service::SUPERVISOR_ENV).as_deref(),
                ) =>
        {
            // launchd (KeepAlive on failure) or systemd (Restart=on-failure) would start
            // this again and again while the app or another daemon serves.
            log_line(&format!("keychain-auth: {e}; exiting successfully, so that the service manager does not start it again"));
            Ok(())
        }
        other => other,
    }
}

/// Writes a line of the daemon's own to stderr (daemon.log for a background daemon or a
/// service), starting with the time as the `tracing` lines do.
fn log_line(msg: &str) {
    eprintln!(
        "{} {msg}",
        humantime::format_rfc3339_micros(std::time::SystemTime::now())
    );
}

/// A daemon.log line without the time it starts with, for `start` to show a person.
fn without_time(line: &str) -> &str {
    match line.split_once(' ') {
        Some((t, rest)) if humantime::parse_rfc3339(t).is_ok() => rest.trim_start(),
        _ => line,
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// When daemon.log grows past this, it is started afresh at the next background start.
pub const DAEMON_LOG_MAX: u64 = 1024 * 1024;

/// Keeps daemon.log bounded: when it has grown past [`DAEMON_LOG_MAX`], it becomes
/// `daemon.log.1` (replacing an older one) and a new log begins. Best effort: a log that
/// cannot be rotated is appended to, with a warning.
fn rotate_log(log: &Path) {
    let big = std::fs::symlink_metadata(log)
        .map(|m| m.is_file() && m.len() > DAEMON_LOG_MAX)
        .unwrap_or(false);
    if big {
        let mut old = log.as_os_str().to_owned();
        old.push(".1");
        if let Err(e) = std::fs::rename(log, &old) {
            eprintln!(
                "keychain-auth: WARNING: could not rotate {}: {e}",
                log.display()
            );
        }
    }
}

/// Starts the daemon in the background and waits until its socket answers.
pub fn start_background(store: Option<StoreChoice>, notify: bool) -> Result<String> {
    let paths = Paths::from_env()?;
    match crate::daemon_check::connect(&paths.socket) {
        Ok(mut c) => {
            let mut msg = format!(
                "keychain-auth is already running ({}, socket {})",
                c.server(),
                paths.socket.display()
            );
            let quiet = matches!(
                c.request(&Request::Status {}),
                Ok(Response::Status(s)) if s.notifications == Some(false)
            );
            if notify && quiet {
                msg.push_str("\nit runs without notifications, and --notify changes nothing about a daemon already running: `keychain-auth stop`, then `keychain-auth start --notify`");
            }
            return Ok(msg);
        }
        Err(e @ keychain_auth_sdk::ClientError::Untrusted(_)) => bail!(e),
        Err(_) => {}
    }
    prepare_dirs(&paths)?;
    rotate_log(&paths.daemon_log);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&paths.daemon_log)
        .with_context(|| format!("opening {}", paths.daemon_log.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe = std::env::current_exe().context("locating the keychain-auth executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("start").arg("--foreground");
    if let Some(s) = store {
        cmd.arg("--store").arg(store_arg(s));
    }
    if notify {
        cmd.arg("--notify");
    }
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .process_group(0);
    let mut child = cmd.spawn().context("spawning the daemon")?;
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = std::fs::read(&paths.daemon_log).unwrap_or_default();
            let tail = String::from_utf8_lossy(out.get(log_start as usize..).unwrap_or(&[]));
            bail!("the daemon exited ({status}):\n{}", tail.trim_end());
        }
        if let Ok(mut c) = crate::daemon_check::connect(&paths.socket) {
            let store = match c.request(&Request::Status {}) {
                Ok(Response::Status(s)) => s.store,
                _ => "?".into(),
            };
            let out = std::fs::read(&paths.daemon_log).unwrap_or_default();
            let warnings = String::from_utf8_lossy(out.get(log_start as usize..).unwrap_or(&[]))
                .lines()
                .map(without_time)
                .collect::<Vec<_>>()
                .join("\n")
                .trim_end()
                .to_string();
            let mut msg = String::new();
            if !warnings.is_empty() {
                msg.push_str(&warnings);
                msg.push('\n');
            }
            msg.push_str(&format!(
                "keychain-auth started (pid {}, store {store}, socket {})",
                child.id(),
                paths.socket.display()
            ));
            return Ok(msg);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "the daemon did not answer on {} within {}s; see {}",
                paths.socket.display(),
                START_WAIT.as_secs(),
                paths.daemon_log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn store_arg(s: StoreChoice) -> &'static str {
    match s {
        StoreChoice::Auto => "auto",
        StoreChoice::SecretService => "secret-service",
        StoreChoice::Keyutils => "keyutils",
        StoreChoice::Keychain => "keychain",
    }
}

/// Asks the running daemon to stop and waits until it has.
pub fn stop() -> Result<String> {
    let paths = Paths::from_env()?;
    let mut c = match crate::daemon_check::connect(&paths.socket) {
        Ok(c) => c,
        Err(e @ keychain_auth_sdk::ClientError::Untrusted(_)) => bail!(e),
        Err(_) => return Ok("keychain-auth is not running".into()),
    };
    c.request(&Request::Shutdown {})?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(&paths.socket).is_err() {
            return Ok("keychain-auth stopped".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the daemon did not stop within 10s")
}
