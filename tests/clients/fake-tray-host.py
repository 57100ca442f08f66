#!/usr/bin/python3
"""A stand-in tray host for a desktop that has none (Xvfb): owns the name
org.kde.StatusNotifierWatcher on the session bus, so that keychain-auth-app takes the
tray icon as shown, and answers nothing else. Runs until killed. Needs python3-dbus and
python3-gi (the system Python's).
"""

import dbus
import dbus.mainloop.glib
import dbus.service
from gi.repository import GLib

dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
name = dbus.service.BusName("org.kde.StatusNotifierWatcher", bus)
print("ready", flush=True)
GLib.MainLoop().run()
