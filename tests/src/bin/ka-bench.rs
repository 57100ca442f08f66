//! The benchmark: starts the real daemon (release build, keyutils store), approves
//! itself, and measures each scenario next to a baseline measured in the same run:
//! `get` latency and 64-client throughput against a bare Unix-socket echo of the same
//! frames (with the value cache off, the default, and on); first-sight hashing of a
//! 200 MB executable against `openssl dgst -sha256`; an approved client's latency while
//! a 500 MB executable is hashed; the daemon's RSS (idle, and after 10,000 distinct
//! unknown binaries asked); when a Secret Service is on the session bus, the whole
//! `keychain-auth get` process against `secret-tool lookup` and the Secret Service calls
//! per `get` counted with `dbus-monitor` (with and without the value cache); and when a
//! display is set, the tray app's total RSS; and a get through git and the git helper,
//! with the daemon's walk of its caller chain, run as an ordinary user (the tests'
//! second user, when started as root). Prints a table; asserts nothing about timings.
//!
//! Usage: `ka-bench [--quick] [REQUESTS] [CONNECTIONS]` (defaults 20000 and 2000), from
//! `scripts/bench`, which builds the release binaries first. `--quick` runs only the
//! socket scenarios (warm get, connect per request, 64 clients, and the cached pair) and
//! the git one, for comparing changes to the request path; `--git-chain` only the git
//! one.

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
    settle_own_executable();
    if std::env::args().any(|a| a == "--git-chain") {
        git_chain_as_an_ordinary_user();
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let requests = args.first().copied().unwrap_or(20_000);
    let connections = args.get(1).copied().unwrap_or(2_000);
    let quick = std::env::args().any(|a| a == "--quick");
    let (_tmp, home, mut daemon) = approved_daemon("keyutils", 0);
    let idle_rss = daemon.idle_rss;
    let sock = home.join("agent.sock");

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
    throughput(&sock, &echo_sock, "");
    // The same two scenarios with the value cache on (config.json `value_cache_ms`).
    {
        let (_tmp, home, _daemon) = approved_daemon("keyutils", CACHE_MS);
        let cached = home.join("agent.sock");
        let (ours, echo) = alternate(
            |t| one_connection(t, requests / ROUNDS),
            &cached,
            &echo_sock,
        );
        row(
            &format!("warm get, one connection, value cache {CACHE_MS} ms ({requests} requests)"),
            &ours,
            &echo,
        );
        throughput(&cached, &echo_sock, &format!(", value cache {CACHE_MS} ms"));
    }
    git_chain_as_an_ordinary_user();
    if quick {
        return;
    }
    first_sight(&home, &sock);
    let before_storm = rss_kib(daemon.child.id());
    distinct_peers(&home, 10_000);
    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "| daemon RSS when idle after start | {} | | | | |",
        mib(idle_rss)
    );
    println!(
        "| daemon RSS before / after 10,000 distinct unknown binaries asked | {} / {} | | | | |",
        mib(before_storm),
        mib(rss_kib(daemon.child.id()))
    );
    daemon.stop();
    secret_service_get();
    app_rss();
}

/// Waits until this benchmark's executable is more than 2 s old: the daemon does not
/// cache the hash of a file changed more recently than that (it could change again
/// within the same timestamp tick), so every identification of a benchmark run at once
/// after it was built would hash it again.
fn settle_own_executable() {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::env::current_exe().and_then(std::fs::metadata) else {
        return;
    };
    let changed = meta.mtime().max(meta.ctime());
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(i64::MAX);
        if now - changed >= 3 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// [`git_chain`] as an ordinary user: run as root, this benchmark runs it in a copy of
/// itself as the tests' second user, since a daemon of root skips what it checks of an
/// ordinary user's programs (the libraries they map), which every program of a chain
/// is.
fn git_chain_as_an_ordinary_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        git_chain();
        return;
    }
    let Some((uid, gid)) = keychain_auth_e2e::other_user() else {
        git_chain();
        return;
    };
    let me = std::env::current_exe().expect("current exe");
    let status = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(&me)
        .arg("--git-chain")
        .env("HOME", std::env::temp_dir())
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        println!("| git credential fill through the helper | SKIP: the run as uid {uid} failed ({status:?}) | | | | |");
    }
}

