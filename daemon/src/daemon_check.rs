//! What the `keychain-auth` CLI checks about the process it is about to send admin
//! requests to, beyond what every client checks (the socket is the user's own and the
//! listener runs as the user, `keychain_auth_sdk::verify`): that the listener runs the
//! keychain-auth executable, this CLI's own file or the tray app installed beside it.
//!
//! Where the kernel hides the listener's executable (Linux: the daemon makes itself
//! non-dumpable, which hides it from every other process of the user, this CLI
//! included) nothing more can be told, and the check passes. That is why, on Linux,
//! `set` never sends its value over the socket at all (see `cli.rs`).

use crate::peer::{self, Listener};
use anyhow::Result;
use keychain_auth_sdk::{Client, ClientError};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Connects as the CLI: the SDK's checks, then [`check`], before the hello.
pub fn connect(socket: &Path) -> Result<Client, ClientError> {
    Client::connect_checked(socket, "keychain-auth-cli", &[], None, &|stream| {
        check(stream, socket)
    })
}

/// Checks that the process behind a connected socket runs keychain-auth, when the
/// kernel shows it. `Err` says, for a person, what listens instead.
pub fn check(stream: &UnixStream, socket: &Path) -> Result<(), String> {
    let (path, file) = match peer::listener(stream.as_fd()) {
        Ok(Listener::Runs { path, file }) => (path, file),
        Ok(Listener::Hidden(why)) => {
            tracing::debug!("cannot see the daemon's executable: {why}");
            return Ok(());
        }
        Err(e) => {
            return Err(format!(
                "cannot tell which program listens on {}: {e}; nothing was sent to it",
                socket.display()
            ))
        }
    };
    match expected(&file) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "the program listening on {} is {path}, not keychain-auth; nothing was sent to it. Stop it, then start keychain-auth again",
            socket.display()
        )),
        Err(e) => Err(format!(
            "cannot check the program listening on {} ({path}): {e}; nothing was sent to it",
            socket.display()
        )),
    }
}

/// Whether an open executable is this CLI's own file (same inode), or has the hash of
/// this CLI or of the tray app installed beside it.
fn expected(file: &std::fs::File) -> Result<bool> {
    let theirs = file.metadata()?;
    let own = std::env::current_exe()?;
    let mine = std::fs::metadata(&own)?;
    if (theirs.dev(), theirs.ino()) == (mine.dev(), mine.ino()) {
        return Ok(true);
    }
    let hash = crate::digest::hash_reader(file)?;
    if hash == crate::lifecycle::self_hash()? {
        return Ok(true);
    }
    let app = own.with_file_name("keychain-auth-app");
    Ok(std::fs::File::open(app)
        .and_then(crate::digest::hash_reader)
        .is_ok_and(|h| h == hash))
}
