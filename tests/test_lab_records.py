"""How the lab command tells a node's agent record of this boot from one left by the previous boot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compose"))
import agents
import timeline

BOOTED = timeline.parse_time("2026-11-24T01:00:00.250000000Z")


def record(started: float | None, status: str = "done") -> dict:
    return {"agent": {"status": status, "started": started}}


def test_a_run_begun_after_the_container_started_is_of_this_boot():
    assert agents.of_this_boot(record(BOOTED + 3), BOOTED) == record(BOOTED + 3)


def test_rounding_between_docker_and_agent_clocks_is_allowed():
    assert agents.of_this_boot(record(BOOTED - 0.5), BOOTED) is not None


def test_the_previous_boots_done_is_not_taken_for_this_boot():
    assert agents.of_this_boot(record(BOOTED - 120), BOOTED) is None


def test_a_record_without_a_start_or_no_record_is_not_of_this_boot():
    assert agents.of_this_boot(record(None, "running"), BOOTED) is None
    assert agents.of_this_boot(None, BOOTED) is None
    assert agents.of_this_boot({}, BOOTED) is None


class FakeDocker:
    """`docker inspect` names the state volume's directory on this host; `docker exec cat` answers `inside`."""

    def __init__(self, source: str, inside: str = ""):
        self.source, self.inside, self.calls = source, inside, []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd[1])
        out = self.source if cmd[1] == "inspect" else self.inside
        return subprocess.CompletedProcess(cmd, 0, stdout=out, stderr="")


def test_the_state_is_read_on_the_host_through_the_volume_without_docker_exec(tmp_path, monkeypatch):
    fake = FakeDocker(str(tmp_path))
    monkeypatch.setattr(agents.subprocess, "run", fake)
    monkeypatch.setattr(agents, "_state_on_host", {})
    assert agents.agent_status("lab_ctl1_1") is None  # the agent has not written it yet
    (tmp_path / "state.json").write_text('{"agent": {"status": "running"}}')
    assert agents.agent_status("lab_ctl1_1") == {"agent": {"status": "running"}}
    assert fake.calls == ["inspect"]  # asked once where the volume is; no exec


def test_a_volume_this_host_cannot_read_falls_back_to_docker_exec(tmp_path, monkeypatch):
    fake = FakeDocker(str(tmp_path / "elsewhere"), inside='{"agent": {"status": "done"}}')
    monkeypatch.setattr(agents.subprocess, "run", fake)
    monkeypatch.setattr(agents, "_state_on_host", {})
    assert agents.agent_status("lab_ctl1_1") == {"agent": {"status": "done"}}
    assert fake.calls == ["inspect", "exec"]
