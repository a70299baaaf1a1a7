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
import sys
import tempfile
import time
from pathlib import Path

from bench.common import RESULTS, ensure_image, finish, host
from firstboot import catalog
from tests import controlplane, dockerlab

GOALS = {"storage_health_s": 90, "first_volume_available_s": 90, "hypervisor_listed_s": 90}
NODES = ["ctl1", "stg1", "cmp1"]
MILESTONES = ("storage_health_s", "cinder_volume_up_s", "glance_ready_s", "first_volume_available_s",
              "hypervisor_listed_s")


def ceph_health(lab: controlplane.Lab) -> str:
    proc = lab.exec("stg1", "timeout", "10", "ceph", "health", "--format", "json", check=False)
    try:
        return json.loads(proc.stdout).get("status", "")
    except json.JSONDecodeError:
        return ""


def step_status(lab: controlplane.Lab, node: str, step: str) -> str | None:
    return (dockerlab.agent_status(lab.containers[node]) or {}).get("steps", {}).get(step, {}).get("status")


class Joining:
    """The milestones of a storage and a compute node joining, each marked once, polled from the host."""

    def __init__(self, lab: controlplane.Lab):
        self.lab = lab
        self.started = time.monotonic()
        self.reached: dict[str, float | None] = dict.fromkeys(MILESTONES)
        self.volume_id: str | None = None

    def mark(self, key: str) -> None:
        self.reached[key] = round(time.monotonic() - self.started, 1)
        print(f"  {key}: {self.reached[key]}", flush=True)

    def poll(self) -> None:
        lab, reached = self.lab, self.reached
        if reached["storage_health_s"] is None and ceph_health(lab) in ("HEALTH_OK", "HEALTH_WARN"):
            self.mark("storage_health_s")
        if reached["glance_ready_s"] is None and step_status(lab, "ctl1", "image-store") == "done":
            self.mark("glance_ready_s")
        if reached["cinder_volume_up_s"] is None:
            services = lab.openstack("volume", "service", "list", check=False) or []
            if any(s["Binary"] == catalog.CINDER_VOLUME and s["State"] == "up" for s in services):  # type: ignore[union-attr]
                self.mark("cinder_volume_up_s")
                volume = lab.openstack("volume", "create", "--size", "1", "bench-first-volume", check=False)
                self.volume_id = volume["id"] if volume else None  # type: ignore[index]
        if self.volume_id and reached["first_volume_available_s"] is None:
            shown = lab.openstack("volume", "show", self.volume_id, check=False) or {}
            if shown.get("status") == "available":  # type: ignore[union-attr]
                self.mark("first_volume_available_s")
        if reached["hypervisor_listed_s"] is None:
            hypervisors = lab.openstack("hypervisor", "list", check=False) or []
            if any(h["Hypervisor Hostname"] == "cmp1" for h in hypervisors):  # type: ignore[union-attr]
                self.mark("hypervisor_listed_s")

    def follow(self, timeout: float) -> dict[str, float | None]:
        deadline = self.started + timeout
        while time.monotonic() < deadline and any(v is None for v in self.reached.values()):
            self.poll()
            time.sleep(1)
        return self.reached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=RESULTS / "storage.json")
    parser.add_argument("--tag", default="bench", help="image tag (built with build.py when missing)")
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args()
    images = {role: ensure_image(role, args.tag) for role in catalog.ROLES}
    result: dict[str, object] = {"host": host(), "goals": GOALS, "images": images}
    with tempfile.TemporaryDirectory() as work, controlplane.controller_lab(
            images["controller"], Path(work), names=("ctl1",), computes=("cmp1",), compute_image=images["compute"],
            storages=("stg1",), storage_image=images["storage"]) as lab:
        print("control plane: starting ctl1 and waiting until only its image store is left", flush=True)
        started = time.monotonic()
        lab.start("ctl1")
        # The controller's last step (image-store) waits for the Ceph pools: everything before it is done.
        lab.wait_for(lambda: step_status(lab, "ctl1", "image-store") == "running",
                     "ctl1 waiting for its image store", args.timeout)
        result["controller_up_to_image_store_s"] = round(time.monotonic() - started, 1)
        print("starting stg1 and cmp1 together", flush=True)
        joining = Joining(lab)
        lab.start("stg1")
        lab.start("cmp1")
        result["from_start_of_storage_and_compute"] = joining.follow(args.timeout)
        lab.wait_agents(NODES, timeout=args.timeout)
        result["agent_step_seconds"] = {
            name: {step: rec.get("seconds") for step, rec in
                   (dockerlab.agent_status(lab.containers[name]) or {}).get("steps", {}).items()}
            for name in NODES}
    finish(result, args.out)
    print(json.dumps(result["from_start_of_storage_and_compute"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
