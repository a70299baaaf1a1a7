"""How the lab command tells a node's agent record of this boot from one left by the previous boot."""

from __future__ import annotations

import subprocess

import pytest

from compose import agents, timeline

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


def test_each_run_of_a_node_is_its_own_lane_with_the_steps_it_did():
    """A controller killed and restarted: its first run formed Galera; the second found config done and
    rejoined. The chart shows two lanes, the first with galera, the second without config."""
    first, second = BOOTED + 2, BOOTED + 300
    node = {
        "node": "ctl1", "role": "controller", "run_started": second,
        "history": [{"started": first, "finished": first + 100, "status": "done", "steps": {
            "config": {"status": "done", "started": first + 1, "finished": first + 2},
            "galera": {"status": "done", "started": first + 2, "finished": first + 40}}}],
        # The current record: config keeps the first run's times (found done), galera has the second run's.
        "steps": {"config": {"status": "done", "started": first + 1, "finished": first + 2},
                  "galera": {"status": "done", "started": second + 1, "finished": second + 20}},
    }
    chart = timeline.bars([node], BOOTED, second + 60)
    assert [(b.lane, b.step) for b in chart] == [("ctl1 #1", "config"), ("ctl1 #1", "galera"), ("ctl1 #2", "galera")]
    assert chart[2].start == pytest.approx(301) and chart[2].end == pytest.approx(320)


def test_runs_before_the_containers_started_are_not_drawn():
    old = BOOTED - 3600
    node = {"node": "cmp1", "role": "compute", "run_started": BOOTED + 1,
            "history": [{"started": old, "steps": {"compute": {"started": old + 1, "finished": old + 9}}}],
            "steps": {"compute": {"started": BOOTED + 2, "finished": BOOTED + 30, "status": "done"}}}
    assert [(b.lane, b.step) for b in timeline.bars([node], BOOTED, BOOTED + 60)] == [("cmp1 #1", "compute")]


def test_the_chart_labels_its_axis_in_seconds_and_draws_as_png_too(tmp_path):
    chart = [timeline.Bar("ctl1", "controller", 1, "galera", 2.0, 40.0, "done", ""),
             timeline.Bar("ctl1", "controller", 2, "galera", 300.0, 320.0, "done", "")]
    svg = timeline.svg(chart, "title")
    assert timeline.AXIS_TITLE in svg and ">0 s<" in svg and "ctl1 #2  galera" in svg
    out = tmp_path / "chart.png"
    timeline.write(chart, "title", out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
