//! Fuzz target: the macOS `KERN_PROCARGS2` parser on arbitrary bytes. Must never panic,
//! and never return more arguments than the buffer has NUL-terminated strings.
#![no_main]

use keychain_auth::peer::procargs::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (argv, env) = parse(data);
    assert!(argv.len() <= data.len());
    assert!(env.len() <= data.len());
});