/// A get through git and the git helper: the whole `git credential fill` next to the
/// same git with a helper that answers at once (the process machinery), and the daemon's
/// share of it (the caller-chain walk, from the daemon's own debug line) next to a
/// direct client's connect + hello + get measured in the same run.
fn git_chain() {
    let Ok(git) = Command::new("git").arg("--version").output() else {
        println!("| git credential fill through the helper | SKIP: git is not installed | | | | |");
        return;
    };
    let _ = git;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let who = if uid == 0 {
        "uid 0, whose daemon skips the library checks".to_string()
    } else {
        format!("uid {uid}")
    };
    let ns = format!("ka-bench-git-{}", std::process::id());
    let (_tmp, home) = bench_home(&ns);
    let ka = keychain_auth_e2e::bin("keychain-auth");
    let log = home.join("daemon-debug.log");
    let mut daemon = Daemon::start_logging(
        &ka,
        &home,
        "keyutils",
        Some(("keychain_auth::handlers::chains=debug", &log)),
    );
    let name = "git/https/bench.example/alice";
    daemon.set(name);
    daemon.set(NAME);
    let bin_dir = ka.parent().expect("bin dir").to_path_buf();
    let fill = |helper: &str| {
        let mut c = Command::new("git");
        c.args([
            "-c",
            &format!("credential.helper={helper}"),
            "credential",
            "fill",
        ])
        .envs(git_env(&bin_dir, &home))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("git");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"protocol=https\nhost=bench.example\nusername=alice\n\n")
            .expect("write");
        child.wait_with_output().expect("git")
    };
    // The origin is this benchmark process (it runs git): approve it from its refusal.
    let o = fill("keychain-auth");
    let err = String::from_utf8_lossy(&o.stderr);
    let Some(hash) = err
        .split("keychain-auth approve ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(str::to_string)
    else {
        println!("| git credential fill through the helper | SKIP: not refused as expected: {err} | | | | |");
        return;
    };
    cli(
        &ka,
        &home,
        &["approve", &hash, "--scope", "git/*", "--scope", "bench/*"],
        b"",
    );
    let instant = "!f() { cat >/dev/null; echo username=alice; echo password=x; }; f";
    let n = 60;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..n * 2 {
        let helper = if i % 2 == 0 { "keychain-auth" } else { instant };
        let t = Instant::now();
        let o = fill(helper);
        let d = t.elapsed();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        if i % 2 == 0 {
            assert!(String::from_utf8_lossy(&o.stdout).contains(VALUE));
            ours.push(d);
        } else {
            base.push(d);
        }
    }
    ours.sort();
    base.sort();
    ms_row(
        &format!("`git credential fill` through the helper, whole process ({n}, {who}) vs a helper that answers at once"),
        &ours,
        &base,
    );
    // The daemon's share: its walks of the caller chain, and a direct client's whole
    // connect + hello + get in the same run.
    let walks = walks_in(&log, 0);
    let mut direct = new_connection_each(&home.join("agent.sock"), 500);
    direct.sort();
    if walks.is_empty() {
        println!("| caller-chain walk in the daemon | SKIP: no timing lines in the daemon's log | | | | |");
    } else {
        println!(
            "| caller-chain walk in the daemon ({} walks: this process → git → sh -c → git → helper, {who}) vs a direct connect + hello + get (500) | {} | {} | {} | {} | {:.2}× |",
            walks.len(),
            us(percentile(&walks, 0.5)),
            us(percentile(&walks, 0.99)),
            us(percentile(&direct, 0.5)),
            us(percentile(&direct, 0.99)),
            percentile(&walks, 0.5).as_secs_f64() / percentile(&direct, 0.5).as_secs_f64()
        );
    }
    terminal_chain(&ka, &home, &bin_dir, &log, instant, &direct, &who);
    daemon.stop();
}

