//! The tray icon and its menu. The menu's content comes from `keychain_auth::desktop::menu::build`
//! (pure, unit-tested in the daemon crate); this module turns its items into native menu
//! entries, rebuilds them whenever the daemon reports activity, and carries clicks back
//! to the daemon.

use keychain_auth::desktop::approver::Answer;
use keychain_auth::desktop::menu::{self, Action, Item, MenuState};
use keychain_auth::handlers::{Actor, Daemon};
use keychain_auth_sdk::protocol::Response;
use std::time::Duration;
use tauri::menu::{
    CheckMenuItem, IsMenuItem, Menu, MenuItem, MenuItemKind, PredefinedMenuItem, Submenu,
};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Emitter, Wry};

const TRAY_ID: &str = "keychain-auth";

/// Turns menu items into native entries.
fn native(app: &AppHandle, items: &[Item]) -> tauri::Result<Vec<MenuItemKind<Wry>>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(match item {
            Item::Action { id, label } => {
                MenuItem::with_id(app, id, label, true, None::<&str>)?.kind()
            }
            Item::Check {
                id,
                label,
                checked,
                enabled,
            } => CheckMenuItem::with_id(app, id, label, *enabled, *checked, None::<&str>)?.kind(),
            Item::Text(t) => MenuItem::new(app, t, false, None::<&str>)?.kind(),
            Item::Separator => PredefinedMenuItem::separator(app)?.kind(),
            Item::Submenu { label, items } => {
                let children = native(app, items)?;
                let refs: Vec<&dyn IsMenuItem<Wry>> =
                    children.iter().map(|c| c as &dyn IsMenuItem<Wry>).collect();
                Submenu::with_items(app, label, true, &refs)?.kind()
            }
        });
    }
    Ok(out)
}

fn build_menu(app: &AppHandle, items: &[Item]) -> tauri::Result<Menu<Wry>> {
    let entries = native(app, items)?;
    let refs: Vec<&dyn IsMenuItem<Wry>> =
        entries.iter().map(|c| c as &dyn IsMenuItem<Wry>).collect();
    Menu::with_items(app, &refs)
}

async fn current_items(daemon: &Daemon) -> Vec<Item> {
    let s = daemon.snapshot(menu::MAX_RECENT).await;
    menu::build(&MenuState {
        paused: s.paused,
        pending: &s.pending,
        tools: &s.tools,
        names: &s.names,
        recent: &s.recent,
        ptrace_warning: s.ptrace_warning.as_deref(),
        presence_warning: s.presence_warning.as_deref(),
    })
}

