"""A role's qcow2 (compute in CI): built by diskimage-builder from the same elements, booted under QEMU
through UEFI firmware (OVMF, TCG), seeded by a NoCloud ISO; the agent's success line must reach the
serial console. Marked `image` and `qcow2`: `./gs test -m qcow2` runs it alone;
`GOLDSTACK_QCOW2_ROLE=storage ./gs test -m qcow2` checks another role's disk the same way."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from firstboot import seed
from imagebuild import vmboot
from imagebuild.vmboot import SUCCESS

# The build is part of the first test (its fixture): 10 minutes is too short for it on a loaded host.
pytestmark = [pytest.mark.image, pytest.mark.qcow2, pytest.mark.timeout(1800)]
TOP = Path(__file__).resolve().parent.parent
ROLE = os.environ.get("GOLDSTACK_QCOW2_ROLE", "compute")
NODE = {"compute": "cmp1", "controller": "ctl1", "storage": "sto1"}[ROLE]
MAC = "52:54:00:99:00:21"
DAEMON = {"compute": "nova-compute", "controller": "nova-api", "storage": "ceph-osd"}[ROLE]


@pytest.fixture(scope="session")
def role_qcow2(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qcow2")
    proc = subprocess.run([sys.executable, str(TOP / "build.py"), "--role", ROLE, "--format", "qcow2",
                           "--output", str(out)], cwd=TOP, capture_output=True, text=True, timeout=2400)
    log = out / "build.log"
    tail = "\n".join(log.read_text().splitlines()[-80:]) if log.exists() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + tail
    image = out / f"{ROLE}.qcow2"
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(image)], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2"
    return image


def test_qcow2_manifest_matches_the_container_role_packages(role_qcow2):
    from imagebuild.elements import role_packages

    sbom = json.loads((role_qcow2.parent / f"{ROLE}.qcow2.spdx.json").read_text())
    installed = {p["name"] for p in sbom["packages"]}
    assert not role_packages(ROLE) - installed
    assert "linux-image-amd64" in installed


def test_qcow2_boots_through_uefi_and_the_agent_succeeds(role_qcow2, tmp_path, doc_of):
    doc = doc_of(NODE)
    doc.setdefault("options", {})["stop_after"] = "config"  # no control plane here to register with
    # The seed's network configuration finds the VM's NIC by this MAC and gives it the node's address.
    me = next(p for p in doc["peers"][ROLE] if p["name"] == NODE)
    me["macs"] = {"management": MAC}
    seed.build_node(tmp_path / "seed", doc, ("nocloud-iso",))
    # A disk 1 GiB larger than the image, as a VM's usually is: the root file system must grow to it.
    disk = vmboot.overlay(role_qcow2, tmp_path / "disk.qcow2", 2**30)
    vm = vmboot.Vm(disk, tmp_path / "seed/nocloud.iso", MAC, tmp_path).start()
    try:
        text = vm.wait_for((), 900)
        tail = "\n".join(text.splitlines()[-80:])
        assert not vm.exited(), f"QEMU exited: {vm.output()}\n{tail}"
        assert SUCCESS in text, f"no success line on the serial console within the time limit:\n{tail}"
        assert f"node={NODE} role={ROLE}" in text
        # cloud-init's table of the NICs (on the console): the one with that MAC is eth0 with the address, so
        # the agent found its management interface by the address (no fallback guess).
        address = me["addresses"]["management"]
        ipv4 = re.findall(rf"ci-info: \|\s*eth0\s*\|\s*True\s*\|\s*([0-9.]+)\s*\|.*\|\s*{MAC}\s*\|", text)
        assert ipv4 == [address], f"eth0 ({MAC}) should hold {address} alone (no DHCP), not {ipv4}:\n{tail}"
        assert "no interface holds" not in text, tail
        assert "Failed to start networking.service" not in text, tail
        # The root file system grew at first boot (cloud-init's growpart, then resize2fs: the kernel says so).
        grown = re.search(r"EXT4-fs \((vd\w+)\): resized filesystem to (\d+)", text)
        assert grown, f"the root file system did not grow to the larger disk:\n{tail}"
        assert re.search(r"Finished .*sshd-keygen\.service", text), "no SSH host keys made at first boot"
        for value in doc["secrets"].values():
            assert str(value) not in text
    finally:
        vm.stop()


def test_no_secret_or_private_key_in_the_disk(role_qcow2, tmp_path, site_secrets):
    """Read the disk's root filesystem in userspace (qemu-img, sfdisk, debugfs: no mount) and scan it."""
    from tests import artifact_scan

    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(role_qcow2), str(raw)], check=True)
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    root = next(p for p in table["partitions"] if p.get("name") == "root")
    part = tmp_path / "root.img"
    subprocess.run(["dd", f"if={raw}", f"of={part}", "bs=1M", f"skip={root['start'] * 512}", "iflag=skip_bytes",
                    f"count={root['size'] * 512}", "iflag=count_bytes", "status=none"], check=True)
    raw.unlink()
    tree = tmp_path / "tree"
    tree.mkdir()
    subprocess.run(["debugfs", "-R", f"rdump / {tree}", str(part)], check=True, capture_output=True)
    part.unlink()
    needles = artifact_scan.secret_needles(site_secrets)
    problems: list[str] = []
    files = 0
    for path in tree.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_size <= 50 * 2**20:
            files += 1
            problems += artifact_scan.problems_in("/" + str(path.relative_to(tree)), path.read_bytes(), needles)
    assert files > 10000 and (tree / "usr/bin" / DAEMON).exists()
    assert not problems, "\n".join(problems)
