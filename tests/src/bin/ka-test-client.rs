//! A small client used by the end-to-end tests, built from the SDK. Each copy of this
//! binary (with a byte appended) is a different executable to the daemon. It prints the
//! daemon's answer as one JSON line and exits 0 when an answer arrived, 1 otherwise.
//!
//! Usage: `ka-test-client get NAME [WAIT_MS] | set NAME VALUE | delete NAME | list |
//! whoami | raw JSON | exec-after-hello PROGRAM NAME | child-with-fd PROGRAM NAME |
//! from-fd FD NAME | spawn-child | write-and-vanish NAME | read-fd FD | hold SECONDS`;
//! any request may be prefixed by `undumpable` or `undumpable-after-hello`, and
//! `unchecked get NAME` talks to the socket without the SDK's checks of the socket and
//! its listener, as an attacker's client would.
//!
//! `exec-after-hello` connects, says hello, keeps the socket open across `exec` and runs
//! `PROGRAM from-fd FD NAME`, which sends `get NAME` on the inherited connection: the
//! attack of a process that swaps its executable after connecting. `child-with-fd` does
//! the same from a child process while it stays alive itself: an inherited socket.
//! `spawn-child` connects with the SDK and starts a shell the ordinary way
//! (`std::process::Command`), which reports whether it holds the connection's descriptor.

use keychain_auth_sdk::protocol::{Request, Response};
use keychain_auth_sdk::{Client, ClientError};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `undumpable REQUEST…` makes this process non-dumpable (hiding it from inspection)
    // before it connects; `undumpable-after-hello REQUEST…` after its hello was accepted.
    let undumpable_late = args.first().map(String::as_str) == Some("undumpable-after-hello");
    if args.first().map(String::as_str) == Some("undumpable") {
        args.remove(0);
        undumpable();
    } else if undumpable_late {
        args.remove(0);
    }
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["exec-after-hello", program, name] => exec_after_hello(program, name, true),
        ["child-with-fd", program, name] => exec_after_hello(program, name, false),
        ["from-fd", fd, name] => from_fd(fd.parse().expect("fd number"), name),
        ["spawn-child"] => spawn_child(),
        ["write-and-vanish", name] => write_and_vanish(name),
        ["unchecked", "get", name] => unchecked_get(name),
        ["flood-wait", count, name] => flood_wait(count.parse().expect("count"), name),
        ["exec-before-check", program, name] => exec_before_check(program, name, false),
        ["exec-before-check", program, name, "keep"] => exec_before_check(program, name, true),
        ["no-cloexec", "get", name] => no_cloexec_get(name),
        ["read-fd", fd] => read_fd(fd.parse().expect("fd number")),
        ["get-many", name, threads, each] => get_many(
            name,
            threads.parse().expect("thread count"),
            each.parse().expect("requests per thread"),
        ),
        ["hold", secs] => {
            std::thread::sleep(std::time::Duration::from_secs(
                secs.parse().expect("seconds"),
            ));
            std::process::exit(0);
        }
        _ => {}
    }
    let req = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["get", name] => Request::Get {
            name: name.to_string(),
            wait_ms: None,
        },
        ["get", name, ms] => Request::Get {
            name: name.to_string(),
            wait_ms: Some(ms.parse().expect("wait_ms is a number")),
        },
        ["set", name, value] => Request::Set {
            name: name.to_string(),
            value: (*value).into(),
        },
        ["delete", name] => Request::Delete {
            name: name.to_string(),
        },
        ["list"] => Request::List { offset: None },
        ["whoami"] => Request::Whoami {},
        ["raw", json] => serde_json::from_str(json).expect("raw request is valid JSON"),
        _ => {
            eprintln!("usage: ka-test-client get NAME [WAIT_MS] | set NAME VALUE | delete NAME | list | whoami | raw JSON | get-many NAME THREADS EACH");
            std::process::exit(2);
        }
    };
    let mut client = match Client::connect("ka-test-client") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let _ = client.set_timeout(Some(std::time::Duration::from_secs(120)));
    if undumpable_late {
        undumpable();
    }
    let resp = match client.request(&req) {
        Ok(r) => r,
        Err(ClientError::Daemon(body)) => Response::Error(body),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!(
        "{}",
        serde_json::to_string(&resp).expect("response serializes")
    );
}

