"""Benchmark storage and compute nodes joining a running control plane. Writes JSON (--out).

One controller is started and left to finish every step but its last (image-store: glance on RBD
waits for the storage node's pools); then the storage node and the compute node are
started together and the clock starts. Milestones, polled every second from the host: Ceph answers
HEALTH_OK or HEALTH_WARN (the one-OSD lab's single replica), cinder-volume is up in the block-storage
API, the first 1 GB volume created through the API is `available` (requested as soon as cinder-volume
is up), the compute node's hypervisor is listed, and the controller's glance answers (image-store
done). The agents' per-step timings are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TOP))
from tests import controlplane, dockerlab  # noqa: E402

GOALS = {"storage_health_s": 90, "first_volume_available_s": 90, "hypervisor_listed_s": 90}
NODES = ["ctl1", "stg1", "cmp1"]


def ceph_health(lab: controlplane.Lab) -> str:
    proc = lab.exec("stg1", "timeout", "10", "ceph", "health", "--format", "json", check=False)
    try:
        return json.loads(proc.stdout).get("status", "")
    except json.JSONDecodeError:
        return ""


def image(role: str, tag: str) -> str:
    ref = f"goldstack/{role}:{tag}"
    if subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, str(TOP / "build.py"), "--role", role, "--tag", tag], check=True)
    return ref


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=TOP / "bench/results/storage.json")
    parser.add_argument("--tag", default="bench", help="image tag (built with build.py when missing)")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    images = {role: image(role, args.tag) for role in ("controller", "storage", "compute")}
    result: dict[str, object] = {"host": {"cpus": os.cpu_count(), "platform": platform.platform()},
                                 "goals": GOALS, "images": images}
    with tempfile.TemporaryDirectory() as work, controlplane.controller_lab(
            images["controller"], Path(work), names=("ctl1",), computes=("cmp1",), compute_image=images["compute"],
            storages=("stg1",), storage_image=images["storage"]) as lab:
        print("control plane: starting ctl1 and waiting until only its image store is left", flush=True)
        started = time.monotonic()
        lab.start("ctl1")
        # The controller's last step (image-store) waits for the Ceph pools: everything before it is done.
        lab.wait_for(lambda: (dockerlab.agent_status(lab.containers["ctl1"]) or {}).get("steps", {})
                     .get("image-store", {}).get("status") == "running", "ctl1 waiting for its image store",
                     args.timeout)
        result["controller_up_to_image_store_s"] = round(time.monotonic() - started, 1)

        print("starting stg1 and cmp1 together", flush=True)
        started = time.monotonic()
        lab.start("stg1")
        lab.start("cmp1")
        milestones = ("storage_health_s", "cinder_volume_up_s", "glance_ready_s", "first_volume_available_s",
                      "hypervisor_listed_s")
        reached: dict[str, float | None] = dict.fromkeys(milestones)
        volume_id = None

        def mark(key: str) -> None:
            reached[key] = round(time.monotonic() - started, 1)
            print(f"  {key}: {reached[key]}", flush=True)

        deadline = started + args.timeout
        while time.monotonic() < deadline and any(v is None for v in reached.values()):
            if reached["storage_health_s"] is None and ceph_health(lab) in ("HEALTH_OK", "HEALTH_WARN"):
                mark("storage_health_s")
            if reached["glance_ready_s"] is None and (dockerlab.agent_status(lab.containers["ctl1"]) or {}).get(
                    "steps", {}).get("image-store", {}).get("status") == "done":
                mark("glance_ready_s")
            if reached["cinder_volume_up_s"] is None:
                services = lab.openstack("volume", "service", "list", check=False) or []
                if any(s["Binary"] == "cinder-volume" and s["State"] == "up" for s in services):  # type: ignore[union-attr]
                    mark("cinder_volume_up_s")
                    volume = lab.openstack("volume", "create", "--size", "1", "bench-first-volume", check=False)
                    volume_id = volume["id"] if volume else None  # type: ignore[index]
            if volume_id and reached["first_volume_available_s"] is None:
                shown = lab.openstack("volume", "show", volume_id, check=False) or {}
                if shown.get("status") == "available":  # type: ignore[union-attr]
                    mark("first_volume_available_s")
            if reached["hypervisor_listed_s"] is None:
                hypervisors = lab.openstack("hypervisor", "list", check=False) or []
                if any(h["Hypervisor Hostname"] == "cmp1" for h in hypervisors):  # type: ignore[union-attr]
                    mark("hypervisor_listed_s")
            time.sleep(1)
        result["from_start_of_storage_and_compute"] = reached
        lab.wait_agents(NODES, timeout=args.timeout)
        result["agent_step_seconds"] = {
            name: {step: rec.get("seconds") for step, rec in
                   (controlplane.dockerlab.agent_status(lab.containers[name]) or {}).get("steps", {}).items()}
            for name in NODES}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["from_start_of_storage_and_compute"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
