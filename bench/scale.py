"""Benchmark the scale curve on this host: compute nodes added one at a time to a running three-controller
lab (1 -> 4), then storage nodes (1 -> 3), each through the real `lab add`. For every added node: seconds
from its container's start to schedulable (compute: its hypervisor listed) or to its OSD up and Ceph clean
(storage), the wall time and host CPU of the whole add (every other node re-runs its agent on the grown
inventory), the new node's memory and the lab's, and what the control plane holds then (RabbitMQ
connections and queues, MariaDB client connections on each controller). Writes JSON (--out) with the commit
and the host's core speed, and the curve as an SVG beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, cpu_busy_s, finish, host, lab_json, on_fresh_lab, up_three
from compose.site import Lab
from firstboot import catalog

NAME = "bench-scale"
COMPUTES, STORAGES = 4, 3


def _container_memory_mb(ident: str) -> float | None:
    """A container's memory from its cgroup (v1 or v2), less the page cache it could drop at once, as `docker
    stats` counts it where it works (on this host it reports 0 B under cgroup v1)."""
    for usage, stat, inactive in ((f"/sys/fs/cgroup/memory/docker/{ident}/memory.usage_in_bytes",
                                   f"/sys/fs/cgroup/memory/docker/{ident}/memory.stat", "total_inactive_file"),
                                  (f"/sys/fs/cgroup/system.slice/docker-{ident}.scope/memory.current",
                                   f"/sys/fs/cgroup/system.slice/docker-{ident}.scope/memory.stat", "inactive_file")):
        try:
            used = int(Path(usage).read_text())
            lines = dict(line.split() for line in Path(stat).read_text().splitlines())
        except OSError:
            continue
        return round((used - int(lines.get(inactive, 0))) / 2**20, 1)
    return None


def memory_mb() -> dict[str, float | None]:
    """Each running node's memory (the cgroup is named by the container's full id)."""
    running = Lab(NAME).running()
    full = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", *running.values()], capture_output=True, text=True,
                          check=True).stdout.split()
    return {node: _container_memory_mb(ident) for node, ident in zip(running, full, strict=True)}


def total(memory: dict[str, float | None]) -> float:
    return round(sum(v or 0 for v in memory.values()), 1)


def _on_controllers(command: str) -> dict[str, str]:
    lab_ = Lab(NAME)
    running = lab_.running()
    return {node: subprocess.run(["docker", "exec", running[node], "sh", "-c", command], capture_output=True,
                                 text=True, timeout=120).stdout.strip()
            for node, role in sorted(lab_.roles().items()) if role == catalog.CONTROLLER and node in running}


def control_plane() -> dict[str, Any]:
    """What the controllers hold: RabbitMQ's connections and queues (cluster-wide), each MariaDB's clients."""
    first = _on_controllers("rabbitmqctl list_connections -q name 2>/dev/null | wc -l; "
                            "rabbitmqctl list_queues -q name 2>/dev/null | wc -l")
    counts = next(iter(first.values()), "").split()
    threads = _on_controllers("mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'Threads_connected'\" | cut -f2")
    return {"rabbitmq_connections": int(counts[0]) if counts else None,
            "rabbitmq_queues": int(counts[1]) if len(counts) > 1 else None,
            "db_connections": {node: int(v) if v.isdigit() else None for node, v in threads.items()}}


def add(role: str) -> dict[str, Any]:
    busy, started = cpu_busy_s(), time.monotonic()
    report = lab_json(NAME, "add", role)
    row = next(r for r in report["nodes"] if r.get("added"))
    memory = memory_mb()
    return {"node": row["node"], "joined_s": row.get("joined_s"), "settled_s": row.get("settled_s"),
            "add_wall_s": round(time.monotonic() - started, 1), "add_host_cpu_s": round(cpu_busy_s() - busy, 1),
            "node_memory_mb": memory.get(row["node"]), "lab_memory_mb": total(memory),
            "control_plane": control_plane()}


def run(tag: str) -> dict[str, Any]:
    up_three(NAME, tag, "10.94")
    memory = memory_mb()
    result: dict[str, Any] = {"start": {"nodes": sorted(memory), "lab_memory_mb": total(memory),
                                        "memory_mb": memory, "control_plane": control_plane()}}
    result["compute"] = {2 + i: add(catalog.COMPUTE) for i in range(COMPUTES - 1)}
    result["storage"] = {2 + i: add(catalog.STORAGE) for i in range(STORAGES - 1)}
    return result


def svg(result: dict[str, Any]) -> str:
    """Seconds to join against the node count of the role after the add, one line per measure."""
    series = {"compute: container start to schedulable (s)": ("compute", "joined_s", "#1f77b4"),
              "compute: whole add, wall (s)": ("compute", "add_wall_s", "#aec7e8"),
              "storage: container start to OSD up and Ceph clean (s)": ("storage", "settled_s", "#d62728"),
              "storage: whole add, wall (s)": ("storage", "add_wall_s", "#ff9896")}
    width, height, left, bottom, top = 640, 360, 60, 40, 20
    values = [row[key] for role, key, _ in series.values() for row in result[role].values() if row.get(key)]
    ymax = max([*values, 1]) * 1.1
    xmax = max(COMPUTES, STORAGES)

    def x(n: float) -> float:
        return left + (n - 1) / (xmax - 1) * (width - left - 20)

    def y(v: float) -> float:
        return height - bottom - v / ymax * (height - bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 90}" '
             'font-family="sans-serif" font-size="11">',
             f'<line x1="{left}" y1="{y(0)}" x2="{width - 20}" y2="{y(0)}" stroke="black"/>',
             f'<line x1="{left}" y1="{y(0)}" x2="{left}" y2="{top}" stroke="black"/>',
             f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle">nodes of the role after the add</text>']
    for n in range(1, xmax + 1):
        parts.append(f'<text x="{x(n)}" y="{y(0) + 14}" text-anchor="middle">{n}</text>')
    for step in range(0, int(ymax) + 1, max(1, int(ymax / 6) // 10 * 10 or 10)):
        parts.append(f'<text x="{left - 6}" y="{y(step) + 4}" text-anchor="end">{step}</text>')
    for i, (label, (role, key, colour)) in enumerate(series.items()):
        points = [(int(n), row[key]) for n, row in result[role].items() if row.get(key)]
        if points:
            path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
            parts += [f'<circle cx="{x(n):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>' for n, v in points]
        parts.append(f'<rect x="{left}" y="{height + 10 + i * 18}" width="12" height="3" fill="{colour}"/>'
                     f'<text x="{left + 18}" y="{height + 15 + i * 18}">{label}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--tag", default="latest", help="image tag (built with build.py when missing)")
    args = parser.parse_args()
    result: dict[str, Any] = {"host": host(), "how": __doc__.split("\n\n")[0].replace("\n", " ")}
    result.update(on_fresh_lab(NAME, args.tag, run))
    finish(result, args.out)
    args.out.with_suffix(".svg").write_text(svg(result))
    print(json.dumps({role: {n: {k: row[k] for k in ("node", "joined_s", "settled_s", "add_wall_s", "add_host_cpu_s",
                                                     "node_memory_mb")} for n, row in result[role].items()}
                      for role in ("compute", "storage")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