/// Creates the tray icon and keeps its menu current.
pub fn install(app: &AppHandle, daemon: Daemon) -> tauri::Result<()> {
    let items = tauri::async_runtime::block_on(current_items(&daemon));
    let menu = build_menu(app, &items)?;
    let mut builder = TrayIconBuilder::with_id(TRAY_ID)
        .tooltip("keychain-auth")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event({
            let daemon = daemon.clone();
            move |app, event| clicked(app, &daemon, event.id().as_ref())
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    builder.build(app)?;
    tracing::debug!("tray menu: {} items", items.len());

    // Rebuild after activity, at most about four times a second.
    let app = app.clone();
    let mut activity = daemon.state().activity();
    tauri::async_runtime::spawn(async move {
        while activity.changed().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            activity.borrow_and_update();
            let items = current_items(&daemon).await;
            let handle = app.clone();
            let _ = app.run_on_main_thread(move || match build_menu(&handle, &items) {
                Ok(menu) => {
                    if let Some(tray) = handle.tray_by_id(TRAY_ID) {
                        if let Err(e) = tray.set_menu(Some(menu)) {
                            tracing::warn!("updating the tray menu: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!("building the tray menu: {e}"),
            });
            let _ = app.emit_to(crate::window::LABEL, "changed", ());
        }
    });
    Ok(())
}

fn report(what: &str, r: Response) {
    if let Response::Error(e) = r {
        tracing::warn!("{what}: {}", e.message);
    }
}

/// Carries out a click on a menu entry.
fn clicked(app: &AppHandle, daemon: &Daemon, id: &str) {
    let Some(action) = Action::parse(id) else {
        return;
    };
    let daemon = daemon.clone();
    match action {
        Action::Open => {
            if let Err(e) = crate::window::show(app) {
                tracing::warn!("opening the window: {e}");
            }
        }
        Action::Quit => daemon.state().request_shutdown(),
        Action::Pause(p) => {
            tauri::async_runtime::spawn(async move {
                report("pause", daemon.set_paused(Actor::Tray, p).await)
            });
        }
        Action::Approve(hash, lasts) => {
            tauri::async_runtime::spawn(async move {
                report(
                    "approve",
                    daemon
                        .answer(Actor::Tray, &hash, Answer::Approve(lasts))
                        .await,
                )
            });
        }
        Action::Deny(hash) => {
            tauri::async_runtime::spawn(async move {
                report(
                    "deny",
                    daemon.answer(Actor::Tray, &hash, Answer::Deny).await,
                )
            });
        }
        Action::KeepAccess(hash) => {
            tauri::async_runtime::spawn(async move {
                report(
                    "keep access",
                    daemon.answer(Actor::Tray, &hash, Answer::KeepAccess).await,
                )
            });
        }
        Action::ToggleScope { hash, name } => {
            tauri::async_runtime::spawn(async move {
                let Some(tool) = daemon.state().config().tool(&hash).cloned() else {
                    return;
                };
                let scopes = menu::toggled_scopes(&tool.scopes, &name);
                report(
                    "scope change",
                    daemon.set_scopes(Actor::Tray, &hash, scopes).await,
                )
            });
        }
    }
    // The window, if open, follows these changes through the daemon's activity.
}

/// What the app says when no tray host runs.
pub const NO_HOST: &str = "no tray host (org.kde.StatusNotifierWatcher) on the session bus: the tray icon cannot be shown, so the window is opened instead; close it and run keychain-auth-app again to reopen it, or install a tray (e.g. the AppIndicator extension on GNOME)";

/// Whether the session bus has no StatusNotifier host to show the icon (`false` when
/// the bus cannot be asked: then nothing is known to be missing).
pub async fn host_missing() -> bool {
    #[cfg(target_os = "linux")]
    {
        let asked = async {
            let conn = zbus::Connection::session().await?;
            let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
            let name = zbus::names::BusName::try_from("org.kde.StatusNotifierWatcher")?;
            dbus.name_has_owner(name).await.map_err(zbus::Error::from)
        };
        match tokio::time::timeout(Duration::from_secs(3), asked).await {
            Ok(Ok(has)) => !has,
            Ok(Err(e)) => {
                tracing::debug!("asking the session bus for a tray host: {e}");
                false
            }
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    false
}

/// A first notification saying there is no tray icon.
pub async fn notify_no_host() {
    #[cfg(target_os = "linux")]
    {
        let sent = async {
            let conn = zbus::Connection::session().await?;
            let hints: std::collections::HashMap<&str, zbus::zvariant::Value<'_>> =
                std::collections::HashMap::new();
            conn.call_method(
                Some("org.freedesktop.Notifications"),
                "/org/freedesktop/Notifications",
                Some("org.freedesktop.Notifications"),
                "Notify",
                &(
                    "keychain-auth",
                    0u32,
                    "",
                    "keychain-auth: no tray icon",
                    NO_HOST,
                    Vec::<&str>::new(),
                    hints,
                    -1i32,
                ),
            )
            .await?;
            Ok::<_, zbus::Error>(())
        };
        if let Err(e) = sent.await {
            tracing::warn!("telling that there is no tray host: {e}");
        }
    }
}
