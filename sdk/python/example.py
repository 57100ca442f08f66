#!/usr/bin/env python3
"""Example and test client for keychain_auth.py: `example.py get NAME`, `set NAME VALUE`,
`delete NAME`, `list`, `whoami`, `get-wait NAME SECONDS`, `inherit`. Prints one JSON
line: the answer, or {"error": code, "message": ..., "hash": ...}."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keychain_auth  # noqa: E402


def main(argv):
    op, args = argv[1], argv[2:]
    try:
        with keychain_auth.connect("example.py") as ka:
            if op == "get":
                out = {"value": ka.get(args[0])}
            elif op == "get-wait":
                out = {"value": ka.get(args[0], wait=float(args[1]))}
            elif op == "set":
                ka.set(args[0], args[1])
                out = {"ok": True}
            elif op == "delete":
                ka.delete(args[0])
                out = {"ok": True}
            elif op == "list":
                out = {"names": ka.list()}
            elif op == "whoami":
                out = ka.whoami()
            elif op == "inherit":
                # A child started while connected must not hold the socket.
                fd = ka._sock.fileno()
                child = subprocess.run(
                    [sys.executable, "-c", "import os,sys; os.fstat(int(sys.argv[1]))", str(fd)],
                    close_fds=False, capture_output=True)
                out = {"child_has_fd": child.returncode == 0, "inheritable": ka._sock.get_inheritable()}
            else:
                raise SystemExit("unknown op " + op)
    except keychain_auth.KeychainAuthError as e:
        out = {"error": e.code, "message": e.message, "hash": e.hash, "class": type(e).__name__}
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
