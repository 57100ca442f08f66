//! Requests that wait for a decision (`wait_ms`) against the real daemon, from an
//! ordinary user's unapproved binaries: they may hold only their share of the daemon's
//! connections, and their waits end when their clients go away. Figures are printed,
//! not asserted.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::Home;
use std::time::{Duration, Instant};

/// Requests that wait for a decision cannot take the daemon's connections: 20 unapproved
/// binaries, run by an ordinary user, open 4,300 connections that each ask to wait ten
/// minutes. At most 4 per binary and a quarter of the connections in all wait; the rest
/// are answered at once, and idle connections are closed to make room when every slot
/// is taken. An approved client is answered throughout, and once the flood exits its
/// waits end and their descriptors are given back.
#[test]
fn waiting_requests_take_at_most_their_share_and_end_when_their_client_goes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut h = Home::ordinary();
    h.start(&["--store", "keyutils"]);
    let approved = h.client_copy("approved", b"waits");
    h.approve_client(&approved, "wait/token", b"steady", "wait/*");
    let daemon = h.daemon_pid();
    let fds = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let baseline = fds();
    let started = Instant::now();
    let mut floods: Vec<_> = (0..20)
        .map(|i| {
            let copy = h.client_copy(&format!("flood-{i}"), format!("flood{i}").as_bytes());
            h.command(&copy)
                .args(["flood-wait", "215", "wait/x"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut waiting = 0;
    let mut counts = Vec::new();
    for f in &mut floods {
        let mut line = String::new();
        BufReader::new(f.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let w = v["waiting"].as_u64().unwrap();
        assert!(w <= 4, "one binary has at most 4 requests waiting: {v}");
        waiting += w;
        counts.push(v);
    }
    let held = fds();
    // The approved client is answered while the flood holds its connections.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(
            h.client_at(&approved, &["get", "wait/token"])["value"],
            "steady"
        );
        latencies.push(t.elapsed());
    }
    assert!(waiting <= 256, "{waiting} requests waiting: {counts:?}");
    // The flood exits: its waits end with it and the daemon gives the descriptors back.
    for f in &mut floods {
        drop(f.stdin.take());
    }
    for mut f in floods {
        let _ = f.wait();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = fds();
    while after > baseline + 32 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        after = fds();
    }
    latencies.sort();
    println!(
        "waits: {waiting} of 4300 requests waited; daemon descriptors {baseline} before, {held} during, {after} after; approved client: median {:?}, max {:?}; {:?} in all",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        started.elapsed()
    );
    assert!(
        after <= baseline + 32,
        "the daemon still holds {after} descriptors (baseline {baseline}) after the clients left"
    );
    assert_eq!(
        h.client_at(&approved, &["get", "wait/token"])["value"],
        "steady"
    );
}
