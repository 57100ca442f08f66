//! `keychain-auth-app`: the tray (menu-bar) app. It hosts the keychain-auth daemon
//! in-process, on the same socket and files as `keychain-auth start` (it honours
//! `KEYCHAIN_AUTH_HOME`), asks about new binaries with desktop notifications, keeps a tray
//! menu up to date and opens a window (`ui/`) with the audit history, approved tools and
//! pending binaries. There is no window at start and closing it keeps the app running;
//! Quit (or `keychain-auth stop`, SIGINT, SIGTERM) stops app and daemon together.
//!
//! No platform logic lives here: identity, stores and notifications are the daemon
//! crate's; this crate wires them to a tray, a window and Tauri commands.

mod commands;
mod tray;
mod window;

use anyhow::{Context, Result};
use keychain_auth::handlers::Daemon;
use keychain_auth::lifecycle::{serve, shutdown_signal, ServeOptions};
use keychain_auth_sdk::paths::Paths;

const USAGE: &str = "usage: keychain-auth-app [--open]

Runs the keychain-auth tray app: it hosts the daemon (like `keychain-auth start --notify`)
and shows a tray menu. --open also opens its window at start.
Files follow KEYCHAIN_AUTH_HOME like the CLI; a daemon already running there is reported
and left alone.";

/// Shared with Tauri commands and menu handlers.
pub struct Hosted {
    /// The daemon, called in-process.
    pub daemon: Daemon,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("keychain-auth-app: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut open = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--open" => open = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "-V" | "--version" => {
                println!("keychain-auth-app {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    keychain_auth::cli::init_tracing();
    for failure in keychain_auth::hardening::harden_process() {
        tracing::warn!("hardening step failed: {failure}");
    }

    let paths = Paths::from_env()?;
    let exe = std::env::current_exe().context("locating keychain-auth-app")?;
    let clis = keychain_auth::handlers::cli_admin_hashes(&exe);
    if clis.is_empty() {
        eprintln!(
            "keychain-auth-app: no keychain-auth CLI found beside the app or on PATH; admin commands will be refused until it is installed and the app restarted"
        );
    }
    for (path, hash) in &clis {
        tracing::info!("admin requests accepted from {} ({hash})", path.display());
    }
    let rt = keychain_auth::lifecycle::runtime()?;
    tauri::async_runtime::set(rt.handle().clone());
    let opts = ServeOptions {
        store: None,
        notify: true,
        hosted_in_tray: true,
        admin_hashes: clis.into_iter().map(|(_, h)| h).collect(),
    };
    let serving = rt.block_on(serve(paths, opts, shutdown_signal()))?;
    let daemon = serving.daemon.clone();
    eprintln!(
        "keychain-auth-app: serving on {}",
        Paths::from_env()?.socket.display()
    );

    let app = tauri::Builder::default()
        .manage(Hosted {
            daemon: daemon.clone(),
        })
        .invoke_handler(tauri::generate_handler![
            commands::snapshot,
            commands::history,
            commands::approve,
            commands::deny,
            commands::undeny,
            commands::allow_once,
            commands::keep_access,
            commands::revoke,
            commands::upgrade,
            commands::set_scopes,
            commands::set_paused,
        ])
        .setup(move |app| {
            // A menu-bar app: no Dock icon, no app menu.
            #[cfg(target_os = "macos")]
            app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            tray::install(app.handle(), daemon.clone())?;
            if open {
                window::show(app.handle())?;
            }
            Ok(())
        })
        .build(tauri::generate_context!())
        .context("starting the app")?;

    // When the daemon stops (Quit, `keychain-auth stop`, a signal), the app goes too.
    let handle = app.handle().clone();
    rt.spawn(async move {
        if let Err(e) = serving.finished().await {
            eprintln!("keychain-auth-app: the daemon stopped: {e:#}");
        }
        handle.exit(0);
    });

    app.run(|_app, event| {
        // Closing the last window must not quit a tray app; an explicit exit (code set)
        // does.
        if let tauri::RunEvent::ExitRequested {
            api, code: None, ..
        } = event
        {
            api.prevent_exit();
        }
    });
    Ok(())
}
