"""The controller's Galera health endpoint (port PORTS["galera-health"], management address only).

GET /        200 when this node is Primary and Synced (or a mariabackup donor, which keeps serving),
             else 503: HAProxy's check, so a node that is joining or cut off from the majority gets no
             client connections.
GET /galera  this node's report as JSON: what the peers' agents exchange to decide who bootstraps.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from firstboot import galera_local

log = logging.getLogger("goldstack")


SERVING_TTL_SECONDS = 1.0


class ServingCache:
    """galera_local.serving() for at most SERVING_TTL_SECONDS: three HAProxies check every controller
    every 2 s, and each answer costs a `mariadb` client process; checks that arrive together share one."""

    def __init__(self, probe: Callable[[], tuple[bool, str]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.probe, self.clock = probe or (lambda: galera_local.serving()), clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._value: tuple[bool, str] = (False, "not asked yet")

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= SERVING_TTL_SECONDS:
                self._value, self._at = self.probe(), now
            return self._value


def make_handler(node: str, root: Path, serving: Callable[[], tuple[bool, str]] | None = None
                 ) -> type[BaseHTTPRequestHandler]:
    serving = serving or ServingCache()

    class Handler(BaseHTTPRequestHandler):
        server_version = "goldstack-galera-health"

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path not in ("/", "/galera"):
                self._send(404, b"not found: try / or /galera\n", "text/plain")
                return
            if path == "/galera":
                report = galera_local.report(node, root)
                self._send(200, json.dumps(report.as_dict()).encode() + b"\n", "application/json")
                return
            ok, state = serving()
            if ok:
                self._send(200, f"Galera node serves: {state}\n".encode(), "text/plain")
            else:
                self._send(503, f"not serving: {state}\n".encode(), "text/plain")

        do_HEAD = do_GET

        def log_message(self, fmt: str, *args: object) -> None:  # HAProxy polls every 2 s: stay quiet
            log.debug("%s " + fmt, self.address_string(), *args)

    return Handler


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # HAProxy's check hangs up once it has the status line: a reset while the body is written is
        # the normal end of a check, not worth a traceback in the journal every two seconds.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve(bind: str, port: int, node: str, root: Path = Path("/")) -> None:
    server = HealthServer((bind, port), make_handler(node, root))
    log.info("galera health endpoint for %s on %s:%d", node, bind, port)
    server.serve_forever()
