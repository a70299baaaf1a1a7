"""The controller's service phases: infrastructure, keystone, then every other API and daemon."""

from __future__ import annotations

import requests

from firstboot import catalog, keysets, keystone_api, mysql, proc
from firstboot.render import api_url
from firstboot.steps.base import Context
from firstboot.steps.units import UnitsStep, start_unit, start_units

_C = frozenset({catalog.CONTROLLER})


def api_answers(ctx: Context, api: catalog.Api, through_vip: bool = False) -> bool:
    """The API answers its HAProxy check path on this node's own address (or through the VIP)."""
    address = None if through_vip else ctx.doc.node.management
    try:
        response = requests.get(api_url(ctx.doc, api.name, api.check_path, address=address),
                                timeout=5, allow_redirects=False, verify=catalog.TLS_CA)
    except requests.RequestException:
        return False
    return response.status_code < 400


class InfraStep(UnitsStep):
    name = "infra"
    description = "start memcached, HAProxy and keepalived; wait until the database answers at the VIP"
    roles = _C
    after = ("galera",)
    groups = ("memcached", "haproxy", "keepalived")
    ready_what = "the database answers through the VIP"

    def run(self, ctx: Context) -> str:
        # HAProxy first, so keepalived's check of it passes on its first run: one failed check costs two
        # passes (`rise 2`, 2 s apart) before this node may take the VIP.
        first = start_units(ctx, ("memcached", "haproxy"))
        detail = super().run(ctx)
        return f"started {', '.join(first)}; {detail}" if first else detail

    def ready(self, ctx: Context) -> bool:
        # Every service's database URL goes through the VIP, and oslo.db waits its retry_interval after a
        # failed first connection: the schema syncs start only once the VIP holder's HAProxy reaches Galera.
        return mysql.greets(ctx.doc.vip, catalog.PORTS["mysql"])


class KeystoneStep(UnitsStep):
    name = "keystone"
    description = "write the key repositories from Galera, start their follower, keystone, and check that it " \
                  "issues tokens"
    roles = _C
    after = ("databases",)
    groups = ("keys", "keystone")
    ready_what = "keystone issues an admin token on this node"

    def run(self, ctx: Context) -> str:
        # Keystone signs and reads tokens with these from its first request: written here, before it starts
        # (a node back from an outage gets the rotations it missed); the follower keeps them current after.
        held = keysets.sync(ctx.doc.node.name)
        ctx.note(f"key sets: {', '.join(f'{n} generation {g}' for n, g in sorted(held.items()))}")
        detail = super().run(ctx)
        # From the next boot on, the follower starts by itself and waits for the database: a controller that
        # was down through a rotation has the keys as soon as its Galera has synced, before its agent gets here.
        proc.systemctl("enable", "--quiet", *catalog.units_of("keys", ctx.doc.role))
        return detail

    def ready(self, ctx: Context) -> bool:
        try:
            keystone_api.token_via(api_url(ctx.doc, "keystone", "/v3", address=ctx.doc.node.management),
                                   str(ctx.doc.secrets["keystone_admin"]))
        except (requests.RequestException, KeyError):
            return False
        return True


# The APIs the services step waits for (keystone's own step checks keystone, the image-store step
# glance; horizon is slow to warm up on first request, and is checked through HAProxy by the lab instead).
CHECKED_APIS = tuple(a for a in catalog.APIS if a.name not in ("keystone", "horizon", "glance"))


class ServicesStep(UnitsStep):
    name = "services"
    description = "start the OpenStack services and wait for their APIs"
    roles = _C
    # After the catalog although no daemon here needs the service users to start: the daemons' imports
    # take the CPU that Keystone needs for the catalog, which every joining node waits for.
    after = ("catalog", "rabbitmq-users")
    groups = ("placement", "nova", "neutron", "cinder", "horizon")
    ready_what = "every OpenStack API answers on this node"
    ready_timeout = 600

    def ready(self, ctx: Context) -> bool:
        return all(api_answers(ctx, api) for api in CHECKED_APIS)


GLANCE_API = catalog.api("glance")
CEPH_PROBE_SECONDS = 10
STUCK_SECONDS = 120


def image_pool_reachable() -> bool:
    """glance's Ceph user reaches a monitor and sees the images pool (the storage tier made it)."""
    try:
        pools = proc.run(["rados", "--id", "glance", f"--client_mount_timeout={CEPH_PROBE_SECONDS}", "lspools"],
                         timeout=CEPH_PROBE_SECONDS * 3).stdout.split()
    except (proc.CommandFailed, TimeoutError):
        return False
    return "images" in pools


class ImageStoreStep(UnitsStep):
    """glance-api in a step of its own, and on RBD only once Ceph answers: its RBD store connects to the
    cluster while the API loads and, if no monitor answers, the API never serves. So the rest of the
    control plane comes up without the storage tier (beside this step's wait), and glance follows as soon
    as the storage nodes have made the pools."""

    name = "image-store"
    description = "start glance-api once its image store is reachable; wait for its API here and through the VIP"
    roles = _C
    after = ("catalog",)  # beside services and network: a restarted controller starts them all together
    groups = ("glance",)
    ready_what = "glance answers on this node"
    ready_timeout = 300

    def ready(self, ctx: Context) -> bool:
        return api_answers(ctx, GLANCE_API)

    def done(self, ctx: Context) -> bool:
        # The controller's last step: when it is done, a user's first `openstack image create` through the
        # VIP works (HAProxy has seen glance answer), not only glance on this node.
        return super().done(ctx) and api_answers(ctx, GLANCE_API, through_vip=True)

    def run(self, ctx: Context) -> str:
        if ctx.doc.ceph_enabled:
            proc.wait_for(image_pool_reachable, ctx.doc.options["cluster_wait_seconds"],
                          "the Ceph images pool (made by the storage nodes)", interval=5, progress=ctx.note)
        touched = start_units(ctx, self.groups)
        try:
            proc.wait_for(lambda: self.ready(ctx), STUCK_SECONDS, "glance answers")
        except TimeoutError:
            # Started before the store was reachable (by hand, or an earlier run): it never recovers alone.
            ctx.note("glance-api does not answer: restarting it")
            for unit in catalog.units_of("glance", ctx.doc.role):
                start_unit(unit, "restart")
            proc.wait_for(lambda: self.ready(ctx), self.ready_timeout, self.ready_what, progress=ctx.note)
        proc.wait_for(lambda: api_answers(ctx, GLANCE_API, through_vip=True), self.ready_timeout,
                      "glance answers through the VIP", interval=0.5)
        return f"started {', '.join(touched)}" if touched else "already running"
