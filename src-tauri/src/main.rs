//! `keychain-auth-app`: the tray (menu-bar) app. It hosts the keychain-auth daemon
//! in-process, on the same socket and files as `keychain-auth start` (it honours
//! `KEYCHAIN_AUTH_HOME`), asks about new binaries with desktop notifications, keeps a tray
//! menu up to date and opens a window (`ui/`) with the audit history, approved tools and
//! pending binaries. There is no window at start (unless `--open`, or no tray host runs)
//! and closing it destroys it, WebKit's processes with it, keeping the app running; a
//! second `keychain-auth-app` opens the running one's window. Quit (or `keychain-auth
//! stop`, SIGINT, SIGTERM) stops app and daemon together.
//!
//! No platform logic lives here: identity, stores and notifications are the daemon
//! crate's; this crate wires them to a tray, a window and Tauri commands.

mod commands;
mod instance;
mod tray;
mod window;

use anyhow::{Context, Result};
use keychain_auth::handlers::Daemon;
use keychain_auth::lifecycle::{serve, shutdown_signal, ServeOptions};
use keychain_auth_sdk::paths::Paths;

const USAGE: &str = "usage: keychain-auth-app [--open]

Runs the keychain-auth tray app: it hosts the daemon (like `keychain-auth start --notify`)
and shows a tray menu. --open also opens its window at start (so does a session with no
tray host). Run again while it runs, it opens the running app's window and exits.
Files follow KEYCHAIN_AUTH_HOME like the CLI; a headless daemon already running there is
reported and left alone.";

/// Shared with Tauri commands and menu handlers.
pub struct Hosted {
    /// The daemon, called in-process.
    pub daemon: Daemon,
}

fn main() {
    // GTK on X11 loads the GL driver when it opens the display (with Mesa's llvmpipe,
    // some 45 MiB) for an app that is a tray icon most of the time; the window's page
    // draws without it. GDK_GL set by the user is left as it is.
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none() {
        std::env::set_var("GDK_GL", "disable");
    }
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
    // One app per home: a second one opens the running app's window.
    let app_socket = instance::socket_path(&paths.socket_dir);
    if instance::ask_running_to_open(&app_socket) {
        eprintln!("keychain-auth-app is already running for this home; opened its window");
        return Ok(());
    }
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
    // Without a tray host the icon is invisible: say so and open the window instead.
    let no_tray_host = rt.block_on(tray::host_missing());
    if no_tray_host {
        tracing::warn!("{}", tray::NO_HOST);
        rt.spawn(tray::notify_no_host());
    }
    let daemon = serving.daemon.clone();
    eprintln!(
        "keychain-auth-app: serving on {}",
        Paths::from_env()?.socket.display()
    );

    let listen_at = app_socket.clone();
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
            if open || no_tray_host {
                window::show(app.handle())?;
            }
            if let Err(e) = instance::listen(listen_at.clone(), app.handle().clone()) {
                tracing::warn!(
                    "a second keychain-auth-app cannot open this one's window: {}: {e}",
                    listen_at.display()
                );
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

    app.run(move |app, event| match event {
        // Closing the last window must not quit a tray app; an explicit exit (code set)
        // does.
        tauri::RunEvent::ExitRequested {
            api, code: None, ..
        } => api.prevent_exit(),
        tauri::RunEvent::WindowEvent {
            label,
            event: tauri::WindowEvent::Destroyed,
            ..
        } if label == window::LABEL => window::closed(app),
        tauri::RunEvent::Exit => instance::remove(&app_socket),
        _ => {}
    });
    Ok(())
}
