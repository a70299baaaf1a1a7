"""What a compute or storage node asks the control plane, through the VIP, as its service user, to know
that it has joined: nobody types a command on a controller, the node itself waits until the cloud
lists it (nova-compute up and its hypervisor discovered into a cell; cinder-volume up)."""

from __future__ import annotations

import requests

from firstboot import catalog, keystone_api
from firstboot.document import Document
from firstboot.render import api_url

TIMEOUT = 30


def session(doc: Document, user: str) -> keystone_api.Keystone:
    """A token of a service user (admin and service roles on the `service` project) through the VIP."""
    return keystone_api.Keystone(api_url(doc, "keystone", "/v3"), str(doc.secrets[f"user_{user}"]),
                                 project="service", user=user)


def control_plane_answers(doc: Document, user: str, apis: tuple[str, ...]) -> bool:
    """keystone gives `user` a token and these APIs answer through the VIP: what a joining daemon talks to
    first. (Started earlier, its first RPC would wait out a timeout for servers that are not up yet.)"""
    try:
        session(doc, user)
        for api in apis:
            check = catalog.api(api).check_path
            if requests.get(api_url(doc, api, check), timeout=TIMEOUT, allow_redirects=False).status_code >= 400:
                return False
    except (requests.RequestException, KeyError):
        return False
    return True


def compute_registered(doc: Document) -> tuple[bool, str]:
    """nova-compute of this host is up, and its hypervisor is listed (so it is mapped into a cell)."""
    host = doc.node.name
    try:
        ks = session(doc, "nova")
        nova = api_url(doc, "nova", "/v2.1")
        headers = {"X-Auth-Token": ks.token, "OpenStack-API-Version": "compute 2.53"}
        services = requests.get(f"{nova}/os-services", params={"host": host, "binary": "nova-compute"},
                                headers=headers, timeout=TIMEOUT).json().get("services", [])
        hypervisors = requests.get(f"{nova}/os-hypervisors", params={"hypervisor_hostname_pattern": host},
                                   headers=headers, timeout=TIMEOUT).json().get("hypervisors", [])
    except (requests.RequestException, ValueError, KeyError):
        return False, "the compute API does not answer yet"
    if not any(s.get("state") == "up" for s in services):
        return False, f"nova-compute on {host} is not reported up yet"
    if not hypervisors:
        return False, f"hypervisor {host} is not listed yet (waiting for the schedulers' cell discovery)"
    return True, f"nova-compute up, hypervisor {hypervisors[0].get('hypervisor_hostname')} listed"


def volume_registered(doc: Document, backend: str) -> tuple[bool, str]:
    """cinder-volume of this host (`HOST@BACKEND`) is enabled and up in the block-storage API."""
    host = f"{doc.node.name}@{backend}"
    try:
        ks = session(doc, "cinder")
        project = ks.token_body["project"]["id"]
        services = requests.get(f"{api_url(doc, 'cinder', '/v3')}/{project}/os-services",
                                params={"binary": "cinder-volume"}, timeout=TIMEOUT,
                                headers={"X-Auth-Token": ks.token}).json()["services"]
    except (requests.RequestException, ValueError, KeyError):
        return False, "the block-storage API does not answer yet"
    mine = [s for s in services if s.get("host") == host]
    if not any(s.get("state") == "up" and s.get("status") == "enabled" for s in mine):
        return False, f"cinder-volume {host} is not reported up yet"
    return True, f"cinder-volume {host} up"



def network_agents_alive(doc: Document, binaries: tuple[str, ...]) -> tuple[bool, str]:
    """Each of these neutron agents of this host reports itself alive to neutron-server."""
    host = doc.node.name
    try:
        ks = session(doc, "neutron")
        agents = requests.get(f"{api_url(doc, 'neutron', '/v2.0')}/agents", params={"host": host}, timeout=TIMEOUT,
                              headers={"X-Auth-Token": ks.token}).json()["agents"]
    except (requests.RequestException, ValueError, KeyError):
        return False, "the network API does not answer yet"
    alive = {a.get("binary") for a in agents if a.get("alive") and a.get("admin_state_up")}
    missing = [b for b in binaries if b not in alive]
    if missing:
        return False, f"not yet alive on {host}: {', '.join(missing)}"
    return True, f"{', '.join(binaries)} alive"
