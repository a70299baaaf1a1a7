#!/usr/bin/env python3
"""Build Goldstack golden images: `python build.py --role compute`.

What a role contains is defined once, by the diskimage-builder elements in elements/. The docker
format applies those same elements in cached layers (base -> common -> OpenStack -> role -> agent)
on a debootstrapped Debian base, so no registry is needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

TOP = Path(__file__).resolve().parent
ELEMENTS = TOP / "elements"
CONTAINERS = TOP / "containers"
ROLES = ("controller", "compute", "storage")
FORMATS = ("docker", "qcow2")
RELEASE = "trixie"
OPENSTACK_RELEASE = "2025.1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_REPO = "goldstack"
MIN_FREE_GB = 15

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PREREQ = 0, 1, 2, 3
EXIT_CODES = """\
exit codes:
  0  every artifact built       1  a build failed (its log is named)
  2  bad command line           3  a prerequisite is missing (nothing was built)
"""


def version() -> str:
    from firstboot import __version__

    return __version__


class Prerequisite(Exception):
    """Something the build needs is missing; the message says how to fix it."""


class BuildFailed(Exception):
    pass


# ---------------------------------------------------------------- elements


def element_deps(name: str) -> list[str]:
    path = ELEMENTS / name / "element-deps"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def layer_order(role: str) -> list[str]:
    """Goldstack elements of a role, in cache-friendly layer order: what changes least comes first."""
    seen: list[str] = []

    def visit(name: str) -> None:
        if not (ELEMENTS / name).is_dir() or name in seen:
            return  # a diskimage-builder element (package-installs, install-static): built into DIB itself
        for dep in element_deps(name):
            if dep != "goldstack-agent":
                visit(dep)
        seen.append(name)

    visit(f"goldstack-{role}")
    return [*seen, "goldstack-agent"]


def element_packages(name: str) -> list[str]:
    path = ELEMENTS / name / "package-installs.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [pkg for pkg, opts in data.items() if not (isinstance(opts, dict) and opts.get("uninstall"))]


def role_packages(role: str) -> set[str]:
    return {p for e in layer_order(role) for p in element_packages(e)}


# ---------------------------------------------------------------- running commands


def run(cmd: list[str], log: Path | None = None, **kw) -> subprocess.CompletedProcess:
    if log is None:
        return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        handle.flush()
        return subprocess.run(cmd, check=True, stdout=handle, stderr=subprocess.STDOUT, **kw)


def stream(cmd: list[str], log: Path, progress: Progress, env: dict[str, str] | None = None) -> int:
    """Run a command into the log, showing each `Step N/M` line of a docker build as the phase."""
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            handle.write(line)
            if line.startswith("Step ") and " : " in line:
                progress.set("docker build " + line.strip()[:100])
        return proc.wait()


class Progress:
    """Prints the current phase with its elapsed time every few seconds, so long work shows life."""

    def __init__(self, label: str, interval: float = 15.0):
        self.label, self.interval = label, interval
        self.phase = "starting"
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            print(f"  {self.label}: {self.phase} ({self.elapsed():.0f}s)", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def set(self, phase: str) -> None:
        self.phase = phase
        print(f"  {self.label}: {phase} ({self.elapsed():.0f}s)", flush=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()


# ---------------------------------------------------------------- docker format


def docker_ok() -> str | None:
    if not shutil.which("docker"):
        return "the docker client is not installed: apt-get install docker.io (or run ./gs build)"
    try:
        run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=20)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return ("no Docker engine answers: start one (`dockerd --iptables=false &`, or `./gs build` starts it) "
                "and retry")
    return None


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0


def base_image_ref(mirror: str) -> str:
    key = hashlib.sha256(f"{RELEASE}|minbase|{mirror}|v1".encode()).hexdigest()[:12]
    return f"{IMAGE_REPO}/base:{RELEASE}-{key}"


def make_base_image(ref: str, mirror: str, log: Path, progress: Progress) -> None:
    """debootstrap a minimal trixie and import it: works with no container registry."""
    progress.set(f"debootstrap {RELEASE} from {mirror}")
    with tempfile.TemporaryDirectory(prefix="goldstack-rootfs-") as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase", RELEASE, str(root), mirror], log)
        security = mirror.rstrip("/") + "-security" if mirror.endswith("/debian") else mirror
        (root / "etc/apt/sources.list").write_text(
            f"deb {mirror} {RELEASE} main\ndeb {mirror} {RELEASE}-updates main\n"
            f"deb {security} {RELEASE}-security main\n")
        # Keep services from starting inside the build; finish-container removes it.
        policy = root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (root / rel).glob("*"):
                if item.is_file():
                    item.unlink()
        progress.set("docker import of the base root filesystem")
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        with open(log, "a") as handle:
            subprocess.run(["docker", "import", "--change", "CMD [\"/bin/bash\"]", "-", ref], stdin=tar.stdout,
                           stdout=handle, stderr=subprocess.STDOUT, check=True)
        if tar.wait() != 0:
            raise BuildFailed("tar of the base root filesystem failed")


def dockerfile(role: str, base: str, labels: dict[str, str]) -> str:
    lines = [
        "# Generated by build.py from elements/: edit the elements, not this file.",
        f"FROM {base}",
        "ENV DEBIAN_FRONTEND=noninteractive container=docker",
        "COPY apply-element /goldstack-build/apply-element",
    ]
    for element in layer_order(role):
        if element == "goldstack-agent":
            lines.append("COPY goldstack-src /tmp/in_target.d/goldstack-src")
        lines += [f"COPY elements/{element} /goldstack-build/elements/{element}",
                  f"RUN /goldstack-build/apply-element {element}"]
    lines += ["COPY finish-container /goldstack-build/finish-container",
              "RUN /goldstack-build/finish-container"]
    lines += [f"LABEL {k}={json.dumps(v)}" for k, v in labels.items()]
    lines += ["STOPSIGNAL SIGRTMIN+3", 'CMD ["/sbin/init"]', ""]
    return "\n".join(lines)


def build_context(role: str, base: str, labels: dict[str, str], into: Path) -> None:
    for element in layer_order(role):
        shutil.copytree(ELEMENTS / element, into / "elements" / element, symlinks=True)
        (into / "elements" / element / "packages.txt").write_text("\n".join(element_packages(element)) + "\n")
    shutil.copytree(TOP / "firstboot", into / "goldstack-src/firstboot",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for script in ("apply-element", "finish-container"):
        shutil.copy2(CONTAINERS / script, into / script)
    (into / "Dockerfile").write_text(dockerfile(role, base, labels))
    normalize_modes(into)


def normalize_modes(tree: Path) -> None:
    """Docker's layer cache keys on file modes: make them independent of the checkout's umask."""
    for path in [tree, *tree.rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o100
        path.chmod(0o755 if executable else 0o644)


def git_commit() -> str:
    try:
        return run(["git", "-C", str(TOP), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def labels_for(role: str) -> dict[str, str]:
    return {
        "org.goldstack.role": role,
        "org.goldstack.version": version(),
        "org.goldstack.commit": git_commit(),
        "org.goldstack.openstack-release": OPENSTACK_RELEASE,
        "org.goldstack.debian-release": RELEASE,
        "org.opencontainers.image.created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def spdx_sbom(name: str, packages: list[tuple[str, str, str]]) -> dict:
    """An SPDX 2.3 JSON document listing the image's Debian packages."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://goldstack.invalid/spdx/{name}-{created}",
        "creationInfo": {"created": created, "creators": [f"Tool: goldstack-build-{version()}"]},
        "packages": [
            {
                "name": pkg,
                "SPDXID": f"SPDXRef-deb-{hashlib.sha1(pkg.encode()).hexdigest()[:12]}",
                "versionInfo": ver,
                "downloadLocation": "NOASSERTION",
                "supplier": "Organization: Debian",
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": f"pkg:deb/debian/{pkg}@{ver}?arch={arch}"}],
            }
            for pkg, ver, arch in packages
        ],
    }


