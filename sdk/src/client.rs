//! A blocking client for the keychain-auth daemon. It checks that the socket and the
//! process listening on it are the user's own ([`crate::verify`]) before it sends
//! anything, opens the socket close-on-exec (Rust's standard library creates every
//! socket with `SOCK_CLOEXEC`, so a child this process spawns never inherits the
//! authenticated connection), says hello, and then sends one request at a time.

use crate::frame::{self, FrameError};
use crate::paths::{PathError, Paths};
use crate::protocol::{
    Access, ErrorBody, ErrorCode, Identity, Request, Response, PROTOCOL_VERSION,
};
use crate::secret::Secret;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default time to wait for any one answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What went wrong talking to the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// The socket path could not be worked out.
    Paths(PathError),
    /// Nothing is listening on the socket.
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The connection failed or a frame was malformed.
    Frame(FrameError),
    /// The daemon answered with something this client did not expect.
    Unexpected(String),
    /// The daemon refused the request.
    Daemon(ErrorBody),
    /// The socket, or the process listening on it, is not the user's own; nothing was
    /// sent (see [`crate::verify`]).
    Untrusted(String),
}

impl ClientError {
    /// The protocol error code, when the daemon refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Daemon(b) => Some(b.code),
            _ => None,
        }
    }

    /// For `not_approved` and `denied`: the caller's identity (`sha256:…`), which is
    /// what `keychain-auth approve` takes.
    pub fn hash(&self) -> Option<&str> {
        match self {
            ClientError::Daemon(b) => b.hash.as_deref(),
            _ => None,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Paths(e) => write!(f, "{e}"),
            ClientError::NotRunning { socket, source } => write!(
                f,
                "the keychain-auth daemon is not running at {} ({source}); start it with `keychain-auth start`",
                socket.display()
            ),
            ClientError::Frame(e) => write!(f, "talking to the daemon failed: {e}"),
            ClientError::Unexpected(s) => write!(f, "unexpected answer from the daemon: {s}"),
            ClientError::Daemon(b) => write!(f, "{} ({})", b.message, b.code),
            ClientError::Untrusted(why) => write!(
                f,
                "refusing to talk to the keychain-auth socket: {why}"
            ),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Frame(e)
    }
}

/// A connection to the daemon, past the hello.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    server: String,
}

/// The connection's descriptor, for polling or inspection. It is close-on-exec: a
/// program this process starts does not inherit it.
impl std::os::fd::AsFd for Client {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

impl Client {
    /// Connects to the socket named by `KEYCHAIN_AUTH_SOCKET`, `KEYCHAIN_AUTH_HOME` or the
    /// platform default, and says hello.
    pub fn connect(client_name: &str) -> Result<Client, ClientError> {
        let socket = Paths::client_socket().map_err(ClientError::Paths)?;
        Client::connect_to(&socket, client_name)
    }

    /// Connects to a given socket and says hello.
    pub fn connect_to(socket: &Path, client_name: &str) -> Result<Client, ClientError> {
        Client::connect_asking(socket, client_name, &[], None)
    }

    /// Connects and says hello, asking for `scopes` and `access` should the user approve
    /// this program. The daemon records them with the program's pending entry and offers
    /// them as the default of `keychain-auth approve`; they grant nothing by themselves.
    pub fn connect_asking(
        socket: &Path,
        client_name: &str,
        scopes: &[&str],
        access: Option<Access>,
    ) -> Result<Client, ClientError> {
        Client::connect_checked(socket, client_name, scopes, access, &|_| Ok(()))
    }

