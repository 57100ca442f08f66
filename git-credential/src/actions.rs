//! The helper's three actions (`get`, `store`, `erase`) against the keychain-auth
//! daemon, and the messages a person sees when something is in the way.

use crate::credential::Credential;
use crate::naming::{self, SCOPE};
use crate::stored::Stored;
use keychain_auth_sdk::paths::Paths;
use keychain_auth_sdk::protocol::Access;
use keychain_auth_sdk::{Client, ClientError, ErrorCode};
use std::io::Write;
use std::time::Duration;

/// This program's name, as messages start.
pub const NAME: &str = "git-credential-keychain-auth";

/// Why an action failed; printed on standard error, and the helper exits with `status`
/// (the CLI's, [`keychain_auth_sdk::exit`]: 3 not running, 4 not approved, 5 denied, 6
/// out of scope, 1 anything else; git only reads "not zero").
#[derive(Debug)]
pub struct Failure {
    /// For a person: what happened and what to do.
    pub message: String,
    /// The exit status.
    pub status: u8,
}

impl Failure {
    /// A failure without a refusal of its own: status 1.
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            status: keychain_auth_sdk::exit::FAILURE,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.to_string())
    }
}

/// Options from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// With `--wait SECONDS`: when not yet approved, hold `get` this long for the user.
    pub wait: Option<Duration>,
}

/// Runs one action on parsed input and writes git's answer to `out`.
pub fn run(
    action: &str,
    c: &Credential,
    opts: Options,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match action {
        "get" => get(c, opts, out),
        "store" => store(c),
        "erase" => erase(c),
        // git-credential(1): helpers ignore actions they do not know.
        _ => Ok(()),
    }
}

fn connect() -> Result<Client, Failure> {
    let socket = Paths::client_socket().map_err(|e| Failure::new(e.to_string()))?;
    Client::connect_asking(&socket, NAME, &[SCOPE], Some(Access::ReadWrite)).map_err(explain)
}

fn get(c: &Credential, opts: Options, out: &mut dyn Write) -> Result<(), Failure> {
    let prefix = naming::prefix(c)?;
    let mut client = connect()?;
    let (user, name, secret) = if c.username.is_some() {
        let name = naming::name(c)?;
        let mut found = client.get(&name);
        if let (Some(w), Err(e)) = (opts.wait, &found) {
            if e.code() == Some(ErrorCode::NotApproved) {
                announce_wait(w, e);
                found = client.get_wait(&name, w);
            }
        }
        match found {
            Ok(s) => (c.username.clone().unwrap_or_default(), name, s),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(()),
            Err(e) => return Err(explain(e)),
        }
    } else {
        let mut listed = client.list();
        if let (Some(w), Some(ErrorCode::NotApproved)) =
            (opts.wait, listed.as_ref().err().and_then(ClientError::code))
        {
            if let Err(e) = &listed {
                announce_wait(w, e);
            }
            // Hold one request for the user's decision, then look again.
            match client.get_wait(prefix.trim_end_matches('/'), w) {
                Ok(_) => {}
                Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
                Err(e) => return Err(explain(e)),
            }
            listed = client.list();
        }
        let mut users: Vec<(String, String)> = listed
            .map_err(explain)?
            .into_iter()
            .filter_map(|n| naming::username_under(&prefix, &n).map(|u| (u, n)))
            .collect();
        users.sort();
        // Several accounts on one site: the first by name (git offers no way to choose;
        // put the user name in the remote URL to pick one).
        let Some((user, name)) = users.into_iter().next() else {
            return Ok(());
        };
        match client.get(&name) {
            Ok(s) => (user, name, s),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(()),
            Err(e) => return Err(explain(e)),
        }
    };
    let stored = Stored::decode(&secret)?;
    let answer = Credential::answer(&user, &stored).map_err(|e| {
        Failure::new(format!(
            "{e} ({name}). If it was stored with `echo`, store it again without the newline: printf '%s' 'PASSWORD' | keychain-auth set {name}"
        ))
    })?;
    out.write_all(answer.expose().as_bytes())?;
    Ok(())
}

fn store(c: &Credential) -> Result<(), Failure> {
    let name = naming::name(c)?;
    let value = Stored::from_git(c)?.encode()?;
    let mut client = connect()?;
    client.set(&name, value).map_err(explain)
}

fn erase(c: &Credential) -> Result<(), Failure> {
    naming::site(c)?;
    let mut client = connect()?;
    let names = if c.username.is_some() && c.path.is_some() {
        vec![naming::name(c)?]
    } else {
        // A part git leaves out matches any, as in git's own stores: without a path,
        // the credentials stored with one go too; without a user name, every account.
        let mut names = Vec::new();
        for n in client.list().map_err(explain)? {
            if naming::describes(c, &n)? {
                names.push(n);
            }
        }
        names
    };
    for name in names {
        // With a password, erase only a credential that still holds it: git erases the
        // password that just failed, which must not remove a newer one stored since.
        // A value this helper cannot read is not known to hold it, so it stays.
        if let Some(pw) = &c.password {
            match client.get(&name) {
                Ok(stored) => match Stored::decode(&stored) {
                    Ok(s) if s.password.expose() == pw.expose() => {}
                    _ => continue,
                },
                Err(e) if e.code() == Some(ErrorCode::NotFound) => continue,
                Err(e) => return Err(explain(e)),
            }
        }
        match client.delete(&name) {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::NotFound) => {}
            Err(e) => return Err(explain(e)),
        }
    }
    Ok(())
}

/// Says on standard error, before a `get` waits, that it waits, for how long, and how
/// to decide (the daemon's refusal names the approve command and any notification).
fn announce_wait(w: Duration, refused: &ClientError) {
    if w.is_zero() {
        return;
    }
    let how = match refused {
        ClientError::Daemon(body) => body.message.clone(),
        other => other.to_string(),
    };
    eprintln!(
        "{NAME}: waiting up to {} s for your decision about the program that ran git (`keychain-auth list-pending` shows what is waiting): {how}",
        w.as_secs()
    );
}

/// Turns a client error into what a person needs to read next.
fn explain(e: ClientError) -> Failure {
    let status = keychain_auth_sdk::exit::for_error(&e);
    let message = match e {
        ClientError::NotRunning { socket, source } => format!(
            "keychain-auth is not running (nothing answers at {}: {source}); start it with `keychain-auth start`",
            socket.display()
        ),
        ClientError::Daemon(body) => match (body.code, &body.hash) {
            (ErrorCode::NotApproved, Some(hash)) => format!(
                "the program that asked git for this password is not approved yet, so git asks for it itself this time \
                 (this helper serves the program that ran git, never whoever runs it).\n  \
                 To approve that program (for {SCOPE}, read-write), run:\n    keychain-auth approve {hash}\n  \
                 (keychain-auth: {})",
                body.message
            ),
            (ErrorCode::Forbidden, _) => format!(
                "{} (to store and erase, approve the helper with --access read-write)",
                body.message
            ),
            _ => body.message,
        },
        other => other.to_string(),
    };
    Failure { message, status }
}
