//! A desktop for tests: Xvfb and dunst (a real freedesktop notification server) on the
//! test's session bus, with dunst's context menu scripted to pick a notification action;
//! plus the waits the desktop tests share.

use crate::{stderr, stdout, Home};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

impl Desktop {
    /// The X display (`:N`) for programs that draw.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// Xvfb and dunst for one test, stopped on drop.
pub struct Desktop {
    xvfb: Child,
    dunst: Child,
    dir: PathBuf,
    display: String,
    /// For a desktop of an ordinary user: who (uid, gid), and their session bus (a
    /// bus daemon of theirs, stopped on drop, and its address).
    user: Option<(u32, u32, Child, String)>,
}

impl Desktop {
    /// Starts Xvfb on a free display and dunst on the session bus.
    pub fn start(dir: &Path) -> Desktop {
        Desktop::start_for(dir, None)
    }

    /// A desktop of the ordinary user of `h` (the tests' second user when they run as
    /// root): a session bus of theirs, and dunst on it, run as them; Xvfb is shared.
    /// Their daemon needs [`Desktop::bus`] in its environment.
    pub fn of(h: &Home) -> Desktop {
        let (uid, gid) = (h.uid(), h.gid());
        std::fs::create_dir_all(h.path("desktop")).unwrap();
        std::os::unix::fs::chown(h.path("desktop"), Some(uid), Some(gid)).unwrap();
        let bus_path = h.path("desktop/bus");
        let address = format!("unix:path={}", bus_path.display());
        let bus = crate::as_user(uid, gid, "dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon is installed (scripts/deps)");
        wait_until("the user's session bus", || bus_path.exists());
        Desktop::start_for(&h.path("desktop"), Some((uid, gid, bus, address)))
    }

    /// The session bus's address, for a desktop of an ordinary user.
    pub fn bus(&self) -> Option<&str> {
        self.user.as_ref().map(|(_, _, _, a)| a.as_str())
    }

    /// A command run on this desktop's session bus, as its user.
    fn command(&self, program: &str) -> Command {
        match &self.user {
            Some((uid, gid, _, address)) => {
                let mut c = crate::as_user(*uid, *gid, program);
                c.env("DBUS_SESSION_BUS_ADDRESS", address)
                    .env("DISPLAY", &self.display);
                c
            }
            None => Command::new(program),
        }
    }

