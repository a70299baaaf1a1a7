"""The lab's guest image: a small Linux that networks the way a cloud image does, made from Debian packages.

Debian's kernel boots from a FAT partition (syslinux) into an initramfs whose busybox init
(compose/guest/init) takes its address by DHCP, reads the metadata service (instance, SSH key, user data),
starts dropbear and reports every step and every disk on the serial console. A check that reads the console
then knows the guest really networks, not only that libvirt started a domain; the same image is one Tempest
can log in to. The disk is about 20 MiB and reaches its shell in seconds under QEMU TCG.

It is built in a throwaway container from the lab's debootstrapped base image (no registry, nothing from
outside Debian's mirror) and kept as build/guest/guest-KEY.raw, KEY a digest of everything that makes it.

    python -m compose.guestimage [--mirror URL]      # builds it if missing, prints its path
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from imagebuild import DEFAULT_MIRROR, IMAGE_REPO, TOP
from imagebuild.commands import Progress, run, stream
from imagebuild.docker import base_image_ref, image_exists, make_base_image

SOURCE = Path(__file__).resolve().parent / "guest"
FILES = ("init", "udhcpc.sh", "assemble.sh")
OUT = TOP / "build" / "guest"
PACKAGES = ("busybox-static", "dropbear-bin", "syslinux", "syslinux-common", "mtools", "dosfstools", "fdisk", "kmod",
            "xz-utils", "zstd")
# Drivers Debian builds as modules that a nova guest needs: virtio disk and NIC, the CD-ROM a config drive
# comes on (IDE, ISO 9660; init reads the metadata service, a user-data script may mount the drive), and the
# power button (ACPI button, input events) that nova's soft stop presses.
MODULES = ("virtio_pci", "virtio_net", "virtio_blk", "ata_piix", "sr_mod", "isofs", "button", "evdev")
RAM_MB = 128  # Debian's kernel does not get as far as its own messages in 64 MiB
SAID = "goldstack-guest: "  # how compose/guest/init and udhcpc.sh begin each line they write on the console
# What the guest says when something it needs is missing: the check fails at once, quoting it.
TROUBLE = ("no network interface", "metadata service unreachable")


@dataclass
class Report:
    """How far the guest got in its last boot, as it said on its console."""
    booted: bool = False
    address: str | None = None  # from its DHCP lease
    instance: str | None = None  # the instance UUID the metadata service gave it
    ssh_key: bool = False
    disks: dict[str, int] = field(default_factory=dict)  # name: sectors, as the guest sees them now
    trouble: list[str] = field(default_factory=list)


def read_console(text: str) -> Report:
    report = Report()
    for line in text.replace("\r", "").splitlines():
        said = line.partition(SAID)[2].strip()
        if not said:
            continue
        if said.startswith("booted"):  # each boot starts a new report
            report = Report(booted=True)
        elif match := re.match(r"dhcp \S+ ([0-9.]+)/", said):
            report.address = match.group(1)
        elif match := re.match(r"metadata service reached, instance ([0-9a-f-]+)", said):
            report.instance = match.group(1)
        elif said.startswith("ssh key installed"):
            report.ssh_key = True
        elif match := re.match(r"disk (\w+) (\d+) sectors", said):
            report.disks[match.group(1)] = int(match.group(2))
        elif match := re.match(r"disk (\w+) removed", said):
            report.disks.pop(match.group(1), None)
        elif said in TROUBLE:
            report.trouble.append(said)
    return report


def dockerfile(base: str) -> str:
    # The kernel package is unpacked, not installed: its post-install would build an initramfs we do not use.
    return "\n".join([
        f"FROM {base}",
        "ENV DEBIAN_FRONTEND=noninteractive",
        f"RUN apt-get update && apt-get install -y --no-install-recommends {' '.join(PACKAGES)} && cd /tmp"
        " && apt-get download $(apt-cache depends --important linux-image-amd64"
        " | sed -n 's/.*Depends: \\(linux-image-[0-9].*\\)/\\1/p')"
        " && dpkg-deb -x linux-image-*.deb / && depmod $(ls /lib/modules) && rm -rf /tmp/*.deb /var/lib/apt/lists/*",
        "COPY guest/ /guest/",
        f"ENV GUEST_MODULES=\"{' '.join(MODULES)}\"",
        "RUN sh /guest/assemble.sh /guest.raw",
        "",
    ])


def key(base: str) -> str:
    digest = hashlib.sha256(dockerfile(base).encode())
    for name in FILES:
        digest.update(name.encode() + b"\0" + (SOURCE / name).read_bytes())
    return digest.hexdigest()[:12]


def build(mirror: str = DEFAULT_MIRROR, say: Callable[[str], None] = print) -> Path:
    """The guest image's path, built first if this content has not been built yet."""
    base = base_image_ref(mirror)
    digest = key(base)
    target = OUT / f"guest-{digest}.raw"
    if target.exists():
        return target
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "build.log"
    ref = f"{IMAGE_REPO}/guest-build:{digest}"
    with Progress("guest image") as progress, tempfile.TemporaryDirectory(prefix="goldstack-guest-") as tmp:
        if not image_exists(base):
            make_base_image(base, mirror, log, progress)
        context = Path(tmp)
        (context / "Dockerfile").write_text(dockerfile(base))
        (context / "guest").mkdir()
        for name in FILES:
            copy = context / "guest" / name
            copy.write_bytes((SOURCE / name).read_bytes())
            copy.chmod(0o755)
        progress.set(f"docker build {ref}")
        if stream(["docker", "build", "--network=host", "-t", ref, str(context)], log, progress) != 0:
            raise RuntimeError(f"the guest image's build failed; see {log}")
        progress.set("copy the disk out")
        container = run(["docker", "create", ref]).stdout.strip()
        partial = target.with_suffix(".partial")
        try:
            run(["docker", "cp", f"{container}:/guest.raw", str(partial)], log)
        finally:
            subprocess.run(["docker", "rm", container], capture_output=True)
        partial.rename(target)
    say(f"guest image {target} ({target.stat().st_size // 2**20} MiB)")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror of the base image")
    args = parser.parse_args(argv)
    try:
        print(build(args.mirror, say=lambda line: print(line, file=sys.stderr)))
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"guest image: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
