"""The probe the infra step waits on: a database greeting through the VIP, not merely an open port."""

from __future__ import annotations

import socket
import threading

from firstboot import mysql

# The first bytes of a MariaDB handshake: 3-byte length, sequence 0, protocol version 10, server version.
HANDSHAKE = bytes([0x5B, 0, 0, 0, 10]) + b"11.8.3-MariaDB\0"


def serve_once(reply: bytes) -> int:
    """A listener on loopback that answers one connection with `reply` (empty: accept and close at once,
    as HAProxy does when no server behind it is up); its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                if reply:
                    conn.sendall(reply)

    threading.Thread(target=answer, daemon=True).start()
    return listener.getsockname()[1]


def test_a_server_greeting_counts():
    assert mysql.greets("127.0.0.1", serve_once(HANDSHAKE))


def test_a_refusal_of_this_host_counts():
    # What MariaDB sends a client whose host no user is granted yet: the server answered.
    refusal = bytes([0x44, 0, 0, 0, 0xFF, 0x6A, 0x04]) + b"Host '10.72.0.11' is not allowed to connect"
    assert mysql.greets("127.0.0.1", serve_once(refusal))


def test_a_proxy_that_closes_at_once_does_not():
    assert not mysql.greets("127.0.0.1", serve_once(b""))


def test_another_protocol_does_not():
    assert not mysql.greets("127.0.0.1", serve_once(b"HTTP/1.0 400 Bad Request\r\n\r\n"))


def test_nothing_listening_does_not():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    assert not mysql.greets("127.0.0.1", port, timeout=1)
