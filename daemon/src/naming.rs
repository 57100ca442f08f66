//! How keychain-auth names things to a person: a hash shortened for a line of text
//! (defined with the wire's `Hash`), the base name of an executable's path (defined
//! with identification, which matches interpreters by it) and a path quoted for a shell.

pub use keychain_auth_sdk::protocol::short_hash;

/// The last component of an executable's path, without the ` (deleted)` the kernel
/// appends to one that was removed while it ran.
pub use crate::peer::exe_base_name as base_name;

/// A path or word as a person can paste it into a POSIX shell: as it is when it holds
/// only characters no shell treats specially, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%=".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

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
        assert_eq!(shell_quote("/h/tools/tool"), "/h/tools/tool");
        assert_eq!(shell_quote("/h/my tools/it's"), "'/h/my tools/it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