/// The environment of the benchmark's `git`: the built binaries first on `PATH`, this
/// home, no configuration of the machine's or the user's, and no prompts.
fn git_env(bin_dir: &Path, home: &Path) -> Vec<(String, String)> {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    [
        ("PATH", path),
        ("KEYCHAIN_AUTH_HOME", home.display().to_string()),
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("GIT_ASKPASS", "/bin/false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A row of whole-process times (sorted), in milliseconds, beside its baseline.
fn ms_row(label: &str, ours: &[Duration], base: &[Duration]) {
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {label} | {} | {} | {} | {} | {:.2}× |",
        ms(percentile(ours, 0.5)),
        ms(percentile(ours, 0.99)),
        ms(percentile(base, 0.5)),
        ms(percentile(base, 0.99)),
        percentile(ours, 0.5).as_secs_f64() / percentile(base, 0.5).as_secs_f64()
    );
}

/// The walks of the daemon's log after its first `skip` bytes.
fn walks_in(log: &Path, skip: usize) -> Vec<Duration> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut walks: Vec<Duration> = text
        .get(skip..)
        .unwrap_or("")
        .lines()
        .filter_map(|l| l.split("caller chain walked in ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map(Duration::from_micros)
        .collect();
    walks.sort();
    walks
}

/// The same get typed at an interactive shell in tmux, whose origin is the terminal
/// session (tmux server → bash → git → sh -c → git → helper): each `git credential
/// fill` timed by the shell's `time`, the helper's and the instant one alternating, and
/// the daemon's walks from its log.
fn terminal_chain(
    ka: &Path,
    home: &Path,
    bin_dir: &Path,
    log: &Path,
    instant: &str,
    direct: &[Duration],
    who: &str,
) {
    let skip = |why: &str| {
        println!(
            "| `git credential fill` typed in a terminal session (tmux) | SKIP: {why} | | | | |"
        )
    };
    if Command::new("tmux").arg("-V").output().is_err() {
        return skip("tmux is not installed");
    }
    let socket = format!("ka-bench-{}", std::process::id());
    let tmux = || {
        let mut c = Command::new("tmux");
        c.args(["-L", &socket, "-f", "/dev/null"])
            .envs(git_env(bin_dir, home));
        c
    };
    let started = tmux()
        .args(["new-session", "-d", "-s", "ka", "-x", "200", "-y", "50"])
        .arg("bash --norc --noprofile -i")
        .status();
    if !matches!(started, Ok(s) if s.success()) {
        return skip("tmux did not start");
    }
    let request = home.join("fill-request");
    std::fs::write(
        &request,
        "protocol=https\nhost=bench.example\nusername=alice\n\n",
    )
    .expect("request");
    let marker = home.join("tmux-done");
    let typed = |line: &str, wait: Duration| -> bool {
        let _ = std::fs::remove_file(&marker);
        let line = format!("{line}; echo $? > '{}'", marker.display());
        let sent = tmux()
            .args(["send-keys", "-t", "ka", &line, "Enter"])
            .status();
        if !matches!(sent, Ok(s) if s.success()) {
            return false;
        }
        let deadline = Instant::now() + wait;
        while !marker.exists() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    };
    let fill = |helper: &str| {
        format!(
            "git -c 'credential.helper={helper}' credential fill <'{}'",
            request.display()
        )
    };
    // The terminal session is asked for on its first request: approve it from the queue.
    let first_err = home.join("tmux-first-err");
    if !typed(
        &format!(
            "{} >/dev/null 2>'{}'",
            fill("keychain-auth"),
            first_err.display()
        ),
        Duration::from_secs(30),
    ) {
        let _ = tmux().arg("kill-server").status();
        return skip("the first request typed in tmux never finished");
    }
    let pending = Command::new(ka)
        .args(["list-pending", "--json"])
        .env("KEYCHAIN_AUTH_HOME", home)
        .output()
        .expect("list-pending");
    let entries: serde_json::Value =
        serde_json::from_slice(&pending.stdout).unwrap_or(serde_json::Value::Null);
    let hash = entries.as_array().and_then(|a| {
        a.iter()
            .find(|e| e.to_string().contains("a terminal session of"))
            .and_then(|e| e["hash"].as_str().map(str::to_string))
    });
    let Some(hash) = hash else {
        let _ = tmux().arg("kill-server").status();
        return skip(&format!(
            "no terminal session was queued: {}",
            std::fs::read_to_string(&first_err).unwrap_or_default()
        ));
    };
    cli(ka, home, &["approve", &hash, "--scope", "git/*"], b"");
    let n = 60;
    let times = [home.join("tmux-ours"), home.join("tmux-base")];
    let from = std::fs::metadata(log)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    // Each fill timed by the shell's own clock (`EPOCHREALTIME`, microseconds), around
    // the process it starts.
    let timed = |helper: &str, out: &Path| {
        format!(
            "s=$EPOCHREALTIME; {} >/dev/null 2>/dev/null; echo \"$s $EPOCHREALTIME\" >>'{}'",
            fill(helper),
            out.display()
        )
    };
    let instant_quoted = instant.replace('\'', "'\\''");
    let lo = format!(
        "for i in $(seq {n}); do {}; {}; done",
        timed("keychain-auth", &times[0]),
        timed(&instant_quoted, &times[1])
    );
    let finished = typed(&lo, Duration::from_secs(300));
    let _ = tmux().arg("kill-server").status();
    if !finished {
        return skip("the timed loop in tmux never finished");
    }
    let read = |p: &Path| -> Vec<Duration> {
        let mut v: Vec<Duration> = std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (s, e) = l.split_once(' ')?;
                let (s, e): (f64, f64) = (s.trim().parse().ok()?, e.trim().parse().ok()?);
                (e >= s).then(|| Duration::from_secs_f64(e - s))
            })
            .collect();
        v.sort();
        v
    };
    let (ours, base) = (read(&times[0]), read(&times[1]));
    let walks = walks_in(log, from);
    if ours.len() != n || base.len() != n || walks.is_empty() {
        return skip(&format!(
            "{} of {n} timings, {} of {n} baselines, {} walks",
            ours.len(),
            base.len(),
            walks.len()
        ));
    }
    ms_row(
        &format!("`git credential fill` typed in a terminal session (tmux → bash → git → sh -c → git → helper; {n}, {who}) vs a helper that answers at once"),
        &ours,
        &base,
    );
    println!(
        "| caller-chain walk of that terminal session ({} walks) vs the direct connect + hello + get above | {} | {} | {} | {} | {:.2}× |",
        walks.len(),
        us(percentile(&walks, 0.5)),
        us(percentile(&walks, 0.99)),
        us(percentile(direct, 0.5)),
        us(percentile(direct, 0.99)),
        percentile(&walks, 0.5).as_secs_f64() / percentile(direct, 0.5).as_secs_f64()
    );
}

/// 10,000 distinct executables (a small C client, each copy with its own trailing
/// bytes) ask once each, 8 at a time: each is hashed, refused, queued (pending.json keeps
/// the newest 256) and audited.
fn distinct_peers(home: &Path, n: usize) {
    let tiny = home.join("tiny-client");
    keychain_auth_e2e::compile_tiny_client(&tiny);
    let template = std::fs::read(&tiny).expect("read tiny-client");
    let started = Instant::now();
    let threads = 8;
    let refused: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let template = &template;
                s.spawn(move || {
                    let mut refused = 0;
                    for j in 0..n / threads {
                        let copy = home.join(format!("peer-{t}-{j}"));
                        let mut bytes = template.clone();
                        bytes.extend_from_slice(format!("{t}-{j}").as_bytes());
                        std::fs::write(&copy, bytes).expect("write copy");
                        std::fs::set_permissions(
                            &copy,
                            std::os::unix::fs::PermissionsExt::from_mode(0o755),
                        )
                        .expect("chmod");
                        let out = loop {
                            match Command::new(&copy)
                                .arg(NAME)
                                .env("KEYCHAIN_AUTH_HOME", home)
                                .output()
                            {
                                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                                    std::thread::sleep(Duration::from_millis(5))
                                }
                                r => break r.expect("run a copy"),
                            }
                        };
                        if String::from_utf8_lossy(&out.stdout).contains("not_approved") {
                            refused += 1;
                        }
                        let _ = std::fs::remove_file(&copy);
                    }
                    refused
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    println!(
        "| {n} distinct unknown binaries ask once each (8 at a time) | {:.1} s | | | | {refused} refused as not_approved |",
        started.elapsed().as_secs_f64()
    );
}

/// The tray app's resident memory, all its processes together (the app and, with the
/// window open, WebKit's web and network processes), tray only and with the window.
fn app_rss() {
    let app = keychain_auth_e2e::bin("keychain-auth-app");
    if std::env::var_os("DISPLAY").is_none() || !app.exists() {
        println!("| tray app RSS | SKIP: needs DISPLAY and a built keychain-auth-app (scripts/bench starts Xvfb) | | | | |");
        return;
    }
    let ka = keychain_auth_e2e::bin("keychain-auth");
    // Xvfb has no tray host, and without one the app opens its window: a stand-in owns
    // the tray host's bus name while the app is measured.
    let mut host = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/clients/fake-tray-host.py"
    ))
    .stdout(Stdio::piped())
    .spawn()
    .ok();
    if let Some(out) = host.as_mut().and_then(|h| h.stdout.as_mut()) {
        let _ = std::io::Read::read(out, &mut [0u8; 8]);
    }
    let measure = |args: &[&str]| -> Option<u64> {
        let (_tmp, home) = bench_home(&format!("ka-bench-app-{}", std::process::id()));
        let mut child = Command::new(&app)
            .args(args)
            .env("KEYCHAIN_AUTH_HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keychain-auth-app");
        let deadline = Instant::now() + Duration::from_secs(60);
        while Client::connect_to(&home.join("agent.sock"), "ka-bench").is_err() {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the window's page load and settle.
        std::thread::sleep(Duration::from_secs(4));
        let total = tree_rss_kib(child.id());
        cli(&ka, &home, &["stop"], b"");
        let _ = child.wait();
        total
    };
    let tray = measure(&[]);
    let window = measure(&["--open"]);
    if let Some(mut h) = host {
        let _ = h.kill();
        let _ = h.wait();
    }
    let mib = |k: Option<u64>| {
        k.map(|k| format!("{:.1} MiB", k as f64 / 1024.0))
            .unwrap_or_else(|| "?".into())
    };
    println!(
        "| tray app RSS, all its processes: tray only / window open | {} / {} | | | | |",
        mib(tray),
        mib(window)
    );
}

/// RSS of a process and all its descendants, in KiB.
fn tree_rss_kib(root: u32) -> Option<u64> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parentheses: fields follow the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    Some(tree.iter().filter_map(|p| rss_kib(*p)).sum())
}

