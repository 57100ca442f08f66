//! Approvals a program cannot give itself: with polkit running and the project's action
//! installed, every widening decision needs the user's own password, asked by polkit's
//! agent and checked by polkit. Played by an ordinary user (the tests' second user, with
//! a known password) against the real daemon, the real polkitd on a real system bus,
//! pkttyagent in a real terminal (tmux) and keyutils.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::desktop::{asks_with_wait, notification_id, wait_until, Desktop};
use keychain_auth_e2e::presence::{self, ka_without_terminal, Terminal, PASSWORD};
use keychain_auth_e2e::{bin, sha256_file, stderr, stdout, Home};
use serde_json::Value;

/// A daemon that requires presence, a secret, and a program it turned away; returns the
/// program and its hash.
fn turned_away(h: &mut Home, fields: &str) -> (std::path::PathBuf, String) {
    *h = presence::home(fields);
    h.start(&["--store", "keyutils"]);
    let o = h.ka_stdin(&["set", "api/prod"], b"prod-key-value");
    assert!(o.status.success(), "set: {}", stderr(&o));
    let tool = h.client_copy("tool", b"presence");
    let r = h.client_at(&tool, &["get", "api/prod"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let hash = r["hash"].as_str().unwrap().to_string();
    assert_eq!(hash, sha256_file(&tool));
    (tool, hash)
}

/// The audit lines about `hash` that are decisions (not access lines).
fn decisions(h: &Home, hash: &str) -> Vec<Value> {
    h.audit_lines()
        .into_iter()
        .filter(|l| l["hash"] == hash && l["event"] != "access")
        .collect()
}

fn still_refused(h: &Home, tool: &std::path::Path) {
    let r = h.client_at(tool, &["get", "api/prod"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    assert!(!r.to_string().contains("prod-key-value"));
    nothing_approved(h);
}

fn nothing_approved(h: &Home) {
    let list: Value = serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list, serde_json::json!([]), "nothing approved");
}

#[test]
fn a_program_that_approves_itself_without_a_terminal_is_refused() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    // The program learned its hash from the refusal and runs the CLI itself, in the
    // background: no terminal, so no agent can ask anyone.
    let o = ka_without_terminal(&h, &["approve", &hash, "--scope", "*"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("presence was not proven"), "{err}");
    assert!(err.contains("no authentication agent"), "{err}");
    still_refused(&h, &tool);
    // The same through register, and widening presence itself off.
    let o = ka_without_terminal(&h, &["register", tool.to_str().unwrap(), "--scope", "*"]);
    assert!(!o.status.success());
    let o = ka_without_terminal(&h, &["presence", "off"]);
    assert!(!o.status.success());
    assert!(stdout(&h.ka(&["presence"])).contains("presence: polkit"));
    still_refused(&h, &tool);
    // Each attempt is audited with why, and how it was to be proven.
    let lines = decisions(&h, &hash);
    assert!(!lines.is_empty());
    for l in &lines {
        assert_eq!(l["decision"], "deny", "{l}");
        assert_eq!(l["presence"], "polkit", "{l}");
        assert!(
            l["reason"]
                .as_str()
                .unwrap()
                .contains("no authentication agent"),
            "{l}"
        );
    }
    let settings: Vec<Value> = h
        .audit_lines()
        .into_iter()
        .filter(|l| l["event"] == "settings")
        .collect();
    assert_eq!(settings.len(), 1, "{settings:?}");
    assert_eq!(settings[0]["decision"], "deny");
}

#[test]
fn the_right_password_in_a_terminal_approves_once_and_shows_the_change() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    let term = Terminal::open(&h, "right");
    let ka = bin("keychain-auth");
    let code = term.run(
        &format!("{} approve {hash} --scope 'api/*'", ka.display()),
        Some(PASSWORD),
    );
    let screen = term.screen();
    assert_eq!(code, 0, "{screen}");
    // The prompt named exactly the change: the program, its secrets, its access.
    assert!(
        screen.contains("AUTHENTICATING FOR dev.keychain-auth.approve"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("approve tool ({}", tool.display())),
        "{screen}"
    );
    assert!(screen.contains("to read api/*, always"), "{screen}");
    assert_eq!(
        screen.matches("Password:").count(),
        1,
        "one prompt: {screen}"
    );
    assert_eq!(
        h.client_at(&tool, &["get", "api/prod"])["value"],
        "prod-key-value"
    );
    let approve: Vec<Value> = decisions(&h, &hash)
        .into_iter()
        .filter(|l| l["event"] == "approve")
        .collect();
    assert_eq!(approve.len(), 1, "{approve:?}");
    assert_eq!(approve[0]["decision"], "ok");
    assert_eq!(approve[0]["presence"], "polkit");

    // Narrowing needs no password: down to nothing, from a program with no terminal.
    let o = ka_without_terminal(&h, &["approve", &hash, "--scope", "api/prod"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ka_without_terminal(&h, &["revoke", &hash]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Widening back does.
    let o = ka_without_terminal(&h, &["approve", &hash, "--scope", "api/*"]);
    assert!(!o.status.success());
}

#[test]
fn a_wrong_password_approves_nothing_and_is_audited() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    let term = Terminal::open(&h, "wrong");
    let ka = bin("keychain-auth");
    let code = term.run(
        &format!("{} approve {hash} --scope '*'", ka.display()),
        Some("not-the-password"),
    );
    let screen = term.screen();
    assert_ne!(code, 0, "{screen}");
    assert!(screen.contains("authentication failed"), "{screen}");
    still_refused(&h, &tool);
    let lines = decisions(&h, &hash);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["decision"], "deny");
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("authentication failed"));
}

#[test]
fn nobody_answering_approves_nothing() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "\"presence_timeout_s\":5");
    let term = Terminal::open(&h, "silent");
    let ka = bin("keychain-auth");
    let code = term.run(
        &format!("{} approve {hash} --scope '*'", ka.display()),
        None,
    );
    let screen = term.screen();
    assert!(screen.contains("Password:"), "the agent asked: {screen}");
    assert_ne!(code, 0, "{screen}");
    assert!(screen.contains("nobody answered within 5 s"), "{screen}");
    still_refused(&h, &tool);
    let lines = decisions(&h, &hash);
    assert!(lines[0]["reason"]
        .as_str()
        .unwrap()
        .contains("nobody answered"));
}

