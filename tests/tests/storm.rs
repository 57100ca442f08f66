//! Resource exhaustion against the real daemon: waves of 1,000 idle and half-open
//! connections (slowloris) opened while 10,000 distinct unknown binaries ask for a secret, and an
//! approved client keeps asking throughout. Every one of its requests must be answered
//! correctly, pending.json must stay within its bound, the daemon must keep serving,
//! and it must have dropped every connection that never said hello. Latency and memory figures are printed, not asserted.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::{sha256_file, Home};
use keychain_auth_sdk::Client;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDLE: usize = 1000;
const STORM: usize = 10_000;
const STORM_THREADS: usize = 4;

#[test]
fn slowloris_and_a_storm_of_unknown_binaries_do_not_starve_an_approved_client() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    assert!(h
        .ka_stdin(&["set", "storm/token"], b"steady")
        .status
        .success());
    // The approved client is this test process itself.
    let me = std::env::current_exe().unwrap();
    let refusal = Client::connect_to(&h.path("agent.sock"), "approved")
        .unwrap()
        .get("storm/token")
        .expect_err("not approved yet");
    assert_eq!(
        refusal.code(),
        Some(keychain_auth_sdk::ErrorCode::NotApproved)
    );
    assert!(h
        .ka(&["approve", &sha256_file(&me), "--scope", "storm/*"])
        .status
        .success());

    let tiny = h.path("tiny-client");
    keychain_auth_e2e::compile_tiny_client(&tiny);

    // Slowloris: half say nothing, half send two bytes of a length prefix and stall.
    // They need descriptors in this process too: fewer when its limit is small.
    let idle_count = IDLE.min(keychain_auth_e2e::raise_fd_limit().saturating_sub(256) as usize / 2);
    if idle_count < IDLE {
        println!("storm: file descriptor limit allows {idle_count} idle connections, not {IDLE}");
    }
    let sock = h.path("agent.sock");
    let done = Arc::new(AtomicBool::new(false));
    // A new wave every 3 s, each held until the next: the daemon drops those that never
    // say hello, so an attacker has to keep reconnecting.
    let slowloris = {
        let (sock, done) = (sock.clone(), done.clone());
        std::thread::spawn(move || {
            let mut waves = 0usize;
            let mut wave = Vec::new();
            while !done.load(Ordering::SeqCst) {
                wave = open_idle(&sock, idle_count);
                waves += 1;
                std::thread::sleep(Duration::from_secs(3));
            }
            (waves, wave)
        })
    };
    let refused = Arc::new(AtomicUsize::new(0));
    // What the first few binaries that were not refused as not_approved got instead.
    let odd = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let storm: Vec<_> = (0..STORM_THREADS)
        .map(|t| {
            let (dir, tiny, refused, odd) =
                (h.dir.clone(), tiny.clone(), refused.clone(), odd.clone());
            std::thread::spawn(move || {
                for j in 0..STORM / STORM_THREADS {
                    let copy = dir.join(format!("storm-{t}-{j}"));
                    // A distinct executable: the same program with its own trailing bytes.
                    let ok = Command::new("sh")
                        .args(["-c", "cp \"$0\" \"$1\" && printf '%s' \"$2\" >> \"$1\""])
                        .arg(&tiny)
                        .arg(&copy)
                        .arg(format!("{t}-{j}"))
                        .status()
                        .unwrap();
                    assert!(ok.success());
                    let out = keychain_auth_e2e::run_retrying(
                        Command::new(&copy)
                            .arg("storm/token")
                            .env("KEYCHAIN_AUTH_HOME", &dir),
                    );
                    let text = String::from_utf8_lossy(&out.stdout);
                    assert!(
                        !text.contains("steady"),
                        "an unknown binary was served: {text}"
                    );
                    if text.contains("not_approved") {
                        refused.fetch_add(1, Ordering::SeqCst);
                    } else {
                        let mut o = odd.lock().unwrap();
                        if o.len() < 5 {
                            o.push(format!(
                                "{:?} stdout {text:?} stderr {:?}",
                                out.status,
                                String::from_utf8_lossy(&out.stderr)
                            ));
                        }
                    }
                    let _ = std::fs::remove_file(&copy);
                }
            })
        })
        .collect();

    // The approved client asks throughout the storm, on one connection and on new ones.
    let mut latencies = Vec::new();
    let mut warm = Client::connect_to(&sock, "approved").unwrap();
    let watcher = {
        let done = done.clone();
        std::thread::spawn(move || {
            for s in storm {
                s.join().unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut i = 0usize;
    // `done` is set only when every storm thread returned; a panicking one ends the loop
    // too, and the join below reports it.
    while !done.load(Ordering::SeqCst) && !watcher.is_finished() {
        let t = Instant::now();
        let value = if i % 10 == 0 {
            // every tenth request on a fresh connection
            Client::connect_to(&sock, "approved")
                .unwrap()
                .get("storm/token")
                .unwrap()
        } else {
            warm.get("storm/token").unwrap()
        };
        latencies.push(t.elapsed());
        assert_eq!(value.expose(), "steady");
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let (waves, last_wave) = slowloris.join().unwrap();

    assert_eq!(
        refused.load(Ordering::SeqCst),
        STORM,
        "every unknown binary was refused as not_approved; others got: {:?}",
        odd.lock().unwrap()
    );
    let pending: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.path("pending.json")).unwrap()).unwrap();
    let queued = pending["pending"].as_array().unwrap().len();
    assert!(
        queued <= 256,
        "pending.json holds {queued} entries; the bound is 256"
    );
    assert!(
        queued >= 200,
        "the most recent unknown binaries are kept ({queued})"
    );
    assert!(h.ka(&["status"]).status.success());
    // No file write failed (concurrent saves of pending.json once shared a temporary
    // file, and the losers' renames failed).
    let log = h.daemon_stderr();
    assert!(
        !log.contains("ERROR"),
        "the daemon logged errors: {}",
        log.lines()
            .filter(|l| l.contains("ERROR"))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The daemon dropped every connection that never sent a hello.
    for mut s in last_wave {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        let n = std::io::Read::read(&mut s, &mut b).unwrap_or(usize::MAX);
        assert_eq!(n, 0, "an idle connection is still open");
    }

    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let rss = std::fs::read_to_string(format!("/proc/{}/status", h.daemon_pid()))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .unwrap_or("VmRSS: ?")
        .to_string();
    println!(
        "storm: {} approved requests during {STORM} unknown binaries and {waves} waves of {idle_count} idle connections: p50 {:?}, p99 {:?}, max {:?}; daemon {rss}",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        latencies.last().unwrap()
    );
}

/// `n` connections that never finish a hello: half say nothing, half send two bytes of a
/// length prefix and stall.
fn open_idle(sock: &std::path::Path, n: usize) -> Vec<UnixStream> {
    (0..n)
        .map(|i| {
            let mut s = UnixStream::connect(sock).unwrap();
            if i % 2 == 0 {
                s.write_all(&[0, 0]).unwrap();
            }
            s
        })
        .collect()
}