#[cfg(target_os = "linux")]
fn undumpable() {
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    assert_eq!(rc, 0, "PR_SET_DUMPABLE failed");
}

/// Non-dumpable is Linux's `PR_SET_DUMPABLE`; elsewhere this client refuses to pretend.
#[cfg(not(target_os = "linux"))]
fn undumpable() {
    eprintln!("undumpable: PR_SET_DUMPABLE is Linux-only; not supported on this system");
    std::process::exit(2);
}

fn exec_after_hello(program: &str, name: &str, replace_self: bool) -> ! {
    use keychain_auth_sdk::frame;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    frame::write_frame(
        &mut s,
        &Request::Hello {
            protocol: 1,
            client: "exec".into(),
            scopes: Vec::new(),
            access: None,
        },
    )
    .expect("hello");
    let _: Response = frame::read_frame(&mut s).expect("hello answer");
    let fd = s.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns; no memory involved.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let mut cmd = std::process::Command::new(program);
    cmd.args(["from-fd", &fd.to_string(), name]);
    if !replace_self {
        // The parent (the connecting process) stays alive while its child uses the socket.
        let status = cmd.status().expect("spawn child");
        std::process::exit(status.code().unwrap_or(1));
    }
    let err = cmd.exec();
    panic!("exec failed: {err}");
}

fn from_fd(fd: i32, name: &str) -> ! {
    use keychain_auth_sdk::frame;
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor was inherited on purpose and nothing else in this process uses it.
    let mut s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    frame::write_frame(
        &mut s,
        &Request::Get {
            name: name.into(),
            wait_ms: None,
        },
    )
    .expect("send");
    match frame::read_frame::<Response, _>(&mut s) {
        Ok(r) => println!("{}", serde_json::to_string(&r).expect("serializes")),
        Err(e) => println!("{{\"type\":\"closed\",\"error\":{:?}}}", e.to_string()),
    }
    std::process::exit(0);
}

fn spawn_child() -> ! {
    use std::os::fd::{AsFd, AsRawFd};
    let client = Client::connect("ka-test-client").expect("connect");
    let check = |fd: i32| {
        let out = std::process::Command::new("sh")
            .args([
                "-c",
                "if [ -e /proc/$$/fd/$1 ]; then echo inherited; else echo closed; fi",
                "sh",
                &fd.to_string(),
            ])
            .output()
            .expect("spawn sh");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let fd = client.as_fd().as_raw_fd();
    let child = check(fd);
    // The control: a duplicate with close-on-exec cleared must be seen by the child, or
    // the check above proves nothing.
    let dup = client.as_fd().try_clone_to_owned().expect("dup");
    // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns; no memory involved.
    unsafe { libc::fcntl(dup.as_raw_fd(), libc::F_SETFD, 0) };
    let control = check(dup.as_raw_fd());
    println!(
        "{}",
        serde_json::json!({"fd": fd, "child": child, "control": control})
    );
    std::process::exit(0);
}

/// Connects, writes `hello` and `get NAME` at once, hands the connection to a child
/// (`read-fd`) that waits for the answers, prints its own pid and exits at once: a peer
/// that is gone before the daemon gets to check it, whose pid may then be reused.
fn write_and_vanish(name: &str) -> ! {
    use keychain_auth_sdk::frame;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut bytes = frame::encode(&Request::Hello {
        protocol: 1,
        client: "vanish".into(),
        scopes: Vec::new(),
        access: None,
    })
    .expect("hello");
    bytes.extend(
        frame::encode(&Request::Get {
            name: name.into(),
            wait_ms: None,
        })
        .expect("get"),
    );
    s.write_all(&bytes).expect("write");
    let fd = s.as_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns; no memory involved.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let me = std::env::current_exe().expect("exe");
    std::process::Command::new(me)
        .args(["read-fd", &fd.to_string()])
        .spawn()
        .expect("spawn reader");
    println!("pid {}", std::process::id());
    std::process::exit(0);
}

/// `exec-before-check PROGRAM NAME [keep]`: the attack of a process that asks and then
/// becomes another program before the daemon looks at it. Connects, writes `hello` and
/// `get NAME` at once, forks a reader that keeps the connection and prints, one JSON
/// line each, every frame that arrives (then `{"type":"done"}`), and execs
/// `PROGRAM hold 20`. With `keep` the connection's descriptor survives the exec (its
/// close-on-exec flag is cleared first); without, the exec closes it in PROGRAM.
fn exec_before_check(program: &str, name: &str, keep: bool) -> ! {
    use keychain_auth_sdk::frame;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut bytes = frame::encode(&Request::Hello {
        protocol: 1,
        client: "exec-before-check".into(),
        scopes: Vec::new(),
        access: None,
    })
    .expect("hello");
    bytes.extend(
        frame::encode(&Request::Get {
            name: name.into(),
            wait_ms: None,
        })
        .expect("get"),
    );
    s.write_all(&bytes).expect("write");
    if keep {
        // SAFETY: clearing FD_CLOEXEC on a descriptor this process owns; no memory involved.
        unsafe { libc::fcntl(s.as_raw_fd(), libc::F_SETFD, 0) };
    }
    // SAFETY: this process is single-threaded here; the child only reads and prints.
    match unsafe { libc::fork() } {
        0 => {
            let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(60)));
            loop {
                match frame::read_frame::<Response, _>(&mut s) {
                    Ok(r) => println!("{}", serde_json::to_string(&r).expect("serializes")),
                    Err(e) => {
                        println!("{{\"type\":\"closed\",\"error\":{:?}}}", e.to_string());
                        break;
                    }
                }
            }
            println!("{{\"type\":\"done\"}}");
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
        -1 => panic!("fork failed"),
        _ => {}
    }
    let err = std::process::Command::new(program)
        .args(["hold", "20"])
        .exec();
    panic!("exec {program}: {err}");
}

