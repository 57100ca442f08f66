"""keychain-auth client for Python: protocol v1 over the daemon's Unix socket.

Standard library only. Written from docs/protocol.md alone, and tested against the real
daemon by tests/tests/python.rs.

    import keychain_auth
    with keychain_auth.connect("my-tool") as ka:
        token = ka.get("api/github")           # raises keychain_auth.NotApproved etc.

A Python program's executable is the interpreter, which keychain-auth never approves as
a whole: the daemon identifies it as interpreter + script path + script hash, so run
your program as a script file (``python3 tool.py``), not with ``-c`` or ``-m``.
"""

import json
import os
import socket
import struct
import sys

__all__ = [
    "Client", "connect", "socket_path", "check_socket_path", "Untrusted",
    "KeychainAuthError", "NotRunning", "ProtocolError",
    "NotApproved", "Denied", "OutOfScope", "NotFound", "BadRequest", "FrameTooLarge",
    "UnsupportedProtocol", "Forbidden", "StoreUnavailable",
]

PROTOCOL = 1
MAX_FRAME = 64 * 1024
DEFAULT_TIMEOUT = 30.0
MAX_WAIT_MS = 600_000


class KeychainAuthError(Exception):
    """An error the daemon answered with. ``code`` is the protocol's error code."""

    code = None

    def __init__(self, message, code=None, hash=None, pending=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hash = hash
        self.pending = pending


class NotApproved(KeychainAuthError):
    """Not approved yet; queued for the user (``hash`` is what to approve)."""
    code = "not_approved"


class Denied(KeychainAuthError):
    """Denied by the user or refused by a security check."""
    code = "denied"


class OutOfScope(KeychainAuthError):
    """The name is outside the scopes approved for this program."""
    code = "out_of_scope"


class NotFound(KeychainAuthError):
    """No secret with that name."""
    code = "not_found"


class BadRequest(KeychainAuthError):
    """The request was malformed (the daemon closed the connection)."""
    code = "bad_request"


class FrameTooLarge(KeychainAuthError):
    """A frame would exceed 64 KiB."""
    code = "frame_too_large"


class UnsupportedProtocol(KeychainAuthError):
    """The daemon speaks another protocol version."""
    code = "unsupported_protocol"


class Forbidden(KeychainAuthError):
    """This caller may never make this request."""
    code = "forbidden"


class StoreUnavailable(KeychainAuthError):
    """The keychain (or the daemon's files) could not be used."""
    code = "store_unavailable"


class NotRunning(KeychainAuthError):
    """Nothing answers at the socket: start the daemon with ``keychain-auth start``."""
    code = "not_running"


class ProtocolError(KeychainAuthError):
    """The connection broke or the daemon sent something unexpected."""
    code = "protocol_error"


_ERRORS = {cls.code: cls for cls in (
    NotApproved, Denied, OutOfScope, NotFound, BadRequest, FrameTooLarge,
    UnsupportedProtocol, Forbidden, StoreUnavailable,
)}


def socket_path(env=None):
    """The socket path, found as the daemon places it (docs/protocol.md, section 2.1)."""
    env = os.environ if env is None else env
    if env.get("KEYCHAIN_AUTH_SOCKET"):
        return env["KEYCHAIN_AUTH_SOCKET"]
    home_override = env.get("KEYCHAIN_AUTH_HOME")
    if home_override:
        if not os.path.isabs(home_override):
            raise NotRunning("KEYCHAIN_AUTH_HOME=%s is not an absolute path" % home_override)
        return os.path.join(home_override, "agent.sock")
    if sys.platform == "darwin":
        home = env.get("HOME", "")
        if not os.path.isabs(home):
            raise NotRunning("HOME is not set to an absolute path; set HOME or KEYCHAIN_AUTH_HOME")
        return os.path.join(home, "Library", "Application Support", "keychain-auth", "agent.sock")
    run = env.get("XDG_RUNTIME_DIR", "")
    if os.path.isabs(run):
        return os.path.join(run, "keychain-auth", "agent.sock")
    # Never a predictable path in a directory other users can write: beside the audit log.
    state = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        home = env.get("HOME", "")
        if not os.path.isabs(home):
            raise NotRunning("HOME is not set to an absolute path; set HOME or KEYCHAIN_AUTH_HOME")
        state = os.path.join(home, ".local", "state")
    return os.path.join(state, "keychain-auth", "agent.sock")


class Untrusted(KeychainAuthError):
    """The socket, or the process listening on it, is not the user's own; nothing was sent."""
    code = "untrusted"


def check_socket_path(path):
    """Raises Untrusted unless the socket's directory is the user's own: a real directory
    (not a symbolic link) owned by this user with mode 0700, every directory above it
    writable only by its owner (root or this user; the user's own group; or sticky, like
    /tmp), and the socket file, if there, a socket of this user's (docs/protocol.md 2.2)."""
    import stat
    me = os.geteuid()
    d = os.path.dirname(path) or "."
    try:
        st = os.lstat(d)
    except FileNotFoundError:
        return  # nothing can listen there: connect reports "not running"
    except OSError as e:
        raise Untrusted("cannot inspect %s: %s" % (d, e))
    if stat.S_ISLNK(st.st_mode):
        raise Untrusted("%s is a symbolic link, not keychain-auth's own directory" % d)
    if not stat.S_ISDIR(st.st_mode):
        raise Untrusted("%s is not a directory" % d)
    if st.st_uid != me:
        raise Untrusted("%s belongs to uid %d, not to you (uid %d): another user may have "
                        "created it to listen in your place" % (d, st.st_uid, me))
    if st.st_mode & 0o077:
        raise Untrusted("%s has mode %04o; keychain-auth's socket directory is 0700"
                        % (d, st.st_mode & 0o7777))
    up = os.path.realpath(d)
    while True:
        parent = os.path.dirname(up)
        if parent == up:
            break
        up = parent
        a = os.stat(up)
        if a.st_uid not in (0, me):
            raise Untrusted("%s (above the socket's directory) belongs to uid %d, who could "
                            "replace the socket's directory" % (up, a.st_uid))
        sticky = a.st_mode & 0o1000
        group_ok = a.st_uid == me and a.st_gid == os.getegid()
        if (a.st_mode & 0o002 and not sticky) or (a.st_mode & 0o020 and not sticky and not group_ok):
            raise Untrusted("%s (above the socket's directory) is writable by other users "
                            "(mode %04o)" % (up, a.st_mode & 0o7777))
    try:
        s = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(s.st_mode):
        raise Untrusted("%s is not a socket" % path)
    if s.st_uid != me:
        raise Untrusted("the socket %s belongs to uid %d, not to you (uid %d)" % (path, s.st_uid, me))


def server_uid(sock):
    """The uid of the process listening at the other end, from the kernel."""
    if hasattr(socket, "SO_PEERCRED"):
        cred = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", cred)[1]
    # macOS: LOCAL_PEERCRED (1) at SOL_LOCAL (0) gives a struct xucred; cr_uid follows cr_version.
    cred = sock.getsockopt(0, 1, 76)
    return struct.unpack_from("=II", cred)[1]


def _encode(obj):
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if not payload or len(payload) > MAX_FRAME:
        raise FrameTooLarge("the request is %d bytes; a frame holds at most %d" % (len(payload), MAX_FRAME))
    return struct.pack(">I", len(payload)) + payload


def _read_exact(sock, n):
    chunks = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise ProtocolError("the daemon closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock):
    (n,) = struct.unpack(">I", _read_exact(sock, 4))
    if n == 0 or n > MAX_FRAME:
        raise ProtocolError("the daemon sent a frame of %d bytes" % n)
    try:
        obj = json.loads(_read_exact(sock, n).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ProtocolError("the daemon sent a malformed frame: %s" % e)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("the daemon sent a frame without a type")
    return obj


def _raise(resp):
    cls = _ERRORS.get(resp.get("code"), KeychainAuthError)
    raise cls(resp.get("message", ""), code=resp.get("code"), hash=resp.get("hash"),
              pending=resp.get("pending"))


class Client:
    """One connection to the daemon, past the hello. Use ``connect()`` to make one."""

    def __init__(self, sock, server):
        self._sock = sock
        self.server = server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._sock.close()

    def request(self, obj):
        """Sends one request and returns the answer; an ``error`` answer raises."""
        frame = _encode(obj)
        try:
            self._sock.sendall(frame)
        except (BrokenPipeError, ConnectionResetError):
            # The daemon may have refused the connection before reading; its reason waits.
            resp = _read_frame(self._sock)
            if resp["type"] == "error":
                _raise(resp)
            raise
        except socket.timeout:
            raise ProtocolError("timed out sending to the daemon")
        try:
            resp = _read_frame(self._sock)
        except socket.timeout:
            raise ProtocolError("timed out waiting for the daemon")
        if resp["type"] == "error":
            _raise(resp)
        return resp

    def get(self, name, wait=None):
        """The value of a secret. With ``wait`` (seconds), an unapproved program's
        request is held until the user decides (at most 600 s)."""
        req = {"type": "get", "name": name}
        if wait is not None:
            ms = max(0, min(int(wait * 1000), MAX_WAIT_MS))
            req["wait_ms"] = ms
            old = self._sock.gettimeout()
            self._sock.settimeout(ms / 1000.0 + DEFAULT_TIMEOUT)
            try:
                resp = self.request(req)
            finally:
                self._sock.settimeout(old)
        else:
            resp = self.request(req)
        self._expect(resp, "secret")
        return resp["value"]

    def set(self, name, value):
        """Stores a secret (needs read-write access)."""
        self._expect(self.request({"type": "set", "name": name, "value": value}), "ok")

    def delete(self, name):
        """Deletes a secret (needs read-write access)."""
        self._expect(self.request({"type": "delete", "name": name}), "ok")

    def list(self):
        """Every secret name within this program's scopes, all pages."""
        names, offset = [], None
        while True:
            req = {"type": "list"}
            if offset is not None:
                req["offset"] = offset
            resp = self._expect(self.request(req), "names")
            names.extend(resp["names"])
            nxt = resp.get("next")
            if nxt is None or nxt == offset:
                return names
            offset = nxt

    def whoami(self):
        """How the daemon sees this process: a dict with hash, path, status, scopes…"""
        return self._expect(self.request({"type": "whoami"}), "identity")

    @staticmethod
    def _expect(resp, kind):
        if resp.get("type") != kind:
            raise ProtocolError("expected a %s answer, got %r" % (kind, resp.get("type")))
        return resp


def connect(client="python", socket_file=None, timeout=DEFAULT_TIMEOUT, scopes=None, access=None):
    """Connects and says hello. ``scopes``/``access`` ask for what approving this program
    should grant by default (the user still decides)."""
    path = socket_file or socket_path()
    check_socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # Python sockets are close-on-exec already (PEP 446); say so explicitly anyway, so a
    # program this one starts never inherits the connection.
    sock.set_inheritable(False)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise NotRunning("keychain-auth is not running (nothing answers at %s: %s); "
                         "start it with `keychain-auth start`" % (path, e))
    try:
        uid = server_uid(sock)
    except OSError as e:
        sock.close()
        raise Untrusted("cannot tell who listens on %s: %s; nothing was sent to it" % (path, e))
    if uid != os.geteuid():
        sock.close()
        raise Untrusted("the process listening on %s runs as uid %d, not as you (uid %d); "
                        "nothing was sent to it" % (path, uid, os.geteuid()))
    hello = {"type": "hello", "protocol": PROTOCOL, "client": client}
    if scopes:
        hello["scopes"] = list(scopes)
    if access:
        hello["access"] = access
    c = Client(sock, "")
    try:
        resp = c.request(hello)
    except Exception:
        sock.close()
        raise
    if resp.get("type") != "hello" or resp.get("protocol") != PROTOCOL:
        sock.close()
        raise ProtocolError("unexpected answer to hello: %r" % resp)
    c.server = resp.get("server", "")
    return c
