"""What every benchmark records beside its figures: the host (cores, memory, the speed of one core) and
the commit measured; and the images it runs, built when missing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firstboot import catalog

TOP = Path(__file__).resolve().parent.parent
RESULTS = TOP / "bench" / "results"


def mem_available_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1])
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def cpu_busy_s() -> float:
    """Seconds of CPU time the whole host has spent busy since boot (all CPUs, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def core_speed_s(loops: int = 20_000_000) -> float:
    """Seconds one core takes for a fixed loop: these hosts differ nearly twofold from one boot to the next,
    so runs are compared by it."""
    started = time.perf_counter()
    total = 0
    for i in range(loops):
        total += i
    return round(time.perf_counter() - started, 2)


def commit() -> str:
    proc = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(TOP), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (proc.stdout.strip() or "unknown") + ("+changes" if dirty else "")


def host() -> dict[str, Any]:
    """The host as a run starts; finish() adds the core speed after it."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "memory_available_gb": round(mem_available_kb() / 1048576, 1), "core_speed_before_s": core_speed_s()}


def finish(result: dict[str, Any], out: Path) -> None:
    """Record the commit and the core speed after the run, and write the JSON."""
    result.setdefault("host", host())["core_speed_after_s"] = core_speed_s()
    result["commit"] = commit()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


def ensure_image(role: str, tag: str) -> str:
    """goldstack/ROLE:TAG, built with build.py when the engine lacks it."""
    ref = f"goldstack/{role}:{tag}"
    if subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, str(TOP / "build.py"), "--role", role, "--tag", tag], check=True)
    return ref


LAB = [sys.executable, "-m", "compose.lab"]


def lab_json(name: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
    """A lab command with --json: its report (and the wall time), or SystemExit with its output."""
    started = time.monotonic()
    proc = subprocess.run([*LAB, "--name", name, *args, "--json"], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"lab {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return {**json.loads(proc.stdout), "wall_s": round(time.monotonic() - started, 1)}


def up_three(name: str, tag: str, prefix: str) -> float:
    """A three-controller lab up from images at `tag` on the subnets PREFIX.1 and PREFIX.2 (management,
    provider); its wall seconds, or SystemExit with its output."""
    started = time.monotonic()
    up = subprocess.run([*LAB, "--name", name, "up", "--controllers", "3", "--tag", tag, "--no-build",
                         "--management-prefix", f"{prefix}.1", "--provider-prefix", f"{prefix}.2"], capture_output=True,
                        text=True)
    if up.returncode != 0:
        raise SystemExit(f"lab up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}")
    return round(time.monotonic() - started, 1)


def on_fresh_lab(name: str, tag: str, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Every role's image at `tag` (built when missing), then run(tag) on a lab of this name destroyed before and
    after, failure or not."""
    for role in catalog.ROLES:
        ensure_image(role, tag)
    subprocess.run([*LAB, "--name", name, "destroy"], capture_output=True)
    try:
        return run(tag)
    finally:
        subprocess.run([*LAB, "--name", name, "destroy"], capture_output=True)
