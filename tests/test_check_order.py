"""The order the lab checks run in (compose/schedule.py's NEEDS), with stand-in checks that record when they
start and end and reach their moments: `failover` starts only once every other check but the server is
through, the server is built while the killed controller rejoins, not after, and without failover once
the image, subnet and volume it uses exist. The real checks run in tests/test_lab.py."""

from __future__ import annotations

import threading
import time

import pytest

from compose import schedule
from compose.labview import LabView


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(name: str, what: str) -> None:
        with lock:
            events.append((name, what))

    def stand_in(name: str, seconds: float):
        # The moments of this check that others wait for (NEEDS), reached half-way.
        moments = {need.split(":", 1)[1] for needs in schedule.NEEDS.values() for need in needs
                   if need.startswith(f"{name}:")}

        def check(lab: LabView) -> tuple[str, dict]:
            record(name, "start")
            time.sleep(seconds)
            for moment in sorted(moments):
                record(name, moment)
                lab.reach(name, moment)
            time.sleep(seconds)
            record(name, "end")
            return "ok", {}
        return check

    monkeypatch.setattr(schedule, "CHECKS", {n: stand_in(n, 1.0 if n == "horizon" else 0.2) for n in schedule.CHECKS})
    monkeypatch.setattr(schedule, "DESTRUCTIVE", {"failover": stand_in("failover", 0.5)})
    lab = LabView(nodes={"ctl1": "controller"}, containers={}, vip="192.0.2.10", admin_password="",
                         artifacts=tmp_path)
    return lab, events


def test_failover_follows_the_other_checks_and_the_server_is_built_while_the_controller_rejoins(recorded):
    lab, events = recorded
    results = schedule.run(lab, [*schedule.CHECKS, "failover"])
    assert all(r.ok for r in results) and [r.name for r in results] == [*schedule.CHECKS, "failover"]
    at = {event: i for i, event in enumerate(events)}
    for name in schedule.CHECKS:
        if name != "server":
            assert at[(name, "end")] < at[("failover", "start")], events
    assert at[("failover", "restarted")] < at[("server", "start")] < at[("failover", "end")], events


def test_without_failover_the_server_waits_only_for_what_it_uses(recorded):
    lab, events = recorded
    results = schedule.run(lab, list(schedule.CHECKS))
    assert all(r.ok for r in results)
    at = {event: i for i, event in enumerate(events)}
    for name, moment in (("image", "uploaded"), ("network", "subnet"), ("volume", "created")):
        assert at[(name, moment)] < at[("server", "start")], events
    assert at[("server", "start")] < max(at[(name, "end")] for name in ("image", "network", "volume")), events
    assert at[("server", "start")] < at[("horizon", "end")], events  # horizon is not waited for
