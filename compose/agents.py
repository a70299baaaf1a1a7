"""What the lab command and its checks read of a node's first-boot agent, from outside its container."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import timeline

from firstboot import state

# The agent starts after its container does; this allows for the two clocks' rounding.
BOOT_SLACK_SECONDS = 1.0


def agent_status(container: str) -> dict[str, Any] | None:
    """The agent's record (what `goldstack-firstboot status --json` prints), read from its state file: `up`
    polls every node every few seconds, and starting the agent's Python for each read cost ~0.35 s of CPU
    (a quarter of a core while the lab comes up); reading the file costs a seventh of that."""
    proc = subprocess.run(["docker", "exec", container, "cat", state.DEFAULT_PATH], capture_output=True, text=True,
                          timeout=60)
    try:
        return json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else None
    except json.JSONDecodeError:
        return None


def container_started(container: str) -> float | None:
    """When the container last started (epoch), from Docker."""
    proc = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container], capture_output=True,
                          text=True, timeout=60)
    return timeline.parse_time(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def of_this_boot(status: dict[str, Any] | None, booted: float) -> dict[str, Any] | None:
    """The record if its agent run began in the container's current boot, else None. A node brought back
    with its volume keeps the previous boot's record (often "done") until its agent starts again."""
    if not status or (status.get("agent", {}).get("started") or 0) < booted - BOOT_SLACK_SECONDS:
        return None
    return status
