//! The app's one window (`ui/index.html`), created when first opened and shown again
//! afterwards; closing it only closes the window.

use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The window's label; the capability file grants its commands to this label only.
pub const LABEL: &str = "main";

/// Shows the window, creating it the first time.
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
