//! The handlers driven in-process, each family through [`Daemon::dispatch`]: a daemon
//! over a [`MemoryStore`] and a temporary directory, and a peer that is this test
//! process, identified by the kernel from one end of a `UnixStream::pair`. No keyring,
//! no server, no other process.

use super::info::{page, PAGE_BUDGET};
use super::{Actor, Daemon, Gone};
use crate::audit::Record;
use crate::config::Config;
use crate::desktop::approver::Answer;
use crate::peer::Peer;
use crate::pending::Sighting;
use crate::state::{Deps, State};
use crate::store::memory::MemoryStore;
use crate::store::SecretStore;
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::{Access, ErrorCode, Request, Response, Tool};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

/// A daemon, the peer asking it (this process) and what it stores.
struct Harness {
    dir: tempfile::TempDir,
    daemon: Daemon,
    store: Arc<MemoryStore>,
    peer: Peer,
    hash: String,
    rt: tokio::runtime::Runtime,
    _other_end: UnixStream,
}

fn tool(hash: &str, scopes: &[&str], access: Access) -> Tool {
    crate::fixtures::tool(hash, "me", "/test/me", scopes, access)
}

/// `admin`: this process is the daemon's CLI (may send admin requests); `tools`: what
/// config.json approves, given this process's hash.
fn harness(admin: bool, tools: impl FnOnce(&str) -> Vec<Tool>) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = UnixStream::pair().expect("pair");
    let cache = crate::digest::HashCache::new();
    let peer = Peer::identify(a.as_fd(), &cache).expect("identify this process");
    let hash = peer.hash.clone();
    let paths = Paths::in_dir(dir.path());
    Config {
        tools: tools(&hash),
        ..Config::default()
    }
    .save(&paths.config)
    .expect("config");
    let store = Arc::new(MemoryStore::default());
    let state = State::load(Deps {
        paths,
        store: store.clone(),
        approver: Arc::new(crate::desktop::approver::Headless),
        clock: Arc::new(crate::clock::SystemClock),
        admin_hashes: if admin {
            vec![hash.clone()]
        } else {
            Vec::new()
        },
        deputy_hashes: Vec::new(),
    })
    .expect("load");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    Harness {
        dir,
        daemon: Daemon::new(Arc::new(state)),
        store,
        peer,
        hash,
        rt,
        _other_end: b,
    }
}

impl Harness {
    fn ask(&self, req: Request) -> Response {
        self.rt.block_on(self.daemon.handle(&self.peer, req))
    }

    fn as_person(&self, by: Actor<'static>, req: Request) -> Response {
        self.rt.block_on(self.daemon.admin_local(by, req))
    }

    fn store_value(&self, name: &str, value: &str) {
        self.rt
            .block_on(self.store.set(name, &value.into()))
            .expect("store");
    }

    fn audit(&self) -> Vec<Record> {
        let _ = self.daemon.state().audit().flush();
        crate::audit::read_all(&Paths::in_dir(self.dir.path()).audit, 0).expect("audit")
    }

    fn saved(&self) -> Config {
        Config::load(&Paths::in_dir(self.dir.path()).config)
            .expect("load")
            .expect("exists")
    }

    /// A pending entry for a made-up binary, as a refusal would have queued it.
    fn pending(&self, hash: &str, path: &str, interpreter: bool) {
        self.daemon.state().pending().record(&Sighting {
            hash,
            path,
            name: Some("demo/token"),
            interpreter,
            wants: None,
            script: None,
            signing: None,
            libraries: &[],
            chain: None,
            terminal: None,
            now: "2026-01-01T00:00:00Z",
        });
    }
}

fn code(r: &Response) -> Option<ErrorCode> {
    match r {
        Response::Error(e) => Some(e.code),
        _ => None,
    }
}

fn get(name: &str) -> Request {
    Request::Get {
        name: name.into(),
        wait_ms: None,
    }
}

