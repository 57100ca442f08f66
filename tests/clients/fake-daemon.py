"""A program that listens on keychain-auth's socket in the daemon's place, for the tests:
it writes every frame it receives to a log (so a test can see what a client sent it) and
answers like a daemon would, enough for a client to go on. Standard library only.

Usage: fake-daemon.py SOCKET LOG [undumpable]
`undumpable` makes it non-dumpable first, as the real daemon is, which hides its
executable from other processes of its user. It touches LOG.ready once it listens.
"""

import ctypes
import json
import os
import socket
import struct
import sys

path, log = sys.argv[1], sys.argv[2]
if len(sys.argv) > 3 and sys.argv[3] == "undumpable":
    PR_SET_DUMPABLE = 4
    assert ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(64)
open(log + ".ready", "w").close()


def answer(req):
    kind = req.get("type")
    if kind == "hello":
        return {"type": "hello", "protocol": 1, "server": "keychain-auth/0.1.0"}
    if kind == "status":
        return {"type": "status", "server": "keychain-auth/0.1.0", "pid": os.getpid(),
                "store": "keyutils", "socket": path, "tools": 0, "pending": 0,
                "audit_seq": 0, "audit_head": "0" * 64}
    if kind in ("list_tools",):
        return {"type": "tools", "tools": []}
    return {"type": "ok"}


while True:
    conn, _ = srv.accept()
    conn.settimeout(5)
    try:
        while True:
            head = conn.recv(4, socket.MSG_WAITALL)
            if len(head) < 4:
                break
            (n,) = struct.unpack(">I", head)
            body = conn.recv(n, socket.MSG_WAITALL)
            with open(log, "ab") as f:
                f.write(body + b"\n")
            out = json.dumps(answer(json.loads(body))).encode()
            conn.sendall(struct.pack(">I", len(out)) + out)
    except (OSError, ValueError):
        pass
    finally:
        conn.close()
