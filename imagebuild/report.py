"""Before and after a build: the prerequisites check, the plan, the summary table."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from imagebuild import IMAGE_REPO, MIN_FREE_GB, OPENSTACK_RELEASE, RELEASE, Prerequisite, version
from imagebuild.artifact import Artifact
from imagebuild.docker import base_image_ref, docker_ok, image_exists
from imagebuild.elements import element_packages, layer_order
from imagebuild.qcow2 import QCOW2_TOOLS


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
