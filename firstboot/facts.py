"""Facts the agent reads from the running host before rendering."""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

from firstboot.document import Document
from firstboot.errors import GoldstackError
from firstboot.render import Facts

log = logging.getLogger(__name__)


class HardwareMissing(GoldstackError):
    """The document names a part of the machine (a NIC, a disk) that is not here: nothing is configured."""


class NicMissing(HardwareMissing):
    """The document names a NIC by a MAC this machine does not have: nothing is configured for it."""


def _links() -> list[dict]:
    """`ip -j addr`: every interface with its MAC and addresses (none when ip cannot run)."""
    try:
        out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return json.loads(out or "[]")


def interface_of(address: str, links: list[dict]) -> str | None:
    """The interface among `links` (`ip -j addr`'s) that holds this address."""
    for link in links:
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            return link.get("ifname")
    return None


def check_macs(macs: dict[str, str], links: list[dict]) -> None:
    """Every NIC the document names by MAC is here; else the agent stops before writing anything, saying which
    field names which MAC and what NICs there are (a VM started with another MAC, a machine's NIC swapped)."""
    present = {str(link.get("address", "")).lower(): link.get("ifname") for link in links}
    missing = {net: mac for net, mac in macs.items() if mac.lower() not in present}
    if missing:
        have = ", ".join(f"{name} {mac}" for mac, name in present.items() if mac and name != "lo") or "none"
        wrong = "; ".join(f"node.macs.{net}: no NIC has {mac}" for net, mac in missing.items())
        raise NicMissing(f"{wrong} (this machine's NICs: {have}); fix the inventory's macs or the machine's NICs, "
                         "then make the seed again")


class DiskMissing(HardwareMissing):
    """The document names an OSD disk this machine does not have, or a path that is no disk."""


def disks(sys_block: Path = Path("/sys/block")) -> list[str]:
    """This machine's disks, as the kernel names them (loop and RAM devices left out)."""
    try:
        return sorted(p.name for p in sys_block.iterdir() if not p.name.startswith(("loop", "ram", "zram")))
    except OSError:
        return []


def check_osd_device(device: str, sys_block: Path = Path("/sys/block")) -> None:
    """The OSD disk the document names is a block device here; else the agent stops before writing anything,
    naming the field and the disks there are (a VM started without its second disk, a disk named otherwise
    on this machine). Whether it holds data is the OSD step's to check (firstboot.ceph.check_osd_device)."""
    try:
        problem = "" if stat.S_ISBLK(os.stat(device).st_mode) else "not a block device"
    except OSError as exc:
        problem = (exc.strerror or "cannot be read").lower()
    if problem:
        raise DiskMissing(f"node.osd_device: {device}: {problem} (this machine's disks: "
                          f"{', '.join(disks(sys_block)) or 'none'}); attach the disk, or fix the inventory's "
                          "osd_device, then make the seed again")


def in_container(root: Path) -> bool:
    return (root / ".dockerenv").exists() or (root / "run/systemd/container").exists()


QEMU = "qemu-system-x86_64"
KVM_PROBE_TIMEOUT = 20
# The firmware's last words when it ran to the end with nothing to boot.
_FIRMWARE_DONE = "No bootable device"
# UEFI (OVMF, as the qcow2 disks boot): its boot manager's first line on the serial console. On this host a
# KVM guest runs the BIOS to its end, but one booting OVMF crashes or hangs before printing anything.
UEFI_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
UEFI_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
_UEFI_RUNS = "BdsDxe"


def kvm_guest_starts(root: Path, uefi: bool = False) -> tuple[bool, str]:
    """Start a throw-away KVM guest with the host CPU model (what nova's default cpu_mode asks for) and
    see its firmware run to the end. /dev/kvm being there is not enough: on some nested hosts QEMU
    aborts setting the vCPU's MSRs, or the guest hangs."""
    try:
        with open(root / "dev/kvm", "rb"):
            pass
    except OSError as exc:
        return False, f"/dev/kvm: {exc.strerror}"
    return guest_runs_firmware("kvm", "host", uefi)


def guest_runs_firmware(accel: str, cpu: str, uefi: bool = False) -> tuple[bool, str]:
    """Boot QEMU's firmware (no disk) with this accelerator and CPU model; True when it ran to the end (the
    BIOS nova's guests boot, or with `uefi` the OVMF the qcow2 disks boot, until its boot manager runs)."""
    if shutil.which(QEMU) is None:
        return False, f"{QEMU} is not installed"
    cmd = [QEMU, "-accel", accel, "-cpu", cpu, "-machine", "q35", "-m", "256" if uefi else "64", "-nodefaults",
           "-display", "none", "-no-reboot"]
    with tempfile.TemporaryDirectory(prefix="goldstack-probe-") as scratch:
        if uefi:
            if not UEFI_CODE.exists():
                return False, f"{UEFI_CODE} is not installed (the ovmf package)"
            shutil.copy(UEFI_VARS, Path(scratch) / "vars.fd")
            cmd += ["-drive", f"if=pflash,format=raw,readonly=on,file={UEFI_CODE}",
                    "-drive", f"if=pflash,format=raw,file={Path(scratch) / 'vars.fd'}", "-serial", "stdio"]
        else:
            cmd += ["-chardev", "stdio,id=fw", "-device", "isa-debugcon,iobase=0x402,chardev=fw"]
        return _firmware_runs(cmd, _UEFI_RUNS if uefi else _FIRMWARE_DONE, f"a {accel} guest with the {cpu} CPU "
                              f"model{' and UEFI firmware' if uefi else ''}")


def _firmware_runs(cmd: list[str], done: str, what: str) -> tuple[bool, str]:
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        return False, f"{QEMU}: {exc}"
    # The firmware waits forever once it has nothing to boot: stop QEMU as soon as it says so.
    output = ""
    deadline = time.monotonic() + KVM_PROBE_TIMEOUT
    assert proc.stdout is not None
    try:
        while done not in output and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(proc.stdout.fileno(), 4096).decode(errors="replace")
            if not chunk:
                break
            output += chunk
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    if done in output:
        return True, f"{what} ran its firmware"
    last = [line for line in output.strip().splitlines() if line.strip()][-1:] or ["no output"]
    return False, f"{what} did not run: {last[0][:200]}"


def virt_type(doc: Document, root: Path) -> str:
    """`kvm` when asked for, or when `auto` and a KVM guest really starts; `qemu` (TCG) otherwise.
    Only compute nodes run guests, so only they pay for the probe."""
    wanted = doc.options["virt_type"]
    if wanted != "auto":
        return wanted
    if doc.role != "compute":
        return "qemu"
    usable, why = kvm_guest_starts(root)
    log.info("virt_type auto -> %s: %s", "kvm" if usable else "qemu", why)
    return "kvm" if usable else "qemu"


def gather(doc: Document, root: Path) -> Facts:
    links = _links()
    if doc.node.macs:
        check_macs(doc.node.macs, links)
    if doc.node.osd_device:
        check_osd_device(doc.node.osd_device)
    iface = doc.node.interfaces.get("management") or interface_of(doc.node.management, links)
    if iface is None:
        log.warning("no interface holds %s; assuming eth0 (set node.interfaces.management)", doc.node.management)
        iface = "eth0"
    provider = doc.node.addresses.get("provider")
    provider_iface = doc.node.interfaces.get("provider") or (interface_of(provider, links) if provider else None)
    return Facts(management_interface=iface, virt_type=virt_type(doc, root), in_container=in_container(root),
                 provider_interface=provider_iface)
