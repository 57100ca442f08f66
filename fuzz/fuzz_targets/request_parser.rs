//! Fuzz target: one request payload as the daemon parses it, then the name and hash
//! checks it applies; whatever parses must re-encode and parse back to the same value.
#![no_main]

use keychain_auth_sdk::frame::{decode, encode};
use keychain_auth_sdk::protocol::{validate_hash, validate_name, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = decode::<Request>(data) else {
        return;
    };
    match &req {
        Request::Get { name, .. } | Request::Set { name, .. } | Request::Delete { name } => {
            let _ = validate_name(name);
        }
        Request::Approve { hash, .. } | Request::Deny { hash } => {
            let _ = validate_hash(hash);
        }
        _ => {}
    }
    if let Ok(bytes) = encode(&req) {
        let back: Request = decode(&bytes[4..]).expect("a re-encoded request parses");
        assert_eq!(back, req);
    }
});
