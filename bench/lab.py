"""Benchmark the compose lab: `./gs lab up` from built images until every agent is done, then
`./gs lab check` (token, image, compute, network, volume, server, horizon; with three controllers also
failover), for one and three controllers. Writes JSON (--out): wall time of `up` and to all checks green,
each check's time, each node's step timings (from the agents' own records) and the host memory the
running lab takes (MemAvailable before `up` minus after `up`, and the peak seen during the checks), and
the host CPU time `up` used (busy jiffies of /proc/stat: busy seconds / CPUs is the shortest `up` could be
with the same work, however the steps were ordered). The host's speed is recorded too (seconds one core
takes for a fixed pure-Python loop, before and after): these hosts differ nearly twofold from one boot to
the next, so compare runs by it.
Each lab gets its own name and networks and is destroyed afterwards.

Side by side with an earlier commit (--baseline DIR, a checkout of it, e.g. `git worktree add`, whose
images were built there under --baseline-tag): every lab size runs once with that checkout's lab command
and images and once with this one's, alternately, so both see the same host; `compare` gives this one's
green time over the baseline's. The summary (`one`, `three`, and `baseline.one`, `baseline.three`)
gives each size's `green_s` (up and every check passed), `cpu_s` (host CPU of `up`) and `up_s`.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import LAB, RESULTS, TOP, cpu_busy_s, finish, host, mem_available_kb

GOALS = {"controllers_3_up_s": 240, "controllers_1_up_s": 120, "lab_memory_gb": 12}
SIZES = {1: "one", 3: "three"}  # the summary's key of each lab size (issue 30's names)


def summary(run: dict[str, object]) -> dict[str, object]:
    """The figures lab sizes are compared by: green (up and every check passed), the host CPU of `up`."""
    return {"green_s": run["checks_green_s"], "cpu_s": run["up_cpu_busy_s"], "up_s": run["up_s"]}


def one(controllers: int, tag: str, timeout: float, checkout: Path | None = None) -> dict[str, object]:
    """One lab of `controllers` up and checked, by this checkout's lab command or `checkout`'s."""
    name = f"bench-lab-{controllers}" + ("-baseline" if checkout else "")
    prefixes = {1: ("10.91.1", "10.91.2"), 3: ("10.93.1", "10.93.2")}[controllers]
    run = functools.partial(subprocess.run, cwd=checkout or TOP)
    popen = functools.partial(subprocess.Popen, cwd=checkout or TOP)
    run([*LAB, "--name", name, "destroy"], capture_output=True)
    before = mem_available_kb()
    busy_before = cpu_busy_s()
    started = time.monotonic()
    up = run([*LAB, "--name", name, "up", "--controllers", str(controllers), "--tag", tag, "--no-build",
              "--management-prefix", prefixes[0], "--provider-prefix", prefixes[1], "--timeout", str(timeout)],
             capture_output=True, text=True)
    elapsed = round(time.monotonic() - started, 1)
    busy = cpu_busy_s() - busy_before
    used_gb = round((before - mem_available_kb()) / 1048576, 2)
    print(up.stdout[-3000:], flush=True)
    if up.returncode != 0:
        print(up.stderr[-3000:], file=sys.stderr, flush=True)
    status = json.loads(run([*LAB, "--name", name, "status", "--json"], capture_output=True, text=True).stdout
                        or "{}")
    checks: list[dict] = []
    green_s = None
    lowest = mem_available_kb()
    if up.returncode == 0:
        # One run of every check, as a user runs them: with three controllers `--failover` kills one once the
        # rest is checked, and the server is built while it rejoins.
        check = popen([*LAB, "--name", name, "check", "--json", *(["--failover"] if controllers == 3 else [])],
                      stdout=subprocess.PIPE, text=True)
        while check.poll() is None:
            lowest = min(lowest, mem_available_kb())
            time.sleep(1)
        checks = json.loads(check.stdout.read() or "{}").get("results", [])  # type: ignore[union-attr]
        if checks and all(c["ok"] for c in checks):
            green_s = round(time.monotonic() - started, 1)
    run([*LAB, "--name", name, "destroy"], capture_output=True)
    return {"ok": up.returncode == 0, "up_s": elapsed, "up_cpu_busy_s": round(busy, 1),
            "up_cpu_utilization": round(busy / (elapsed * (os.cpu_count() or 1)), 3),
            "checks_green_s": green_s, "memory_gb": used_gb,
            "memory_peak_during_checks_gb": round((before - lowest) / 1048576, 2),
            "checks": {c["name"]: {"ok": c["ok"], "seconds": c["seconds"], "detail": c["detail"],
                       **({"data": c["data"]} if c.get("data") else {})} for c in checks},
            "step_seconds": {n["node"]: {s: r.get("seconds") for s, r in n["steps"].items()}
                             for n in status.get("nodes", [])}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "lab.json")
    parser.add_argument("--tag", default="latest", help="image tag; build them first (./gs build --role all)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--controllers", type=int, choices=(1, 3), action="append",
                        help="lab size to measure (repeatable; default: 1 and 3)")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier commit to run side by side")
    parser.add_argument("--baseline-tag", default="baseline", help="the tag its images were built under")
    args = parser.parse_args()
    result: dict[str, object] = {"host": host(), "goals": GOALS}
    if args.baseline:
        result["baseline"] = {"checkout": str(args.baseline), "tag": args.baseline_tag, "commit": subprocess.run(
            ["git", "-C", str(args.baseline), "rev-parse", "--short=12", "HEAD"], capture_output=True,
            text=True).stdout.strip()}
    for controllers in args.controllers or (1, 3):
        print(f"lab with {controllers} controller(s)", flush=True)
        result[f"controllers_{controllers}"] = one(controllers, args.tag, args.timeout)
        result[SIZES[controllers]] = summary(result[f"controllers_{controllers}"])  # type: ignore[arg-type]
        if args.baseline:
            print(f"lab with {controllers} controller(s), baseline {result['baseline']['commit']}", flush=True)
            base = result[f"controllers_{controllers}_baseline"] = one(controllers, args.baseline_tag,
                                                                        args.timeout, args.baseline)
            result["baseline"][SIZES[controllers]] = summary(base)  # type: ignore[index]
            ours = result[f"controllers_{controllers}"]
            if ours["checks_green_s"] and base["checks_green_s"]:
                result[f"controllers_{controllers}_compare"] = {
                    "green_ratio": round(ours["checks_green_s"] / base["checks_green_s"], 3),
                    "up_ratio": round(ours["up_s"] / base["up_s"], 3)}
    finish(result, args.out)
    print(json.dumps({k: result[k] for k in ("one", "three", "baseline", "commit") if k in result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
