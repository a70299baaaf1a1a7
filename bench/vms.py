"""Benchmark the qcow2 disks as VMs. Writes JSON (--out, default bench/results/vms.json).

Measured today: a storage VM from storage.qcow2 under QEMU (KVM where a KVM guest really starts here, else
TCG), with a blank second disk as its OSD (`osd_device: /dev/vdb`) and a NoCloud seed whose site has no
other storage node, so it forms its own Ceph (`stop_after: ceph-osd`: no controller to register with). The
clock starts as QEMU starts (power-on); milestones are read off the serial console as they appear (polled
every second): cloud-init's NIC table, the agent's start, its monitor, and its OSD up. Each milestone's
kernel uptime is kept too (the console's timestamps; the firmware's part is the difference).

Not measured yet (null, with the reason): a compute VM joining a lab until schedulable and the all-VM
cloud until green: no VM node joins a lab yet (issue 29).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import RESULTS, TOP, finish, host
from imagebuild import vmboot

MAC = "52:54:00:98:00:31"
INVENTORY = {
    "cluster": "benchvm", "vip": "10.98.0.10", "networks": {"management": "10.98.0.0/24"},
    "options": {"stop_after": "ceph-osd"},
    "nodes": [{"name": "ctl1", "role": "controller", "addresses": {"management": "10.98.0.11"}},
              {"name": "sto1", "role": "storage", "addresses": {"management": "10.98.0.31"},
               "macs": {"management": MAC}, "osd_device": "/dev/vdb"}],
}
# Milestone -> the console line that marks it.
MILESTONES = {
    "network_up_s": re.compile(rf"ci-info: \|\s*eth0\s*\|\s*True\s*\|\s*10\.98\.0\.31\s*\|.*{MAC}"),
    "agent_started_s": re.compile(r"goldstack INFO document from"),
    "monitor_done_s": re.compile(r"ceph-mon: done in"),
    "storage_vm_osd_up_s": re.compile(r"ceph-osd: done in .*osd\.\d+ up on /dev/vdb"),
}
UPTIME = re.compile(r"^\[\s*(\d+\.\d+)\]")


def disk(role: str, path: Path | None) -> Path:
    """The role's qcow2: the one given, else build/images/ROLE.qcow2, built when missing."""
    image = path or TOP / "build" / "images" / f"{role}.qcow2"
    if not image.exists():
        subprocess.run([sys.executable, str(TOP / "build.py"), "--role", role, "--format", "qcow2", "--output",
                        str(image.parent)], check=True)
    return image


def storage_vm(image: Path, accel: str, timeout: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="goldstack-bench-vm-") as scratch:
        work = Path(scratch)
        (work / "site.yaml").write_text(yaml.safe_dump(INVENTORY))
        subprocess.run([sys.executable, "-m", "firstboot", "seed", str(work / "site.yaml"), "--out",
                        str(work / "seeds"), "--formats", "nocloud-iso"], cwd=TOP, check=True, capture_output=True)
        root = vmboot.overlay(image, work / "sto1.qcow2", 2**30)
        osd = vmboot.blank(work / "sto1-osd.qcow2", "8G")
        vm = vmboot.Vm(root, work / "seeds/sto1/nocloud.iso", MAC, work, extra_disks=[osd], accel=accel)
        seen: dict[str, float] = {}
        uptime: dict[str, float] = {}
        started = time.monotonic()
        vm.start()
        try:
            while time.monotonic() - started < timeout and not vm.exited():
                text = vm.console()
                for name, marker in MILESTONES.items():
                    if name in seen:
                        continue
                    line = next((ln for ln in text.splitlines() if marker.search(ln)), None)
                    if line:
                        seen[name] = round(time.monotonic() - started, 1)
                        if (found := UPTIME.search(line)) is not None:
                            uptime[name] = float(found.group(1))
                if len(seen) == len(MILESTONES) or vmboot.FAILURE in text:
                    break
                time.sleep(1)
            text = vm.console()
        finally:
            vm.stop()
    failed = next((ln for ln in text.splitlines() if vmboot.FAILURE in ln), None)
    return {"ok": len(seen) == len(MILESTONES), "seconds_from_power_on": seen, "kernel_uptime_s": uptime,
            "failure": failed, "console_tail": text.splitlines()[-20:] if len(seen) < len(MILESTONES) else []}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage-image", type=Path, help="storage qcow2 (default build/images/storage.qcow2, "
                        "built when missing)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds the VM may take (default 1200)")
    parser.add_argument("--out", type=Path, default=RESULTS / "vms.json")
    opts = parser.parse_args(argv)
    result: dict[str, object] = {"host": host()}
    accel, why = vmboot.Vm.accelerator()
    result.update(accel=accel, accel_reason=why)
    print(f"accelerator: {accel} ({why})", file=sys.stderr)
    storage = storage_vm(disk("storage", opts.storage_image), accel, opts.timeout)
    result["storage_vm"] = storage
    result["storage_vm_osd_up_s"] = storage["seconds_from_power_on"].get("storage_vm_osd_up_s")  # type: ignore[union-attr]
    not_yet = "not measured: no VM node joins a lab yet (issue 29)"
    result.update(compute_vm_schedulable_s=None, all_vm_green_s=None, not_measured={
        "compute_vm_schedulable_s": not_yet, "all_vm_green_s": not_yet})
    finish(result, opts.out)
    print(f"storage VM: {storage['seconds_from_power_on']} (kernel uptime {storage['kernel_uptime_s']}); "
          f"written to {opts.out}", file=sys.stderr)
    return 0 if storage["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
