"""How the lab command tells a node's agent record of this boot from one left by the previous boot."""

from __future__ import annotations

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
