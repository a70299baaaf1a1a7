"""Benchmark storage and compute nodes joining a running control plane. Writes JSON (--out).

One controller is started and its agent left to finish; then the storage node and the compute node are
started together and the clock starts. Milestones, polled every second from the host: Ceph answers
HEALTH_OK or HEALTH_WARN (the one-OSD lab's single replica), cinder-volume is up in the block-storage
API, the first 1 GB volume created through the API is `available` (requested as soon as cinder-volume
is up), and the compute node's hypervisor is listed. The agents' per-step timings are recorded too.
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
from tests import controlplane  # noqa: E402

GOALS = {"storage_health_s": 90, "first_volume_available_s": 90, "hypervisor_listed_s": 90}
NODES = ["ctl1", "stg1", "cmp1"]


def openstack(lab: controlplane.Lab, *args: str) -> object | None:
    proc = lab.exec("ctl1", "sh", "-c", '. /root/admin-openrc && exec openstack "$@" -f json', "openstack", *args,
                    check=False, timeout=120)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


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
        print("control plane: starting ctl1 and waiting for its agent", flush=True)
        started = time.monotonic()
        lab.start("ctl1")
        lab.wait_agents(["ctl1"], timeout=args.timeout)
        result["controller_agent_done_s"] = round(time.monotonic() - started, 1)

        print("starting stg1 and cmp1 together", flush=True)
        started = time.monotonic()
        lab.start("stg1")
        lab.start("cmp1")
        reached: dict[str, float | None] = {k: None for k in ("storage_health_s", "cinder_volume_up_s",
                                                              "first_volume_available_s", "hypervisor_listed_s")}
        volume_id = None

        def mark(key: str) -> None:
            reached[key] = round(time.monotonic() - started, 1)
            print(f"  {key}: {reached[key]}", flush=True)

        deadline = started + args.timeout
        while time.monotonic() < deadline and any(v is None for v in reached.values()):
            if reached["storage_health_s"] is None and ceph_health(lab) in ("HEALTH_OK", "HEALTH_WARN"):
                mark("storage_health_s")
            if reached["cinder_volume_up_s"] is None:
                services = openstack(lab, "volume", "service", "list") or []
                if any(s["Binary"] == "cinder-volume" and s["State"] == "up" for s in services):  # type: ignore[union-attr]
                    mark("cinder_volume_up_s")
                    volume = openstack(lab, "volume", "create", "--size", "1", "bench-first-volume")
                    volume_id = volume["id"] if volume else None  # type: ignore[index]
            if volume_id and reached["first_volume_available_s"] is None:
                shown = openstack(lab, "volume", "show", volume_id) or {}
                if shown.get("status") == "available":  # type: ignore[union-attr]
                    mark("first_volume_available_s")
            hypervisors = openstack(lab, "hypervisor", "list") if reached["hypervisor_listed_s"] is None else []
            if any(h["Hypervisor Hostname"] == "cmp1" for h in hypervisors or []):  # type: ignore[union-attr]
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
