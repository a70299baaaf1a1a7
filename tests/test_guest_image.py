"""The lab's guest image (compose/guestimage.py), built from Debian packages and booted under QEMU as nova
would boot it: a virtio disk and NIC, an attached volume, its address by DHCP, and a real HTTP metadata
server at 169.254.169.254 (QEMU's user-mode network sends the guest's connections to that address to this
host's loopback, where the test serves the OpenStack and EC2 paths). The guest must report each step on its
serial console, run its user data, and let the test log in over SSH with the key the metadata gave it.
"""

from __future__ import annotations

import gzip
import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from compose import guestimage
from tests.metadata_server import MetadataServer

pytestmark = [pytest.mark.docker, pytest.mark.image]
METADATA_ADDRESS = "169.254.169.254"
VOLUME_MB = 64


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return guestimage.build()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def newc_names(archive: bytes) -> list[str]:
    """The paths in an initramfs (cpio "newc": a 110-byte ASCII header, the name, the data, 4-byte aligned)."""
    names, at = [], 0
    while at + 110 <= len(archive) and archive[at:at + 6] == b"070701":
        header = archive[at:at + 110]
        size, name_size = int(header[54:62], 16), int(header[94:102], 16)
        name = archive[at + 110:at + 110 + name_size - 1].decode()
        if name == "TRAILER!!!":
            break
        names.append(name)
        at = (at + 110 + name_size + 3) & ~3
        at = (at + size + 3) & ~3
    return names


def test_the_guest_image_carries_no_ssh_host_key(guest_disk, tmp_path):
    """Its host keys are made at first boot (dropbear -R); one in the image would be every guest's."""
    initrd = tmp_path / "initrd.gz"
    subprocess.run(["mcopy", "-i", f"{guest_disk}@@1M", "::/initrd.gz", str(initrd)], check=True)
    names = newc_names(gzip.decompress(initrd.read_bytes()))
    assert "init" in names and "sbin/dropbear" in names, names[:20]
    assert not [n for n in names if n.startswith("etc/dropbear/") or "host_key" in n]


def test_the_guest_takes_dhcp_reads_metadata_runs_user_data_and_takes_ssh_with_its_key(guest_disk, tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    instance = str(uuid.uuid4())
    meta_data = {"uuid": instance, "hostname": "probe-guest.novalocal", "name": "probe-guest"}
    routes = {"/openstack/latest/meta_data.json": json.dumps(meta_data).encode(),
              "/latest/meta-data/public-keys/0/openssh-key": (tmp_path / "id_ed25519.pub").read_bytes()}
    user_data = "#!/bin/sh\necho \"user data ran as $(id -u)\" > /run/user-data-ran\n"
    volume = tmp_path / "volume.raw"
    volume.write_bytes(b"")
    subprocess.run(["truncate", "-s", f"{VOLUME_MB}M", str(volume)], check=True)
    console, ssh_port = tmp_path / "console.log", free_port()
    # The built image stays as it is: the guest writes to a copy-on-write overlay, as nova's are.
    overlay = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(guest_disk), "-F", "raw", str(overlay)],
                   check=True)
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", str(guestimage.RAM_MB), "-display", "none",
           "-monitor", "none", "-no-reboot", "-serial", f"file:{console}",
           "-drive", f"file={overlay},format=qcow2,if=virtio", "-drive", f"file={volume},format=raw,if=virtio",
           "-netdev", f"user,id=net0,net=169.254.169.0/24,host={METADATA_ADDRESS},dhcpstart=169.254.169.20,"
                      f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
           "-device", "virtio-net-pci,netdev=net0"]
    try:
        metadata = MetadataServer(user_data, routes=routes, port=80)
    except OSError as error:
        pytest.fail(f"the test's metadata server needs 127.0.0.1:80 (QEMU sends {METADATA_ADDRESS}:80 there): "
                    f"{error}")
    with metadata:
        qemu = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            report = wait_for_report(console, qemu, 180)
            login = subprocess.run(
                ["ssh", "-i", str(key), "-p", str(ssh_port), "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=60",
                 "root@127.0.0.1", "hostname; cat /run/user-data-ran; cat /sys/block/vdb/size; sudo id -u"],
                capture_output=True, text=True, timeout=180)
        finally:
            qemu.kill()
            qemu.wait(timeout=30)
    said = console.read_text(errors="replace")
    assert report.address and report.address.startswith("169.254.169."), said
    assert report.instance == instance, said
    assert report.ssh_key, said
    assert report.disks.get("vdb") == VOLUME_MB * 2048, said
    assert "/openstack/latest/meta_data.json" in metadata.requests, metadata.requests
    assert login.returncode == 0, f"{login.stderr}\n{said}"
    assert login.stdout.split("\n")[:4] == ["probe-guest", "user data ran as 0", str(VOLUME_MB * 2048), "0"], \
        login.stdout


def wait_for_report(console: Path, qemu: subprocess.Popen, timeout: float) -> guestimage.Report:
    """The guest's report once it has networked, installed its key, started SSH and seen both disks."""
    deadline = time.monotonic() + timeout
    while True:
        text = console.read_text(errors="replace") if console.exists() else ""
        report = guestimage.read_console(text)
        assert not report.trouble, text
        if report.ssh_key and "ssh server listening" in text and len(report.disks) >= 2:
            return report
        if qemu.poll() is not None:
            output = qemu.stdout.read().decode(errors="replace") if qemu.stdout else ""
            pytest.fail(f"QEMU exited {qemu.returncode}: {output[-2000:]}\n{text[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"the guest did not report DHCP, metadata, its key, SSH and two disks within "
                        f"{timeout:.0f}s; its console:\n{text[-3000:]}")
        time.sleep(0.5)
