//! Build script: generates the Tauri context and one permission per app command, so the
//! window's capability file can grant exactly the commands the window uses.

fn main() {
    let commands = &[
        "snapshot",
        "history",
        "approve",
        "deny",
        "undeny",
        "allow_once",
        "keep_access",
        "revoke",
        "upgrade",
        "set_scopes",
        "set_paused",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(commands)),
    )
    .expect("running tauri-build");
}
