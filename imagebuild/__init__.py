"""Golden image builds (`python build.py`): what each role contains is defined once, by the
diskimage-builder elements in elements/; this package turns them into a container image or a qcow2 disk."""

from __future__ import annotations

from pathlib import Path

from firstboot.catalog import ROLES

TOP = Path(__file__).resolve().parent.parent
ELEMENTS = TOP / "elements"
CONTAINERS = TOP / "containers"
FORMATS = ("docker", "qcow2")
RELEASE = "trixie"
OPENSTACK_RELEASE = "2025.1"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGE_REPO = "goldstack"
MIN_FREE_GB = 15

__all__ = ["CONTAINERS", "DEFAULT_MIRROR", "ELEMENTS", "FORMATS", "IMAGE_REPO", "MIN_FREE_GB", "OPENSTACK_RELEASE",
           "RELEASE", "ROLES", "TOP", "BuildFailed", "Prerequisite", "version"]


def version() -> str:
    from firstboot import __version__

    return __version__


class Prerequisite(Exception):
    """Something the build needs is missing; the message says how to fix it."""


class BuildFailed(Exception):
    pass
