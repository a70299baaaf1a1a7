"""Wall time of Tempest's smoke set against a running lab (`./gs lab tempest`), for each worker count asked,
one after the other on the same lab (hosts differ up to 1.8x, so variants are compared within one run).

    python -m bench.tempest --lab NAME [--concurrency 2 --concurrency 3] [--out bench/results/tempest.json]

The lab must be up and checked (`./gs lab up && ./gs lab check`). Each run configures Tempest, runs the smoke
set and cleans up what it made, as the command does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import proccpu
from bench.common import RESULTS, TOP, finish, host


def one(lab: str, concurrency: int) -> dict[str, object]:
    started, before = time.monotonic(), proccpu.snapshot()
    proc = subprocess.run([sys.executable, "-m", "compose.lab", "--name", lab, "tempest", "--json",
                           "--concurrency", str(concurrency)], cwd=TOP, capture_output=True, text=True)
    if not proc.stdout.strip():
        raise SystemExit(f"tempest gave no summary (exit {proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout)
    cpu = proccpu.difference(before, proccpu.snapshot())
    return {"concurrency": concurrency, "exit": proc.returncode,
            "wall_s": round(time.monotonic() - started, 1),  # configuration and cleanup included
            "tests_s": summary["seconds"], "cpu_busy_s": cpu["busy_s"], "cpu_by_process": cpu,
            **{k: summary[k] for k in ("passed", "failed", "skipped", "skip_reasons", "pins")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default="goldstack", help="the running lab's name (default goldstack)")
    parser.add_argument("--concurrency", type=int, action="append", help="Tempest workers (repeatable; default 2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "tempest.json")
    args = parser.parse_args()
    result = {"what": "tempest smoke against the running lab", "lab": args.lab, "host": host(), "runs": []}
    for concurrency in args.concurrency or [2]:
        run = one(args.lab, concurrency)
        print(f"concurrency {concurrency}: {run['passed']} passed, {run['failed']} failed, {run['skipped']} "
              f"skipped; tests {run['tests_s']}s, all {run['wall_s']}s", flush=True)
        result["runs"].append(run)
    finish(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
