//! The benchmark: starts the real daemon (release build, keyutils store), approves
//! itself, and measures `get` latency next to a bare Unix-socket echo of the same frames,
//! both measured in this run. Prints a table; asserts nothing about timings.
//!
//! Usage: `ka-bench [REQUESTS] [CONNECTIONS]` (defaults 20000 and 2000), from
//! `scripts/bench`, which builds the release binaries first.

use keychain_auth_sdk::frame;
use keychain_auth_sdk::protocol::{Request, Response, PROTOCOL_VERSION};
use keychain_auth_sdk::Client;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "bench/token";
const VALUE: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let connections = args.get(1).copied().unwrap_or(2_000);
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("ka");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    std::fs::write(
        home.join("config.json"),
        format!(
            "{{\"version\":1,\"namespace\":\"ka-bench-{}\"}}",
            std::process::id()
        ),
    )
    .expect("config");
    let ka = keychain_auth_e2e::bin("keychain-auth");
    let mut daemon = Daemon::start(&ka, &home);
    cli(&ka, &home, &["set", NAME], VALUE.as_bytes());
    let sock = home.join("agent.sock");
    let mut c = Client::connect_to(&sock, "ka-bench").expect("connect");
    let hash = match c.get(NAME) {
        Err(keychain_auth_sdk::ClientError::Daemon(b)) => {
            b.hash.expect("not_approved carries the hash")
        }
        other => panic!("expected not_approved, got {other:?}"),
    };
    cli(&ka, &home, &["approve", &hash, "--scope", "bench/*"], b"");
    assert_eq!(c.get(NAME).expect("approved").expose(), VALUE);

    let echo_sock = home.join("echo.sock");
    spawn_echo(&echo_sock);

    println!(
        "keychain-auth benchmark: get of a {}-byte secret, keyutils store",
        VALUE.len()
    );
    println!(
        "machine: {} ({} cores)",
        cpu_model(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    println!("| scenario | ours p50 | ours p99 | echo p50 | echo p99 | p50 ratio |");
    println!("|---|---|---|---|---|---|");
    // Both sides are measured in alternating rounds, so a noisy neighbour or a frequency
    // change hits them alike.
    let (ours, echo) = alternate(|t| one_connection(t, requests / ROUNDS), &sock, &echo_sock);
    row(
        &format!("warm get, one connection ({requests} requests)"),
        &ours,
        &echo,
    );
    let (ours, echo) = alternate(
        |t| new_connection_each(t, connections / ROUNDS),
        &sock,
        &echo_sock,
    );
    row(
        &format!("connect + hello + get ({connections} connections)"),
        &ours,
        &echo,
    );
    daemon.stop();
}

/// Rounds each scenario is split into, alternating between the daemon and the echo.
const ROUNDS: usize = 10;

fn alternate(
    measure: impl Fn(&Path) -> Vec<Duration>,
    ours: &Path,
    echo: &Path,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.extend(measure(ours));
        b.extend(measure(echo));
    }
    (a, b)
}

struct Daemon(Child);

impl Daemon {
    fn start(ka: &Path, home: &Path) -> Daemon {
        let child = Command::new(ka)
            .args(["start", "--foreground", "--store", "keyutils"])
            .env("KEYCHAIN_AUTH_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Client::connect_to(&home.join("agent.sock"), "ka-bench").is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cli(ka: &Path, home: &Path, args: &[&str], stdin: &[u8]) {
    let mut child = Command::new(ka)
        .args(args)
        .env("KEYCHAIN_AUTH_HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run keychain-auth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    assert!(
        child.wait().expect("wait").success(),
        "keychain-auth {args:?} failed"
    );
}

/// A server that answers each frame with the frame the daemon would send, doing no work.
fn spawn_echo(path: &PathBuf) {
    let listener = UnixListener::bind(path).expect("bind echo");
    let hello = frame::encode(&Response::Hello {
        protocol: PROTOCOL_VERSION,
        server: "echo".into(),
    })
    .expect("encode");
    let secret = frame::encode(&Response::Secret {
        name: NAME.into(),
        value: VALUE.into(),
    })
    .expect("encode");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let (hello, secret) = (hello.clone(), secret.clone());
            std::thread::spawn(move || {
                let mut first = true;
                loop {
                    let mut hdr = [0u8; 4];
                    if s.read_exact(&mut hdr).is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(hdr) as usize];
                    if s.read_exact(&mut body).is_err() {
                        return;
                    }
                    let reply = if first { &hello } else { &secret };
                    first = false;
                    if s.write_all(reply).is_err() {
                        return;
                    }
                }
            });
        }
    });
}

fn one_connection(sock: &Path, n: usize) -> Vec<Duration> {
    let mut c = Client::connect_to(sock, "ka-bench").expect("connect");
    let req = Request::Get {
        name: NAME.into(),
        wait_ms: None,
    };
    for _ in 0..(n / 10).max(100) {
        c.request(&req).expect("warm-up");
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = c.request(&req).expect("get");
            let d = t.elapsed();
            assert!(matches!(r, Response::Secret { .. }));
            d
        })
        .collect()
}

fn new_connection_each(sock: &Path, n: usize) -> Vec<Duration> {
    let req = Request::Get {
        name: NAME.into(),
        wait_ms: None,
    };
    for _ in 0..(n / 10).max(20) {
        let mut c = Client::connect_to(sock, "ka-bench").expect("connect");
        c.request(&req).expect("warm-up");
    }
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let mut c = Client::connect_to(sock, "ka-bench").expect("connect");
            let r = c.request(&req).expect("get");
            let d = t.elapsed();
            assert!(matches!(r, Response::Secret { .. }));
            drop(c);
            d
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn row(name: &str, ours: &[Duration], echo: &[Duration]) {
    let mut a = ours.to_vec();
    let mut b = echo.to_vec();
    a.sort();
    b.sort();
    let (a50, a99, b50, b99) = (
        percentile(&a, 0.5),
        percentile(&a, 0.99),
        percentile(&b, 0.5),
        percentile(&b, 0.99),
    );
    println!(
        "| {name} | {} | {} | {} | {} | {:.2}x |",
        us(a50),
        us(a99),
        us(b50),
        us(b99),
        a50.as_secs_f64() / b50.as_secs_f64()
    );
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
