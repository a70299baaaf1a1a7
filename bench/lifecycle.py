"""Benchmark day 2 on the three-controller lab, each step through the real `lab` command: a compute node
added (seconds from its container's start to a schedulable hypervisor, then a server placed on it), a
storage node added (to HEALTH_OK with the pools at their new replication), a nova override reconfigured,
and the whole lab rolled to new images (controllers, storage, compute: servers live-migrated). A client
asks for a token, the image list and the server list every half second through the VIP during the
reconfiguration and the roll: its failed requests and the servers it saw leave ACTIVE are reported.
Writes JSON (--out) with the commit and the host's core speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import LAB, RESULTS, finish, host, lab_json, on_fresh_lab, up_three
from tests import day2, upgrade_image

NAME = "bench-lifecycle"
GOALS = {"compute_schedulable_s": 60, "roll_s": 600, "failed_requests": 0, "servers_interrupted": 0}


def added(report: dict[str, Any]) -> dict[str, Any]:
    return next(row for row in report["nodes"] if row.get("added"))


def watched(*args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A lab command run while the probe watches the cloud."""
    probe = day2.probe(NAME)
    try:
        report = lab_json(NAME, *args)
    finally:
        seen = probe.stop()
    return report, seen


def run(tag: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    up_three(NAME, tag, "10.95")
    checks = subprocess.run([*LAB, "--name", NAME, "check"], capture_output=True, text=True)
    result["checks_ok"] = checks.returncode == 0
    compute = added(lab_json(NAME, "add", "compute"))
    result["compute_schedulable_s"] = compute["joined_s"]
    server = day2.boot_server(NAME, "bench-lifecycle-server")
    result["server_on_new_compute"] = server.get("OS-EXT-SRV-ATTR:host") == compute["node"]
    storage = added(lab_json(NAME, "add", "storage"))
    result["storage_joined_s"], result["storage_healthy_s"] = storage["joined_s"], storage["settled_s"]
    result["pool_sizes"] = day2.pool_sizes(NAME)
    reconfigured, seen = watched("reconfigure", "--set", "overrides.nova.DEFAULT.resume_guests_state_on_host_boot=true")
    result["reconfigure"] = {"seconds": reconfigured["seconds"], "probe": seen,
                             "restarted": {r["node"]: r["restarted"] for r in reconfigured["nodes"]}}
    upgrade_image.build(tag, f"{tag}-next")
    try:
        rolled, seen = watched("roll", "--tag", f"{tag}-next")
    finally:
        upgrade_image.remove(f"{tag}-next")
    result.update(roll_s=rolled["seconds"], failed_requests=seen["failed"] + result["reconfigure"]["probe"]["failed"],
                  servers_interrupted=seen["servers_interrupted"], roll_probe=seen,
                  roll_nodes={r["node"]: {k: r.get(k) for k in ("role", "seconds", "replaced_s", "migrated")}
                              for r in rolled["nodes"]})
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "lifecycle.json")
    parser.add_argument("--tag", default="bench", help="image tag (built with build.py when missing)")
    args = parser.parse_args()
    result: dict[str, Any] = {"host": host(), "goals": GOALS, "how": __doc__.split("\n\n")[0].replace("\n", " ")}
    result.update(on_fresh_lab(NAME, args.tag, run))
    finish(result, args.out)
    print(json.dumps({k: v for k, v in result.items() if k not in ("roll_probe", "roll_nodes", "reconfigure")},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
