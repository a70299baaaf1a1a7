"""A real HTTP server on 127.0.0.1 that speaks the OpenStack and EC2 metadata paths (for tests)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MetadataServer:
    """Serves user-data; `fail_first` requests answer 503 to exercise the client's retries."""

    def __init__(self, user_data: str | None, fail_first: int = 0, ec2_only: bool = False,
                 trickle: float = 0.0, padding: int = 0, routes: dict[str, bytes] | None = None, port: int = 0):
        self.user_data = user_data
        self.routes = routes or {}  # further paths, or other answers for the ones above
        self.fail_first = fail_first
        self.ec2_only = ec2_only
        self.trickle = trickle  # seconds between the bytes of each body: a server as slow as a hostile one
        self.padding = padding  # bytes of comment added to the user-data
        self.stopping = threading.Event()
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if server.fail_first > 0:
                    server.fail_first -= 1
                    return self._send(503, b"busy")
                routes = {
                    "/openstack": b"latest\n",
                    "/openstack/latest/meta_data.json": json.dumps({"uuid": "test", "name": "node"}).encode(),
                    "/latest/meta-data/": b"instance-id\nlocal-hostname\n",
                }
                if server.user_data is not None:
                    user_data = (server.user_data + "\n#" + "x" * server.padding).encode()
                    if not server.ec2_only:
                        routes["/openstack/latest/user_data"] = user_data
                    routes["/latest/user-data"] = user_data
                routes.update(server.routes)
                body = routes.get(self.path)
                return self._send(200, body) if body is not None else self._send(404, b"not found")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not server.trickle:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    if server.stopping.wait(server.trickle):
                        return
                    self.wfile.write(body[i:i + 1])
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
