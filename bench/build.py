"""Benchmark the golden image builds: cold build of every role, warm rebuild after an agent-only change,
and image sizes. Writes JSON (--out).

Cold means no Goldstack image, no base image and no build cache: the bench removes them first (pass
--no-cold to measure only the warm rebuild against whatever cache exists). The warm rebuild builds a
temporary copy of this checkout whose agent differs by one line, so the repository is never touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, TOP, finish, host

GOALS = {"warm_rebuild_s": 30, "cold_all_containers_s": 600,
         "size_gb": {"controller": 2.0, "compute": 1.2, "storage": 1.0}}


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def wipe() -> None:
    refs = sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    goldstack = [r for r in refs if r.startswith("goldstack/")]
    if goldstack:
        sh("docker", "rmi", "-f", *goldstack)
    sh("docker", "image", "prune", "-f")
    subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)


def build(top: Path, role: str, out: Path, tag: str, fmt: str = "docker") -> tuple[float, dict]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(top / "build.py"), "--role", role, "--output", str(out),
                           "--tag", tag, "--format", fmt], cwd=top, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"build of {role} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed, json.loads((out / "build-summary.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "build.json")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold build (keeps the cache)")
    parser.add_argument("--warm-role", default="compute")
    parser.add_argument("--qcow2-role", default="compute", help="role whose qcow2 build is timed ('' = none)")
    args = parser.parse_args()
    result: dict = {"benchmark": "golden-image-builds", "goals": GOALS,
                    "host": host()}
    with tempfile.TemporaryDirectory(prefix="goldstack-bench-") as tmp:
        out = Path(tmp) / "out"
        if not args.no_cold:
            wipe()
            total, summary = build(TOP, "all", out, "bench")
            result["cold_all_containers_s"] = round(total, 1)
            result["cold_per_role_s"] = {a["role"]: a["seconds"] for a in summary["artifacts"]}
            result["size_gb"] = {a["role"]: round(a["size_bytes"] / 2**30, 3) for a in summary["artifacts"]}
            result["cold_note"] = ("roles build one after another; the first (controller) also pays for "
                                   "debootstrap and the shared base, common and OpenStack layers")
        copy = Path(tmp) / "checkout"
        shutil.copytree(TOP, copy, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__"))
        build(copy, args.warm_role, out, "bench")  # make sure the cache holds this role
        init = copy / "firstboot/__init__.py"
        init.write_text(init.read_text() + f"# bench change {time.time()}\n")
        warm, summary = build(copy, args.warm_role, out, "bench")
        result["warm_rebuild_after_agent_change_s"] = round(warm, 1)
        result["warm_role"] = args.warm_role
        if args.qcow2_role:
            seconds, summary = build(TOP, args.qcow2_role, out, "bench", "qcow2")
            (artifact,) = summary["artifacts"]
            result["qcow2"] = {"role": args.qcow2_role, "build_s": round(seconds, 1),
                               "qcow2_gb": round(artifact["size_bytes"] / 2**30, 3),
                               "note": "diskimage-builder root tree (its debootstrap cache warm after the "
                                       "first run) + assembly without device-mapper + qemu-img convert"}
        if "size_gb" not in result:
            result["size_gb"] = {a["role"]: round(a["size_bytes"] / 2**30, 3) for a in summary["artifacts"]}
    result["how"] = ("python build.py per measurement on this host; times are wall clock of the whole "
                     "command including the SPDX manifest; sizes are `docker image inspect .Size`")
    finish(result, args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