/// `no-cloexec get NAME`: `hello` and `get NAME` on a socket created without
/// `SOCK_CLOEXEC`, as a client that does not follow the protocol's advice would.
fn no_cloexec_get(name: &str) -> ! {
    use keychain_auth_sdk::frame;
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    // SAFETY: socket takes integers; the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    // SAFETY: socket returned a new descriptor nobody else owns.
    let mut s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid; the path is copied in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, b) in addr.sun_path.iter_mut().zip(socket.as_os_str().as_bytes()) {
        *d = *b as libc::c_char;
    }
    // SAFETY: addr is a valid sockaddr_un for its size; fd is open.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut bytes = frame::encode(&Request::Hello {
        protocol: 1,
        client: "no-cloexec".into(),
        scopes: Vec::new(),
        access: None,
    })
    .expect("hello");
    bytes.extend(
        frame::encode(&Request::Get {
            name: name.into(),
            wait_ms: None,
        })
        .expect("get"),
    );
    let _ = std::io::Write::write_all(&mut s, &bytes);
    let mut last = serde_json::json!({"type": "closed"});
    for _ in 0..2 {
        match frame::read_frame::<Response, _>(&mut s) {
            Ok(r) => last = serde_json::to_value(&r).expect("serializes"),
            Err(_) => break,
        }
    }
    println!("{last}");
    std::process::exit(0);
}

