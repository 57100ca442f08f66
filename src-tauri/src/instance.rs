//! One app per home: a second `keychain-auth-app` opens the running app's window and
//! exits. The running app listens on `app.sock` beside the daemon's socket (in the same
//! 0700 directory); the only thing it understands is the line `open`, which shows the
//! window. Another program of the user reaching it gains nothing: it can open a window
//! on the user's own screen, nothing else (the window's decisions still need a person,
//! and widening ones a proof of presence).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tauri::AppHandle;

/// The app's own socket in the daemon's socket directory.
pub fn socket_path(socket_dir: &Path) -> PathBuf {
    socket_dir.join("app.sock")
}

/// Asks a running app to open its window; `true` when one answered.
pub fn ask_running_to_open(path: &Path) -> bool {
    let Ok(mut s) = UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"open\n").is_err() {
        return false;
    }
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).is_ok() && answer.trim() == "ok"
}

/// Listens on `path` (replacing a stale socket: the caller serves this home's daemon, so
/// no other app does) and opens the window for every `open`.
pub fn listen(path: PathBuf, app: AppHandle) -> std::io::Result<()> {
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
            let mut line = String::new();
            let mut reader = BufReader::new((&conn).take(64));
            if reader.read_line(&mut line).is_ok() && line.trim() == "open" {
                tracing::info!("another keychain-auth-app asked for the window");
                crate::window::show_from_anywhere(&app);
                let _ = (&conn).write_all(b"ok\n");
            } else {
                let _ = (&conn).write_all(b"unknown request; the only one is `open`\n");
            }
        }
    });
    Ok(())
}

/// Removes the socket when the app ends.
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}
