//! The tray app (`keychain-auth-app`) for real: it hosts the daemon on the home's socket,
//! asks with real notifications (dunst on Xvfb), refuses to fight a running headless
//! daemon, and its window — driven through tauri-driver and WebKitWebDriver — shows and
//! filters the audit history, changes a tool's scopes, re-pins an updated tool, approves
//! a pending binary, pauses every request and revokes a tool. Screenshots land in
//! `target/debug/screenshots/`.

#![allow(clippy::unwrap_used)]

use keychain_auth_e2e::desktop::{decisions_scenario, wait_until, Desktop};
use keychain_auth_e2e::webdriver::{tauri_driver, Driver, Session};
use keychain_auth_e2e::{bin, sha256_file, stderr, Home};
use serde_json::Value;
use std::process::Stdio;
use std::sync::Mutex;

/// One dunst can own the notification service on the session bus at a time.
static DESKTOP: Mutex<()> = Mutex::new(());

fn app_running_in(h: &mut Home, desktop: &Desktop) {
    let child = h
        .command(&bin("keychain-auth-app"))
        .env("DISPLAY", desktop.display())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    h.adopt_daemon(child);
}

#[test]
fn the_app_hosts_the_daemon_and_asks_on_the_desktop() {
    let _one = DESKTOP.lock().unwrap_or_else(|p| p.into_inner());
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    app_running_in(&mut h, &desktop);
    // The CLI beside the app may send admin requests to the daemon the app hosts.
    let st = h.ka(&["status"]);
    assert!(st.status.success(), "{}", stderr(&st));
    assert!(h
        .ka_stdin(&["set", "n/secret"], b"clicked-through")
        .status
        .success());
    // Any other binary's admin request is refused, and the app keeps running.
    for req in [
        r#"{"type":"list_tools"}"#,
        r#"{"type":"shutdown"}"#,
        r#"{"type":"register","path":"/bin/true","scopes":["*"]}"#,
    ] {
        let r = h.client(&["raw", req]);
        assert_eq!(r["code"], "forbidden", "{req}: {r}");
    }
    assert!(h.ka(&["status"]).status.success(), "still running");
    decisions_scenario(&h, &desktop, "app-notification.png");
    // Its refusal message points at the tray too.
    let t = h.client_copy("fourth", b"4");
    let r = h.client_at(&t, &["get", "n/secret"]);
    assert!(r["message"].as_str().unwrap().contains("tray menu"), "{r}");
    // `keychain-auth stop` stops the app with its daemon.
    assert!(h.ka(&["stop"]).status.success());
    wait_until("the app to exit", || {
        std::process::Command::new("kill")
            .args(["-0", &h.daemon_pid().to_string()])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
            || std::fs::read_to_string(format!("/proc/{}/stat", h.daemon_pid()))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    });
}

