"""A Gantt chart (SVG or PNG) of the nodes' agent runs on one time axis, from the times each agent records.

Each lane is one run of one node's agent (a node killed and restarted, or reconfigured, has a lane per
run), each row in it one step that run did the work of: a bar from the step's start to its end. Steps a
run found already done are not drawn in it; they are in the lane of the run that did them. Time 0 is the
earliest container start, so the gap before a node's first bar is its boot, and a bar that waits shows
what it waited for by its position.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

ROW = 18
LABEL_WIDTH = 210
CHART_WIDTH = 900
TOP = 58
BOTTOM = 44
COLOURS = {"controller": "#3b73b9", "compute": "#3c9a5f", "storage": "#c07a2c"}
STATE_COLOURS = {"failed": "#c0392b", "running": "#9b9b9b"}
# Runs that began this long before the origin belong to an earlier life of the node's volumes.
BEFORE_ORIGIN_SLACK = 5.0


@dataclass(frozen=True)
class Bar:
    node: str
    role: str
    run: int  # 1 for the node's first run drawn, 2 for the next...
    step: str
    start: float  # seconds from the origin
    end: float
    status: str
    detail: str

    @property
    def lane(self) -> str:
        return f"{self.node} #{self.run}"


def parse_time(value: str) -> float:
    """Docker's RFC 3339 times (nanoseconds, Z) as epoch seconds."""
    value = value.rstrip("Z")
    whole, _, fraction = value.partition(".")
    seconds = datetime.fromisoformat(whole + "+00:00").timestamp()
    return seconds + (float("0." + fraction[:6]) if fraction else 0.0)


def runs_of(node: dict[str, Any]) -> list[tuple[float, dict[str, dict[str, Any]]]]:
    """(start, the steps it did) of each recorded run of a node, oldest first: the kept history and the
    current run (whose step records hold, for steps it found done, an earlier run's times)."""
    runs = [(r["started"], r.get("steps") or {}) for r in node.get("history") or [] if r.get("started")]
    current = node.get("run_started")
    if current:
        steps = {n: r for n, r in (node.get("steps") or {}).items() if (r.get("started") or 0) >= current}
        runs.append((current, steps))
    elif node.get("steps"):  # a record written before runs were kept: one run
        runs.append((min(r["started"] for r in node["steps"].values() if r.get("started")), node["steps"]))
    return runs


def bars(nodes: list[dict[str, Any]], origin: float, now: float) -> list[Bar]:
    """nodes: [{node, role, steps, history, run_started}] in display order, step records as `status --json`
    has them."""
    result = []
    for node in nodes:
        number = 0
        for started, steps in runs_of(node):
            if started < origin - BEFORE_ORIGIN_SLACK or not steps:
                continue
            number += 1
            for name, rec in sorted(((n, r) for n, r in steps.items() if r.get("started")),
                                    key=lambda item: item[1]["started"]):
                start, end = rec["started"], max(rec.get("finished") or now, rec["started"])
                result.append(Bar(node["node"], node["role"], number, name, start - origin, end - origin,
                                  rec.get("status", ""), str(rec.get("detail") or rec.get("error") or "")))
    return result


def _tick(span: float) -> float:
    for step in (5, 10, 15, 30, 60, 120, 300, 600):
        if span / step <= 12:
            return float(step)
    return 1200.0


def _colour(bar: Bar) -> str:
    return STATE_COLOURS.get(bar.status, COLOURS.get(bar.role, "#777"))


@dataclass(frozen=True)
class Layout:
    """Where everything goes, shared by the SVG and the PNG drawing."""

    chart: list[Bar]
    span: float

    @property
    def scale(self) -> float:
        return CHART_WIDTH / self.span

    @property
    def width(self) -> int:
        return LABEL_WIDTH + CHART_WIDTH + 80

    @property
    def height(self) -> int:
        return TOP + ROW * len(self.chart) + BOTTOM

    def x(self, seconds: float) -> float:
        return LABEL_WIDTH + seconds * self.scale

    def ticks(self) -> list[float]:
        tick, t, out = _tick(self.span), 0.0, []
        while t <= self.span:
            out.append(t)
            t += tick
        return out

    def lane_starts(self) -> list[int]:
        """Row indexes where a new lane (node and run) begins."""
        return [i for i, bar in enumerate(self.chart) if i == 0 or bar.lane != self.chart[i - 1].lane]


