"""Neutron's agents on this node: Open vSwitch (userspace datapath) and, on controllers, the DHCP, L3 and
metadata agents; done when neutron-server lists each of them alive for this host.

The netdev datapath makes its bridge and internal ports as TAP devices. Containers start without
/dev/net/tun (VMs and bare metal have it), so the step creates the node (character 10:200, which
container engines allow by default) when it is missing.
"""

from __future__ import annotations

import os
import stat
import threading

from firstboot import catalog, cloud, proc
from firstboot.steps.base import Context
from firstboot.steps.units import JoinStep, start_units, units_for

TUN = "/dev/net/tun"
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
    managers = proc.run(["ovs-vsctl", "get-manager"], timeout=60).stdout.split()
    if catalog.OVSDB_MANAGER not in managers:
        proc.run(["ovs-vsctl", "set-manager", *managers, catalog.OVSDB_MANAGER], timeout=60)
    provider = ctx.doc.node.interfaces.get("provider") or ctx.facts.provider_interface
    if provider:
        # The agent maps the provider network to this bridge but does not create it.
        bridge = catalog.PROVIDER_BRIDGE
        proc.run(["ovs-vsctl", "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge,
                  "datapath_type=netdev", "--", "--may-exist", "add-port", bridge, provider], timeout=60)


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
        start_switch(ctx)

    def registered(self, ctx: Context) -> tuple[bool, str]:
        if ctx.doc.role not in self.waits_for_agents_on:
            return True, "the compute step waits until neutron lists the agent alive"
        return agents_alive(ctx)
