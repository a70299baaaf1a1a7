"""Facts the agent reads from the running host before rendering."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

from firstboot.document import Document
from firstboot.render import Facts

log = logging.getLogger(__name__)


def interface_of(address: str) -> str | None:
    """The interface that holds this address, from `ip -j addr`."""
    try:
        out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for link in json.loads(out or "[]"):
        if any(a.get("local") == address for a in link.get("addr_info", [])):
            return link.get("ifname")
    return None


def in_container(root: Path) -> bool:
    return (root / ".dockerenv").exists() or (root / "run/systemd/container").exists()


def virt_type(doc: Document, root: Path) -> str:
    """`kvm` only when asked for, or when `auto` and /dev/kvm can be opened; `qemu` (TCG) otherwise."""
    wanted = doc.options["virt_type"]
    if wanted != "auto":
        return wanted
    try:
        with open(root / "dev/kvm", "rb"):
            return "kvm"
    except OSError:
        return "qemu"


def gather(doc: Document, root: Path) -> Facts:
    iface = doc.node.interfaces.get("management") or interface_of(doc.node.management)
    if iface is None:
        log.warning("no interface holds %s; assuming eth0 (set node.interfaces.management)", doc.node.management)
        iface = "eth0"
    return Facts(management_interface=iface, virt_type=virt_type(doc, root), in_container=in_container(root))