/// `flood-wait COUNT NAME`: opens COUNT connections, each sending `hello` and a `get`
/// that asks to wait ten minutes for a decision, and holds them. After a second it
/// prints how many were answered at once and how many are still waiting, then holds
/// every connection until its standard input closes.
fn flood_wait(count: usize, name: &str) -> ! {
    use keychain_auth_sdk::frame;
    use std::io::Read;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    let hello = Request::Hello {
        protocol: 1,
        client: "flood".into(),
        scopes: Vec::new(),
        access: None,
    };
    let get = Request::Get {
        name: name.into(),
        wait_ms: Some(600_000),
    };
    let mut conns = Vec::new();
    for _ in 0..count {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&socket) else {
            break;
        };
        let mut bytes = frame::encode(&hello).expect("hello");
        bytes.extend(frame::encode(&get).expect("get"));
        if std::io::Write::write_all(&mut s, &bytes).is_ok() {
            conns.push(s);
        }
    }
    // Read answers until every connection has had its hello answered and none has come
    // for three seconds more (a minute at most): what is unanswered then is waiting for
    // a decision.
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Hello,
        Get,
        Answered,
        Closed,
    }
    let mut state = vec![State::Hello; conns.len()];
    let mut last_news = std::time::Instant::now();
    let started = std::time::Instant::now();
    while (state.contains(&State::Hello) || last_news.elapsed() < std::time::Duration::from_secs(3))
        && started.elapsed() < std::time::Duration::from_secs(60)
    {
        for (s, st) in conns.iter_mut().zip(state.iter_mut()) {
            if matches!(*st, State::Answered | State::Closed) {
                continue;
            }
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(5)));
            match frame::read_frame::<Response, _>(&mut *s) {
                Ok(Response::Hello { .. }) if *st == State::Hello => *st = State::Get,
                Ok(_) => *st = State::Answered,
                Err(frame::FrameError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => *st = State::Closed,
            }
            last_news = std::time::Instant::now();
        }
    }
    let count = |w: State| state.iter().filter(|s| **s == w).count();
    let (answered, closed) = (count(State::Answered), count(State::Closed));
    let waiting = count(State::Get) + count(State::Hello);
    println!(
        "{}",
        serde_json::json!({"connected": conns.len(), "answered": answered, "waiting": waiting, "closed": closed})
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    std::process::exit(0);
}

/// `hello` and `get NAME` on a plain connection (no SDK checks), printing the first
/// error or the answer to `get`.
fn unchecked_get(name: &str) -> ! {
    use keychain_auth_sdk::frame;
    let socket = keychain_auth_sdk::paths::Paths::client_socket().expect("socket path");
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let answer = |req: &Request, s: &mut std::os::unix::net::UnixStream| {
        let _ = frame::write_frame(&mut *s, req);
        match frame::read_frame::<Response, _>(s) {
            Ok(r) => r,
            Err(e) => {
                println!("{{\"type\":\"closed\",\"error\":{:?}}}", e.to_string());
                std::process::exit(0);
            }
        }
    };
    let hello = Request::Hello {
        protocol: 1,
        client: "unchecked".into(),
        scopes: Vec::new(),
        access: None,
    };
    let r = match answer(&hello, &mut s) {
        Response::Hello { .. } => answer(
            &Request::Get {
                name: name.into(),
                wait_ms: None,
            },
            &mut s,
        ),
        other => other,
    };
    println!("{}", serde_json::to_string(&r).expect("serializes"));
    std::process::exit(0);
}

/// Prints every frame that arrives on an inherited connection (at most two), then
/// `{"type":"closed"}` when it ends.
fn read_fd(fd: i32) -> ! {
    use keychain_auth_sdk::frame;
    use std::os::fd::FromRawFd;
    // SAFETY: the descriptor was inherited on purpose and nothing else here uses it.
    let mut s = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(60)));
    for _ in 0..2 {
        match frame::read_frame::<Response, _>(&mut s) {
            Ok(r) => println!("{}", serde_json::to_string(&r).expect("serializes")),
            Err(e) => {
                println!("{{\"type\":\"closed\",\"error\":{:?}}}", e.to_string());
                break;
            }
        }
    }
    std::process::exit(0);
}

/// `get-many NAME THREADS EACH`: THREADS connections at once, each asking for NAME EACH
/// times in a row; prints how many answers were the secret and how many were not.
fn get_many(name: &str, threads: usize, each: usize) -> ! {
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let name = name.to_string();
            std::thread::spawn(move || {
                let mut client = Client::connect("ka-test-client").expect("connect");
                (0..each)
                    .filter(|_| {
                        matches!(
                            client.request(&Request::Get {
                                name: name.clone(),
                                wait_ms: None,
                            }),
                            Ok(Response::Secret { .. })
                        )
                    })
                    .count()
            })
        })
        .collect();
    let served: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    println!(
        "{}",
        serde_json::json!({"served": served, "failed": threads * each - served})
    );
    std::process::exit(0);
}
