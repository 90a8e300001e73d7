"""Send the web server's small responses at once: Nagle's algorithm off on its TCP sockets.

Streamlit (1.67) binds its listening socket itself, as ``socket.socket(family)``, so the socket's
``proto`` is 0; asyncio turns TCP_NODELAY on only for accepted sockets whose ``proto`` is
IPPROTO_TCP. Nagle's algorithm then holds every response after the first on a kept-alive
connection until the browser's delayed ACK (40 ms on Linux): the 54 JavaScript files of
Streamlit's front end came 44 ms apart on each of the browser's six connections, and a visitor's
page stayed blank ~0.25 s longer. It is uvicorn's issue #3149 in Streamlit's own binding code.

The app's entry (app/main.py) does it when the server starts, on the listening socket: the
connections it accepts inherit the option (Linux copies it to each accepted socket).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_OWN_FDS = Path("/proc/self/fd")


def _tcp_sockets() -> list[socket.socket]:
    """Duplicates of this process's TCP sockets (closing one leaves the original open); none where
    the system has no ``/proc`` (macOS, Windows)."""
    found = []
    try:
        fds = [int(name) for name in os.listdir(_OWN_FDS)]
    except OSError:
        return []
    for fd in fds:
        try:
            if not os.readlink(_OWN_FDS / str(fd)).startswith("socket:"):
                continue
            copy = os.dup(fd)
        except OSError:  # closed meanwhile
            continue
        try:
            duplicate = socket.socket(fileno=copy)
        except OSError:  # a socket Python does not know
            os.close(copy)
            continue
        if duplicate.family in (socket.AF_INET, socket.AF_INET6) and duplicate.type == socket.SOCK_STREAM:
            found.append(duplicate)
        else:
            duplicate.close()
    return found


def send_without_delay() -> int:
    """Turn TCP_NODELAY on for this process's listening TCP sockets, so for every connection they
    accept from now on; return how many had it off."""
    turned = 0
    for sock in _tcp_sockets():
        with sock:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                if listening and not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    turned += 1
            except OSError:  # closed meanwhile
                continue
    return turned
