"""The controller's service phases: infrastructure, keystone, then every other API and daemon."""

from __future__ import annotations

import requests

from firstboot import catalog, keystone_api
from firstboot.render import api_url
from firstboot.steps.base import Context
from firstboot.steps.units import UnitsStep

_C = frozenset({catalog.CONTROLLER})


def api_answers(ctx: Context, api: catalog.Api) -> bool:
    """The API answers its HAProxy check path on this node's own address."""
    try:
        response = requests.get(api_url(ctx.doc, api.name, api.check_path, address=ctx.doc.node.management),
                                timeout=5, allow_redirects=False)
    except requests.RequestException:
        return False
    return response.status_code < 400


class InfraStep(UnitsStep):
    name = "infra"
    description = "start memcached, HAProxy and keepalived (the VIP)"
    roles = _C
    after = ("galera",)
    groups = ("memcached", "haproxy", "keepalived")


class KeystoneStep(UnitsStep):
    name = "keystone"
    description = "start keystone and check that it issues tokens"
    roles = _C
    after = ("rabbitmq",)
    groups = ("keystone",)
    ready_what = "keystone issues an admin token on this node"

    def ready(self, ctx: Context) -> bool:
        try:
            keystone_api.token_via(api_url(ctx.doc, "keystone", "/v3", address=ctx.doc.node.management),
                                   str(ctx.doc.secrets["keystone_admin"]))
        except (requests.RequestException, KeyError):
            return False
        return True


# The APIs the services step waits for (keystone's own step checks keystone; horizon is slow to warm up
# on first request, and is checked through HAProxy by the lab tests instead).
CHECKED_APIS = tuple(a for a in catalog.APIS if a.name not in ("keystone", "horizon"))


class ServicesStep(UnitsStep):
    name = "services"
    description = "start the OpenStack services and wait for their APIs"
    roles = _C
    after = ("catalog",)
    groups = ("glance", "placement", "nova", "neutron", "cinder", "horizon")
    ready_what = "every OpenStack API answers on this node"
    ready_timeout = 600

    def ready(self, ctx: Context) -> bool:
        return all(api_answers(ctx, api) for api in CHECKED_APIS)