def layout(chart: list[Bar]) -> Layout:
    return Layout(chart, max((b.end for b in chart), default=1.0) or 1.0)


AXIS_TITLE = "seconds since the first container started"


def svg(chart: list[Bar], title: str) -> str:
    lay = layout(chart)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{lay.width}" height="{lay.height}" fill="white"/>',
           f'<text x="8" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
           f'<text x="{lay.x(lay.span / 2):.1f}" y="{lay.height - 6}" text-anchor="middle" fill="#333">'
           f'{AXIS_TITLE}</text>']
    for t in lay.ticks():
        x = lay.x(t)
        out.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{lay.height - BOTTOM + 4}" stroke="#e3e3e3"/>')
        for y in (TOP - 10, lay.height - BOTTOM + 16):
            out.append(f'<text x="{x:.1f}" y="{y}" text-anchor="middle" fill="#555">{t:.0f} s</text>')
    starts = set(lay.lane_starts())
    for i, bar in enumerate(chart):
        y = TOP + i * ROW
        if i in starts:
            out.append(f'<line x1="0" y1="{y - 1}" x2="{lay.width}" y2="{y - 1}" stroke="#bbb"/>')
        x, w = lay.x(bar.start), max((bar.end - bar.start) * lay.scale, 1.5)
        seconds = bar.end - bar.start
        out.append(f'<text x="8" y="{y + 12}">{escape(bar.lane)}  {escape(bar.step)}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{ROW - 6}" fill="{_colour(bar)}">'
                   f'<title>{escape(bar.lane)} {escape(bar.step)}: {seconds:.1f}s, {escape(bar.status)}'
                   f'{" — " + escape(bar.detail[:200]) if bar.detail else ""}</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 12}" fill="#333">{seconds:.0f}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def png(chart: list[Bar], title: str, path: Path) -> None:
    """The same chart as a PNG (Pillow), for viewers that do not show SVG."""
    from PIL import Image, ImageDraw, ImageFont

    lay = layout(chart)
    image = Image.new("RGB", (lay.width, lay.height), "white")
    draw = ImageDraw.Draw(image)
    font, bold = ImageFont.load_default(size=11), ImageFont.load_default(size=14)
    draw.text((8, 6), title, fill="black", font=bold)
    draw.text((lay.x(lay.span / 2), lay.height - 8), AXIS_TITLE, fill="#333333", font=font, anchor="ms")
    for t in lay.ticks():
        x = lay.x(t)
        draw.line([(x, TOP - 6), (x, lay.height - BOTTOM + 4)], fill="#e3e3e3")
        for y in (TOP - 10, lay.height - BOTTOM + 16):
            draw.text((x, y), f"{t:.0f} s", fill="#555555", font=font, anchor="ms")
    starts = set(lay.lane_starts())
    for i, bar in enumerate(chart):
        y = TOP + i * ROW
        if i in starts:
            draw.line([(0, y - 1), (lay.width, y - 1)], fill="#bbbbbb")
        x, w = lay.x(bar.start), max((bar.end - bar.start) * lay.scale, 1.5)
        draw.text((8, y + 12), f"{bar.lane}  {bar.step}", fill="black", font=font, anchor="ls")
        draw.rectangle([x, y + 3, x + w, y + ROW - 3], fill=_colour(bar))
        draw.text((x + w + 4, y + 12), f"{bar.end - bar.start:.0f}s", fill="#333333", font=font, anchor="ls")
    image.save(path, "PNG")


def write(chart: list[Bar], title: str, path: Path) -> None:
    """SVG or PNG, by the file's suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".png":
        png(chart, title, path)
    else:
        path.write_text(svg(chart, title))


def slowest(chart: list[Bar], count: int = 5) -> list[Bar]:
    return sorted(chart, key=lambda b: b.end - b.start, reverse=True)[:count]