/// Resident set size of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Scenario 2: 64 clients at once, each on its own connection, for a fixed time; in
/// alternating rounds against the daemon and the echo, so that this shared machine's
/// slow spells hit both alike.
fn throughput(ours: &Path, echo: &Path, label: &str) {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 6;
    const FOR: Duration = Duration::from_secs(1);
    let run = |sock: &Path| -> (f64, usize) {
        let start = std::sync::Barrier::new(CLIENTS);
        let (done, errors) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|_| {
                    let start = &start;
                    s.spawn(move || {
                        let mut c = Client::connect_to(sock, "ka-bench").expect("connect");
                        let req = Request::Get {
                            name: NAME.into(),
                            wait_ms: None,
                        };
                        start.wait();
                        let t = Instant::now();
                        let (mut n, mut err) = (0usize, 0usize);
                        while t.elapsed() < FOR {
                            match c.request(&req) {
                                Ok(Response::Secret { .. }) => n += 1,
                                _ => err += 1,
                            }
                        }
                        (n, err)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("client thread"))
                .fold((0, 0), |(a, b), (n, e)| (a + n, b + e))
        });
        (done as f64 / FOR.as_secs_f64(), errors)
    };
    let (mut ours_rps, mut ours_err, mut echo_rps, mut echo_err) = (0.0, 0, 0.0, 0);
    for _ in 0..ROUNDS {
        let (r, e) = run(ours);
        ours_rps += r / ROUNDS as f64;
        ours_err += e;
        let (r, e) = run(echo);
        echo_rps += r / ROUNDS as f64;
        echo_err += e;
    }
    println!(
        "| 64 clients at once{label}, {ROUNDS} alternating rounds of {} s: requests/s (errors) | {:.0} ({ours_err}) | | {:.0} ({echo_err}) | | {:.2} of the echo |",
        FOR.as_secs(),
        ours_rps,
        echo_rps,
        ours_rps / echo_rps
    );
}

