"""A client of the cloud that notices every failed request: what `roll`, `reconfigure` and `add` are measured
against. From this host, through the VIP, every INTERVAL seconds: the image list (glance) and the server list
(nova, every project's, with each server's status), with a token from keystone asked for anew every
TOKEN_EVERY seconds. Each request opens its own connection and is sent once: a request that needs a retry has
failed, and so has one slower than TIMEOUT. A server seen in any status but ACTIVE (or MIGRATING, on its way
to another host) was interrupted.

A token per cycle (as this client did until Dec 7) is not what clients do (a session keeps its token until it
nears expiry), and it loaded the lab it measured: keystone's bcrypt check of the password, then each API's
validation of a token it had never seen, cost 25 CPU-seconds a minute on an idle three-controller lab against
10 with a token every 10 s, and a roll of its controllers took a quarter longer (bench/probe.py). Keystone's
token issue is still asked for through every move."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

from firstboot import catalog
from firstboot.addresses import hostport
from firstboot.keystone_api import password_request

INTERVAL = 0.5
TOKEN_EVERY = 10.0
TIMEOUT = 30.0
ACTIVE = {"ACTIVE", "MIGRATING"}


@dataclass
class Failure:
    at: float  # seconds since the probe started
    request: str
    error: str


@dataclass
class Probe:
    vip: str
    password: str
    ca_file: str  # the site CA: every request verifies the VIP's certificate
    interval: float = INTERVAL
    token_every: float = TOKEN_EVERY
    requests: int = 0
    failures: list[Failure] = field(default_factory=list)
    slowest_s: float = 0.0
    statuses: dict[str, set[str]] = field(default_factory=dict)  # server id -> every status seen
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0
    _token: str = ""
    _token_at: float = 0.0

    def url(self, api: str, path: str) -> str:
        return f"https://{hostport(self.vip, catalog.PORTS[api])}{path}"

    def _send(self, name: str, method: str, url: str, headers: dict[str, str] | None = None,
              body: dict | None = None) -> requests.Response | None:
        self.requests += 1
        began = time.monotonic()
        try:
            response = requests.request(method, url, timeout=TIMEOUT, json=body, verify=self.ca_file,
                                        headers={"Connection": "close", **(headers or {})})
        except requests.RequestException as error:
            self.failures.append(Failure(round(began - self._started, 1), name, f"{type(error).__name__}: {error}"))
            return None
        self.slowest_s = max(self.slowest_s, time.monotonic() - began)
        if response.status_code >= 400:
            self.failures.append(Failure(round(began - self._started, 1), name,
                                         f"HTTP {response.status_code}: {response.text[:200]}"))
            return None
        return response

    def _token_now(self) -> str:
        """The token in hand, or a new one once it is TOKEN_EVERY seconds old ("" when keystone failed)."""
        if self._token and time.monotonic() - self._token_at < self.token_every:
            return self._token
        body = password_request("admin", self.password, "admin")
        answer = self._send("token", "POST", self.url("keystone", "/v3/auth/tokens"), body=body)
        self._token = answer.headers.get("X-Subject-Token", "") if answer is not None else ""
        self._token_at = time.monotonic()
        return self._token

    def once(self) -> None:
        token = self._token_now()
        if not token:
            return
        headers = {"X-Auth-Token": token}
        self._send("image list", "GET", self.url("glance", "/v2/images"), headers=headers)
        servers = self._send("server list", "GET", self.url("nova", "/v2.1/servers/detail?all_tenants=1"),
                             headers=headers)
        for server in (servers.json().get("servers", []) if servers is not None else []):
            self.statuses.setdefault(server["id"], set()).add(server.get("status", "?"))

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.once()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self) -> Probe:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, object]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=TIMEOUT * 3 + 5)
        interrupted = {sid: sorted(seen) for sid, seen in self.statuses.items() if seen - ACTIVE}
        return {"requests": self.requests, "failed": len(self.failures), "slowest_s": round(self.slowest_s, 2),
                "seconds": round(time.monotonic() - self._started, 1), "servers": len(self.statuses),
                "servers_interrupted": len(interrupted), "interrupted": interrupted,
                "failures": [f.__dict__ for f in self.failures[:20]]}
