"""Where a host's CPU time went during a stretch of work, by process name: the lab's containers are processes
of this host's kernel, so /proc here sees every service of every node.

A snapshot holds each process's own CPU time and the time of its children it has reaped; the difference of
two snapshots gives both per name. Short-lived helpers (rootwrap, ip, ovs-vsctl) show up in their parent's
"children" time; what no surviving process reaped is left as `unaccounted`.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.common import cpu_busy_s

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sample:
    name: str
    own: int  # ticks
    children: int  # ticks of reaped children


def parse_stat(text: str) -> Sample:
    """One /proc/PID/stat line; the name sits in parentheses and may itself hold spaces or parentheses."""
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(fields[i]) for i in range(11, 15))
    return Sample(name, utime + stime, cutime + cstime)


def snapshot() -> tuple[dict[int, Sample], float]:
    """Every live process's sample, and the host's busy seconds at that moment."""
    samples: dict[int, Sample] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            samples[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue  # gone between the listing and the read
    return samples, cpu_busy_s()


def difference(before: tuple[dict[int, Sample], float], after: tuple[dict[int, Sample], float],
               top: int = 20) -> dict[str, object]:
    """CPU seconds by process name between two snapshots, the largest `top` of them, and the rest."""
    start, busy_start = before
    end, busy_end = after
    spent: Counter[str] = Counter()
    for pid, sample in end.items():
        earlier = start.get(pid)
        if earlier is not None and earlier.name != sample.name:
            earlier = None  # the pid was reused (or the process exec'd): count it afresh
        spent[sample.name] += sample.own - (earlier.own if earlier else 0)
        spent[f"{sample.name} (children)"] += sample.children - (earlier.children if earlier else 0)
    seconds = {name: round(ticks / TICK, 1) for name, ticks in spent.most_common() if ticks > 0}
    busy = round(busy_end - busy_start, 1)
    shown = dict(list(seconds.items())[:top])
    return {"busy_s": busy, "by_process_s": shown,
            "other_processes_s": round(sum(seconds.values()) - sum(shown.values()), 1),
            "unaccounted_s": round(busy - sum(seconds.values()), 1)}
