"""systemd notification (Type=notify): READY, WATCHDOG, STATUS, STOPPING over $NOTIFY_SOCKET.

Stdlib only: a datagram to the socket systemd names.  Without NOTIFY_SOCKET (not under
systemd) every call is a no-op, so the daemon runs the same by hand.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(path)
        s.sendall(message.encode())
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, in seconds (None if not asked)."""
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec or (os.environ.get("WATCHDOG_PID") not in (None, str(os.getpid()))):
        return None
    return int(usec) / 2_000_000
