"""Compute node: libvirt (with the secret QEMU needs to open RBD volumes) and nova-compute, then proof
that the cloud sees this hypervisor.

Nobody types `nova-manage cell_v2 discover_hosts`: the schedulers' periodic discovery maps the new
host into cell1; this step waits until nova lists the service up and the hypervisor, as the nova
service user (which holds the admin role on the service project), through the VIP.
"""

from __future__ import annotations

import os
import tempfile

from firstboot import catalog, cloud, proc
from firstboot.steps.base import Context
from firstboot.steps.network import agents_alive, start_switch
from firstboot.steps.units import JoinStep, start_units

_K = frozenset({catalog.COMPUTE})
SECRET_XML = "/etc/goldstack/libvirt/cinder-secret.xml"


def libvirt_secret_current(ctx: Context) -> bool:
    """libvirt holds client.cinder's key under the UUID nova.conf and cinder.conf name."""
    if not ctx.doc.rbd_volumes:
        return True
    uuid = str(ctx.doc.secrets["libvirt_secret_uuid"])
    try:
        value = proc.run(["virsh", "-q", "secret-get-value", uuid], timeout=30).stdout.strip()
    except proc.CommandFailed:
        return False
    return value == str(ctx.doc.secrets["ceph_cinder_key"])


def define_libvirt_secret(ctx: Context) -> None:
    """Define the secret and set its value from a private temporary file (never on a command line)."""
    uuid = str(ctx.doc.secrets["libvirt_secret_uuid"])
    proc.run(["virsh", "-q", "secret-define", "--file", str(ctx.path(SECRET_XML))], timeout=30)
    fd, path = tempfile.mkstemp(prefix="goldstack-secret-", dir="/run")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(str(ctx.doc.secrets["ceph_cinder_key"]))
        proc.run(["virsh", "-q", "secret-set-value", "--secret", uuid, "--file", path], timeout=30)
    finally:
        os.unlink(path)


class ComputeStep(JoinStep):
    name = "compute"
    description = ("start libvirt, sshd (live migration) and nova-compute; wait until nova lists this hypervisor "
                   "and neutron its agent")
    roles = _K
    # Beside the network step, not after it: libvirt starts while both wait for the control plane, and
    # nova-compute as soon as nova and placement answer (it needs Open vSwitch running, not the agent).
    after = ("config",)
    groups = ("libvirt", "ssh", "nova")
    service_user = "nova"
    service_apis = ("nova", "placement")
    ready_what = "nova-compute up, this hypervisor discovered into a cell, neutron's agent alive"
    ready_timeout = 900

    def prepare(self, ctx: Context) -> None:
        # nova-compute plugs its instances' ports into br-int through the OVSDB manager as it starts (after
        # a reboot): the switch and its manager first (whichever of this step and the network step comes
        # first sets them up).
        start_switch(ctx)
        start_units(ctx, ("libvirt", "ssh"))  # sshd: peers reach this libvirt for live migration
        proc.wait_for(lambda: proc.run(["virsh", "-q", "version"], ok_codes=(0, 1)).returncode == 0, 60,
                      "libvirtd answers")
        if not libvirt_secret_current(ctx):
            ctx.note("defining the libvirt secret of client.cinder (RBD volumes)")
            define_libvirt_secret(ctx)

    def registered(self, ctx: Context) -> tuple[bool, str]:
        ok, why = cloud.compute_registered(ctx.doc, proc.unit_active_since(catalog.NOVA_COMPUTE))
        if ok:
            ok, why = agents_alive(ctx)
        return (True, "nova-compute up, hypervisor listed, neutron's agent alive") if ok else (False, why)

    def done(self, ctx: Context) -> bool:
        return super().done(ctx) and libvirt_secret_current(ctx)