fn other_hash(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

// ---- secrets ----

#[test]
fn an_unknown_program_is_refused_queued_and_audited() {
    let h = harness(false, |_| Vec::new());
    h.store_value("demo/token", "the-stored-value");
    let r = h.ask(get("demo/token"));
    assert_eq!(code(&r), Some(ErrorCode::NotApproved), "{r:?}");
    assert!(h.daemon.state().pending().contains(&h.hash));
    let lines = h.audit();
    let last = lines.last().expect("a line");
    assert_eq!(last.entry.decision, "not_approved");
    assert_eq!(last.entry.names, vec!["demo/token"]);
    let raw = std::fs::read_to_string(Paths::in_dir(h.dir.path()).audit).expect("log");
    assert!(!raw.contains("the-stored-value"), "no value in the log");
}

#[test]
fn an_approved_program_reads_in_scope_and_writes_only_with_read_write() {
    let h = harness(false, |me| vec![tool(me, &["demo/*"], Access::Read)]);
    h.store_value("demo/token", "the-value");
    h.store_value("other/token", "x");
    assert_eq!(
        h.ask(get("demo/token")),
        Response::Secret {
            name: "demo/token".into(),
            value: "the-value".into()
        }
    );
    assert_eq!(
        code(&h.ask(get("other/token"))),
        Some(ErrorCode::OutOfScope)
    );
    assert_eq!(code(&h.ask(get("demo/absent"))), Some(ErrorCode::NotFound));
    let set = Request::Set {
        name: "demo/new".into(),
        value: "v".into(),
    };
    assert_eq!(
        code(&h.ask(set)),
        Some(ErrorCode::Forbidden),
        "read access only"
    );
    match h.ask(Request::List { offset: None }) {
        Response::Names { names, next } => {
            assert_eq!(names, vec!["demo/token"], "only names in scope");
            assert_eq!(next, None);
        }
        r => panic!("{r:?}"),
    }
    let bad = h.ask(get("../x"));
    assert_eq!(code(&bad), Some(ErrorCode::BadRequest), "{bad:?}");
}

#[test]
fn read_write_tools_set_and_delete_and_every_write_is_audited() {
    let h = harness(false, |me| vec![tool(me, &["demo/*"], Access::ReadWrite)]);
    let set = Request::Set {
        name: "demo/new".into(),
        value: "v".into(),
    };
    assert_eq!(h.ask(set), Response::Ok);
    assert_eq!(
        h.ask(Request::Delete {
            name: "demo/new".into()
        }),
        Response::Ok
    );
    let again = h.ask(Request::Delete {
        name: "demo/new".into(),
    });
    assert_eq!(code(&again), Some(ErrorCode::NotFound));
    let ops: Vec<(String, String)> = h
        .audit()
        .iter()
        .filter(|l| l.entry.event == "access")
        .map(|l| {
            (
                l.entry.op.clone().unwrap_or_default(),
                l.entry.decision.clone(),
            )
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("set".to_string(), "allow".to_string()),
            ("delete".to_string(), "allow".to_string()),
            ("delete".to_string(), "not_found".to_string()),
        ]
    );
}

#[test]
fn while_paused_every_secret_request_is_refused() {
    let h = harness(false, |me| vec![tool(me, &["demo/*"], Access::ReadWrite)]);
    h.store_value("demo/token", "v");
    h.daemon.set_paused(Actor::Tray, true);
    for req in [
        get("demo/token"),
        Request::Set {
            name: "demo/x".into(),
            value: "v".into(),
        },
        Request::Delete {
            name: "demo/token".into(),
        },
        Request::List { offset: None },
    ] {
        let r = h.ask(req);
        assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    }
    h.daemon.set_paused(Actor::Tray, false);
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
}

// ---- the gates ----

#[test]
fn admin_requests_pass_only_the_admin_gate() {
    let h = harness(false, |_| Vec::new());
    let r = h.ask(Request::Status {});
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    // A person on the desktop makes admin requests, but no secret request, and none
    // that needs a calling CLI.
    assert!(matches!(
        h.as_person(Actor::Window, Request::Status {}),
        Response::Status(_)
    ));
    for req in [
        get("demo/token"),
        Request::Whoami {},
        Request::Shutdown {},
        Request::GetForParent {
            name: "demo/token".into(),
            wait_ms: None,
        },
        Request::Stored {
            name: "demo/token".into(),
        },
    ] {
        let r = h.as_person(Actor::Tray, req);
        assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
    }
    // The CLI itself never reads a secret.
    let cli = harness(true, |_| Vec::new());
    assert_eq!(
        code(&cli.ask(get("demo/token"))),
        Some(ErrorCode::Forbidden)
    );
    assert!(matches!(cli.ask(Request::Status {}), Response::Status(_)));
}

// ---- approvals ----

#[test]
fn approving_a_pending_hash_saves_audits_and_unqueues_it() {
    let h = harness(true, |_| Vec::new());
    let tool_hash = other_hash('a');
    h.pending(&tool_hash, "/opt/tool", false);
    let r = h.ask(Request::Approve {
        hash: tool_hash.clone(),
        scopes: Vec::new(),
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
    });
    match &r {
        Response::Tool { tool, .. } => {
            assert_eq!(tool.scopes, vec!["demo/token"], "what it asked for");
            assert_eq!(tool.label, "tool");
            assert_eq!(tool.approved_via, "cli");
        }
        r => panic!("{r:?}"),
    }
    assert!(!h.daemon.state().pending().contains(&tool_hash));
    assert_eq!(h.saved().tools.len(), 1, "saved before it was acknowledged");
    let line = h
        .audit()
        .into_iter()
        .find(|l| l.entry.event == "approve")
        .expect("audited");
    assert_eq!(line.entry.pid, Some(h.peer.pid), "the CLI that asked");
    assert_eq!(line.entry.hash.as_deref(), Some(tool_hash.as_str()));
    for (hash, want) in [
        (other_hash('b'), ErrorCode::NotFound),
        ("sha256:nothex".to_string(), ErrorCode::BadRequest),
    ] {
        let r = h.ask(Request::Approve {
            hash,
            scopes: vec!["x".into()],
            access: None,
            label: None,
            unbound_get: None,
            only_through: None,
        });
        assert_eq!(code(&r), Some(want), "{r:?}");
    }
}

#[test]
fn a_bare_interpreter_is_never_approved_whichever_way_is_asked() {
    let h = harness(true, |_| Vec::new());
    let interp = other_hash('c');
    h.pending(&interp, "/usr/bin/python3", true);
    let approve = h.ask(Request::Approve {
        hash: interp.clone(),
        scopes: vec!["demo/*".into()],
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
    });
    let desktop = h.rt.block_on(
        h.daemon
            .answer(Actor::Notification, &interp, Answer::Approve),
    );
    let sh = std::fs::canonicalize("/bin/sh").expect("sh");
    let register = h.ask(Request::Register {
        path: sh.display().to_string(),
        scopes: vec!["demo/*".into()],
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
    });
    for r in [approve, desktop, register] {
        match &r {
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::Forbidden);
                assert!(
                    e.message.contains(crate::policy::WHOLE_INTERPRETER),
                    "{}",
                    e.message
                );
            }
            r => panic!("{r:?}"),
        }
    }
    assert!(h.saved().tools.is_empty());
}