/// Scenarios 3 and 7: the first request of a new 200 MB executable (hashed once) next to
/// `openssl dgst -sha256` of the same file, the second request (cached), and an
/// approved client's latency while a 500 MB executable is being hashed.
fn first_sight(home: &Path, sock: &Path) {
    let client = keychain_auth_e2e::bin("ka-test-client");
    let big = |name: &str, mb: usize| -> PathBuf {
        let p = home.join(name);
        let mut bytes = std::fs::read(&client).expect("read client");
        bytes.resize(bytes.len() + mb * 1024 * 1024, 0x5a);
        std::fs::write(&p, &bytes).expect("write big client");
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        p
    };
    let whoami = |p: &Path| {
        let t = Instant::now();
        let o = Command::new(p)
            .arg("whoami")
            .env("KEYCHAIN_AUTH_HOME", home)
            .output()
            .expect("run big client");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        t.elapsed()
    };
    let b200 = big("big-200", 200);
    let size = std::fs::metadata(&b200).expect("stat").len() as f64;
    let _ = std::fs::read(&b200); // into the page cache, for both sides alike
                                  // The daemon does not cache the hash of a file changed in the last 2 s (a change
                                  // within one timestamp tick could otherwise go unseen): let it age first, so the
                                  // second request shows the cached path.
    std::thread::sleep(Duration::from_millis(2500));
    let first = whoami(&b200);
    let second = whoami(&b200);
    let small = whoami(&client);
    let hashing = first.saturating_sub(second).as_secs_f64();
    let ours_mbs = size / hashing / 1e6;
    let (base_name, base) = ["openssl", "sha256sum"]
        .iter()
        .find_map(|tool| {
            let args: &[&str] = if *tool == "openssl" {
                &["dgst", "-sha256"]
            } else {
                &[]
            };
            let t = Instant::now();
            let o = Command::new(tool).args(args).arg(&b200).output().ok()?;
            o.status.success().then(|| (*tool, t.elapsed()))
        })
        .unwrap_or(("none", Duration::ZERO));
    let base_mbs = size / base.as_secs_f64() / 1e6;
    println!(
        "| first request of a 200 MB binary: hashing MB/s (first request {}, second, cached {}, a small cached binary {}) | {:.0} MB/s | | {base_name}: {:.0} MB/s | | {:.2} of {base_name} |",
        ms(first),
        ms(second),
        ms(small),
        ours_mbs,
        base_mbs,
        ours_mbs / base_mbs
    );
    let _ = std::fs::remove_file(&b200);

    // While a 500 MB executable is hashed for its first request, an approved client asks.
    let b500 = big("big-500", 500);
    let _ = std::fs::read(&b500);
    let hashing = {
        let (b500, home) = (b500.clone(), home.to_path_buf());
        std::thread::spawn(move || {
            Command::new(&b500)
                .arg("whoami")
                .env("KEYCHAIN_AUTH_HOME", &home)
                .output()
                .expect("run 500 MB client")
        })
    };
    let mut c = Client::connect_to(sock, "ka-bench").expect("connect");
    let req = Request::Get {
        name: NAME.into(),
        wait_ms: None,
    };
    let mut lat = Vec::new();
    while !hashing.is_finished() {
        let t = Instant::now();
        c.request(&req).expect("get during hashing");
        lat.push(t.elapsed());
    }
    let _ = hashing.join();
    lat.sort();
    if !lat.is_empty() {
        println!(
            "| approved get while a 500 MB binary is hashed ({} requests) | {} | {} | | | p99 |",
            lat.len(),
            us(percentile(&lat, 0.5)),
            us(percentile(&lat, 0.99))
        );
    }
    let _ = std::fs::remove_file(&b500);
}

