//! Reads one secret the way a tool would: `cargo run -p keychain-auth-sdk --example get --
//! NAME [WAIT_SECONDS]`. The first run is refused (this example binary is not approved)
//! and prints the command that approves it; with WAIT_SECONDS it waits that long for you
//! to approve it instead, then prints the value.

use keychain_auth_sdk::{Client, ClientError, ErrorCode};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(name) = args.next() else {
        eprintln!("usage: get NAME [WAIT_SECONDS]");
        return ExitCode::from(2);
    };
    let wait = args.next().and_then(|s| s.parse::<u64>().ok());
    let result = Client::connect("example-get").and_then(|mut c| match wait {
        Some(secs) => c.get_wait(&name, Duration::from_secs(secs)),
        None => c.get(&name),
    });
    match result {
        Ok(secret) => {
            // A real tool would use the value, not print it.
            println!("{}", secret.expose());
            ExitCode::SUCCESS
        }
        Err(ClientError::Daemon(e)) if e.code == ErrorCode::NotApproved => {
            eprintln!("not approved yet; approve this program with:");
            eprintln!("  keychain-auth approve {}", e.hash.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