#[test]
fn a_cancelled_prompt_approves_nothing() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    let term = Terminal::open(&h, "cancel");
    let ka = bin("keychain-auth");
    term.type_line(&format!(
        "{} approve {hash} --scope '*'; echo $? > {}",
        ka.display(),
        term.marker().display()
    ));
    term.wait_for("Password:");
    term.press("C-c");
    // Ctrl-C ends the command line (the CLI and its agent): the daemon sees the agent
    // go away and refuses, audited, instead of waiting.
    wait_until("the refusal audited", || !decisions(&h, &hash).is_empty());
    let lines = decisions(&h, &hash);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["decision"], "deny", "{lines:?}");
    let reason = lines[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("presence not proven"), "{reason}");
    still_refused(&h, &tool);
    assert!(
        !term.screen().contains("approved tool"),
        "{}",
        term.screen()
    );
}

#[test]
fn an_agent_of_another_process_cannot_answer_for_the_daemon() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    // An agent of the user's registered for another process (its own shell) in a
    // terminal: it is not asked about the daemon's check.
    let term = Terminal::open(&h, "other");
    term.type_line("pkttyagent --process $$ &");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = ka_without_terminal(&h, &["approve", &hash, "--scope", "*"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no authentication agent"),
        "{}",
        stderr(&o)
    );
    assert!(
        !term.screen().contains("AUTHENTICATING"),
        "{}",
        term.screen()
    );
    still_refused(&h, &tool);
}

