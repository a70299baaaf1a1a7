"""The lab's compose file, made from its inventory: one systemd container per node, its addresses on the
lab's networks, its role's state directories on named volumes (catalog.STATE_DIRS: what survives a
node's replacement) and its node document mounted where the agent reads it."""

from __future__ import annotations

import ipaddress
from pathlib import Path, PurePosixPath
from typing import Any

from firstboot import catalog
from firstboot.sources.base import NODE_FILE

# systemd as PID 1 without --privileged (docs/host.md), with the capabilities the services' privsep
# daemons keep for themselves (neutron's and nova's include DAC_READ_SEARCH and SYS_PTRACE).
NODE_TEMPLATE: dict[str, Any] = {
    "cap_add": ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"],
    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
    "tmpfs": ["/run", "/run/lock"],
    "stop_signal": "SIGRTMIN+3",
    "stop_grace_period": "60s",
    # TCP keepalive as elements/goldstack-agent/static/etc/sysctl.d/60-goldstack-tcp-keepalive.conf says
    # (why is there); a container's /proc/sys is read-only, so the engine sets them in its namespace.
    "sysctls": {"net.ipv4.tcp_keepalive_time": 20, "net.ipv4.tcp_keepalive_intvl": 5,
                "net.ipv4.tcp_keepalive_probes": 4},
}
NETWORKS = ("management", "provider")
LAB_LABEL = "org.goldstack.lab"


def volume_name(node: str, state_dir: str) -> str:
    return f"{node}-{PurePosixPath(state_dir).name}"


def service(node: dict[str, Any], image: str, document: Path, lab: str) -> dict[str, Any]:
    """One node's container."""
    networks = {net: {"ipv4_address": node["addresses"][net]} for net in NETWORKS if net in node["addresses"]}
    volumes = ["/sys/fs/cgroup:/sys/fs/cgroup:rw", f"{document}:{NODE_FILE}:ro"]
    volumes += [f"{volume_name(node['name'], d)}:{d}" for d in catalog.STATE_DIRS[node["role"]]]
    return {**NODE_TEMPLATE, "image": image, "hostname": node["name"], "networks": networks, "volumes": volumes,
            "labels": {LAB_LABEL: lab, "org.goldstack.role": node["role"]}}


def spec(inventory: dict[str, Any], images: dict[str, str], documents: dict[str, Path], lab: str) -> dict[str, Any]:
    """The whole compose file: `images` and `documents` by node name."""
    nodes = inventory["nodes"]
    return {
        "version": "2.4",  # compose v1.29 (Debian 12) reads a file without it as the old version-1 format
        "services": {n["name"]: service(n, images[n["name"]], documents[n["name"]], lab) for n in nodes},
        "networks": {net: {"ipam": {"config": [{"subnet": str(ipaddress.ip_network(inventory["networks"][net]))}]}}
                     for net in NETWORKS if net in inventory["networks"]},
        "volumes": {volume_name(n["name"], d): {} for n in nodes for d in catalog.STATE_DIRS[n["role"]]},
    }