/// Scenario 4: the whole `keychain-auth get` process for a secret in the Secret Service
/// next to `secret-tool lookup` of the same item, when a Secret Service is running.
fn secret_service_get() {
    let probe = Command::new("dbus-send")
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.secrets",
        ])
        .output();
    if !matches!(probe, Ok(ref o) if String::from_utf8_lossy(&o.stdout).contains("boolean true")) {
        println!("| keychain-auth get vs secret-tool lookup | SKIP: no Secret Service on the session bus (run scripts/bench, which starts one) | | | | |");
        return;
    }
    let ns = format!("ka-bench-ss-{}", std::process::id());
    let (_tmp, home) = bench_home(&ns);
    let ka = keychain_auth_e2e::bin("keychain-auth");
    let mut daemon = Daemon::start(&ka, &home, "secret-service");
    daemon.set(NAME);
    // `keychain-auth get` asks for its parent: this benchmark process. Approve it.
    let run_get = || {
        Command::new(&ka)
            .args(["get", NAME])
            .env("KEYCHAIN_AUTH_HOME", &home)
            .output()
            .expect("keychain-auth get")
    };
    let o = run_get();
    let err = String::from_utf8_lossy(&o.stderr);
    let hash = err
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != ':')
                .to_string()
        })
        .expect("the refusal names the hash");
    cli(&ka, &home, &["approve", &hash, "--scope", "bench/*"], b"");
    let timed = |f: &dyn Fn() -> std::process::Output| -> Vec<Duration> {
        (0..30)
            .map(|_| {
                let t = Instant::now();
                let o = f();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                assert_eq!(String::from_utf8_lossy(&o.stdout), VALUE);
                t.elapsed()
            })
            .collect()
    };
    let lookup = || {
        Command::new("secret-tool")
            .args(["lookup", "service", &ns, "account", NAME])
            .output()
            .expect("secret-tool")
    };
    // Secret Service method calls per `get`, counted on the bus: warm (the daemon has read
    // the name before), and the first read of a name; against secret-tool's per lookup.
    let mut c = Client::connect_to(&home.join("agent.sock"), "ka-bench").expect("connect");
    assert_eq!(c.get(NAME).expect("approved").expose(), VALUE);
    let warm = secret_service_calls(|| {
        for _ in 0..50 {
            assert_eq!(c.get(NAME).expect("get").expose(), VALUE);
        }
    });
    daemon.set("bench/second");
    let first = secret_service_calls(|| {
        assert_eq!(c.get("bench/second").expect("get").expose(), VALUE);
    });
    let tool = secret_service_calls(|| {
        for _ in 0..10 {
            assert_eq!(String::from_utf8_lossy(&lookup().stdout), VALUE);
        }
    });
    drop(c);
    println!(
        "| Secret Service calls per get: warm (50 gets) / first read of a name (dbus-monitor) | {:.2} / {first} | | {:.1} per `secret-tool lookup` | | |",
        warm as f64 / 50.0,
        tool as f64 / 10.0
    );
    {
        let (_tmp, cached_home, _daemon) = approved_daemon("secret-service", CACHE_MS);
        let mut c =
            Client::connect_to(&cached_home.join("agent.sock"), "ka-bench").expect("connect");
        let cached = secret_service_calls(|| {
            for _ in 0..50 {
                assert_eq!(c.get(NAME).expect("get").expose(), VALUE);
            }
        });
        let expired = secret_service_calls(|| {
            std::thread::sleep(Duration::from_millis(CACHE_MS + 200));
            assert_eq!(c.get(NAME).expect("get").expose(), VALUE);
        });
        println!(
            "| Secret Service calls per get, value cache {CACHE_MS} ms: 50 gets within the TTL / one get after it | {:.2} / {expired} | | | | |",
            cached as f64 / 50.0
        );
        drop(c);
        // What the cache saves a reader: warm gets on one connection from the Secret
        // Service, without the cache (every read a D-Bus round trip) and with it.
        let mut plain = one_connection(&home.join("agent.sock"), 2000);
        let mut cached = one_connection(&cached_home.join("agent.sock"), 2000);
        plain.sort();
        cached.sort();
        println!(
            "| warm get from the Secret Service, one connection, 2000 requests: no cache / value cache {CACHE_MS} ms | {} / {} | {} / {} | | | {:.2}x |",
            us(percentile(&plain, 0.5)),
            us(percentile(&cached, 0.5)),
            us(percentile(&plain, 0.99)),
            us(percentile(&cached, 0.99)),
            percentile(&cached, 0.5).as_secs_f64() / percentile(&plain, 0.5).as_secs_f64()
        );
    }
    let (mut ours, mut base) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        ours.extend(timed(&run_get));
        base.extend(timed(&lookup));
    }
    ours.sort();
    base.sort();
    let (a, b) = (percentile(&ours, 0.5), percentile(&base, 0.5));
    println!(
        "| whole `keychain-auth get` process vs `secret-tool lookup` (Secret Service, 90 runs each) | {} | {} | {} | {} | {:.2}x |",
        ms(a),
        ms(percentile(&ours, 0.99)),
        ms(b),
        ms(percentile(&base, 0.99)),
        a.as_secs_f64() / b.as_secs_f64()
    );
    daemon.stop();
}

