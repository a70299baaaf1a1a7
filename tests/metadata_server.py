"""A real HTTP server on 127.0.0.1 that speaks the OpenStack and EC2 metadata paths (for tests)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MetadataServer:
    """Serves user-data; `fail_first` requests answer 503 to exercise the client's retries."""

    def __init__(self, user_data: str | None, fail_first: int = 0, ec2_only: bool = False):
        self.user_data = user_data
        self.fail_first = fail_first
        self.ec2_only = ec2_only
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
                    if not server.ec2_only:
                        routes["/openstack/latest/user_data"] = server.user_data.encode()
                    routes["/latest/user-data"] = server.user_data.encode()
                body = routes.get(self.path)
                return self._send(200, body) if body is not None else self._send(404, b"not found")

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MetadataServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
