"""Compute node: libvirt and nova-compute, then proof that the cloud sees this hypervisor.

Nobody types `nova-manage cell_v2 discover_hosts`: the schedulers' periodic discovery maps the new
host into cell1; this step waits until nova lists the service up and the hypervisor, as the nova
service user (which holds the admin role on the service project), through the VIP.
"""

from __future__ import annotations

import requests

from firstboot import catalog, keystone_api
from firstboot.render import api_url
from firstboot.steps.base import Context
from firstboot.steps.units import UnitsStep

_K = frozenset({catalog.COMPUTE})


def control_plane_answers(ctx: Context) -> bool:
    try:
        keystone_api.Keystone(api_url(ctx.doc, "keystone", "/v3"), str(ctx.doc.secrets["user_nova"]),
                              project="service", user="nova")
    except (requests.RequestException, KeyError):
        return False
    return True


def registered(ctx: Context) -> tuple[bool, str]:
    """nova-compute of this host is up, and its hypervisor is listed (so it is mapped into a cell)."""
    host = ctx.doc.node.name
    try:
        ks = keystone_api.Keystone(api_url(ctx.doc, "keystone", "/v3"), str(ctx.doc.secrets["user_nova"]),
                                   project="service", user="nova")
        nova = api_url(ctx.doc, "nova", "/v2.1")
        headers = {"X-Auth-Token": ks.session.headers["X-Auth-Token"], "OpenStack-API-Version": "compute 2.53"}
        services = requests.get(f"{nova}/os-services", params={"host": host, "binary": "nova-compute"},
                                headers=headers, timeout=30).json().get("services", [])
        hypervisors = requests.get(f"{nova}/os-hypervisors", params={"hypervisor_hostname_pattern": host},
                                   headers=headers, timeout=30).json().get("hypervisors", [])
    except (requests.RequestException, ValueError, KeyError):
        return False, "the compute API does not answer yet"
    if not any(s.get("state") == "up" for s in services):
        return False, f"nova-compute on {host} is not reported up yet"
    if not hypervisors:
        return False, f"hypervisor {host} is not listed yet (waiting for the schedulers' cell discovery)"
    return True, f"nova-compute up, hypervisor {hypervisors[0].get('hypervisor_hostname')} listed"


class ComputeStep(UnitsStep):
    name = "compute"
    description = "start libvirt and nova-compute; wait until nova lists this hypervisor"
    roles = _K
    after = ("config",)
    groups = ("libvirt", "nova")
    ready_what = "nova-compute up and this hypervisor discovered into a cell"
    ready_timeout = 900

    def run(self, ctx: Context) -> str:
        from firstboot import proc

        proc.wait_for(lambda: control_plane_answers(ctx), ctx.doc.options["cluster_wait_seconds"],
                      "the control plane (keystone through the VIP)", interval=5, progress=ctx.note)
        detail = super().run(ctx)
        return f"{detail}; {registered(ctx)[1]}"

    def ready(self, ctx: Context) -> bool:
        ok, why = registered(ctx)
        if not ok:
            ctx.note(why)
        return ok