def installed_packages(image: str) -> list[tuple[str, str, str]]:
    out = run(["docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f",
               "${Package}\t${Version}\t${Architecture}\n"]).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line.count("\t") == 2]


@dataclass
class Artifact:
    role: str
    fmt: str
    name: str
    size_bytes: int
    seconds: float
    sbom: Path | None


def build_docker(role: str, opts: argparse.Namespace, log: Path) -> Artifact:
    ref = f"{IMAGE_REPO}/{role}:{opts.tag}"
    with Progress(f"{role}/docker") as progress:
        base = opts.base_image or base_image_ref(opts.mirror)
        if not opts.base_image and (opts.no_cache or not image_exists(base)):
            make_base_image(base, opts.mirror, log, progress)
        with tempfile.TemporaryDirectory(prefix="goldstack-ctx-") as ctx:
            build_context(role, base, labels_for(role), Path(ctx))
            progress.set(f"docker build {ref} (layers: {' > '.join(layer_order(role))})")
            cmd = ["docker", "build", "--network=host", "-t", ref, ctx]
            if opts.no_cache:
                cmd.insert(2, "--no-cache")
            if stream(cmd, log, progress) != 0:
                raise BuildFailed(f"docker build of {ref} failed; see {log}")
        progress.set("package manifest (SPDX)")
        sbom = opts.output / f"{role}.docker.spdx.json"
        sbom.write_text(json.dumps(spdx_sbom(f"goldstack-{role}", installed_packages(ref)), indent=1) + "\n")
        size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", ref]).stdout.strip())
        return Artifact(role, "docker", ref, size, progress.elapsed(), sbom)


