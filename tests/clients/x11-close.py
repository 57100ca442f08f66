#!/usr/bin/env python3
"""The close button of a window manager, for a display that has none (Xvfb): sends
WM_DELETE_WINDOW to every top-level window on $DISPLAY whose title is TITLE, as a
window manager does when its close button is pressed. Prints how many it asked; exits 1
when no window has that title. Only the standard library (ctypes over libX11).

Usage: x11-close.py TITLE
"""

import ctypes
import sys

X = ctypes.cdll.LoadLibrary("libX11.so.6")
Window = ctypes.c_ulong
Atom = ctypes.c_ulong
X.XOpenDisplay.restype = ctypes.c_void_p
X.XOpenDisplay.argtypes = [ctypes.c_char_p]
X.XDefaultRootWindow.restype = Window
X.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
X.XInternAtom.restype = Atom
X.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
X.XQueryTree.argtypes = [
    ctypes.c_void_p,
    Window,
    ctypes.POINTER(Window),
    ctypes.POINTER(Window),
    ctypes.POINTER(ctypes.POINTER(Window)),
    ctypes.POINTER(ctypes.c_uint),
]
X.XFetchName.argtypes = [ctypes.c_void_p, Window, ctypes.POINTER(ctypes.c_char_p)]
X.XSendEvent.argtypes = [ctypes.c_void_p, Window, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
X.XFlush.argtypes = [ctypes.c_void_p]
X.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
X.XCloseDisplay.argtypes = [ctypes.c_void_p]


class ClientMessage(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", Window),
        ("message_type", Atom),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    ]


class Event(ctypes.Union):
    # XEvent is 24 longs whatever its kind.
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    title = sys.argv[1].encode()
    dpy = X.XOpenDisplay(None)
    if not dpy:
        sys.exit("x11-close.py: cannot open the display $DISPLAY")
    root = X.XDefaultRootWindow(dpy)
    protocols = X.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
    delete = X.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
    r, p = Window(), Window()
    children = ctypes.POINTER(Window)()
    n = ctypes.c_uint()
    X.XQueryTree(dpy, root, ctypes.byref(r), ctypes.byref(p), ctypes.byref(children), ctypes.byref(n))
    asked = 0
    for i in range(n.value):
        w = children[i]
        name = ctypes.c_char_p()
        if X.XFetchName(dpy, w, ctypes.byref(name)) and name.value == title:
            ev = Event()
            ev.xclient.type = 33  # ClientMessage
            ev.xclient.window = w
            ev.xclient.message_type = protocols
            ev.xclient.format = 32
            ev.xclient.data[0] = delete
            ev.xclient.data[1] = 0  # CurrentTime
            X.XSendEvent(dpy, w, 0, 0, ctypes.byref(ev))
            asked += 1
    X.XSync(dpy, 0)
    X.XCloseDisplay(dpy)
    print(asked)
    sys.exit(0 if asked else 1)


main()
