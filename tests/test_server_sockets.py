"""The server sends its small responses at once (app.server_sockets), from its start.

Streamlit binds its listening socket with ``proto`` 0, so asyncio left Nagle's algorithm on for
every connection: each response after the first on a kept-alive connection waited for the
browser's delayed ACK, which Linux holds for at least 40 ms. Streamlit's front end is 54
JavaScript files fetched over six such connections, before a visitor sees a word.
"""

from __future__ import annotations

import http.client
import re
import socket
import statistics
import time

from app.server_sockets import send_without_delay

import browser

#: Far below the 40 ms minimum of Linux's delayed ACK, and far above a loopback response's
#: 1-2 ms, even on a busy machine.
WITHOUT_DELAYED_ACK_S = 0.02


def test_connections_accepted_after_the_call_have_nagle_off():
    with socket.socket(socket.AF_INET) as listener:  # as Streamlit binds it: proto 0
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = listener.getsockname()
        with socket.create_connection(address), listener.accept()[0] as accepted_before:
            assert not accepted_before.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert send_without_delay() >= 1
        with socket.create_connection(address) as after, listener.accept()[0] as accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            # The process's outgoing connections are not its server's business.
            assert not after.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_fresh_server_answers_kept_alive_requests_without_waiting_for_acks():
    """Before any visitor: what the first visitor's browser fetches first."""
    with browser.streamlit_server() as url:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.request("GET", "/")
        index = connection.getresponse().read().decode()
        files = re.findall(r'(?:src|href)="\.?/?(static/[^"]+\.js)"', index)
        assert len(files) >= 20, files
        seconds = []
        for path in files[:20]:
            started = time.perf_counter()
            connection.request("GET", f"/{path}")
            response = connection.getresponse()
            response.read()
            seconds.append(time.perf_counter() - started)
            assert response.status == 200, path
        connection.close()
    assert statistics.median(seconds) < WITHOUT_DELAYED_ACK_S, [round(s * 1000, 1) for s in seconds]
