"""What a compute or storage node asks the control plane, through the VIP, as its service user, to know
that it has joined: nobody types a command on a controller, the node itself waits until the cloud
lists it (nova-compute up and its hypervisor discovered into a cell; cinder-volume up)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from firstboot import catalog, keystone_api
from firstboot.document import Document
from firstboot.render import api_url

TIMEOUT = 30
# How much earlier than this node's clock a report may be stamped and still count as one of a daemon
# started now: the controllers' clocks (chrony) and systemd's whole-second start times. A report left by
# the daemon before the node went down is older: the node was down for longer than this.
CLOCK_SKEW_SECONDS = 2
_SESSIONS: dict[tuple[str, str], keystone_api.Keystone] = {}


def session(doc: Document, user: str) -> keystone_api.Keystone:
    """A token of a service user (admin and service roles on the `service` project) through the VIP, kept
    for the agent's later polls: each new token costs Keystone a password hash (~0.3 s of CPU)."""
    key = _session_key(doc, user)
    if key not in _SESSIONS:
        _SESSIONS[key] = keystone_api.Keystone(key[0], str(doc.secrets[catalog.SERVICE_USERS[user]]), project="service",
                                               user=user)
    return _SESSIONS[key]


def _session_key(doc: Document, user: str) -> tuple[str, str]:
    return api_url(doc, "keystone", "/v3"), user


def get(doc: Document, user: str, url: str, headers: dict[str, str] | None = None, missing_ok: bool = False,
        **params: str) -> dict[str, Any]:
    """GET a JSON document as `user`; a token the cloud no longer accepts is dropped and a new one asked for.
    With missing_ok, a 404 is an empty answer (nova answers a search that matches nothing so)."""
    for attempt in (1, 2):
        response = requests.get(url, params=params, timeout=TIMEOUT, verify=catalog.TLS_CA,
                                headers={"X-Auth-Token": session(doc, user).token, **(headers or {})})
        if response.status_code == 401 and attempt == 1:
            _SESSIONS.pop(_session_key(doc, user), None)
            continue
        if response.status_code == 404 and missing_ok:
            return {}
        response.raise_for_status()
        return response.json()
    raise AssertionError("unreachable")


def control_plane_answers(doc: Document, user: str, apis: tuple[str, ...]) -> bool:
    """keystone gives `user` a token and these APIs answer through the VIP: what a joining daemon talks to
    first. (Started earlier, its first RPC would wait out a timeout for servers that are not up yet.)"""
    try:
        session(doc, user)
        for api in apis:
            check = catalog.api(api).check_path
            if requests.get(api_url(doc, api, check), timeout=TIMEOUT, allow_redirects=False,
                            verify=catalog.TLS_CA).status_code >= 400:
                return False
    except (requests.RequestException, KeyError):
        return False
    return True


def reported_since(stamp: str | None, since: float | None) -> bool:
    """A report the API stamped `stamp` (naive UTC, as nova, cinder and neutron give it) came from a daemon
    started at `since` (epoch seconds; None: any report counts). A node back from a power loss or a kill
    is still listed up by the reports its daemons left before: up to a minute, the services' down time.
    No stamp yet is a record the daemon has just created (nova and cinder stamp their first report only)."""
    if since is None or not stamp:
        return True
    try:
        when = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return False
    return when >= since - CLOCK_SKEW_SECONDS


def compute_registered(doc: Document, since: float | None = None) -> tuple[bool, str]:
    """nova-compute of this host is up, having reported since it started at `since`, and its hypervisor is
    listed (so it is mapped into a cell)."""
    host = doc.node.name
    nova, version = api_url(doc, "nova", "/v2.1"), {"OpenStack-API-Version": "compute 2.53"}
    try:
        services = get(doc, "nova", f"{nova}/os-services", version, host=host,
                       binary=catalog.NOVA_COMPUTE).get("services", [])
        # No hypervisor of that name yet is a 404, not an API that does not answer.
        hypervisors = get(doc, "nova", f"{nova}/os-hypervisors", version, missing_ok=True,
                          hypervisor_hostname_pattern=host).get("hypervisors", [])
    except (requests.RequestException, ValueError, KeyError):
        return False, "the compute API does not answer yet"
    if not any(s.get("state") == "up" and reported_since(s.get("updated_at"), since) for s in services):
        return False, f"nova-compute on {host} is not reported up yet"
    if not hypervisors:
        return False, f"hypervisor {host} is not listed yet (waiting for the schedulers' cell discovery)"
    # The schedulers pick hosts from placement's allocation candidates: a hypervisor may be listed before its
    # nova-compute has reported its inventory there, and a server asked for meanwhile cannot land on it.
    provider = hypervisors[0].get("id")  # from 2.53 the compute node's UUID, which names its resource provider
    try:
        inventory = get(doc, "nova", f"{api_url(doc, 'placement', '')}/resource_providers/{provider}/inventories"
                        ).get("inventories", {})
    except (requests.RequestException, ValueError):
        inventory = {}
    if not {"VCPU", "MEMORY_MB"} <= set(inventory):
        return False, f"hypervisor {host} listed, its inventory not in placement yet"
    return True, f"nova-compute up, hypervisor {hypervisors[0].get('hypervisor_hostname')} listed with its inventory"


def volume_registered(doc: Document, backend: str, since: float | None = None) -> tuple[bool, str]:
    """cinder-volume of this host (`HOST@BACKEND`) is enabled and up in the block-storage API, having
    reported since it started at `since`."""
    host = f"{doc.node.name}@{backend}"
    try:
        project = session(doc, "cinder").token_body["project"]["id"]
        services = get(doc, "cinder", f"{api_url(doc, 'cinder', '/v3')}/{project}/os-services",
                       binary=catalog.CINDER_VOLUME)["services"]
    except (requests.RequestException, ValueError, KeyError):
        return False, "the block-storage API does not answer yet"
    mine = [s for s in services if s.get("host") == host]
    if not any(s.get("state") == "up" and s.get("status") == "enabled" and reported_since(s.get("updated_at"), since)
               for s in mine):
        return False, f"cinder-volume {host} is not reported up yet"
    return True, f"cinder-volume {host} up"


def network_agents_alive(doc: Document, binaries: tuple[str, ...], since: Mapping[str, float | None] | None = None
                         ) -> tuple[bool, str]:
    """Each of these neutron agents of this host reports itself alive to neutron-server, and has reported
    since it started (`since`, by binary)."""
    host = doc.node.name
    try:
        agents = get(doc, "neutron", f"{api_url(doc, 'neutron', '/v2.0')}/agents", host=host)["agents"]
    except (requests.RequestException, ValueError, KeyError):
        return False, "the network API does not answer yet"
    since = since or {}
    alive = {a.get("binary") for a in agents if a.get("alive") and a.get("admin_state_up")
             and reported_since(a.get("heartbeat_timestamp"), since.get(a.get("binary", "")))}
    missing = [b for b in binaries if b not in alive]
    if missing:
        return False, f"not yet alive on {host}: {', '.join(missing)}"
    return True, f"{', '.join(binaries)} alive"
