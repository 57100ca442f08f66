//! How keychain-auth names things to a person: a hash shortened for a line of text
//! (defined with the wire's `Hash`) and the base name of an executable's path (defined
//! with identification, which matches interpreters by it).

pub use keychain_auth_sdk::protocol::short_hash;

/// The last component of an executable's path, without the ` (deleted)` the kernel
/// appends to one that was removed while it ran.
pub use crate::peer::exe_base_name as base_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hashes_and_base_names() {
        let h = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(short_hash(&h), "sha256:abababababab");
        assert_eq!(short_hash("short"), "short");
        assert_eq!(base_name("/usr/bin/git"), "git");
        assert_eq!(base_name("/tmp/tool (deleted)"), "tool");
        assert_eq!(base_name("tool"), "tool");
        assert_eq!(base_name("/"), "");
    }
}