    /// [`Client::connect_asking`] with one more check of the listening process, run
    /// after the SDK's own and before anything is sent (the keychain-auth CLI checks
    /// the listener's executable this way). An `Err` from it becomes
    /// [`ClientError::Untrusted`].
    pub fn connect_checked(
        socket: &Path,
        client_name: &str,
        scopes: &[&str],
        access: Option<Access>,
        check: &dyn Fn(&UnixStream) -> Result<(), String>,
    ) -> Result<Client, ClientError> {
        crate::verify::socket_path(socket).map_err(ClientError::Untrusted)?;
        // std's UnixStream::connect creates the socket with SOCK_CLOEXEC.
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        })?;
        crate::verify::server_is_ours(&stream, socket).map_err(ClientError::Untrusted)?;
        check(&stream).map_err(ClientError::Untrusted)?;
        let mut client = Client {
            stream,
            server: String::new(),
        };
        client.set_timeout(Some(DEFAULT_TIMEOUT))?;
        let hello = Request::Hello {
            protocol: PROTOCOL_VERSION,
            client: client_name.to_string(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            access,
        };
        match client.request(&hello)? {
            Response::Hello { server, protocol } if protocol == PROTOCOL_VERSION => {
                client.server = server;
                Ok(client)
            }
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// The daemon's `keychain-auth/<version>` string.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sets how long to wait for each answer (`None`: forever).
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream
            .set_read_timeout(t)
            .and_then(|_| self.stream.set_write_timeout(t))
            .map_err(|e| ClientError::Frame(FrameError::Io(e)))
    }

    /// Sends one request and reads its answer. A daemon error becomes
    /// [`ClientError::Daemon`].
    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        if let Err(e) = frame::write_frame(&mut self.stream, req) {
            // The daemon may have refused this connection (wrong user, changed binary)
            // and closed it before the request was written: its reason is already in
            // the receive buffer, and says more than "broken pipe".
            let closed = matches!(&e, FrameError::Io(io) if matches!(
                io.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ));
            if closed {
                if let Ok(Response::Error(body)) =
                    frame::read_frame::<Response, _>(&mut self.stream)
                {
                    return Err(ClientError::Daemon(body));
                }
            }
            return Err(e.into());
        }
        match frame::read_frame::<Response, _>(&mut self.stream)? {
            Response::Error(body) => Err(ClientError::Daemon(body)),
            other => Ok(other),
        }
    }

    /// Reads a secret.
    pub fn get(&mut self, name: &str) -> Result<Secret, ClientError> {
        self.get_inner(name, None)
    }

    /// Reads a secret; if this binary is not approved yet, waits up to `wait` for the
    /// user to approve it, and is answered the moment they do.
    pub fn get_wait(&mut self, name: &str, wait: Duration) -> Result<Secret, ClientError> {
        let ms = wait.as_millis().min(u128::from(u64::MAX)) as u64;
        let prev = self.stream.read_timeout().ok().flatten();
        self.set_timeout(Some(wait + DEFAULT_TIMEOUT))?;
        let res = self.get_inner(name, Some(ms));
        self.set_timeout(prev)?;
        res
    }

    fn get_inner(&mut self, name: &str, wait_ms: Option<u64>) -> Result<Secret, ClientError> {
        let req = Request::Get {
            name: name.to_string(),
            wait_ms,
        };
        match self.request(&req)? {
            Response::Secret { value, .. } => Ok(value),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    /// Stores a secret.
    pub fn set(&mut self, name: &str, value: Secret) -> Result<(), ClientError> {
        self.expect_ok(&Request::Set {
            name: name.to_string(),
            value,
        })
    }

    /// Deletes a secret.
    pub fn delete(&mut self, name: &str) -> Result<(), ClientError> {
        self.expect_ok(&Request::Delete {
            name: name.to_string(),
        })
    }

    /// Lists the secret names this binary may see (every page).
    pub fn list(&mut self) -> Result<Vec<String>, ClientError> {
        let mut all = Vec::new();
        let mut offset = None;
        loop {
            match self.request(&Request::List { offset })? {
                Response::Names { names, next } => {
                    all.extend(names);
                    match next {
                        Some(n) if Some(n) != offset => offset = Some(n),
                        _ => return Ok(all),
                    }
                }
                other => return Err(ClientError::Unexpected(format!("{other:?}"))),
            }
        }
    }

    /// How the daemon sees this process.
    pub fn whoami(&mut self) -> Result<Identity, ClientError> {
        match self.request(&Request::Whoami {})? {
            Response::Identity(id) => Ok(id),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }

    fn expect_ok(&mut self, req: &Request) -> Result<(), ClientError> {
        match self.request(req)? {
            Response::Ok => Ok(()),
            other => Err(ClientError::Unexpected(format!("{other:?}"))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_sent_before_closing_is_reported_not_a_broken_pipe() {
        let (client_end, mut daemon_end) = UnixStream::pair().unwrap();
        let refusal = Response::Error(ErrorBody {
            code: ErrorCode::Forbidden,
            message: "runs as uid 999".into(),
            hash: None,
            pending: None,
        });
        frame::write_frame(&mut daemon_end, &refusal).unwrap();
        drop(daemon_end);
        let mut client = Client {
            stream: client_end,
            server: String::new(),
        };
        let err = client
            .request(&Request::Hello {
                protocol: PROTOCOL_VERSION,
                client: "t".into(),
                scopes: Vec::new(),
                access: None,
            })
            .unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Forbidden), "{err}");
    }
}