#[test]
fn a_second_approval_while_one_is_asked_waits_and_is_asked_for_itself() {
    let mut h = Home::new();
    let (tool, hash) = turned_away(&mut h, "");
    let other = h.client_copy("other", b"other");
    let r = h.client_at(&other, &["get", "api/prod"]);
    let other_hash = r["hash"].as_str().unwrap().to_string();
    let term = Terminal::open(&h, "two");
    let ka = bin("keychain-auth");
    term.type_line(&format!(
        "{} approve {hash} --scope 'api/*'; echo $? > {}",
        ka.display(),
        term.marker().display()
    ));
    term.wait_for("Password:");
    // While the person is being asked, a program of theirs asks for its own approval
    // in the background: it waits, and is never shown in the person's prompt.
    let h2 = &h;
    let racer = std::thread::scope(|s| {
        let racer = s.spawn(|| ka_without_terminal(h2, &["approve", &other_hash, "--scope", "*"]));
        std::thread::sleep(std::time::Duration::from_millis(300));
        term.type_line(PASSWORD);
        assert_eq!(term.exit_code(&term.marker()), 0, "{}", term.screen());
        racer.join().unwrap()
    });
    assert!(!racer.status.success(), "{}", stdout(&racer));
    let screen = term.screen();
    assert_eq!(screen.matches("Password:").count(), 1, "{screen}");
    assert!(!screen.contains("approve other"), "{screen}");
    assert_eq!(
        h.client_at(&tool, &["get", "api/prod"])["value"],
        "prod-key-value"
    );
    assert_eq!(
        h.client_at(&other, &["get", "api/prod"])["code"],
        "not_approved"
    );
}

/// The person's flow from a notification: Approve, then one password in the agent that
/// polkit asks for the daemon (a text agent registered for the daemon's process stands in
/// for the desktop's), and the waiting tool is served.
#[test]
fn approve_on_a_notification_with_the_password_serves_the_waiting_tool() {
    let mut h = presence::home("");
    let desktop = Desktop::of(&h);
    start_notifying(&mut h, &desktop);
    assert!(h
        .ka_stdin(&["set", "n/secret"], b"clicked")
        .status
        .success());
    let term = Terminal::open(&h, "desk");
    term.type_line(&format!("pkttyagent --process {}", h.daemon_pid()));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let tool = h.client_copy("tool", b"t");
    let hash = sha256_file(&tool);
    let waiting = asks_with_wait(&h, &tool);
    wait_until("the notification", || notification_id(&h, &hash).is_some());
    desktop.choose("Approve");
    term.wait_for("Password:");
    assert!(
        term.screen().contains("approve tool ("),
        "{}",
        term.screen()
    );
    term.type_line(PASSWORD);
    let answer = waiting.join().unwrap();
    assert_eq!(answer["value"], "clicked", "{answer}");
    let line = decisions(&h, &hash)
        .into_iter()
        .find(|l| l["event"] == "approve")
        .unwrap();
    assert_eq!(line["decision"], "ok", "{line}");
    assert_eq!(line["via"], "notification");
    assert_eq!(line["presence"], "polkit");
    assert_eq!(term.screen().matches("Password:").count(), 1);
}

/// Starts the home's daemon with notifications on `desktop`'s session bus.
fn start_notifying(h: &mut Home, desktop: &Desktop) {
    let daemon = h
        .command(&bin("keychain-auth"))
        .args(["start", "--foreground", "--store", "keyutils", "--notify"])
        .env("DBUS_SESSION_BUS_ADDRESS", desktop.bus().unwrap())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    h.adopt_daemon(daemon);
}

#[test]
fn pressing_approve_on_a_notification_is_no_proof() {
    let mut h = presence::home("");
    let desktop = Desktop::of(&h);
    start_notifying(&mut h, &desktop);
    assert!(h
        .ka_stdin(&["set", "n/secret"], b"clicked")
        .status
        .success());
    let tool = h.client_copy("tool", b"t");
    let hash = sha256_file(&tool);
    let waiting = asks_with_wait(&h, &tool);
    wait_until("the notification", || notification_id(&h, &hash).is_some());
    // A program of the user presses Approve through the notification server.
    desktop.choose("Approve");
    wait_until("the press audited", || {
        decisions(&h, &hash).iter().any(|l| l["event"] == "approve")
    });
    let line = decisions(&h, &hash)
        .into_iter()
        .find(|l| l["event"] == "approve")
        .unwrap();
    assert_eq!(line["decision"], "deny", "{line}");
    assert_eq!(line["via"], "notification", "{line}");
    assert!(
        line["reason"]
            .as_str()
            .unwrap()
            .contains("no authentication agent"),
        "{line}"
    );
    let answer = waiting.join().unwrap();
    assert_ne!(answer["type"], "secret", "{answer}");
    assert!(!answer.to_string().contains("clicked"));
    nothing_approved(&h);
}

