"""Show the agent's recorded state as a table or JSON."""

from __future__ import annotations

import json
import time
from typing import Any

from firstboot.state import StateStore


def _clock(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "-"


def as_json(state: StateStore) -> str:
    return json.dumps(state.data, indent=2, sort_keys=True)


def as_table(state: StateStore) -> str:
    agent: dict[str, Any] = state.data["agent"]
    steps: dict[str, dict[str, Any]] = state.data["steps"]
    if not agent and not steps:
        return f"no agent run recorded in {state.path}"
    head = (f"node {agent.get('node', '?')} ({agent.get('role', '?')}, cluster {agent.get('cluster', '?')}): "
            f"{agent.get('status', '?')}; last run {_clock(agent.get('started'))}-{_clock(agent.get('finished'))}"
            f"; document from {agent.get('source', '?')}")
    rows = [("STEP", "STATUS", "RUNS", "STARTED", "SECONDS", "DETAIL / ERROR")]
    plan = [n for n in agent.get("plan", []) if n in steps]
    for name in plan + sorted(set(steps) - set(plan)):
        rec = steps[name]
        seconds = rec.get("seconds")
        rows.append((name, rec.get("status", "?"), str(rec.get("runs", 0)), _clock(rec.get("started")),
                     f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "-",
                     rec.get("error") or rec.get("detail") or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [head]
    if agent.get("changed_files") or agent.get("restarted"):
        lines.append(f"this run changed {len(agent.get('changed_files') or [])} files and restarted: "
                     f"{', '.join(agent.get('restarted') or []) or 'nothing'}")
    lines.append("")
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5] for r in rows]
    if agent.get("error"):
        lines += ["", f"error: {agent['error']}"]
    return "\n".join(line.rstrip() for line in lines)
