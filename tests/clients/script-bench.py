#!/usr/bin/env python3
"""Times connect + hello + get from a Python script, a new connection each time, against
the keychain-auth socket named on the command line (each connection makes the daemon
identify the script anew: interpreter, command line, script file and, on Linux, the
startup files of docs/protocol.md 9.3). Prints one line: N, p50 and p99 in microseconds,
and the first answer's type (so a refusal shows). Used for docs/benchmarks.md.
Usage: script-bench.py SOCKET NAME N"""
import json
import socket
import struct
import sys
import time


def ask(s, msg):
    b = json.dumps(msg).encode()
    s.sendall(struct.pack(">I", len(b)) + b)
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    n = struct.unpack(">I", head)[0]
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    return json.loads(body)


def main():
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times, first = [], None
    for _ in range(n):
        t = time.perf_counter_ns()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.connect(path)
        ask(s, {"type": "hello", "protocol": 1})
        r = ask(s, {"type": "get", "name": name})
        s.close()
        times.append((time.perf_counter_ns() - t) / 1000)
        first = first or r
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(json.dumps({"n": n, "p50_us": round(p(0.5), 1), "p99_us": round(p(0.99), 1),
                      "first": first.get("type"), "hash": first.get("hash"),
                      "code": first.get("code")}))


main()