#[test]
fn deny_revoke_and_desktop_answers_change_config_and_say_who_decided() {
    let h = harness(true, |_| vec![tool(&other_hash('d'), &["a"], Access::Read)]);
    let pending = other_hash('e');
    h.pending(&pending, "/opt/e", false);
    // Deny from the window: a deny rule, the entry unqueued.
    let r =
        h.rt.block_on(h.daemon.answer(Actor::Window, &pending, Answer::Deny));
    assert_eq!(r, Response::Ok);
    assert!(h.saved().denied.iter().any(|d| d.hash == pending));
    assert!(!h.daemon.state().pending().contains(&pending));
    // Revoke by label from the CLI.
    assert_eq!(h.ask(Request::Revoke { tool: "me".into() }), Response::Ok);
    assert!(h.saved().tools.is_empty());
    assert_eq!(
        code(&h.ask(Request::Revoke { tool: "me".into() })),
        Some(ErrorCode::NotFound)
    );
    // Approve on a notification: approved_via says so.
    let approved = other_hash('f');
    h.pending(&approved, "/opt/f", false);
    match h.rt.block_on(
        h.daemon
            .answer(Actor::Notification, &approved, Answer::Approve),
    ) {
        Response::Tool { tool, .. } => assert_eq!(tool.approved_via, "notification"),
        r => panic!("{r:?}"),
    }
    let vias: Vec<(String, Option<String>, Option<i32>)> = h
        .audit()
        .into_iter()
        .filter(|l| matches!(l.entry.event.as_str(), "deny" | "revoke" | "approve"))
        .map(|l| (l.entry.event, l.entry.via, l.entry.pid))
        .collect();
    assert_eq!(
        vias,
        vec![
            ("deny".into(), Some("window".into()), None),
            ("revoke".into(), None, Some(h.peer.pid)),
            ("approve".into(), Some("notification".into()), None),
        ]
    );
}

