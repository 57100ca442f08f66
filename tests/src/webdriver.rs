//! A minimal W3C WebDriver client (HTTP/1.0 over a loopback socket, JSON bodies) for
//! driving the tray app's window through `tauri-driver` and WebKitWebDriver. Only what
//! the tests use: sessions, finding elements, clicking, typing, reading text, running a
//! script.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The W3C key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `tauri-driver` listening on a loopback port; killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

/// Where `tauri-driver` is: on PATH or in cargo's bin directory.
pub fn tauri_driver() -> std::path::PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(home.map(|h| h.join("bin")))
        .map(|d| d.join("tauri-driver"))
        .find(|p| p.is_file())
        .expect("tauri-driver is installed (scripts/test runs `cargo install tauri-driver`)")
}

impl Driver {
    /// Starts `tauri-driver` with the environment of `cmd` (the app inherits it).
    pub fn start(mut cmd: Command) -> Driver {
        let port = free_port();
        let native = free_port();
        let child = cmd
            .arg("--port")
            .arg(port.to_string())
            .arg("--native-port")
            .arg(native.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tauri-driver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tauri-driver did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    /// Opens a session: launches `app` with `args` and attaches to its window.
    pub fn session(&self, app: &Path, args: &[&str]) -> Session {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "tauri:options": {"application": app, "args": args}
        }}});
        let v = http(self.port, "POST", "/session", Some(&caps));
        let id = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Session {
            port: self.port,
            id,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One HTTP exchange; the JSON answer.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to tauri-driver");
    s.set_read_timeout(Some(Duration::from_secs(120))).ok();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw);
    let json = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(json).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"))
}

/// A WebDriver session; deleted (and the app closed) on drop.
pub struct Session {
    port: u16,
    id: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let v = http(
            self.port,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        );
        match v["value"]["error"].as_str() {
            Some(err) => Err(format!("{method} {path}: {err}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Finds the element matching `css` and clicks it, finding it again if the page
    /// re-rendered in between (the window re-renders on every change in the daemon).
    pub fn click_css(&self, css: &str) {
        self.wait_for(&format!("a click on {css}"), || {
            let e = self.find_all(css).into_iter().next()?;
            match self.try_call("POST", &format!("/element/{}/click", e.0), Some(json!({}))) {
                Ok(_) => Some(()),
                Err(m) if m.contains("stale element") => None,
                Err(m) => panic!("{m}"),
            }
        })
    }

    /// The value of a JavaScript expression evaluated in the page.
    pub fn eval(&self, expr: &str) -> Value {
        self.execute(&format!("return {expr};"))
    }

    /// All elements matching a CSS selector (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e[ELEMENT].as_str().map(|s| Element(s.to_string())))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Waits up to 20 s for an element matching `css`.
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element {css}"), || {
            self.find_all(css).into_iter().next()
        })
    }

    /// Polls `f` until it returns `Some`; panics after 20 s naming `what`.
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() > deadline {
                let page = self.execute("return document.body ? document.body.innerText : '';");
                panic!(
                    "{what} did not appear within 20 s; the page shows:\n{}",
                    page.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Clicks an element.
    pub fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({})));
    }

    /// Types into an element.
    pub fn type_text(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        );
    }

    /// Clears an input.
    pub fn clear(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/clear", e.0), Some(json!({})));
    }

    /// An element's visible text.
    pub fn text(&self, e: &Element) -> String {
        self.call("GET", &format!("/element/{}/text", e.0), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Whether a checkbox is checked.
    pub fn selected(&self, e: &Element) -> bool {
        self.call("GET", &format!("/element/{}/selected", e.0), None)
            .as_bool()
            .unwrap_or(false)
    }

    /// Runs a script in the page; its result.
    pub fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}
