//! Fuzz target: git credential input as the helper parses it, then the secret name it
//! derives and the value it would store. Whatever parses must name a valid secret (or
//! fail with an error), a user name must come back out of its name unchanged, the
//! credential must match its own name when erased, and a value that encodes must decode
//! to what was encoded.
#![no_main]

use git_credential_keychain_auth::credential::Credential;
use git_credential_keychain_auth::naming;
use git_credential_keychain_auth::stored::Stored;
use keychain_auth_sdk::protocol::validate_name;
use keychain_auth_sdk::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = Credential::parse(data) else {
        return;
    };
    if let Ok(name) = naming::name(&c) {
        validate_name(&name).expect("a derived name is valid");
        let prefix = naming::prefix(&c).expect("a named credential has a prefix");
        let user = naming::username_under(&prefix, &name).expect("the user name is last");
        assert_eq!(Some(user.as_str()), c.username.as_deref());
        assert!(naming::describes(&c, &name).expect("a named credential has a site"));
    }
    if let Ok(stored) = Stored::from_git(&c) {
        if let Ok(value) = stored.encode() {
            assert_eq!(
                Stored::decode(&value).expect("an encoded value decodes"),
                stored
            );
        }
    }
    // Any stored value, as a store may hand it back: read or refused, never a panic.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Stored::decode(&Secret::from(text));
    }
});
