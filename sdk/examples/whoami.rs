//! Shows how the daemon sees this process: `cargo run -p keychain-auth-sdk --example
//! whoami`. Prints the hash a user would approve, the executable path and the status.

use keychain_auth_sdk::Client;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut client = Client::connect("example-whoami")?;
    let me = client.whoami()?;
    println!("server: {}", client.server());
    println!("hash:   {}", me.hash);
    println!("path:   {}", me.path);
    println!("status: {}", me.status);
    if !me.scopes.is_empty() {
        println!("scopes: {}", me.scopes.join(", "));
    }
    Ok(())
}
