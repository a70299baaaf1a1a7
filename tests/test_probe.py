"""The lab's probe (compose/probe.py): when it asks keystone for a token and what it counts as failed. Pure
logic: the HTTP layer is replaced by a recorder; the probe against a real cloud runs in tests/test_lab.py."""

from __future__ import annotations

import pytest
import requests

from compose import probe as probe_module
from compose.probe import Probe


class Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None, body: dict | None = None):
        self.status_code, self.headers, self._body, self.text = status, headers or {}, body or {}, "error"

    def json(self) -> dict:
        return self._body


@pytest.fixture
def cloud(monkeypatch):
    """Records each request's (method, path, token); keystone answers with the statuses queued in `keystone`."""
    seen: list[tuple[str, str, str]] = []
    keystone: list[int] = []
    issued = iter(f"token-{n}" for n in range(100))

    def request(method, url, **kwargs):
        path = url.split("/", 3)[3]
        seen.append((method, path, kwargs["headers"].get("X-Auth-Token", "")))
        if path == "v3/auth/tokens":
            status = keystone.pop(0) if keystone else 201
            if status == 503:
                raise requests.ConnectionError("refused")
            return Answer(status, {"X-Subject-Token": next(issued)} if status == 201 else {})
        return Answer(200, body={"servers": [{"id": "s1", "status": "ACTIVE"}]})

    monkeypatch.setattr(probe_module.requests, "request", request)
    return seen, keystone


def test_the_token_is_kept_for_token_every_seconds_then_asked_for_again(cloud, monkeypatch):
    seen, _ = cloud
    clock = [1000.0]
    monkeypatch.setattr(probe_module.time, "monotonic", lambda: clock[0])
    probe = Probe("192.0.2.10", "secret", "/ca.pem", token_every=10.0)
    for _ in range(3):  # 0, 4, 8 s: one token
        probe.once()
        clock[0] += 4
    probe.once()  # 12 s: a new one
    tokens = [entry for entry in seen if entry[1] == "v3/auth/tokens"]
    lists = [entry for entry in seen if entry[1] != "v3/auth/tokens"]
    assert len(tokens) == 2 and len(lists) == 8
    assert [token for _, _, token in lists] == ["token-0"] * 6 + ["token-1"] * 2
    assert probe.requests == 10 and probe.failures == [] and probe.statuses == {"s1": {"ACTIVE"}}


def test_a_refused_token_is_a_failure_and_asked_for_again_at_the_next_cycle(cloud):
    seen, keystone = cloud
    keystone.extend([401, 503])
    probe = Probe("192.0.2.10", "secret", "/ca.pem")
    probe.once()
    probe.once()
    probe.once()
    assert [f.request for f in probe.failures] == ["token", "token"]
    assert "HTTP 401" in probe.failures[0].error and "ConnectionError" in probe.failures[1].error
    # No list was sent without a token; the third cycle got one and sent both.
    assert [path for _, path, _ in seen] == ["v3/auth/tokens"] * 3 + ["v2/images", "v2.1/servers/detail?all_tenants=1"]
