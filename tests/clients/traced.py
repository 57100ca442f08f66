#!/usr/bin/env python3
"""Runs a program under ptrace (as a debugger would) and relays its output: the program
calls PTRACE_TRACEME, so while it runs its TracerPid is this process. Used by the
end-to-end test that a traced client is refused.
Usage: traced.py PROGRAM [ARGS...]"""
import ctypes
import os
import sys

PTRACE_TRACEME, PTRACE_CONT = 0, 7
libc = ctypes.CDLL(None, use_errno=True)
pid = os.fork()
if pid == 0:
    if libc.ptrace(PTRACE_TRACEME, 0, None, None) != 0:
        os._exit(90)
    os.execv(sys.argv[1], sys.argv[1:])
while True:
    _, status = os.waitpid(pid, 0)
    if os.WIFEXITED(status):
        sys.exit(os.WEXITSTATUS(status))
    if os.WIFSIGNALED(status):
        sys.exit(128 + os.WTERMSIG(status))
    # stopped (the exec, or a signal): let it go on, passing signals other than SIGTRAP
    sig = os.WSTOPSIG(status)
    libc.ptrace(PTRACE_CONT, pid, None, 0 if sig == 5 else sig)