#[test]
fn allow_once_serves_one_request_of_a_pending_program() {
    let h = harness(false, |_| Vec::new());
    h.store_value("demo/token", "v");
    assert_eq!(
        code(&h.ask(get("demo/token"))),
        Some(ErrorCode::NotApproved)
    );
    let r =
        h.rt.block_on(h.daemon.answer(Actor::Tray, &h.hash, Answer::AllowOnce));
    assert_eq!(r, Response::Ok);
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
    assert_eq!(
        code(&h.ask(get("demo/token"))),
        Some(ErrorCode::NotApproved),
        "once"
    );
}

#[test]
fn a_waiting_get_is_served_when_approved_meanwhile() {
    let h = harness(false, |_| Vec::new());
    h.store_value("demo/token", "v");
    let daemon = h.daemon.clone();
    let hash = h.hash.clone();
    let gone = Gone::never();
    let r = h.rt.block_on(async {
        let approve = async {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            daemon.answer(Actor::Tray, &hash, Answer::AllowOnce).await
        };
        let wait = h.daemon.handle_with(
            &h.peer,
            Request::Get {
                name: "demo/token".into(),
                wait_ms: Some(5_000),
            },
            &gone,
        );
        let (r, a) = tokio::join!(wait, approve);
        assert_eq!(a, Response::Ok);
        r
    });
    assert!(matches!(r, Response::Secret { .. }), "{r:?}");
}

// ---- info ----

#[test]
fn whoami_and_status_say_what_the_daemon_knows() {
    let h = harness(false, |_| Vec::new());
    let who = |h: &Harness| match h.ask(Request::Whoami {}) {
        Response::Identity(i) => i.status,
        r => panic!("{r:?}"),
    };
    assert_eq!(who(&h), "unknown");
    let _ = h.ask(get("demo/token"));
    assert_eq!(who(&h), "pending");
    match h.as_person(Actor::Window, Request::Status {}) {
        Response::Status(s) => {
            assert_eq!((s.tools, s.pending, s.store.as_str()), (0, 1, "memory"));
            let lines = h.audit();
            assert_eq!(s.audit_seq, lines.last().map_or(0, |l| l.seq));
        }
        r => panic!("{r:?}"),
    }
    match h.as_person(Actor::Window, Request::ListPending { offset: None }) {
        Response::Pending { pending, next } => {
            assert_eq!(pending.len(), 1);
            assert_eq!(next, None);
        }
        r => panic!("{r:?}"),
    }
}

#[test]
fn pages_cover_everything_once_and_stay_under_budget() {
    let items: Vec<String> = (0..5000)
        .map(|i| format!("name/{i:05}/{}", "x".repeat(i % 300)))
        .collect();
    let mut seen = Vec::new();
    let mut offset = None;
    let mut pages = 0;
    loop {
        let (chunk, next) = page(&items, offset);
        assert!(!chunk.is_empty());
        assert!(serde_json::to_vec(&chunk).expect("json").len() <= PAGE_BUDGET + 2);
        seen.extend(chunk);
        pages += 1;
        match next {
            Some(n) => offset = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, items);
    assert!(pages > 1);
    let (rest, next) = page(&items, Some(1_000_000));
    assert!(
        rest.is_empty() && next.is_none(),
        "an offset past the end is an empty last page"
    );
}