# ---------------------------------------------------------------- qcow2 format
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
    return (f"set timeout=1\ninsmod part_gpt\ninsmod ext2\nsearch --no-floppy --label {ROOT_LABEL} --set=root\n"
            f"linux /{kernel} root=LABEL={ROOT_LABEL} ro console=tty0 console=ttyS0,115200n8\n"
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


# ---------------------------------------------------------------- CLI


def check_prerequisites(roles: list[str], formats: list[str], opts: argparse.Namespace) -> None:
    problems = []
    if "docker" in formats:
        if msg := docker_ok():
            problems.append(msg)
        elif not opts.base_image and not image_exists(base_image_ref(opts.mirror)) and not shutil.which("debootstrap"):
            problems.append("debootstrap is needed to make the base image: apt-get install debootstrap "
                            "(or pass --base-image debian:trixie if a registry is reachable)")
    if "qcow2" in formats:
        search = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
        missing = [tool for tool in QCOW2_TOOLS if not shutil.which(tool, path=search)]
        if missing:
            problems.append(f"the qcow2 build needs {', '.join(missing)}: run `./gs build` (it installs "
                            "diskimage-builder and the Debian packages) or see docs/images.md")
    opts.output.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(opts.output).free / 2**30
    if free_gb < MIN_FREE_GB:
        problems.append(f"only {free_gb:.1f} GB free at {opts.output}; a build needs {MIN_FREE_GB} GB")
    if os.geteuid() != 0 and "qcow2" in formats:
        problems.append("the qcow2 build needs root (diskimage-builder uses sudo)")
    if problems:
        raise Prerequisite("\n".join(f"  - {p}" for p in problems))


def plan_text(roles: list[str], formats: list[str], opts: argparse.Namespace) -> str:
    lines = [f"Goldstack {version()} build plan (Debian {RELEASE}, OpenStack {OPENSTACK_RELEASE}, mirror "
             f"{opts.mirror}):"]
    for role in roles:
        for fmt in formats:
            if fmt == "docker":
                base = opts.base_image or base_image_ref(opts.mirror)
                lines.append(f"  {role}/docker -> {IMAGE_REPO}/{role}:{opts.tag}")
                lines.append(f"      base {base}" + ("" if opts.base_image else " (debootstrap if missing)"))
                for element in layer_order(role):
                    pkgs = element_packages(element)
                    lines.append(f"      layer {element}: {len(pkgs)} packages")
            else:
                lines.append(f"  {role}/qcow2 -> {opts.output / (role + '.qcow2')}")
    return "\n".join(lines)


def summary(artifacts: list[Artifact], failures: list[str]) -> str:
    rows = [("ARTIFACT", "FORMAT", "SIZE", "TIME", "MANIFEST")]
    for a in artifacts:
        rows.append((a.name, a.fmt, f"{a.size_bytes / 2**30:.2f} GB", f"{a.seconds:.0f}s", str(a.sbom or "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in rows)
    if failures:
        text += "\n\nfailed:\n" + "\n".join(f"  - {f}" for f in failures)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python build.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Build Goldstack golden images of a role: a container image in the local Docker engine "
                    "(for the compose lab) or a bootable qcow2 (for VMs and bare metal). What each role "
                    "contains is defined once in elements/.",
        epilog="examples:\n  python build.py --role compute\n  python build.py --role all --dry-run\n"
               "  python build.py --role controller --tag dev --no-cache\n\n" + EXIT_CODES)
    parser.add_argument("--role", required=True, choices=(*ROLES, "all"), help="which role image to build")
    parser.add_argument("--format", default="docker", choices=(*FORMATS, "all"),
                        help="docker (default) or qcow2 or all")
    parser.add_argument("--mirror", default=DEFAULT_MIRROR, help="Debian mirror (default %(default)s)")
    parser.add_argument("--output", type=Path, default=TOP / "build/images",
                        help="where manifests and disk images go (default build/images)")
    parser.add_argument("--tag", default="latest", help="image tag (default %(default)s)")
    parser.add_argument("--base-image", help="start from this image (e.g. debian:trixie) instead of debootstrap")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer and the base image")
    parser.add_argument("--jobs", type=int, default=1, help="builds to run at once (default 1: 2-core hosts)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    parser.add_argument("--log", type=Path, help="build log (default OUTPUT/build.log)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    args.output = args.output.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    roles = list(ROLES) if opts.role == "all" else [opts.role]
    formats = list(FORMATS) if opts.format == "all" else [opts.format]
    print(plan_text(roles, formats, opts), flush=True)
    if opts.dry_run:
        return EXIT_OK
    try:
        check_prerequisites(roles, formats, opts)
    except Prerequisite as exc:
        print(f"error: cannot build:\n{exc}", file=sys.stderr)
        return EXIT_PREREQ
    log = opts.log or opts.output / "build.log"
    log.write_text(f"goldstack build {dt.datetime.now().isoformat()}\n")
    print(f"build log: {log}", flush=True)
    artifacts: list[Artifact] = []
    failures: list[str] = []
    jobs = [(r, f) for r in roles for f in formats]
    builders = {"docker": build_docker, "qcow2": build_qcow2}
    # The first job makes the shared base (image or package cache) before parallel builds race for it.
    with ThreadPoolExecutor(max_workers=min(opts.jobs, len(jobs))) as pool:
        for batch in (jobs[:1], jobs[1:]):
            futures = {pool.submit(builders[fmt], role, opts, log): (role, fmt) for role, fmt in batch}
            for future, (role, fmt) in futures.items():
                try:
                    artifacts.append(future.result())
                except (BuildFailed, subprocess.CalledProcessError) as exc:
                    failures.append(f"{role}/{fmt}: {exc}")
    print("\n" + summary(artifacts, failures))
    record = {"artifacts": [{"role": a.role, "format": a.fmt, "name": a.name, "size_bytes": a.size_bytes,
                             "seconds": round(a.seconds, 1), "manifest": str(a.sbom) if a.sbom else None}
                            for a in artifacts], "failures": failures}
    (opts.output / "build-summary.json").write_text(json.dumps(record, indent=2) + "\n")
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
