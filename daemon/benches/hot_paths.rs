//! Criterion benchmarks of the daemon's per-request work that runs without I/O: frame
//! encoding and decoding (every request and answer), scope matching (every `get`) and
//! SHA-256 of an executable (every binary seen for the first time). `cargo bench -p
//! keychain-auth`; the whole-daemon scenarios are in `scripts/bench`.

// criterion_group! generates an undocumented function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use keychain_auth::{digest, scope};
use keychain_auth_sdk::frame;
use keychain_auth_sdk::protocol::{Request, Response};

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

criterion_group!(benches, codec, scopes, hashing);
criterion_main!(benches);
