//! Fuzz target: git credential input as the helper parses it, then the secret name it
//! derives. Whatever parses must name a valid secret (or fail with an error), and a user
//! name must come back out of its name unchanged.
#![no_main]

use git_credential_keychain_auth::credential::Credential;
use git_credential_keychain_auth::naming;
use keychain_auth_sdk::protocol::validate_name;
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
    }
});
