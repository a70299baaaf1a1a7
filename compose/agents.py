"""What the lab command and its checks read of a node's first-boot agent, from outside its container."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from compose import timeline
from firstboot import state

# The agent starts after its container does; this allows for the two clocks' rounding.
BOOT_SLACK_SECONDS = 1.0


STATE_FILE = PurePosixPath(state.DEFAULT_PATH)
STATE_DIR = str(STATE_FILE.parent)
_state_on_host: dict[str, Path | None] = {}


def state_file_on_host(container: str) -> Path | None:
    """The state file through the node's state volume where this host can read it (a local volume, and
    root or a readable volume directory): `up` polls every node every 2 s, and a `docker exec` each time
    costs dockerd, containerd and runc some 85 ms of CPU."""
    if container not in _state_on_host:
        proc = subprocess.run(["docker", "inspect", "-f", "{{range .Mounts}}{{if eq .Destination \"" + STATE_DIR +
                               "\"}}{{.Source}}{{end}}{{end}}", container], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            return None  # no such container (yet): ask again next time
        source = proc.stdout.strip()
        readable = bool(source) and os.access(source, os.R_OK | os.X_OK)
        _state_on_host[container] = Path(source) / STATE_FILE.name if readable else None
    return _state_on_host[container]


def agent_status(container: str) -> dict[str, Any] | None:
    """The agent's record (what `goldstack-firstboot status --json` prints), read from its state file
    (atomically replaced by the agent, so never half-written): on this host when it can, else in the node."""
    text: str | None = None
    path = state_file_on_host(container)
    if path is not None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None  # the agent has not written it yet
        except OSError:
            text = None
    if text is None:
        proc = subprocess.run(["docker", "exec", container, "cat", state.DEFAULT_PATH], capture_output=True,
                              text=True, timeout=60)
        text = proc.stdout if proc.returncode == 0 else ""
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        return None


def container_started(container: str) -> float | None:
    """When the container last started (epoch), from Docker."""
    proc = subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", container], capture_output=True,
                          text=True, timeout=60)
    return timeline.parse_time(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None


def of_this_boot(status: dict[str, Any] | None, booted: float) -> dict[str, Any] | None:
    """The record if its agent run began after `booted` (the container's start, or when a new run was
    asked for), else None. A node brought back with its volume keeps the previous boot's record (often
    "done") until its agent starts again."""
    if not status or (status.get("agent", {}).get("started") or 0) < booted - BOOT_SLACK_SECONDS:
        return None
    return status


def current_step(status: dict[str, Any] | None) -> tuple[str, str, str]:
    """(agent status, the step running or last failed, its detail) from `status --json`."""
    if not status:
        return "starting", "-", ""
    agent = status.get("agent", {})
    steps = status.get("steps", {})
    plan = agent.get("plan") or list(steps)
    for name in plan:
        rec = steps.get(name, {})
        if rec.get("status") in ("running", "failed") or not rec:
            return agent.get("status", "?"), name, rec.get("error") or rec.get("detail") or ""
    return agent.get("status", "?"), plan[-1] if plan else "-", ""


def follow(containers: Callable[[], dict[str, tuple[str, bool]]], names: list[str], timeout: float,
           started: float, since: dict[str, float] | None = None,
           say: Callable[[str], None] = lambda line: print(line, flush=True)) -> bool:
    """Print each node's step as it changes until every agent is done (agents retry failures by
    themselves, so a failure is final only when the timeout passes). A record counts from the agent run
    begun after `since[node]` (epoch; default: the container's start, so a previous boot's record is not
    taken for this one's)."""
    last: dict[str, tuple[str, str]] = {}
    booted: dict[str, float] = {}  # container id -> when it started (epoch)
    while True:
        done = 0
        found = containers()
        for name in names:
            container, running = found.get(name, ("", False))
            status = agent_status(container) if running else None
            if status and container not in booted:
                booted[container] = container_started(container) or 0
            floor = (since or {}).get(name, booted.get(container, 0))
            status = of_this_boot(status, floor)
            state, step, detail = current_step(status)
            if (state, step) != last.get(name):
                last[name] = (state, step)
                say(f"[{time.monotonic() - started:5.0f}s] {name:5} {state:8} {step} {detail[:100]}")
            done += state == "done"
        if done == len(names):
            return True
        if time.monotonic() - started > timeout:
            return False
        time.sleep(2)
