"""The qcow2 format: diskimage-builder builds the root tree from the same elements."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from imagebuild import ELEMENTS, RELEASE, TOP, BuildFailed
from imagebuild.artifact import Artifact
from imagebuild.commands import Progress, run, stream
from imagebuild.manifest import spdx_sbom

#
# diskimage-builder builds the root tree from the same elements. Where the kernel has device-mapper,
# its normal block-device phase partitions a loop device. Where it has not (kpartx fails, loop devices
# show no partitions), the goldstack-tree-only element hands DIB a plain directory and `-t tar` output;
# the disk is then assembled here with no mount at all: mkfs.ext4 -d fills the root filesystem from the
# tree, mtools writes a FAT EFI system partition holding a standalone GRUB, sfdisk writes a GPT, and
# the pieces are copied in at their offsets.

ESP_MB = 64
ROOT_LABEL = "goldstack-root"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
QCOW2_TOOLS = ("disk-image-create", "debootstrap", "sudo", "qemu-img", "sfdisk", "mkfs.ext4", "mkfs.vfat",
               "mcopy", "grub-mkstandalone")


def has_device_mapper() -> bool:
    """The kernel answers on the device-mapper control node. The node alone proves nothing: installing
    lvm2 or dmsetup (as diskimage-builder's chroot does, through its bind mount of /dev) creates it on
    kernels without the driver, where opening it fails with ENODEV."""
    try:
        fd = os.open("/dev/mapper/control", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def dib_env(opts: argparse.Namespace, role: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ELEMENTS_PATH": str(ELEMENTS),
        "DIB_RELEASE": RELEASE,
        "DIB_DISTRIBUTION_MIRROR": opts.mirror,
        "DIB_DEBIAN_SECURITY_MIRROR": opts.mirror.rstrip("/") + "-security",
        "GOLDSTACK_SOURCE": str(TOP),
        "GOLDSTACK_ROLE": role,
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
    })
    return env


def grub_config(kernel: str, initrd: str) -> str:
    """net.ifnames=0: the NICs are eth0, eth1, ... in PCI order, the names a seed's network configuration
    gives a NIC it does not find by MAC (firstboot.seed.static_links)."""
    return (f"set timeout=1\ninsmod part_gpt\ninsmod ext2\nsearch --no-floppy --label {ROOT_LABEL} --set=root\n"
            f"linux /{kernel} root=LABEL={ROOT_LABEL} ro net.ifnames=0 console=tty0 console=ttyS0,115200n8\n"
            f"initrd /{initrd}\nboot\n")


def newest(tree: Path, pattern: str) -> str:
    found = sorted(tree.glob(pattern))
    if not found:
        raise BuildFailed(f"the root tree has no {pattern}: is linux-image-amd64 in the goldstack-vm element?")
    return str(found[-1].relative_to(tree))


def assemble_disk(tree: Path, work: Path, raw: Path, log: Path) -> None:
    """Partitioned GPT disk with an EFI system partition (standalone GRUB) and an ext4 root, no mounts."""
    (tree / "etc/fstab").write_text(f"LABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1\n")
    for mountpoint, mode in (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("run", 0o755), ("tmp", 0o1777)):
        (tree / mountpoint).mkdir(exist_ok=True)  # DIB's tar leaves out the kernel's file systems
        (tree / mountpoint).chmod(mode)
    used = int(run(["du", "-s", "--block-size=1M", str(tree)]).stdout.split()[0])
    root_mb = int(used * 1.25) + 1024  # room for logs, state and packages the node adds
    root_img, esp_img, efi = work / "root.img", work / "esp.img", work / "BOOTX64.EFI"
    run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(tree), str(root_img), f"{root_mb}M"], log)
    cfg = work / "grub.cfg"
    cfg.write_text(grub_config(newest(tree, "boot/vmlinuz-*"), newest(tree, "boot/initrd.img-*")))
    run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi), "--modules=part_gpt ext2 search_label",
         f"boot/grub/grub.cfg={cfg}"], log)
    run(["mkfs.vfat", "-n", "ESP", "-C", str(esp_img), str(ESP_MB * 1024)], log)
    run(["mmd", "-i", str(esp_img), "::/EFI", "::/EFI/BOOT"], log)
    run(["mcopy", "-i", str(esp_img), str(efi), "::/EFI/BOOT/BOOTX64.EFI"], log)
    sector = 512
    esp_start = 2048
    esp_sectors = ESP_MB * 2**20 // sector
    root_start = esp_start + esp_sectors
    root_sectors = root_img.stat().st_size // sector
    total = (root_start + root_sectors + 2048) * sector
    with open(raw, "wb") as handle:
        handle.truncate(total)
    layout = (f"label: gpt\nstart={esp_start}, size={esp_sectors}, type={ESP_TYPE}, name=ESP\n"
              f"start={root_start}, size={root_sectors}, type={LINUX_TYPE}, name=root\n")
    subprocess.run(["sfdisk", "--quiet", str(raw)], input=layout, text=True, check=True, capture_output=True)
    for image, start in ((esp_img, esp_start), (root_img, root_start)):
        run(["dd", f"if={image}", f"of={raw}", "bs=1M", f"seek={start * sector}", "oflag=seek_bytes",
             "conv=notrunc,sparse", "status=none"], log)


def build_qcow2(role: str, opts: argparse.Namespace, log: Path) -> Artifact:
    target = opts.output / f"{role}.qcow2"
    with Progress(f"{role}/qcow2") as progress, tempfile.TemporaryDirectory(prefix="goldstack-dib-") as tmp:
        work = Path(tmp)
        elements = ["debian-minimal", "goldstack-vm", f"goldstack-{role}"]
        env = dib_env(opts, role)
        if has_device_mapper():
            progress.set("disk-image-create (normal block-device phase)")
            cmd = ["disk-image-create", "-a", "amd64", "-t", "qcow2", "-o", str(target.with_suffix("")),
                   *elements, "vm", "block-device-efi"]
            if stream(cmd, log, progress, env=env) != 0:
                raise BuildFailed(f"disk-image-create failed; see {log}")
        else:
            progress.set("disk-image-create: root tree (no device-mapper here: tree-only, then assemble)")
            cmd = ["disk-image-create", "-a", "amd64", "-t", "tar", "--no-tmpfs", "-o", str(work / "root"),
                   *elements, "goldstack-tree-only"]
            if stream(cmd, log, progress, env=env) != 0:
                raise BuildFailed(f"disk-image-create failed; see {log}")
            tree = work / "tree"
            tree.mkdir()
            progress.set("unpack the root tree")
            run(["tar", "-C", str(tree), "--numeric-owner", "-xpf", str(work / "root.tar")], log)
            listing = run(["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W", "-f",
                           "${Package}\t${Version}\t${Architecture}\n"]).stdout
            (work / "packages.tsv").write_text(listing)
            progress.set("assemble the GPT disk (ESP + ext4 root) without mounting")
            assemble_disk(tree, work, work / "disk.raw", log)
            progress.set("convert to qcow2")
            run(["qemu-img", "convert", "-O", "qcow2", str(work / "disk.raw"), str(target)], log)
        progress.set("package manifest (SPDX)")
        packages = [tuple(line.split("\t")) for line in (work / "packages.tsv").read_text().splitlines()] \
            if (work / "packages.tsv").exists() else []
        sbom = None
        if packages:
            sbom = opts.output / f"{role}.qcow2.spdx.json"
            sbom.write_text(json.dumps(spdx_sbom(f"goldstack-{role}-qcow2", packages), indent=1) + "\n")
        return Artifact(role, "qcow2", str(target), target.stat().st_size, progress.elapsed(), sbom)