/// `protect NAME`: each read of it, by an approved program, needs the password, asked in
/// the terminal the program runs in (through `keychain-auth get`) and naming the program
/// and the secret; from the background, or with a wrong password, it is refused.
#[test]
fn a_protected_secret_is_read_only_with_the_password_each_time() {
    let mut h = Home::new();
    let (tool, tool_hash) = turned_away(&mut h, "");
    let term = Terminal::open(&h, "protect");
    let ka = bin("keychain-auth");
    // A script that reads the secret through keychain-auth get.
    let script = h.path("reader.sh");
    std::fs::write(
        &script,
        format!("v=$({} get api/prod) && echo \"got:$v\"\n", ka.display()),
    )
    .unwrap();
    std::os::unix::fs::chown(&script, Some(h.uid()), Some(h.gid())).unwrap();
    // Approved the ordinary way first (it asks once, then one password).
    assert_ne!(term.run(&format!("bash {}", script.display()), None), 0);
    let pending: Value = serde_json::from_slice(&h.ka(&["list-pending", "--json"]).stdout).unwrap();
    let script_hash = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e.to_string().contains("reader.sh"))
        .unwrap()["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let approve = format!(
        "{} approve {script_hash} --scope 'api/*' --allow-unbound-get",
        ka.display()
    );
    assert_eq!(term.run(&approve, Some(PASSWORD)), 0, "{}", term.screen());
    assert_eq!(
        term.run(
            &format!("{} approve {tool_hash} --scope 'api/*'", ka.display()),
            Some(PASSWORD)
        ),
        0,
        "{}",
        term.screen()
    );
    assert_eq!(
        h.client_at(&tool, &["get", "api/prod"])["value"],
        "prod-key-value"
    );

    // Protecting needs no password.
    let o = ka_without_terminal(&h, &["protect", "api/prod"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&h.ka(&["protect"])).contains("api/prod  (confirm: always)"));

    // A read from the background: no one can be asked, refused, nothing leaks.
    let r = h.client_at(&tool, &["get", "api/prod"]);
    assert_eq!(r["code"], "denied", "{r}");
    assert!(!r.to_string().contains("prod-key-value"));
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("no authentication agent"),
        "{r}"
    );

    // In the terminal: one prompt naming the script and the secret, then the value.
    let before = term.screen().matches("Password:").count();
    assert_eq!(
        term.run(&format!("bash {}", script.display()), Some(PASSWORD)),
        0,
        "{}",
        term.screen()
    );
    let screen = term.screen();
    assert!(screen.contains("got:prod-key-value"), "{screen}");
    assert!(
        screen.contains(&format!("let {} (", script.display()))
            && screen.contains("read api/prod, this once"),
        "{screen}"
    );
    assert_eq!(screen.matches("Password:").count(), before + 1, "{screen}");
    // Each read asks again; a wrong password reads nothing.
    assert_ne!(
        term.run(
            &format!("bash {}", script.display()),
            Some("not-the-password")
        ),
        0,
        "{}",
        term.screen()
    );
    assert_eq!(term.screen().matches("got:prod-key-value").count(), 1);
    let served: Vec<Value> = h
        .audit_lines()
        .into_iter()
        .filter(|l| l["event"] == "access" && l["decision"] == "allow" && l["hash"] == script_hash)
        .collect();
    assert_eq!(served.len(), 1, "{served:?}");
    assert_eq!(served[0]["presence"], "polkit");
    // Taking the mark off is a widening decision: refused without the password.
    let o = ka_without_terminal(&h, &["unprotect", "api/prod"]);
    assert!(!o.status.success());
    assert!(stdout(&h.ka(&["protect"])).contains("api/prod"));
}
