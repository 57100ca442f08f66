//! Criterion benchmarks of the daemon's per-request work: frame encoding and decoding
//! (every request and answer), scope matching (every `get`), SHA-256 of an executable
//! (every binary seen for the first time), and a whole approved `get` answered in-process
//! without a socket (policy, the peer re-check, the audit line; a store that answers
//! from memory), with the peer re-check alone beside it. `cargo bench -p keychain-auth`;
//! the whole-daemon scenarios are in `scripts/bench`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keychain_auth::handlers::Daemon;
use keychain_auth::peer::Peer;
use keychain_auth::state::{Deps, State};
use keychain_auth::store::{BoxFuture, SecretStore, StoreError};
use keychain_auth::{digest, scope};
use keychain_auth_sdk::frame;
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{Request, Response};
use keychain_auth_sdk::Secret;
use std::os::fd::AsFd;
use std::sync::Arc;

fn codec(c: &mut Criterion) {
    let req = Request::Get {
        name: "git/https/github.com/alice".into(),
        wait_ms: None,
    };
    let resp = Response::Secret {
        name: "git/https/github.com/alice".into(),
        value: "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB".into(),
    };
    let bytes = frame::encode(&req).expect("encode");
    c.bench_function("decode get request", |b| {
        b.iter(|| frame::decode::<Request>(black_box(&bytes[4..])).expect("decode"))
    });
    c.bench_function("encode secret answer", |b| {
        b.iter(|| frame::encode(black_box(&resp)).expect("encode"))
    });
}

fn scopes(c: &mut Criterion) {
    let tool: Vec<String> = ["api/*", "cloud/aws/*/token", "git/https/*/alice", "git/*"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    c.bench_function("scope match, 4 patterns, last one matches", |b| {
        b.iter(|| scope::any_matches(black_box(&tool), black_box("git/https/example.com/bob")))
    });
    let miss: Vec<String> = (0..64).map(|i| format!("team{i}/*/token?")).collect();
    c.bench_function("scope match, 64 patterns, none matches", |b| {
        b.iter(|| scope::any_matches(black_box(&miss), black_box("git/https/example.com/bob")))
    });
}

fn hashing(c: &mut Criterion) {
    let data = vec![0x5au8; 16 * 1024 * 1024];
    let mut g = c.benchmark_group("sha256 of an executable");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    g.bench_function("16 MiB from memory", |b| {
        b.iter(|| digest::hash_reader(black_box(&data[..])).expect("hash"))
    });
    g.finish();
}

/// A store holding one value in memory, so the `get` bench measures the daemon's own work.
struct OneValue;

impl SecretStore for OneValue {
    fn kind(&self) -> &'static str {
        "bench"
    }
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<Secret>, StoreError>> {
        Box::pin(async {
            Ok(Some(Secret::from(
                "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
            )))
        })
    }
    fn set<'a>(&'a self, _: &'a str, _: &'a Secret) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
    fn delete<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async { Ok(false) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// This benchmark's own executable, which the daemon hashes to identify it.
fn own_executable() -> std::fs::File {
    #[cfg(target_os = "linux")]
    let path = std::path::PathBuf::from("/proc/self/exe");
    #[cfg(not(target_os = "linux"))]
    let path = std::env::current_exe().expect("own executable's path");
    std::fs::File::open(path).expect("own executable")
}

fn approved_get(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = own_executable();
    let (hash, _) = digest::HashCache::new().hash_file(&exe).expect("hash");
    let config = format!(
        r#"{{"version":1,"tools":[{{"hash":"{hash}","label":"bench","path":"/bench","scopes":["bench/*"],"access":"read","approved_at":"2026-01-01T00:00:00Z","approved_via":"cli"}}]}}"#
    );
    std::fs::write(dir.path().join("config.json"), config).expect("config");
    let state = Daemon::new(Arc::new(
        State::load(Deps {
            paths: Paths::in_dir(dir.path()),
            store: Arc::new(OneValue),
            approver: Arc::new(keychain_auth::desktop::approver::Headless),
            presence: Arc::new(keychain_auth::presence::NoMechanism("benchmark".into())),
            clock: Arc::new(keychain_auth::clock::SystemClock),
            admin_hashes: Vec::new(),
            deputy_hashes: Vec::new(),
        })
        .expect("state"),
    ));
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
    let peer = Peer::identify(a.as_fd(), &digest::HashCache::new()).expect("identify self");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let req = || Request::Get {
        name: "bench/token".into(),
        wait_ms: None,
    };
    assert!(matches!(
        rt.block_on(state.handle(&peer, req())),
        Response::Secret { .. }
    ));
    c.bench_function(
        "approved get answered in-process (policy, audit line)",
        |b| b.iter(|| rt.block_on(state.handle(&peer, req()))),
    );
    c.bench_function("peer re-check (has it exec'd?)", |b| {
        b.iter(|| peer.recheck().expect("same peer"))
    });
    // What the update check adds to each request, beside the whole in-process get above:
    // for an approved program, one lookup of its hash; for one that is not approved, a
    // walk over the tools for one at its path (64 tools, none following).
    let many: keychain_auth::config::Config = serde_json::from_str(&format!(
        r#"{{"version":1,"tools":[{}]}}"#,
        (0..64)
            .map(|i| format!(
                r#"{{"hash":"sha256:{i:064x}","label":"t{i}","path":"/t/{i}","scopes":["t/*"],"access":"read","approved_at":"2026-01-01T00:00:00Z","approved_via":"cli"}}"#
            ))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .expect("config of 64 tools");
    let approved = format!("sha256:{:064x}", 63);
    let unknown = format!("sha256:{}", "f".repeat(64));
    c.bench_function("update check, approved program (64 tools)", |b| {
        b.iter(|| {
            keychain_auth::handlers::updates::follow_candidate(
                black_box(&many),
                black_box(&approved),
                "/t/63",
            )
        })
    });
    c.bench_function("update check, program not approved (64 tools)", |b| {
        b.iter(|| {
            keychain_auth::handlers::updates::follow_candidate(
                black_box(&many),
                black_box(&unknown),
                "/t/63",
            )
        })
    });
}

criterion_group!(benches, codec, scopes, hashing, approved_get);
criterion_main!(benches);