/// Method calls sent to the Secret Service while `f` runs, counted by `dbus-monitor`.
fn secret_service_calls(f: impl FnOnce()) -> usize {
    let mut mon = Command::new("dbus-monitor")
        .args([
            "--session",
            "type='method_call',destination='org.freedesktop.secrets'",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-monitor (package dbus-bin)");
    let out = mon.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.starts_with("method call"))
            .count()
    });
    // dbus-monitor needs a moment to become a monitor.
    std::thread::sleep(Duration::from_millis(500));
    f();
    std::thread::sleep(Duration::from_millis(300));
    let _ = mon.kill();
    let _ = mon.wait();
    reader.join().expect("reader")
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
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

/// A private `KEYCHAIN_AUTH_HOME` (0700) whose config uses `namespace`; the temporary
/// directory is removed when the first value is dropped.
fn bench_home(namespace: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("ka");
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .expect("chmod");
    std::fs::write(
        home.join("config.json"),
        // Presence off: the benchmark approves its own programs (no person to ask).
        format!("{{\"version\":1,\"namespace\":\"{namespace}\",\"presence\":\"off\"}}"),
    )
    .expect("config");
    (tmp, home)
}

/// A value cache TTL the benchmark also measures with.
const CACHE_MS: u64 = 1000;

/// A daemon in its own home (`value_cache_ms` set when `cache_ms` is not 0) holding
/// [`NAME`], with this benchmark process approved for `bench/*`.
fn approved_daemon(store: &str, cache_ms: u64) -> (tempfile::TempDir, PathBuf, Daemon) {
    let (tmp, home) = bench_home(&format!("ka-bench-{}-{cache_ms}", std::process::id()));
    if cache_ms > 0 {
        let config = home.join("config.json");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen('{', &format!("{{\"value_cache_ms\":{cache_ms},"), 1);
        std::fs::write(&config, text).expect("config");
    }
    let ka = keychain_auth_e2e::bin("keychain-auth");
    let mut daemon = Daemon::start(&ka, &home, store);
    std::thread::sleep(Duration::from_millis(300));
    daemon.idle_rss = rss_kib(daemon.child.id());
    daemon.set(NAME);
    let mut c = Client::connect_to(&home.join("agent.sock"), "ka-bench").expect("connect");
    let hash = match c.get(NAME) {
        Err(keychain_auth_sdk::ClientError::Daemon(b)) => {
            b.hash.expect("not_approved carries the hash")
        }
        other => panic!("expected not_approved, got {other:?}"),
    };
    cli(&ka, &home, &["approve", &hash, "--scope", "bench/*"], b"");
    assert_eq!(c.get(NAME).expect("approved").expose(), VALUE);
    (tmp, home, daemon)
}

