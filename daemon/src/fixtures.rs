//! Values the unit tests build again and again (compiled for tests only): an approved
//! tool with the fields a test cares about and the defaults for the rest.

use keychain_auth_sdk::protocol::{Access, Tool};

/// A tool approved from the CLI, with nothing but a hash, a label, a path, scopes and
/// an access level.
pub(crate) fn tool(hash: &str, label: &str, path: &str, scopes: &[&str], access: Access) -> Tool {
    Tool {
        hash: hash.into(),
        label: label.into(),
        path: path.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        access,
        approved_at: String::new(),
        approved_via: "cli".into(),
        upgraded_at: None,
        upgraded_via: None,
        expires_at: None,
        until_logout: false,
        script: None,
        parent: None,
        macos: None,
        unbound_get: false,
        libraries: Vec::new(),
        terminal_session: false,
        only_through: None,
        chain: None,
        follow: None,
    }
}
