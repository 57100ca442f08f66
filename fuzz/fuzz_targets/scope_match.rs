//! Fuzz target: scope glob matching on arbitrary pattern and name (split at the first
//! NUL byte). Must never panic or run away; a pattern without wildcards or escapes
//! matches exactly itself, and a name made literal matches exactly that name.
#![no_main]

use keychain_auth::scope::{literal, matches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\0').unwrap_or((&text, ""));
    let m = matches(pattern, name);
    if !pattern.contains(['*', '?', '\\']) {
        assert_eq!(m, pattern == name);
    }
    assert!(matches(&literal(pattern), pattern));
    assert_eq!(matches(&literal(pattern), name), pattern == name);
});