#[test]
fn the_app_says_so_when_a_headless_daemon_already_runs() {
    let mut h = Home::new();
    h.start(&["--store", "keyutils"]);
    let o = h
        .command(&bin("keychain-auth-app"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("already running"), "{err}");
    // The headless daemon is untouched.
    assert!(h.ka(&["status"]).status.success());
}

/// The history table's rows, read in one step (the table re-renders at any time).
fn rows(s: &Session) -> Vec<String> {
    serde_json::from_value(
        s.eval("[...document.querySelectorAll('#history-rows tr')].map(r => r.innerText)"),
    )
    .unwrap()
}

fn checked(s: &Session, css: &str) -> Option<bool> {
    s.eval(&format!(
        "(e => e ? e.checked : null)(document.querySelector(\"{css}\"))"
    ))
    .as_bool()
}

/// tauri-driver on the desktop's display, run as the home's user.
fn driver_for(h: &Home, desktop: &Desktop) -> Driver {
    let mut cmd = h.command(&tauri_driver());
    cmd.env("DISPLAY", desktop.display());
    Driver::start(cmd)
}

fn config(h: &Home) -> Value {
    serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap()
}

#[test]
fn the_window_filters_the_history_toggles_scopes_approves_and_pauses() {
    let _one = DESKTOP.lock().unwrap_or_else(|p| p.into_inner());
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    let driver = driver_for(&h, &desktop);
    let s = driver.session(&bin("keychain-auth-app"), &["--open"]);
    h.wait_for_socket();
    // The status line says what the machine's ptrace policy lets a program do: a warning
    // when a program can write an approved tool's memory, the whole of it on hover.
    let unsafe_here = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map_or(true, |v| v.trim().parse::<u8>().map_or(true, |n| n < 2));
    s.wait_for("the ptrace policy in the status line", || {
        let t = s.eval("(e => [e.textContent, e.title])(document.getElementById('status'))");
        let (text, title) = (t[0].as_str()?, t[1].as_str()?);
        ((title.contains("ptrace") || title.contains("Yama"))
            && text.contains("Warning") == unsafe_here)
            .then_some(())
    });

    // This home turns proof of presence off: the window says what that allows.
    s.wait_for("the presence warning", || {
        let t =
            s.eval("(e => [e.textContent, e.hidden])(document.getElementById('presence-warning'))");
        (t[0]
            .as_str()?
            .contains("any program of yours can approve itself")
            && t[1] == false)
            .then_some(())
    });

    // A tool approved for one name; it reads it, and is refused the other.
    assert!(h
        .ka_stdin(&["set", "w/one"], b"w1-secret-value")
        .status
        .success());
    assert!(h
        .ka_stdin(&["set", "w/two"], b"w2-secret-value")
        .status
        .success());
    let tool = h.client_copy("windowed", b"w");
    let hash = sha256_file(&tool);
    let reg = h.ka(&["register", tool.to_str().unwrap(), "--scope", "w/one"]);
    assert!(reg.status.success(), "{}", stderr(&reg));
    assert_eq!(
        h.client_at(&tool, &["get", "w/one"])["value"],
        "w1-secret-value"
    );
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["code"],
        "out_of_scope"
    );

    // The history shows both decisions; filters narrow it.
    s.wait_for("the out_of_scope line in the window", || {
        rows(&s)
            .iter()
            .any(|r| r.contains("out_of_scope") && r.contains("w/two"))
            .then_some(())
    });
    let all = rows(&s).len();
    let secret = s.find("#filter-secret");
    s.type_text(&secret, "w/two");
    s.wait_for("the secret filter", || {
        let r = rows(&s);
        (!r.is_empty() && r.len() < all && r.iter().all(|x| x.contains("w/two"))).then_some(())
    });
    s.clear(&secret);
    s.click_css("#filter-decision option[value='out_of_scope']");
    s.wait_for("the decision filter", || {
        let r = rows(&s);
        (r.len() == 1 && r[0].contains("out_of_scope")).then_some(())
    });
    let tool_filter = s.find("#filter-tool");
    s.type_text(&tool_filter, "no-such-tool");
    s.wait_for("an empty result", || rows(&s).is_empty().then_some(()));
    s.clear(&tool_filter);
    s.click_css("#filter-decision option[value='']");
    s.wait_for("the unfiltered history", || {
        (rows(&s).len() >= all).then_some(())
    });

    // Ticking w/two in the tool's scopes lets it read w/two; unticking w/one takes it away.
    let box_of = |n: &str| format!(".tool[data-hash='{hash}'] input[data-name='{n}']");
    assert_eq!(checked(&s, &box_of("w/one")), Some(true));
    assert_eq!(checked(&s, &box_of("w/two")), Some(false));
    s.click_css(&box_of("w/two"));
    wait_until("w/two in the tool's scopes", || {
        config(&h)["tools"][0]["scopes"] == serde_json::json!(["w/one", "w/two"])
    });
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["value"],
        "w2-secret-value"
    );
    s.wait_for("both boxes ticked", || {
        (checked(&s, &box_of("w/two")) == Some(true)).then_some(())
    });
    s.click_css(&box_of("w/one"));
    wait_until("w/one out of the tool's scopes", || {
        config(&h)["tools"][0]["scopes"] == serde_json::json!(["w/two"])
    });
    assert_eq!(
        h.client_at(&tool, &["get", "w/one"])["code"],
        "out_of_scope"
    );
    assert!(h
        .audit_lines()
        .iter()
        .any(|l| l["event"] == "scopes" && l["via"] == "window" && l["hash"] == hash.as_str()));

    // The tool is updated (its file changes): the new binary is not served until Upgrade
    // in the window re-pins it, keeping its scopes.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tool)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"update"))
        .unwrap();
    let updated = sha256_file(&tool);
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["code"],
        "not_approved"
    );
    s.click_css(&format!(".tool[data-hash='{hash}'] button.upgrade"));
    wait_until("the tool re-pinned", || {
        config(&h)["tools"][0]["hash"] == updated.as_str()
    });
    assert_eq!(
        config(&h)["tools"][0]["scopes"],
        serde_json::json!(["w/two"])
    );
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["value"],
        "w2-secret-value"
    );

    // Updated again: the waiting row says it is an update of the tool, old -> new, and
    // Keep access re-pins the tool to exactly that binary.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tool)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"again"))
        .unwrap();
    let again = sha256_file(&tool);
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["code"],
        "not_approved"
    );
    let row = format!("tr.pending[data-hash='{again}']");
    s.wait_for("the update's row", || {
        let t = s.eval(&format!("document.querySelector(\"{row}\")?.innerText"));
        let t = t.as_str()?;
        (t.contains("Update of windowed") && t.contains(&updated[..19]) && t.contains(&again[..19]))
            .then_some(())
    });
    assert_eq!(
        s.eval(&format!(
            "document.querySelectorAll(\"{row} button.approve\").length"
        )),
        0,
        "an update is not offered as a second approval"
    );
    // Its notification is on screen over the window's right side: dismiss it (which
    // decides nothing) to reach the row's buttons.
    assert!(desktop
        .close_all_and_read()
        .contains("windowed was updated: keep its access?"));
    s.click_css(&format!("{row} button.keep"));
    wait_until("the tool kept its access", || {
        config(&h)["tools"][0]["hash"] == again.as_str()
    });
    assert_eq!(config(&h)["tools"].as_array().unwrap().len(), 1);
    assert_eq!(
        h.client_at(&tool, &["get", "w/two"])["value"],
        "w2-secret-value"
    );

    // A new binary appears as pending while the window is open; Approve pins it. Its
    // file name is markup: the window shows it as text and runs nothing.
    let newcomer = h.client_copy("<img src=x onerror=\"document.title='pwned'\">", b"n");
    let new_hash = sha256_file(&newcomer);
    assert_eq!(
        h.client_at(&newcomer, &["get", "w/one"])["code"],
        "not_approved"
    );
    let approve = format!("tr.pending[data-hash='{new_hash}'] button.approve");
    s.find(&approve);
    // WebKit paints a moment after the DOM changes.
    std::thread::sleep(std::time::Duration::from_millis(800));
    desktop.screenshot(&keychain_auth_e2e::target_dir().join("screenshots/app-window.png"));
    assert_eq!(
        s.eval("document.querySelectorAll('img, script:not([src])').length"),
        0
    );
    assert_ne!(s.eval("document.title"), "pwned");
    assert!(s
        .eval("document.getElementById('pending-rows').innerText")
        .as_str()
        .unwrap()
        .contains("<img src=x onerror="));
    s.click_css(&approve);
    wait_until("the newcomer approved", || {
        config(&h)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == new_hash.as_str() && t["approved_via"] == "window")
    });
    assert_eq!(
        h.client_at(&newcomer, &["get", "w/one"])["value"],
        "w1-secret-value"
    );

    // Pause refuses everyone, even approved tools; resume restores them.
    s.click_css("#pause");
    wait_until("the pause", || {
        h.audit_lines()
            .iter()
            .any(|l| l["event"] == "daemon" && l["reason"].as_str().unwrap().starts_with("paused"))
    });
    let r = h.client_at(&newcomer, &["get", "w/one"]);
    assert_eq!(r["code"], "denied", "{r}");
    assert!(r["message"].as_str().unwrap().contains("paused"), "{r}");
    s.wait_for("the resume button", || {
        s.eval("document.getElementById('pause').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("Resume"))
            .then_some(())
    });
    s.click_css("#pause");
    wait_until("the resume", || {
        h.audit_lines()
            .iter()
            .any(|l| l["event"] == "daemon" && l["reason"] == "resumed")
    });
    // The header changes height with the pause button's text, and a click lands where the
    // button was: wait until the window has drawn the resume before clicking below it.
    s.wait_for("the pause button back", || {
        s.eval("document.getElementById('pause').textContent")
            .as_str()
            .is_some_and(|t| t.starts_with("Pause"))
            .then_some(())
    });
    assert_eq!(
        h.client_at(&newcomer, &["get", "w/one"])["value"],
        "w1-secret-value"
    );

    // Revoke asks for a second click, then removes the tool: it is unknown again.
    let revoke = format!(".tool[data-hash='{new_hash}'] button.revoke");
    s.click_css(&revoke);
    s.wait_for("the revoke button armed", || {
        s.eval(&format!("document.querySelector(\"{revoke}\").textContent"))
            .as_str()
            .is_some_and(|t| t.starts_with("Click again"))
            .then_some(())
    });
    assert!(config(&h)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["hash"] == new_hash.as_str()));
    s.click_css(&revoke);
    wait_until("the newcomer revoked", || {
        !config(&h)["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["hash"] == new_hash.as_str())
    });
    assert_eq!(
        h.client_at(&newcomer, &["get", "w/one"])["code"],
        "not_approved"
    );

    // No secret value ever reached the page.
    let page = s.execute("return document.documentElement.outerHTML;");
    let page = page.as_str().unwrap();
    assert!(page.contains("w/one"), "the page was read");
    assert!(
        !page.contains("w1-secret-value") && !page.contains("w2-secret-value"),
        "no secret value in the page"
    );
    drop(s);
    drop(driver);
}

