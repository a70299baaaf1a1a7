"""A Gantt chart (SVG) of the nodes' first-boot steps on one time axis, from the times each agent records.

Each row is one step of one node: a bar from the moment its last working run started to the moment it
finished (a step the agent found already done keeps the times of the run that did the work). Time 0 is
the earliest container start, so the gap before a node's first bar is its boot, and a bar that waits
(a compute node's `compute` step waiting for keystone, say) shows what it waited for by its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

ROW = 18
LABEL_WIDTH = 190
CHART_WIDTH = 900
TOP = 40
COLOURS = {"controller": "#3b73b9", "compute": "#3c9a5f", "storage": "#c07a2c"}
STATE_COLOURS = {"failed": "#c0392b", "running": "#9b9b9b"}


@dataclass(frozen=True)
class Bar:
    node: str
    role: str
    step: str
    start: float  # seconds from the origin
    end: float
    status: str
    detail: str


def parse_time(value: str) -> float:
    """Docker's RFC 3339 times (nanoseconds, Z) as epoch seconds."""
    value = value.rstrip("Z")
    whole, _, fraction = value.partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + (float("0." + fraction[:6]) if fraction else 0.0)


def bars(nodes: list[dict[str, Any]], origin: float, now: float) -> list[Bar]:
    """nodes: [{node, role, steps: {name: record}}] in display order; step records as `status --json` has."""
    result = []
    for node in nodes:
        steps = sorted(((n, r) for n, r in (node.get("steps") or {}).items() if r.get("started")),
                       key=lambda item: item[1]["started"])
        for name, rec in steps:
            start, end = rec["started"], max(rec.get("finished") or now, rec["started"])
            result.append(Bar(node["node"], node["role"], name, start - origin, end - origin, rec.get("status", ""),
                              str(rec.get("detail") or rec.get("error") or "")))
    return result


def svg(chart: list[Bar], title: str) -> str:
    span = max((b.end for b in chart), default=1.0) or 1.0
    scale = CHART_WIDTH / span
    height = TOP + ROW * len(chart) + 30
    width = LABEL_WIDTH + CHART_WIDTH + 80
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>']
    tick = _tick(span)
    t = 0.0
    while t <= span:
        x = LABEL_WIDTH + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 24}" stroke="#e3e3e3"/>')
        out.append(f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" fill="#555">{t:.0f}s</text>')
        t += tick
    previous = None
    for i, bar in enumerate(chart):
        y = TOP + i * ROW
        if bar.node != previous:
            out.append(f'<line x1="0" y1="{y - 1}" x2="{width}" y2="{y - 1}" stroke="#bbb"/>')
            previous = bar.node
        colour = STATE_COLOURS.get(bar.status, COLOURS.get(bar.role, "#777"))
        x, w = LABEL_WIDTH + bar.start * scale, max((bar.end - bar.start) * scale, 1.5)
        seconds = bar.end - bar.start
        out.append(f'<text x="8" y="{y + 12}">{escape(bar.node)}  {escape(bar.step)}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{colour}">'
                   f'<title>{escape(bar.node)} {escape(bar.step)}: {seconds:.1f}s, {escape(bar.status)}'
                   f'{" — " + escape(bar.detail[:200]) if bar.detail else ""}</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 12}" fill="#333">{seconds:.0f}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _tick(span: float) -> float:
    for step in (5, 10, 15, 30, 60, 120, 300, 600):
        if span / step <= 12:
            return float(step)
    return 1200.0


def slowest(chart: list[Bar], count: int = 5) -> list[Bar]:
    return sorted(chart, key=lambda b: b.end - b.start, reverse=True)[:count]
