//! The app's one window (`ui/index.html`): created when opened, destroyed when closed
//! (closing it only closes the window; the app and its daemon keep running). Once it is
//! gone, the memory WebKit took for it is given back: its web process exits with the
//! page, and the app ends WebKit's network process (which WebKitGTK keeps for the life
//! of the app otherwise) and returns freed heap to the system. Opening the window again
//! starts them anew.

use std::time::Duration;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The window's label; the capability file grants its commands to this label only.
pub const LABEL: &str = "main";

/// Shows the window, creating it when it is not open.
pub fn show(app: &AppHandle) -> tauri::Result<()> {
    if let Some(w) = app.get_webview_window(LABEL) {
        w.show()?;
        w.unminimize()?;
        return w.set_focus();
    }
    WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App("index.html".into()))
        .title("keychain-auth")
        .inner_size(1000.0, 720.0)
        .min_inner_size(640.0, 480.0)
        .build()?;
    Ok(())
}

/// Opens the window from any thread (the socket of [`crate::instance`], start-up).
pub fn show_from_anywhere(app: &AppHandle) {
    let handle = app.clone();
    let _ = app.run_on_main_thread(move || {
        if let Err(e) = show(&handle) {
            tracing::warn!("opening the window: {e}");
        }
    });
}

/// Called when the window was destroyed: a moment later, if it was not opened again,
/// gives WebKit's memory back.
pub fn closed(app: &AppHandle) {
    let app = app.clone();
    std::thread::spawn(move || {
        // Let WebKit end the page's web process first.
        std::thread::sleep(Duration::from_secs(2));
        let handle = app.clone();
        let _ = app.run_on_main_thread(move || {
            if handle.get_webview_window(LABEL).is_some() {
                return;
            }
            let ended = end_network_process();
            // SAFETY: malloc_trim only walks glibc's own heap; no precondition.
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            unsafe {
                libc::malloc_trim(0);
            }
            tracing::info!("window closed: ended {ended} WebKit network process(es)");
        });
    });
}

/// Ends the WebKit network processes this app started (its children named
/// `WebKitNetworkProcess`); WebKit starts a new one for the next window. Other
/// processes, and anything that is not our child, are left alone.
#[cfg(target_os = "linux")]
fn end_network_process() -> usize {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut ended = 0;
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c);
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        // The kernel's name is cut at 15 bytes: "WebKitNetworkPr".
        if ppid == Some(me) && "WebKitNetworkProcess".starts_with(comm) && comm.len() >= 15 {
            // SAFETY: kill has no memory-safety preconditions; pid is our own child.
            if unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
                ended += 1;
            }
        }
    }
    ended
}

#[cfg(not(target_os = "linux"))]
fn end_network_process() -> usize {
    // WebKit on macOS ends its processes itself.
    0
}
