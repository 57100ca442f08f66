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
use keychain_auth_sdk::protocol::{Access, ErrorCode, Lasts, Request, Response, Tool};
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
    harness_proving(
        admin,
        tools,
        Arc::new(crate::presence::NoMechanism("unit test".into())),
    )
}

/// [`harness`] whose presence is proven (or not) by `presence`.
fn harness_proving(
    admin: bool,
    tools: impl FnOnce(&str) -> Vec<Tool>,
    presence: Arc<dyn crate::presence::Prover>,
) -> Harness {
    harness_with(admin, tools, presence, Arc::new(crate::clock::SystemClock))
}

/// [`harness_proving`] on `clock`.
fn harness_with(
    admin: bool,
    tools: impl FnOnce(&str) -> Vec<Tool>,
    presence: Arc<dyn crate::presence::Prover>,
    clock: Arc<dyn crate::clock::Clock>,
) -> Harness {
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
        presence,
        clock,
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
            update_of: None,
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
    h.rt.block_on(h.daemon.set_paused(Actor::Tray, true));
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
    h.rt.block_on(h.daemon.set_paused(Actor::Tray, false));
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
        lasts: None,
        follow: None,
        as_new: false,
        add_scopes: Vec::new(),
        remove_scopes: Vec::new(),
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
            lasts: None,
            follow: None,
            as_new: false,
            add_scopes: Vec::new(),
            remove_scopes: Vec::new(),
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
        lasts: None,
        follow: None,
        as_new: false,
        add_scopes: Vec::new(),
        remove_scopes: Vec::new(),
    });
    let desktop = h.rt.block_on(h.daemon.answer(
        Actor::Notification,
        &interp,
        Answer::Approve(Lasts::Always),
    ));
    let sh = std::fs::canonicalize("/bin/sh").expect("sh");
    let register = h.ask(Request::Register {
        path: sh.display().to_string(),
        scopes: vec!["demo/*".into()],
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
        lasts: None,
        follow: None,
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
    match h.rt.block_on(h.daemon.answer(
        Actor::Notification,
        &approved,
        Answer::Approve(Lasts::Always),
    )) {
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

// ---- presence ----

fn approve(hash: &str, scopes: &[&str]) -> Request {
    approve_for(hash, scopes, None)
}

fn approve_for(hash: &str, scopes: &[&str], lasts: Option<Lasts>) -> Request {
    Request::Approve {
        hash: hash.into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
        lasts,
        follow: None,
        as_new: false,
        add_scopes: Vec::new(),
        remove_scopes: Vec::new(),
    }
}

#[test]
fn an_approval_whose_presence_is_not_proven_changes_nothing_and_is_audited() {
    use crate::presence::{Answering, NotProven};
    let prover = Answering::new(Err(NotProven::Failed));
    let h = harness_proving(true, |_| Vec::new(), prover.clone());
    let stranger = other_hash('e');
    h.pending(&stranger, "/usr/local/bin/stranger", false);
    let mut answers = vec![h.ask(approve(&stranger, &["*"]))];
    for by in [Actor::Notification, Actor::Tray, Actor::Window] {
        answers.push(h.as_person(by, approve(&stranger, &["*"])));
    }
    for r in answers {
        assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
        let Response::Error(e) = r else {
            unreachable!()
        };
        assert!(e.message.contains("authentication failed"), "{}", e.message);
    }
    // A press of the notification's Approve is no proof either.
    let r = h.rt.block_on(h.daemon.answer(
        Actor::Notification,
        &stranger,
        Answer::Approve(Lasts::Always),
    ));
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    // Nor is Allow once: it would serve the program without approving it.
    let r = h.rt.block_on(
        h.daemon
            .answer(Actor::Notification, &stranger, Answer::AllowOnce),
    );
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    assert!(
        !h.daemon.state().pending().take_once(&stranger),
        "no read allowed"
    );
    assert!(h.saved().tools.is_empty());
    assert!(
        h.daemon.state().pending().contains(&stranger),
        "still waiting"
    );
    let asked = prover.asked();
    assert_eq!(asked.len(), 6);
    assert!(
        asked[0].contains("approve stranger (/usr/local/bin/stranger"),
        "{}",
        asked[0]
    );
    assert!(asked[0].contains("to read *, always"), "{}", asked[0]);
    let refused: Vec<_> = h
        .audit()
        .into_iter()
        .filter(|l| l.entry.event == "approve")
        .collect();
    assert_eq!(refused.len(), 6);
    for l in refused {
        assert_eq!(l.entry.decision, "deny");
        assert_eq!(l.entry.presence.as_deref(), Some("polkit"));
        assert_eq!(l.entry.hash.as_deref(), Some(stranger.as_str()));
    }
}

#[test]
fn a_proven_approval_is_applied_and_says_how_it_was_proven() {
    use crate::presence::Answering;
    let prover = Answering::new(Ok(()));
    let h = harness_proving(true, |_| Vec::new(), prover.clone());
    let stranger = other_hash('f');
    h.pending(&stranger, "/usr/local/bin/stranger", false);
    assert!(matches!(
        h.ask(approve(&stranger, &["demo/*"])),
        Response::Tool { .. }
    ));
    let line = h
        .audit()
        .into_iter()
        .rfind(|l| l.entry.event == "approve")
        .expect("approve line");
    assert_eq!(line.entry.decision, "ok");
    assert_eq!(line.entry.presence.as_deref(), Some("polkit"));
    // The same again, or less, is not asked about; more is.
    let n = prover.asked().len();
    assert!(matches!(
        h.ask(approve(&stranger, &["demo/token"])),
        Response::Tool { .. }
    ));
    assert_eq!(prover.asked().len(), n, "narrowing asks nothing");
    assert!(matches!(
        h.ask(approve(&stranger, &["demo/*"])),
        Response::Tool { .. }
    ));
    assert_eq!(prover.asked().len(), n + 1, "widening again is asked");
    assert!(prover.asked()[n].contains("widen the approval of"));
}

#[test]
fn lifting_a_deny_resuming_and_turning_presence_off_are_proven_their_opposites_not() {
    use crate::presence::{Answering, NotProven};
    let prover = Answering::new(Err(NotProven::NoAgent));
    let h = harness_proving(
        true,
        |me| vec![tool(me, &["demo/*"], Access::Read)],
        prover.clone(),
    );
    let stranger = other_hash('d');
    assert_eq!(
        h.ask(Request::Deny {
            hash: stranger.clone()
        }),
        Response::Ok,
        "a deny needs no proof"
    );
    let r = h.ask(Request::Register {
        path: std::env::current_exe().expect("exe").display().to_string(),
        scopes: vec!["*".into()],
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
        lasts: None,
        follow: None,
    });
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    h.rt.block_on(h.daemon.set_paused(Actor::Tray, true));
    assert!(h.daemon.is_paused(), "a pause needs no proof");
    let r = h.rt.block_on(h.daemon.set_paused(Actor::Tray, false));
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    assert!(h.daemon.is_paused(), "still paused");
    let off = Request::SetPresence {
        presence: "off".into(),
    };
    assert_eq!(code(&h.ask(off)), Some(ErrorCode::Denied));
    assert_eq!(h.saved().presence, None);
    let on = Request::SetPresence {
        presence: "required".into(),
    };
    assert_eq!(h.ask(on), Response::Ok, "turning it on needs no proof");
    assert_eq!(h.saved().presence, Some(crate::presence::Setting::Required));
    let bad = Request::SetPresence {
        presence: "maybe".into(),
    };
    assert_eq!(code(&h.ask(bad)), Some(ErrorCode::BadRequest));
    // Removing scopes needs none; adding does.
    let me = h.hash.clone();
    assert!(matches!(
        h.rt.block_on(h.daemon.set_scopes(Actor::Window, &me, vec![])),
        Response::Tool { .. }
    ));
    let r = h.rt.block_on(
        h.daemon
            .set_scopes(Actor::Window, &me, vec!["demo/*".into()]),
    );
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    assert_eq!(prover.asked().len(), 4, "{:?}", prover.asked());
}

#[test]
fn required_presence_with_no_mechanism_refuses_and_says_what_to_install() {
    let h = harness_proving(
        true,
        |_| Vec::new(),
        Arc::new(crate::presence::NoMechanism(
            "polkit's action is not installed; install it with ...".into(),
        )),
    );
    // Not set: off, with a warning; approvals go through.
    let s = match h.ask(Request::Status {}) {
        Response::Status(s) => s,
        r => panic!("{r:?}"),
    };
    assert!(s.presence.unwrap_or_default().starts_with("off: "));
    assert_eq!(
        h.ask(Request::SetPresence {
            presence: "required".into()
        }),
        Response::Ok
    );
    let stranger = other_hash('c');
    h.pending(&stranger, "/usr/local/bin/stranger", false);
    let r = h.ask(approve(&stranger, &["*"]));
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    let Response::Error(e) = r else {
        unreachable!()
    };
    assert!(e.message.contains("not installed"), "{}", e.message);
    assert!(h.saved().tools.is_empty());
}

// ---- approvals that run out ----

#[test]
fn a_time_boxed_approval_serves_until_its_time_then_is_removed_and_audited() {
    let start = humantime::parse_rfc3339("2026-12-01T10:00:00Z").expect("time");
    let clock = Arc::new(crate::clock::ManualClock(std::sync::Mutex::new(start)));
    let h = harness_with(
        false,
        |_| Vec::new(),
        Arc::new(crate::presence::NoMechanism("unit test".into())),
        clock.clone(),
    );
    h.store_value("demo/token", "v");
    let me = h.hash.clone();
    h.pending(&me, "/test/me", false);
    let r = h.as_person(
        Actor::Window,
        approve_for(&me, &["demo/*"], Some(Lasts::Seconds(3600))),
    );
    let Response::Tool { tool, .. } = r else {
        panic!("{r:?}")
    };
    assert_eq!(tool.expires_at.as_deref(), Some("2026-12-01T11:00:00Z"));
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
    // Asking, and a status query, move nothing.
    clock.advance(std::time::Duration::from_secs(3599));
    let _ = h.ask(Request::Status {});
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
    assert_eq!(
        h.saved().tools[0].expires_at.as_deref(),
        Some("2026-12-01T11:00:00Z")
    );
    // At its time it is refused, even before the sweeper ran.
    clock.advance(std::time::Duration::from_secs(1));
    assert_eq!(
        code(&h.ask(get("demo/token"))),
        Some(ErrorCode::NotApproved)
    );
    h.rt.block_on(h.daemon.end_of_session());
    assert!(h.saved().tools.is_empty());
    let expired: Vec<_> = h
        .audit()
        .into_iter()
        .filter(|l| l.entry.event == "expire")
        .collect();
    assert_eq!(expired.len(), 1);
    assert!(expired[0]
        .entry
        .reason
        .contains("expired at 2026-12-01T11:00:00Z"));
    assert_eq!(expired[0].entry.hash.as_deref(), Some(me.as_str()));
    // Out of range.
    let r = h.as_person(
        Actor::Window,
        approve_for(&me, &["demo/*"], Some(Lasts::Seconds(0))),
    );
    assert_eq!(code(&r), Some(ErrorCode::BadRequest), "{r:?}");
}

#[test]
fn an_approval_until_logout_ends_with_the_daemons_session() {
    let h = harness(false, |_| Vec::new());
    h.store_value("demo/token", "v");
    let me = h.hash.clone();
    h.pending(&me, "/test/me", false);
    let r = h.as_person(
        Actor::Window,
        approve_for(&me, &["demo/*"], Some(Lasts::UntilLogout)),
    );
    assert!(
        matches!(r, Response::Tool { ref tool, .. } if tool.until_logout),
        "{r:?}"
    );
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
    // Re-approving without --for keeps what it had.
    let r = h.as_person(Actor::Window, approve(&me, &["demo/token"]));
    assert!(
        matches!(r, Response::Tool { ref tool, .. } if tool.until_logout),
        "{r:?}"
    );
    h.rt.block_on(h.daemon.end_of_session());
    assert!(h.saved().tools.is_empty());
    let line = h
        .audit()
        .into_iter()
        .rfind(|l| l.entry.event == "expire")
        .expect("an expire line");
    assert!(
        line.entry.reason.contains("session ended"),
        "{}",
        line.entry.reason
    );
}

// ---- protected secrets ----

fn protect(name: &str, protect: bool) -> Request {
    Request::Protect {
        name: name.into(),
        protect,
    }
}

#[test]
fn a_protected_secret_is_served_only_when_each_read_is_proven() {
    use crate::presence::{Answering, NotProven};
    for (answer, served) in [(Ok(()), true), (Err(NotProven::Failed), false)] {
        let prover = Answering::new(answer);
        let h = harness_proving(
            false,
            |me| vec![tool(me, &["demo/*"], Access::Read)],
            prover.clone(),
        );
        h.store_value("demo/token", "guarded");
        h.store_value("demo/other", "plain");
        assert_eq!(
            h.as_person(Actor::Window, protect("demo/token", true)),
            Response::Ok
        );
        assert!(prover.asked().is_empty(), "protecting needs no proof");
        let r = h.ask(get("demo/token"));
        assert_eq!(matches!(r, Response::Secret { .. }), served, "{r:?}");
        if !served {
            assert_eq!(code(&r), Some(ErrorCode::Denied));
        }
        assert_eq!(prover.asked().len(), 1);
        assert!(prover.asked()[0].contains("read demo/token, this once"));
        // Another name is not asked about.
        assert!(matches!(h.ask(get("demo/other")), Response::Secret { .. }));
        assert_eq!(prover.asked().len(), 1);
        let lines = h.audit();
        let decision = if served { "allow" } else { "deny" };
        assert!(lines.iter().any(|l| l.entry.event == "access"
            && l.entry.names == vec!["demo/token"]
            && l.entry.decision == decision));
        assert!(lines.iter().any(|l| l.entry.event == "access"
            && l.entry.presence.as_deref() == Some("polkit")
            && l.entry.decision == decision));
    }
}

#[test]
fn a_protected_secret_is_never_read_while_presence_is_off_and_unprotecting_is_proven() {
    let h = harness(false, |me| vec![tool(me, &["demo/*"], Access::Read)]);
    h.store_value("demo/token", "guarded");
    assert_eq!(
        h.as_person(Actor::Tray, protect("demo/token", true)),
        Response::Ok
    );
    let r = h.ask(get("demo/token"));
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    let Response::Error(e) = r else {
        unreachable!()
    };
    assert!(e.message.contains("protected"), "{}", e.message);
    assert_eq!(h.saved().protected, vec!["demo/token"]);
    assert_eq!(
        code(&h.as_person(Actor::Tray, protect("../x", true))),
        Some(ErrorCode::BadRequest)
    );
    // Unprotecting is asked about (and refused by a prover that says no).
    use crate::presence::{Answering, NotProven};
    let prover = Answering::new(Err(NotProven::Cancelled));
    let h = harness_proving(false, |_| Vec::new(), prover.clone());
    assert_eq!(
        h.as_person(Actor::Tray, protect("demo/token", true)),
        Response::Ok
    );
    let r = h.as_person(Actor::Tray, protect("demo/token", false));
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    assert_eq!(prover.asked().len(), 1);
    assert_eq!(h.saved().protected, vec!["demo/token"]);
}

// ---- scope edits and denies ----

/// `approve HASH` with `--add-scope`/`--remove-scope` (and `--scope`, `--access`).
fn edit_scopes(hash: &str, set: &[&str], add: &[&str], remove: &[&str]) -> Request {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Request::Approve {
        hash: hash.into(),
        scopes: v(set),
        access: None,
        label: None,
        unbound_get: None,
        only_through: None,
        lasts: None,
        follow: None,
        as_new: false,
        add_scopes: v(add),
        remove_scopes: v(remove),
    }
}

fn tool_and_changes(r: Response) -> (Tool, Vec<String>) {
    match r {
        Response::Tool { tool, changes, .. } => (*tool, changes),
        r => panic!("{r:?}"),
    }
}

fn message(r: &Response) -> String {
    match r {
        Response::Error(e) => e.message.clone(),
        r => panic!("{r:?}"),
    }
}

#[test]
fn scope_edits_keep_the_others_say_what_changed_and_only_adding_is_proven() {
    use crate::presence::Answering;
    let prover = Answering::new(Ok(()));
    let t = other_hash('a');
    let h = harness_proving(
        true,
        |_| vec![tool(&t, &["git/*"], Access::Read)],
        prover.clone(),
    );
    let (tool, changes) = tool_and_changes(h.ask(edit_scopes(&t, &[], &["api/*"], &[])));
    assert_eq!(tool.scopes, vec!["git/*", "api/*"]);
    assert_eq!(changes, vec!["scopes: git/* → git/*, api/*"]);
    assert_eq!(prover.asked().len(), 1, "adding widens: proven");
    let line = h
        .audit()
        .into_iter()
        .rfind(|l| l.entry.event == "approve")
        .expect("approve line");
    assert_eq!(line.entry.old_scopes, vec!["git/*"]);
    assert_eq!(line.entry.scopes, vec!["git/*", "api/*"]);
    assert_eq!(line.entry.old_access.as_deref(), Some("read"));
    assert_eq!(line.entry.access.as_deref(), Some("read"));
    assert!(line.entry.reason.contains("scopes: git/* → git/*, api/*"));

    let (tool, changes) = tool_and_changes(h.ask(edit_scopes(&t, &[], &[], &["git/*"])));
    assert_eq!(tool.scopes, vec!["api/*"]);
    assert_eq!(changes, vec!["scopes: git/*, api/* → api/*"]);
    assert_eq!(prover.asked().len(), 1, "removing narrows: not proven");

    let mut rw = edit_scopes(&t, &[], &[], &[]);
    if let Request::Approve { access, .. } = &mut rw {
        *access = Some(Access::ReadWrite);
    }
    let (_, changes) = tool_and_changes(h.ask(rw));
    assert_eq!(changes, vec!["access: read → read-write"]);
    let (_, changes) = tool_and_changes(h.ask(edit_scopes(&t, &[], &[], &[])));
    assert_eq!(
        changes,
        vec!["unchanged: it was already approved exactly so"]
    );
    // --scope replaces, and says so.
    let (tool, changes) = tool_and_changes(h.ask(edit_scopes(&t, &["x"], &[], &[])));
    assert_eq!(tool.scopes, vec!["x"]);
    assert_eq!(
        changes,
        vec!["scopes: api/* → x (replaced by --scope; --add-scope keeps the others)"]
    );
    assert_eq!(h.saved().tools[0].scopes, vec!["x"]);
}

#[test]
fn scope_edits_that_make_no_sense_are_refused_and_change_nothing() {
    let t = other_hash('a');
    let h = harness(true, |_| vec![tool(&t, &["git/*", "api/a"], Access::Read)]);
    let pending = other_hash('b');
    h.pending(&pending, "/opt/b", false);
    let config = Paths::in_dir(h.dir.path()).config;
    let before = std::fs::read(&config).expect("config");
    let cases: Vec<(Request, ErrorCode, &[&str])> = vec![
        (
            edit_scopes(&pending, &[], &["x"], &[]),
            ErrorCode::BadRequest,
            &["is not approved", "--scope"],
        ),
        (
            edit_scopes(&other_hash('c'), &[], &["x"], &[]),
            ErrorCode::NotFound,
            &["list-pending"],
        ),
        (
            edit_scopes(&t, &["x"], &["y"], &[]),
            ErrorCode::BadRequest,
            &["one or the other"],
        ),
        (
            edit_scopes(&t, &[], &[], &["nope"]),
            ErrorCode::BadRequest,
            &["has no scope \"nope\"", "'git/*', 'api/a'"],
        ),
        (
            edit_scopes(&t, &[], &[], &["git/*", "api/a"]),
            ErrorCode::BadRequest,
            &["keychain-auth revoke"],
        ),
        (
            edit_scopes(&t, &[], &[""], &[]),
            ErrorCode::BadRequest,
            &["--add-scope \"\""],
        ),
        (
            edit_scopes(&t, &[], &["ok/*", "bad\\"], &[]),
            ErrorCode::BadRequest,
            &["--add-scope \"bad\\\\\""],
        ),
    ];
    for (req, want, says) in cases {
        let r = h.ask(req);
        assert_eq!(code(&r), Some(want), "{r:?}");
        let m = message(&r);
        for s in says {
            assert!(m.contains(s), "{s:?} not in {m}");
        }
        assert_eq!(std::fs::read(&config).expect("config"), before, "{m}");
    }
    assert!(h.daemon.state().pending().contains(&pending));
}

#[test]
fn out_of_scope_advises_adding_the_literal_name_and_that_advice_works() {
    let h = harness(false, |me| vec![tool(me, &["demo/*"], Access::Read)]);
    h.store_value("demo/token", "d");
    h.store_value("other/a*b", "o");
    let r = h.ask(get("other/a*b"));
    assert_eq!(code(&r), Some(ErrorCode::OutOfScope), "{r:?}");
    let m = message(&r);
    let advice = format!("keychain-auth approve {} --add-scope 'other/a\\*b'", h.hash);
    assert!(m.contains(&advice), "{m}");
    // Following it (as a person in the window would): both names are served.
    let (tool, _) = tool_and_changes(h.as_person(
        Actor::Window,
        edit_scopes(&h.hash, &[], &["other/a\\*b"], &[]),
    ));
    assert_eq!(tool.scopes, vec!["demo/*", "other/a\\*b"]);
    assert!(matches!(h.ask(get("other/a*b")), Response::Secret { .. }));
    assert!(matches!(h.ask(get("demo/token")), Response::Secret { .. }));
    // The pattern matches that one name only.
    h.store_value("other/aXb", "x");
    assert_eq!(code(&h.ask(get("other/aXb"))), Some(ErrorCode::OutOfScope));
}

#[test]
fn a_denied_script_is_listed_as_the_script_and_approve_or_undeny_lifts_the_deny() {
    use crate::presence::Answering;
    let prover = Answering::new(Ok(()));
    let h = harness_proving(true, |_| Vec::new(), prover.clone());
    let s = other_hash('5');
    let script = keychain_auth_sdk::protocol::ScriptIdentity {
        interpreter: "/usr/bin/bash".into(),
        interpreter_hash: other_hash('6'),
        path: "/home/u/fetch.sh".into(),
        hash: other_hash('7'),
        startup: Vec::new(),
    };
    h.daemon.state().pending().record(&Sighting {
        hash: &s,
        path: "/usr/bin/bash",
        name: Some("demo/token"),
        interpreter: true,
        wants: None,
        script: Some(&script),
        signing: None,
        libraries: &[],
        chain: None,
        terminal: None,
        update_of: None,
        now: "2026-01-01T00:00:00Z",
    });
    let r =
        h.rt.block_on(h.daemon.answer(Actor::Window, &s, Answer::Deny));
    assert_eq!(r, Response::Ok);
    let rule = h.saved().denied[0].clone();
    assert_eq!(rule.path, "/home/u/fetch.sh", "the script, not bash");
    assert_eq!(rule.script.as_ref(), Some(&script));
    match h.ask(Request::ListDenied { offset: None }) {
        Response::DenyRules { denied, next } => {
            assert_eq!(denied, vec![rule.clone()]);
            assert_eq!(next, None);
        }
        r => panic!("{r:?}"),
    }
    let snap = h.rt.block_on(h.daemon.snapshot(0));
    assert_eq!(snap.denied, vec![rule]);

    // Revoke explains; an approve needs a scope (nothing is asked for now).
    let r = h.ask(Request::Revoke { tool: s.clone() });
    assert_eq!(code(&r), Some(ErrorCode::NotFound));
    let m = message(&r);
    assert!(
        m.contains("is denied, not approved") && m.contains(&format!("keychain-auth undeny {s}")),
        "{m}"
    );
    let r = h.ask(edit_scopes(&s, &[], &[], &[]));
    assert!(message(&r).contains("--scope"), "{r:?}");

    // Approving the denied hash approves the script, lifting the deny (proven).
    let asked = prover.asked().len();
    let (tool, changes) = tool_and_changes(h.ask(edit_scopes(&s, &["demo/*"], &[], &[])));
    assert_eq!(tool.path, "/home/u/fetch.sh");
    assert_eq!(tool.script.as_ref(), Some(&script));
    assert_eq!(changes, vec!["deny lifted"]);
    assert!(h.saved().denied.is_empty());
    assert_eq!(prover.asked().len(), asked + 1);
    assert!(prover.asked()[asked].contains("lift the deny"));

    // Denied again (as an approved tool, still as the script), then undenied.
    assert_eq!(h.ask(Request::Deny { hash: s.clone() }), Response::Ok);
    assert_eq!(h.saved().denied[0].script.as_ref(), Some(&script));
    assert!(h.saved().tools.is_empty());
    assert_eq!(h.ask(Request::Undeny { hash: s.clone() }), Response::Ok);
    assert!(h.saved().denied.is_empty());
    assert!(prover
        .asked()
        .last()
        .expect("asked")
        .contains("lift the deny of the script /home/u/fetch.sh"));
    let line = h
        .audit()
        .into_iter()
        .rfind(|l| l.entry.event == "undeny")
        .expect("undeny line");
    assert_eq!(line.entry.hash.as_deref(), Some(s.as_str()));
    assert_eq!(line.entry.path.as_deref(), Some("/home/u/fetch.sh"));
    assert_eq!(line.entry.presence.as_deref(), Some("polkit"));
    let again = h.ask(Request::Undeny { hash: s.clone() });
    assert_eq!(code(&again), Some(ErrorCode::NotFound), "{again:?}");
    assert!(message(&again).contains("list --denied"));
}

#[test]
fn lifting_a_deny_unproven_changes_nothing_and_a_denied_interpreter_stays_unapprovable() {
    use crate::presence::{Answering, NotProven};
    let h = harness_proving(
        true,
        |_| Vec::new(),
        Answering::new(Err(NotProven::NoAgent)),
    );
    let x = other_hash('8');
    assert_eq!(h.ask(Request::Deny { hash: x.clone() }), Response::Ok);
    let r = h.ask(Request::Undeny { hash: x.clone() });
    assert_eq!(code(&r), Some(ErrorCode::Denied), "{r:?}");
    assert!(h.saved().is_denied(&x));
    // Denied before it ever asked: what it is is unknown, so it is not approved by hash.
    let r = h.ask(edit_scopes(&x, &["demo/*"], &[], &[]));
    assert_eq!(code(&r), Some(ErrorCode::NotFound), "{r:?}");
    assert!(message(&r).contains(&format!("keychain-auth undeny {x}")));
    let cli = harness(true, |_| Vec::new());
    let python = other_hash('9');
    cli.pending(&python, "/usr/bin/python3", true);
    assert_eq!(
        cli.ask(Request::Deny {
            hash: python.clone()
        }),
        Response::Ok
    );
    let r = cli.ask(edit_scopes(&python, &["demo/*"], &[], &[]));
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    assert!(cli.saved().is_denied(&python));
}