    fn start_for(dir: &Path, user: Option<(u32, u32, Child, String)>) -> Desktop {
        std::fs::create_dir_all(dir).unwrap();
        let n = (50..400)
            .map(|i| i + std::process::id() % 200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display");
        let display = format!(":{n}");
        let xvfb = Command::new("Xvfb")
            // -ac: the desktop of an ordinary user draws on it too.
            .args([
                &display,
                "-screen",
                "0",
                "1024x768x24",
                "-nolisten",
                "tcp",
                "-ac",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed (scripts/deps)");
        let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
        wait_until("Xvfb", || sock.exists());
        // dunst's context menu runs this "dmenu": it picks the entry naming the action
        // written to `choice`.
        let pick = dir.join("pick.sh");
        std::fs::write(
            &pick,
            format!(
                "#!/bin/sh\ngrep -i -m1 \"$(cat '{}')\"\n",
                dir.join("choice").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&pick, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let rc = dir.join("dunstrc");
        std::fs::write(&rc, format!("[global]\ndmenu = {}\n", pick.display())).unwrap();
        let mut d = Desktop {
            xvfb,
            // Replaced at once: dunst needs the display and bus of `d`.
            dunst: Command::new("true").spawn().unwrap(),
            dir: dir.to_path_buf(),
            display,
            user,
        };
        let dunst = d
            .command("dunst")
            .arg("-config")
            .arg(&rc)
            .env("DISPLAY", &d.display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst is installed (scripts/deps)");
        let mut first = std::mem::replace(&mut d.dunst, dunst);
        let _ = first.wait();
        wait_until("dunst on the session bus", || d.displayed().is_some());
        d
    }

    /// How many notifications are on screen (`None` while dunst is not answering).
    pub fn displayed(&self) -> Option<u32> {
        let o = self
            .command("dunstctl")
            .args(["count", "displayed"])
            .output()
            .ok()?;
        o.status.success().then(|| stdout(&o).trim().parse().ok())?
    }

    /// Closes every notification on screen, then returns dunst's history (JSON text):
    /// the summary and body of every notification this desktop showed.
    pub fn close_all_and_read(&self) -> String {
        let _ = self.command("dunstctl").arg("close-all").output();
        let history = self.command("dunstctl").arg("history").output();
        history.map(|o| stdout(&o)).unwrap_or_default()
    }

    /// Chooses an action of the newest notification through dunst's context menu.
    pub fn choose(&self, action: &str) {
        std::fs::write(self.dir.join("choice"), action).unwrap();
        let o = self.command("dunstctl").arg("context").output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }

    /// Saves a screenshot of the virtual screen, when ImageMagick's `import` is there.
    pub fn screenshot(&self, to: &Path) {
        let _ = std::fs::create_dir_all(to.parent().unwrap());
        let _ = Command::new("import")
            .args(["-window", "root", "-display", &self.display])
            .arg(to)
            .output();
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for c in [&mut self.dunst, &mut self.xvfb] {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some((_, _, bus, _)) = &mut self.user {
            let _ = bus.kill();
            let _ = bus.wait();
        }
    }
}

/// Polls `ok` until it holds; panics after 20 s naming `what`.
pub fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The id of the notification the daemon showed for `hash`, from its audit log.
pub fn notification_id(h: &Home, hash: &str) -> Option<u32> {
    h.audit_lines().iter().find_map(|l| {
        (l["event"] == "notification" && l["hash"] == hash).then(|| {
            let r = l["reason"].as_str().unwrap();
            r.rsplit(' ')
                .next()
                .unwrap()
                .trim_end_matches(')')
                .parse()
                .unwrap()
        })
    })
}

/// Runs `program get n/secret` with a 30 s wait on its own thread; its JSON answer.
pub fn asks_with_wait(h: &Home, program: &Path) -> std::thread::JoinHandle<Value> {
    let mut cmd = h.command(program);
    cmd.args(["get", "n/secret", "30000"]);
    std::thread::spawn(move || {
        let o = crate::run_retrying(&mut cmd);
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
    })
}

/// What every host of the daemon with notifications must do (`keychain-auth start
/// --notify`, the tray app), given a running daemon in `h` with `n/secret` stored:
/// the notification appears for a waiting tool; a forged `ActionInvoked` from another bus
/// connection approves nothing; Approve in dunst serves the waiting tool and pins it;
/// Deny refuses it, keeps a deny rule and does not notify again; Allow once serves only
/// the waiting request; a refused tool's message names the desktop.
pub fn decisions_scenario(h: &Home, desktop: &Desktop, screenshot: &str) {
    // A tool asks and waits; the notification appears.
    let tool = h.client_copy("tool", b"t");
    let hash = crate::sha256_file(&tool);
    let waiting = asks_with_wait(h, &tool);
    wait_until("the notification", || notification_id(h, &hash).is_some());
    let id = notification_id(h, &hash).unwrap();
    assert!(desktop.displayed().unwrap() >= 1);
    desktop.screenshot(&crate::target_dir().join("screenshots").join(screenshot));

    // Another bus connection forges the Approve click: ignored, audited, nothing approved.
    let forged = Command::new("dbus-send")
        .args([
            "--session",
            "--type=signal",
            "/org/freedesktop/Notifications",
            "org.freedesktop.Notifications.ActionInvoked",
            &format!("uint32:{id}"),
            "string:approve",
        ])
        .output()
        .unwrap();
    assert!(forged.status.success(), "{}", stderr(&forged));
    wait_until("the forged click to be noticed", || {
        h.audit_lines().iter().any(|l| {
            l["event"] == "notification"
                && l["decision"] == "deny"
                && l["reason"].as_str().unwrap().contains("does not own")
        })
    });
    let tools: Value = serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(
        tools,
        serde_json::json!([]),
        "a forged click approved nothing"
    );
    assert!(!waiting.is_finished(), "the tool is still waiting");

    // The person chooses Approve in dunst: the waiting tool gets its secret.
    desktop.choose("approve");
    let r = waiting.join().unwrap();
    assert_eq!(r["value"], "clicked-through", "{r}");
    let config: Value =
        serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap();
    let t = &config["tools"][0];
    assert_eq!(t["hash"], hash.as_str());
    assert_eq!(t["approved_via"], "notification");
    assert_eq!(t["scopes"], serde_json::json!(["n/secret"]));
    assert!(h.audit_lines().iter().any(|l| l["event"] == "approve"
        && l["hash"] == hash.as_str()
        && l["via"] == "notification"));

    // Deny: the waiting tool is refused, a deny rule is kept, and asking again raises no
    // second notification.
    let other = h.client_copy("other", b"o");
    let other_hash = crate::sha256_file(&other);
    let waiting = asks_with_wait(h, &other);
    wait_until("the second notification", || {
        notification_id(h, &other_hash).is_some()
    });
    desktop.choose("deny");
    let r = waiting.join().unwrap();
    assert_eq!(r["code"], "denied", "{r}");
    let config: Value =
        serde_json::from_slice(&std::fs::read(h.path("config.json")).unwrap()).unwrap();
    assert_eq!(config["denied"][0]["hash"], other_hash.as_str());
    let again = h.client_at(&other, &["get", "n/secret"]);
    assert_eq!(again["code"], "denied", "{again}");
    std::thread::sleep(Duration::from_millis(300));
    let shown = h
        .audit_lines()
        .iter()
        .filter(|l| l["event"] == "notification" && l["hash"] == other_hash.as_str())
        .count();
    assert_eq!(shown, 1, "a denied binary is not announced again");

    // Allow once: the waiting request is served, nothing is approved, the next one is
    // refused again.
    let once = h.client_copy("once", b"1");
    let once_hash = crate::sha256_file(&once);
    let waiting = asks_with_wait(h, &once);
    wait_until("the third notification", || {
        notification_id(h, &once_hash).is_some()
    });
    desktop.choose("allow once");
    let r = waiting.join().unwrap();
    assert_eq!(r["value"], "clicked-through", "{r}");
    let tools: Value = serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
    assert_eq!(
        tools.as_array().unwrap().len(),
        1,
        "Allow once approved nothing"
    );
    let again = h.client_at(&once, &["get", "n/secret"]);
    assert_eq!(again["code"], "not_approved", "{again}");
    assert!(h
        .audit_lines()
        .iter()
        .any(|l| l["hash"] == once_hash.as_str()
            && l["reason"] == "served once (Allow once on the desktop)"));

    // For 1 hour, Until logout: approved with that life, shown on the tool.
    for (name, choice) in [("hour", "for 1 hour"), ("logout", "until logout")] {
        let tool = h.client_copy(name, name.as_bytes());
        let tool_hash = crate::sha256_file(&tool);
        let waiting = asks_with_wait(h, &tool);
        wait_until("the notification", || {
            notification_id(h, &tool_hash).is_some()
        });
        desktop.choose(choice);
        let r = waiting.join().unwrap();
        assert_eq!(r["value"], "clicked-through", "{choice}: {r}");
        let tools: Value = serde_json::from_slice(&h.ka(&["list", "--json"]).stdout).unwrap();
        let t = tools
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == tool_hash.as_str())
            .unwrap()
            .clone();
        if name == "hour" {
            let at = t["expires_at"].as_str().unwrap();
            let left = humantime_secs(at);
            assert!((3500..=3600).contains(&left), "{at}: {left} s left");
        } else {
            assert_eq!(t["until_logout"], true, "{t}");
            assert!(t["expires_at"].is_null());
        }
    }

    // A refused tool's message says a notification is waiting, besides the CLI command.
    let third = h.client_copy("third", b"3");
    let r = h.client_at(&third, &["get", "n/secret"]);
    assert_eq!(r["code"], "not_approved", "{r}");
    let msg = r["message"].as_str().unwrap();
    assert!(
        msg.contains("keychain-auth approve") && msg.contains("notification on your desktop"),
        "{msg}"
    );
}

/// Seconds from now until an RFC 3339 UTC time written as the daemon writes them
/// (`2026-12-01T10:00:00Z`), by `date`.
fn humantime_secs(at: &str) -> i64 {
    let o = Command::new("date")
        .args(["-u", "-d", at, "+%s"])
        .output()
        .unwrap();
    let then: i64 = stdout(&o).trim().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    then - now
}
