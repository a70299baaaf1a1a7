"""Show the agent's recorded state as a table or JSON."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

from firstboot import catalog, tls
from firstboot.files import under_root
from firstboot.state import StateStore


def _clock(epoch: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) if epoch else "-"


def certificate(root: Path) -> dict[str, Any] | None:
    """The node certificate the agent installed: its end date, days left, and whether it is time to renew."""
    path = under_root(root, catalog.TLS_CERT)
    try:
        left = tls.days_left(path.read_text())
    except (OSError, ValueError):  # none yet, or not a certificate: nothing to report
        return None
    ends = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=left)
    return {"path": catalog.TLS_CERT, "not_after": ends.strftime("%Y-%m-%d"), "days_left": round(left, 1),
            "renew": left < tls.RENEW_DAYS}


def _certificate_line(cert: dict[str, Any] | None) -> list[str]:
    if cert is None:
        return []
    line = f"certificate {cert['path']}: valid until {cert['not_after']} ({cert['days_left']:.0f} days)"
    if cert["renew"]:
        line = ("warning: " + line + "; renew it: re-run seed (it re-issues certificates this close to their end) "
                "and give the node its new document (`lab reconfigure`, or the agent with the new seed)")
    return [line]


def as_json(state: StateStore, root: Path = Path("/")) -> str:
    return json.dumps({**state.data, "certificate": certificate(root)}, indent=2, sort_keys=True)


def as_table(state: StateStore, root: Path = Path("/")) -> str:
    agent: dict[str, Any] = state.data["agent"]
    steps: dict[str, dict[str, Any]] = state.data["steps"]
    if not agent and not steps:
        return "\n".join([f"no agent run recorded in {state.path}", *_certificate_line(certificate(root))])
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
    lines = [head, *_certificate_line(certificate(root))]
    if agent.get("changed_files") or agent.get("restarted"):
        lines.append(f"this run changed {len(agent.get('changed_files') or [])} files and restarted: "
                     f"{', '.join(agent.get('restarted') or []) or 'nothing'}")
    lines.append("")
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:5])) + "  " + r[5] for r in rows]
    if agent.get("error"):
        lines += ["", f"error: {agent['error']}"]
    return "\n".join(line.rstrip() for line in lines)