struct Daemon {
    child: Child,
    ka: PathBuf,
    home: PathBuf,
    /// RSS 300 ms after start, before any request.
    idle_rss: Option<u64>,
    /// Names stored through this daemon, deleted again when it stops: the keyutils store
    /// is the user's own keyring, and the Secret Service's items outlive the run too.
    stored: Vec<String>,
}

impl Daemon {
    fn start(ka: &Path, home: &Path, store: &str) -> Daemon {
        Daemon::start_logging(ka, home, store, None)
    }

    /// [`Daemon::start`], with `RUST_LOG` set and its standard error into a file.
    fn start_logging(ka: &Path, home: &Path, store: &str, log: Option<(&str, &Path)>) -> Daemon {
        let mut c = Command::new(ka);
        c.args(["start", "--foreground", "--store", store])
            .env("KEYCHAIN_AUTH_HOME", home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((filter, file)) = log {
            c.env("RUST_LOG", filter)
                .stderr(std::fs::File::create(file).expect("log file"));
        }
        let child = c.spawn().expect("spawn daemon");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Client::connect_to(&home.join("agent.sock"), "ka-bench").is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon {
            child,
            ka: ka.to_path_buf(),
            home: home.to_path_buf(),
            idle_rss: None,
            stored: Vec::new(),
        }
    }

    /// Stores [`VALUE`] under `name` with `keychain-auth set`.
    fn set(&mut self, name: &str) {
        cli(&self.ka, &self.home, &["set", name], VALUE.as_bytes());
        self.stored.push(name.to_string());
    }

    /// Deletes what [`Daemon::set`] stored, then ends the daemon.
    fn stop(&mut self) {
        for name in std::mem::take(&mut self.stored) {
            let deleted = Command::new(&self.ka)
                .args(["delete", &name])
                .env("KEYCHAIN_AUTH_HOME", &self.home)
                .stdout(Stdio::null())
                .status();
            if !matches!(deleted, Ok(s) if s.success()) {
                eprintln!("ka-bench: could not delete {name} from the store");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
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
