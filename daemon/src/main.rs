//! The `keychain-auth` binary: the daemon and its command line. Everything lives in the
//! library ([`keychain_auth::cli`]); this prints the error chain and sets the exit code.

fn main() {
    std::process::exit(keychain_auth::cli::main());
}
