//! Fuzz target: a byte stream read as frames, the way the SDK reads the daemon's answers
//! and the daemon reads requests: length prefix checks, then UTF-8 and JSON decoding.
#![no_main]

use keychain_auth_sdk::frame::{decode, read_payload, MAX_FRAME};
use keychain_auth_sdk::protocol::{Request, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(payload) = read_payload(&mut rest) {
        assert!(!payload.is_empty() && payload.len() <= MAX_FRAME);
        let _ = decode::<Request>(&payload);
        let _ = decode::<Response>(&payload);
    }
});
