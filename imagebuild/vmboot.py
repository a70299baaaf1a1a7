"""Boot a built disk as a VM under QEMU, the way the qcow2 test and the VM benchmark do: UEFI firmware
(OVMF, Secure Boot off: the disk's GRUB is not signed), a copy-on-write overlay so the built disk stays
untouched, the seed ISO as a CD-ROM, one virtio NIC with the inventory's MAC, the serial console in a file.
TCG unless told otherwise: this host's KVM cannot start guests."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from firstboot import facts

OVMF_CODE, OVMF_VARS = facts.UEFI_CODE, facts.UEFI_VARS
SUCCESS, FAILURE = "goldstack-firstboot: SUCCESS", "goldstack-firstboot: FAILED"


def overlay(base: Path, path: Path, grow_bytes: int = 0) -> Path:
    """A qcow2 overlay of `base`, `grow_bytes` larger than it (a VM's disk usually is larger than the image:
    the root file system grows to it at first boot)."""
    info = subprocess.run(["qemu-img", "info", "--output=json", str(base)], capture_output=True, text=True,
                          check=True).stdout
    size = json.loads(info)["virtual-size"] + grow_bytes
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2", str(path),
                    str(size)], check=True)
    return path


def blank(path: Path, size: str) -> Path:
    """An empty qcow2 disk (an OSD's data disk)."""
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


@dataclass
class Vm:
    """A VM from `disk` (the overlay) seeded by `seed_iso`; `extra_disks` become /dev/vdb, /dev/vdc, ..."""

    disk: Path
    seed_iso: Path
    mac: str
    workdir: Path
    extra_disks: Sequence[Path] = ()
    memory_mb: int = 2048
    cpus: int = 2
    accel: str = "tcg"  # "kvm" only where a KVM guest really starts (firstboot.facts.kvm_guest_starts)
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def serial(self) -> Path:
        return self.workdir / "serial.log"

    @staticmethod
    def accelerator() -> tuple[str, str]:
        """kvm when a KVM guest runs UEFI firmware here (a KVM device is not enough: on this host such a guest
        hangs before its first line), else tcg; and why."""
        usable, why = facts.kvm_guest_starts(Path("/"), uefi=True)
        return ("kvm" if usable else "tcg"), why

    def command(self) -> list[str]:
        variables = self.workdir / "vars.fd"
        cpu = "host" if self.accel == "kvm" else "max"
        cmd = ["qemu-system-x86_64", "-machine", "q35", "-accel", self.accel, "-cpu", cpu,
               "-m", str(self.memory_mb), "-smp", str(self.cpus),
               "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,file={variables}",
               "-drive", f"file={self.disk},if=virtio,format=qcow2"]
        for extra in self.extra_disks:
            cmd += ["-drive", f"file={extra},if=virtio,format=qcow2"]
        return [*cmd, "-drive", f"file={self.seed_iso},media=cdrom,readonly=on",
                "-nic", f"user,model=virtio-net-pci,mac={self.mac}",
                "-display", "none", "-monitor", "none", "-serial", f"file:{self.serial}"]

    def start(self) -> Vm:
        shutil.copy(OVMF_VARS, self.workdir / "vars.fd")
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)
        return self

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_for(self, markers: Sequence[str], timeout: float) -> str:
        """The console once it shows one of `markers` (or the agent's success or failure line), QEMU exited,
        or `timeout` seconds passed; the caller asserts on it."""
        deadline = time.monotonic() + timeout
        text = self.console()
        while time.monotonic() < deadline:
            text = self.console()
            if any(m in text for m in (*markers, SUCCESS, FAILURE)) or self.exited():
                break
            time.sleep(1)
        return text

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def output(self) -> str:
        """What QEMU itself printed, once it exited."""
        return self.process.stdout.read() if self.exited() and self.process and self.process.stdout else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
