"""What the lab's probe costs the roll it measures: the controllers of a running lab rolled once per variant,
one after the other on the same lab, with the probe asking for a token every cycle (as it did until Dec 7)
or keeping its token for TOKEN_EVERY seconds (compose/probe.py now).

    python -m bench.probe --lab NAME [--variants reuse,fresh,reuse,fresh] [--out bench/results/probe.json]

Each roll needs an image the controllers do not run yet: each variant's is goldstack/controller:TAG with one
label added (a new image id, the same content), removed after the run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS, TOP, cpu_busy_s, finish, host
from compose.probe import TOKEN_EVERY
from tests import day2


def labelled_image(tag: str, mark: str) -> str:
    ref = f"goldstack/controller:bench-probe-{mark}"
    subprocess.run(["docker", "build", "-q", "-t", ref, "-"], check=True, capture_output=True, text=True,
                   input=f"FROM goldstack/controller:{tag}\nLABEL goldstack.bench-probe={mark}\n")
    return ref.split(":", 1)[1]


def one(name: str, variant: str, tag: str) -> dict[str, object]:
    probe = day2.probe(name, token_every=0.0 if variant == "fresh" else TOKEN_EVERY)  # fresh: as before Dec 7
    started, before = time.monotonic(), cpu_busy_s()
    proc = subprocess.run([sys.executable, "-m", "compose.lab", "--name", name, "roll", "--tag", tag, "--role",
                           "controller", "--json"], cwd=TOP, capture_output=True, text=True)
    seen = probe.stop()
    if proc.returncode != 0:
        raise SystemExit(f"the roll failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    nodes = {row["node"]: row.get("seconds") for row in json.loads(proc.stdout)["nodes"]}
    return {"variant": variant, "roll_s": round(time.monotonic() - started, 1),
            "cpu_busy_s": round(cpu_busy_s() - before, 1), "node_s": nodes,
            **{k: seen[k] for k in ("requests", "failed", "failures")}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lab", default="goldstack", help="the running lab's name (default goldstack)")
    parser.add_argument("--tag", default="test", help="the controller image the labelled ones derive from")
    parser.add_argument("--variants", default="reuse,fresh,reuse,fresh",
                        help="fresh (a token per cycle) or reuse (a token every 10 s), comma-separated, in order")
    parser.add_argument("--out", type=Path, default=RESULTS / "probe.json")
    args = parser.parse_args()
    result: dict[str, object] = {"host": host(), "lab": args.lab, "runs": []}
    made = []
    try:
        for n, variant in enumerate(args.variants.split(",")):
            if variant not in ("fresh", "reuse"):
                parser.error(f"--variants: {variant!r} is neither fresh nor reuse")
            tag = labelled_image(args.tag, f"{n}-{variant}")
            made.append(tag)
            run = one(args.lab, variant, tag)
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
    finally:
        for tag in made:  # the lab's containers keep the last one in use; the others go
            subprocess.run(["docker", "rmi", f"goldstack/controller:{tag}"], capture_output=True)
    finish(result, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
