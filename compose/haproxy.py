"""A controller's HAProxy through its runtime API (the admin socket), from this host: which servers it
counts out, how many sessions each has, and taking a controller's servers out of service (drain, then
maintenance) and back, so a node can be restarted while the others carry every request."""

from __future__ import annotations

import csv
import io
import subprocess
from dataclasses import dataclass

from firstboot import catalog

SOCKET = "/run/haproxy/admin.sock"
# Sends stdin's commands (`;`-separated) on one connection and prints the answer: run by the node's python3.
CLIENT = f"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({SOCKET!r})
s.sendall(sys.stdin.read().encode())
s.shutdown(socket.SHUT_WR)
data = b""
while chunk := s.recv(65536):
    data += chunk
sys.stdout.write(data.decode())
"""
NOT_PROXIED = ("stats",)  # HAProxy's own page: no node's service behind it


class Unreachable(Exception):
    """The runtime API did not answer (HAProxy down, or the container gone)."""


@dataclass(frozen=True)
class Row:
    proxy: str
    server: str  # FRONTEND, BACKEND or a server (a controller's name)
    sessions: int
    status: str


def runtime(container: str, *commands: str, timeout: float = 30) -> str:
    proc = subprocess.run(["docker", "exec", "-i", container, "python3", "-c", CLIENT],
                          input="; ".join(commands) + "\n", capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise Unreachable(f"HAProxy's runtime API in {container[:12]}: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def stats(container: str) -> list[Row]:
    """The VIP's proxies (Galera and every API), each server's sessions and status. A controller's own TLS
    fronts (catalog.LOCAL_FRONT_SUFFIX) are left out: they are that node's, not the VIP's."""
    text = runtime(container, "show stat").lstrip("# ")
    rows = []
    for rec in csv.DictReader(io.StringIO(text)):
        name = rec.get("pxname")
        if name and name not in NOT_PROXIED and not name.endswith(catalog.LOCAL_FRONT_SUFFIX):
            rows.append(Row(rec["pxname"], rec["svname"], int(rec.get("scur") or 0), rec.get("status", "")))
    return rows


def counted_out(container: str) -> list[str]:
    """`proxy/server=STATUS` of every server this HAProxy does not count UP."""
    return [f"{r.proxy}/{r.server}={r.status}" for r in stats(container)
            if r.server not in ("FRONTEND", "BACKEND") and not r.status.startswith("UP")]


def server_sessions(container: str, server: str) -> int:
    """Sessions this HAProxy has open to `server`'s services, over every proxy."""
    return sum(r.sessions for r in stats(container) if r.server == server)


def frontend_sessions(container: str) -> int:
    """Client sessions this HAProxy is serving (on the VIP), over every proxy."""
    return sum(r.sessions for r in stats(container) if r.server == "FRONTEND")


def proxies_of(container: str, server: str) -> list[str]:
    return sorted({r.proxy for r in stats(container) if r.server == server})


def set_state(container: str, server: str, state: str, proxies: list[str] | None = None) -> None:
    """`state` (ready, drain or maint) for `server` in every proxy that has it (or in `proxies`)."""
    names = proxies if proxies is not None else proxies_of(container, server)
    if names:
        answer = runtime(container, *(f"set server {p}/{server} state {state}" for p in names))
        if answer.strip():
            raise Unreachable(f"HAProxy refused `set server ... {server} state {state}`: {answer.strip()[:300]}")


def shutdown_sessions(container: str, proxy: str, server: str) -> None:
    runtime(container, f"shutdown sessions server {proxy}/{server}")
