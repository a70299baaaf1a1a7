"""Neutron's agents on this node: Open vSwitch (userspace datapath) and, on controllers, the DHCP, L3 and
metadata agents; done when neutron-server lists each of them alive for this host.

The netdev datapath makes its bridge and internal ports as TAP devices. Containers start without
/dev/net/tun (VMs and bare metal have it), so the step creates the node (character 10:200, which
container engines allow by default) when it is missing.
"""

from __future__ import annotations

import json
import os
import stat
import threading

from firstboot import catalog, cloud, proc
from firstboot.steps.base import Context
from firstboot.steps.units import JoinStep, start_units, units_for

TUN = "/dev/net/tun"
TUNNEL_BRIDGE = "br-tunnel"  # holds the tunnel endpoint when it is neither the provider nor management address
TUN_DEVICE = (10, 200)
_SWITCH_LOCK = threading.Lock()  # the network and compute steps run side by side and both need the switch


def ensure_tun(ctx: Context) -> bool:
    path = ctx.path(TUN)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(*TUN_DEVICE))
    os.chmod(path, 0o666)
    return True


def start_switch(ctx: Context) -> None:
    """Open vSwitch running, listening for the OVSDB clients of neutron's agent and nova-compute (either may
    start first), with the provider bridge when this node has a provider interface."""
    with _SWITCH_LOCK:
        _start_switch(ctx)


def _start_switch(ctx: Context) -> None:
    if ensure_tun(ctx):
        ctx.note(f"created {TUN} (the userspace datapath's TAP devices need it)")
    start_units(ctx, ("openvswitch",))
    if ensure_offloads():
        ctx.note("Open vSwitch restarted with userspace checksum and segmentation offloads (guests' TCP passes "
                 "its connection tracking)")
    managers = proc.run(["ovs-vsctl", "get-manager"], timeout=60).stdout.split()
    if catalog.OVSDB_MANAGER not in managers:
        proc.run(["ovs-vsctl", "set-manager", *managers, catalog.OVSDB_MANAGER], timeout=60)
    provider = ctx.doc.node.interfaces.get("provider") or ctx.facts.provider_interface
    if provider:
        # The agent maps the provider network to this bridge but does not create it.
        add_bridge(catalog.PROVIDER_BRIDGE, provider)
    moved = move_tunnel_endpoint(ctx)
    if moved:
        ctx.note(moved)


def add_bridge(bridge: str, port: str) -> None:
    """A userspace bridge with `port` in it (after the endpoint moved, the address's holder is the bridge)."""
    cmd = ["ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"]
    if port != bridge:
        cmd += ["--", "--may-exist", "add-port", bridge, port]
    proc.run(cmd, timeout=60)


def ensure_offloads() -> bool:
    """The userspace datapath reads a guest's packets with their checksums still to be filled in (virtio
    offloads them); unless it handles offloads itself, its connection tracking finds every TCP segment
    invalid and the security groups drop it. Read at start only: set once, then one restart."""
    key = "other_config:userspace-tso-enable"
    current = proc.run(["ovs-vsctl", "--if-exists", "get", "Open_vSwitch", ".", key], timeout=60).stdout.strip()
    if current.strip('"') == "true":
        return False
    proc.run(["ovs-vsctl", "set", "Open_vSwitch", ".", f"{key}=true"], timeout=60)
    proc.run(["systemctl", "restart", "openvswitch-switch"], timeout=120)
    return True


def writable_sysctls(ctx: Context) -> bool:
    """A container engine mounts /proc/sys read-only; the L3 agent sets sysctls (net.ipv4.*, each only for
    its own network namespace) in every router's namespace and fails to create the router without them.
    Remounts it read-write when it is not; True if it did."""
    mounts = ctx.path("/proc/self/mountinfo")
    fields = next((line.split() for line in mounts.read_text().splitlines() if line.split()[4] == "/proc/sys"), None)
    if fields is None or "ro" not in fields[5].split(","):
        return False
    proc.run(["mount", "-o", "remount,rw", "/proc/sys"], timeout=60)
    return True


def address_holder(links: list[dict], address: str) -> tuple[str, int] | None:
    """The interface holding `address` and its prefix length, from `ip -j addr`."""
    for link in links:
        for info in link.get("addr_info", []):
            if info.get("local") == address:
                return link["ifname"], int(info.get("prefixlen", 32))
    return None


def move_tunnel_endpoint(ctx: Context) -> str:
    """The tunnel endpoint's address onto an Open vSwitch bridge, its interface into that bridge: the
    userspace datapath pushes VXLAN headers and sends the packets out through its own bridges only (from an
    address on a plain interface no tunnel packet ever leaves). What was done, or '' if nothing was needed."""
    node = ctx.doc.node
    endpoint = node.tunnel_endpoint
    if endpoint == node.management:
        return ""
    bridge = catalog.PROVIDER_BRIDGE if endpoint == node.addresses.get("provider") else TUNNEL_BRIDGE
    links = json.loads(proc.run(["ip", "-j", "addr"], timeout=60).stdout or "[]")
    held = address_holder(links, endpoint)
    if held is None:
        raise RuntimeError(f"the tunnel endpoint {endpoint} is on no interface of this node: check the node's "
                         "tunnel or provider address in the inventory")
    holder, prefix = held
    if holder != bridge:
        add_bridge(bridge, holder)
        proc.run(["ip", "addr", "del", f"{endpoint}/{prefix}", "dev", holder], timeout=60)
        proc.run(["ip", "addr", "replace", f"{endpoint}/{prefix}", "dev", bridge], timeout=60)
    proc.run(["ip", "link", "set", bridge, "up"], timeout=60)
    return "" if holder == bridge else f"tunnel endpoint {endpoint}/{prefix} moved from {holder} to {bridge}"


def network_binaries(ctx: Context) -> tuple[str, ...]:
    """Each agent's unit is named after the binary neutron lists it as."""
    return tuple(units_for(ctx, ("neutron-agents",)))


def agents_alive(ctx: Context) -> tuple[bool, str]:
    """neutron lists this node's agents alive, each with a report from the process running now."""
    binaries = network_binaries(ctx)
    return cloud.network_agents_alive(ctx.doc, binaries, {b: proc.unit_active_since(b) for b in binaries})


class NetworkStep(JoinStep):
    name = "network"
    description = ("start Open vSwitch and the neutron agents; wait until neutron lists them alive (on compute "
                   "nodes the compute step waits, so the agent starts alongside nova-compute)")
    roles = frozenset({catalog.CONTROLLER, catalog.COMPUTE})
    after = ("services", "config")
    groups = ("openvswitch", "neutron-agents")
    service_user = "neutron"
    service_apis = ("neutron",)
    ready_what = "this node's neutron agents alive"
    ready_timeout = 600
    # Where this step waits for the agents. On compute nodes the compute step, next, waits for both the agent
    # and nova-compute, so the agent's first report overlaps nova-compute's start.
    waits_for_agents_on = frozenset({catalog.CONTROLLER})

    def prepare(self, ctx: Context) -> None:
        if ctx.facts.in_container and writable_sysctls(ctx):
            ctx.note("remounted /proc/sys read-write (the L3 and DHCP agents set sysctls in their namespaces)")
        start_switch(ctx)

    def registered(self, ctx: Context) -> tuple[bool, str]:
        if ctx.doc.role not in self.waits_for_agents_on:
            return True, "the compute step waits until neutron lists the agent alive"
        return agents_alive(ctx)