/// The WebKit processes (`WebKitWebProcess`, `WebKitNetworkProcess`, …) among the
/// descendants of `root`.
fn webkit_processes(root: u32) -> Vec<String> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`: fields follow the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head.split_once('(').map_or("", |(_, c)| c).to_string();
        let state = rest.split_whitespace().next().unwrap_or("");
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
        {
            if state != "Z" {
                parent_of.push((pid, ppid, comm));
            }
        }
    }
    let (mut tree, mut i) = (vec![root], 0);
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent_of.iter().filter(|x| x.1 == p).map(|x| x.0));
        i += 1;
    }
    parent_of
        .iter()
        .filter(|(pid, _, comm)| tree.contains(pid) && comm.starts_with("WebKit"))
        .map(|(pid, _, comm)| format!("{comm} ({pid})"))
        .collect()
}

/// Closes the app's window as a window manager's close button does.
fn close_window(desktop: &Desktop) {
    let o = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/clients/x11-close.py"))
        .arg("keychain-auth")
        .env("DISPLAY", desktop.display())
        .output()
        .unwrap();
    assert!(o.status.success(), "no window to close: {}", stderr(&o));
}

#[test]
fn without_a_tray_host_the_window_opens_closing_it_ends_webkit_and_a_second_launch_reopens_it() {
    let _one = DESKTOP.lock().unwrap_or_else(|p| p.into_inner());
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    // Xvfb has no tray host: the app says so, in its log and a notification, and opens
    // its window instead of being invisible.
    app_running_in(&mut h, &desktop);
    h.wait_for_socket();
    let app = h.daemon_pid();
    wait_until("the window's WebKit processes", || {
        webkit_processes(app).len() >= 2
    });
    wait_until("the notice in the log", || {
        h.daemon_stderr().contains("no tray host")
    });
    wait_until("the notification", || {
        desktop.close_all_and_read().contains("no tray icon")
    });

    // Closing the window ends every WebKit process of it; the app keeps serving.
    close_window(&desktop);
    wait_until("WebKit's processes gone", || {
        webkit_processes(app).is_empty()
    });
    assert!(h.ka(&["status"]).status.success(), "the app still serves");

    // A second launch opens the running app's window, and exits.
    let second = h
        .command(&bin("keychain-auth-app"))
        .env("DISPLAY", desktop.display())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("opened its window"),
        "{}",
        stderr(&second)
    );
    wait_until("the window open again", || webkit_processes(app).len() >= 2);
    close_window(&desktop);
    wait_until("WebKit's processes gone again", || {
        webkit_processes(app).is_empty()
    });
    assert!(h.ka(&["stop"]).status.success());
}

#[test]
fn the_window_greys_names_a_pattern_covers_fits_long_paths_and_shows_upgrades() {
    let _one = DESKTOP.lock().unwrap_or_else(|p| p.into_inner());
    let mut h = Home::new();
    let desktop = Desktop::start(&h.path("desktop"));
    let driver = driver_for(&h, &desktop);
    let s = driver.session(&bin("keychain-auth-app"), &["--open"]);
    h.wait_for_socket();
    for (name, value) in [("w/one", b"w1".as_slice()), ("x/two", b"x2")] {
        assert!(h.ka_stdin(&["set", name], value).status.success());
    }
    // A tool at a long path, its file name long and without a break.
    let dir = "a-rather-long-directory-name-for-tools/another-long-directory-level/and-a-third-one-to-be-sure";
    std::fs::create_dir_all(h.path(dir)).unwrap();
    let tool = h.client_copy(
        &format!("{dir}/a-tool-whose-file-name-is-very-long-and-has-no-break-anywhere-at-all"),
        b"long",
    );
    let hash = sha256_file(&tool);
    // Waiting: what approving grants says the access, read, though it asked for none.
    assert_eq!(
        h.client_at(&tool, &["get", "w/one"])["code"],
        "not_approved"
    );
    let row = format!("tr.pending[data-hash='{hash}']");
    s.wait_for("the pending row's access", || {
        let t = s.eval(&format!(
            "document.querySelector(\"{row} td.grants\")?.innerText"
        ));
        (t.as_str()?.contains("w/one") && t.as_str()?.contains("(read)")).then_some(())
    });

    // Approved for the pattern w/*: w/one is ticked and greyed, saying which pattern
    // covers it; x/two is a plain box.
    let reg = h.ka(&["register", tool.to_str().unwrap(), "--scope", "w/*"]);
    assert!(reg.status.success(), "{}", stderr(&reg));
    let box_of = |n: &str| format!(".tool[data-hash='{hash}'] input[data-name='{n}']");
    s.find(&box_of("w/one"));
    let one = s.eval(&format!(
        "(e => [e.checked, e.disabled, e.parentElement.title])(document.querySelector(\"{}\"))",
        box_of("w/one")
    ));
    assert_eq!(one[0], true, "{one}");
    assert_eq!(one[1], true, "{one}");
    assert!(one[2].as_str().unwrap().contains("w/*"), "{one}");
    let two = s.eval(&format!(
        "(e => [e.checked, e.disabled])(document.querySelector(\"{}\"))",
        box_of("x/two")
    ));
    assert_eq!(two, serde_json::json!([false, false]));

    // Its history (long paths, hashes in reasons) fits the default window: no
    // horizontal scrolling.
    assert_eq!(h.client_at(&tool, &["get", "w/one"])["value"], "w1");
    assert_eq!(
        h.client_at(&tool, &["get", "x/two"])["code"],
        "out_of_scope"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(&tool)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"update"))
        .unwrap();
    let updated = sha256_file(&tool);
    assert!(desktop.close_all_and_read().contains("keychain-auth"));
    s.click_css(&format!(".tool[data-hash='{hash}'] button.upgrade"));
    wait_until("the tool re-pinned", || {
        config(&h)["tools"][0]["hash"] == updated.as_str()
    });
    let t = &config(&h)["tools"][0];
    assert_eq!(t["upgraded_via"], "window", "{t}");
    assert_eq!(t["approved_via"], "cli", "{t}");
    // The card says both: approved via cli, upgraded via window.
    s.wait_for("the upgrade on the card", || {
        let t = s.eval(&format!(
            "document.querySelector(\".tool[data-hash='{updated}']\")?.innerText"
        ));
        let t = t.as_str()?;
        (t.contains("via cli") && t.contains("upgraded") && t.contains("via window")).then_some(())
    });
    s.wait_for("the re-pin in the history", || {
        rows(&s)
            .iter()
            .any(|r| r.contains("re-pinned") && r.contains(&updated))
            .then_some(())
    });
    assert!(s
        .eval("document.getElementById('pending-rows').innerText")
        .is_string());
    let widths = s.eval("[document.documentElement.scrollWidth, window.innerWidth]");
    assert!(
        widths[0].as_u64().unwrap() <= widths[1].as_u64().unwrap(),
        "the page scrolls sideways: {widths}"
    );
    // A long path still reads whole (the breaks are <wbr>, not characters).
    assert!(s
        .eval("document.getElementById('tools').innerText")
        .as_str()
        .unwrap()
        .contains(&format!("{dir}/a-tool-whose")));
    drop(s);
    drop(driver);
}
