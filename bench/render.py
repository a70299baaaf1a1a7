"""Benchmark: validate + render the full controller config tree; report time and the agent's peak RSS.

Each sample runs in a fresh process (`python -m firstboot render`-like work without writing), so the
numbers include imports, as a real first boot pays them. JSON goes to --out.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, TOP, finish, host

CHILD = """
import resource, sys, time
t0 = time.perf_counter()
from firstboot import document, render
imported = time.perf_counter()
text = open(sys.argv[1]).read()
t1 = time.perf_counter()
doc = document.load_text(text, "bench")
t2 = time.perf_counter()
tree = render.render_tree(doc, render.Facts())
t3 = time.perf_counter()
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{imported - t0} {t2 - t1} {t3 - t2} {rss_kb} {len(tree)}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "render.json")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    from firstboot import secrets, seed

    inv = yaml_inventory()
    site = secrets.generate_missing({})[0]
    doc = seed.node_document(seed.Inventory(inv, inv["nodes"]), inv["nodes"][0], site)
    import yaml

    with tempfile.TemporaryDirectory() as tmp:
        doc_file = Path(tmp) / "node.yaml"
        doc_file.write_text(yaml.safe_dump(doc))
        samples = []
        for _ in range(args.runs):
            wall0 = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(doc_file)], cwd=TOP, capture_output=True,
                                 text=True, check=True).stdout.split()
            wall = time.perf_counter() - wall0
            samples.append({"import_s": float(out[0]), "validate_s": float(out[1]), "render_s": float(out[2]),
                            "peak_rss_mb": int(out[3]) / 1024, "files": int(out[4]), "process_wall_s": wall})

    def med(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 4)

    result = {
        "benchmark": "render-controller-tree",
        "how": "fresh python process per run: import firstboot, validate a 5-node site's controller document, "
               "render every controller file in memory (no writes); median of runs",
        "runs": args.runs,
        "files_rendered": samples[0]["files"],
        "median_validate_ms": round(med("validate_s") * 1000, 2),
        "median_render_ms": round(med("render_s") * 1000, 2),
        "median_validate_plus_render_ms": round((med("validate_s") + med("render_s")) * 1000, 2),
        "median_import_ms": round(med("import_s") * 1000, 2),
        "median_process_wall_ms": round(med("process_wall_s") * 1000, 2),
        "max_peak_rss_mb": round(max(s["peak_rss_mb"] for s in samples), 1),
        "goal": {"validate_plus_render_ms": 200, "peak_rss_mb": 60},
        "host": host(),
        "self_rusage_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    finish(result, args.out)
    print(json.dumps(result, indent=2))
    return 0


def yaml_inventory() -> dict:
    import yaml

    return yaml.safe_load((TOP / "compose/lab-inventory.yaml").read_text())


if __name__ == "__main__":
    sys.exit(main())
