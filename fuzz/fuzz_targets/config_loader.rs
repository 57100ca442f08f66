//! Fuzz target: the daemon's loaders for config.json and pending.json, on arbitrary file
//! contents. A file that loads must validate and survive a save/load round trip.
#![no_main]

use keychain_auth::config::{Config, PendingFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cfg) = Config::parse(data) {
        cfg.validate().expect("a parsed config is valid");
        let bytes = serde_json::to_vec(&cfg).expect("serializes");
        assert_eq!(Config::parse(&bytes).expect("round trip"), cfg);
    }
    if let Ok(p) = PendingFile::parse(data) {
        let bytes = serde_json::to_vec(&p).expect("serializes");
        assert_eq!(PendingFile::parse(&bytes).expect("round trip"), p);
    }
});
