"""RabbitMQ facts and actions: cluster membership and users through the management API, membership
changes through rabbitmqctl.

The agent polls membership every few seconds while controllers join; each `rabbitmqctl` call starts an
Erlang VM (~1 s of CPU), which on a small host slowed the very joins it was waiting for. The management
API answers the same question over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import requests

from firstboot import catalog, proc
from firstboot.addresses import hostport
from firstboot.document import Document

ADMIN_USER = "goldstack-admin"  # rabbitmq.conf's default_user: replaces guest, which is never created
TIMEOUT = 20


def node_name(name: str) -> str:
    return f"rabbit@{name}"


def cluster_status(doc: Document, name: str | None = None) -> dict | None:
    """The cluster as the controller `name` (default: this node) sees it, from its management API, in the
    shape of `rabbitmqctl cluster_status --formatter json`: {"running_nodes": [...], "disk_nodes": [...]}.
    None when it does not answer (not started yet, starting, or paused in a minority)."""
    address = doc.node.management if name is None else next(c.management for c in doc.controllers if c.name == name)
    base, session = management_api(doc, address)
    try:
        response = session.get(f"{base}/nodes", params={"columns": "name,running"}, timeout=5)
        if response.status_code != 200:
            return None
        nodes = response.json()
    except (requests.RequestException, ValueError):
        return None
    return {"running_nodes": [n["name"] for n in nodes if n.get("running")],
            "disk_nodes": [n["name"] for n in nodes]}


def running_nodes(status: dict | None) -> list[str]:
    return sorted(status.get("running_nodes", [])) if status else []


def members(status: dict | None) -> list[str]:
    if not status:
        return []
    return sorted(set(status.get("disk_nodes", [])) | set(status.get("ram_nodes", [])))


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    proc.run(["rabbitmqctl", *args], timeout=timeout)


def management_api(doc: Document, address: str | None = None) -> tuple[str, requests.Session]:
    """The management API's base URL on a controller, and a session that logs in and verifies its certificate."""
    where = hostport(address or doc.node.management, catalog.PORTS["rabbitmq-management"])
    session = requests.Session()
    session.auth = (ADMIN_USER, str(doc.secrets["rabbitmq_admin"]))
    session.verify = catalog.TLS_CA
    # Not from the environment: requests lets REQUESTS_CA_BUNDLE (set system-wide on some hosts) override a
    # session's own CA, and a proxy variable would send a controller's own address through a proxy.
    session.trust_env = False
    return f"https://{where}/api", session


def ensure_users(doc: Document) -> str:
    """The OpenStack user with rights on the default vhost; guest removed if anything created it."""
    base, session = management_api(doc)
    user = quote(catalog.RABBITMQ_USER, safe="")
    session.put(f"{base}/users/{user}", json={"password": str(doc.secrets[catalog.RABBITMQ_SECRET]), "tags": ""},
                timeout=TIMEOUT).raise_for_status()
    session.put(f"{base}/permissions/%2F/{user}", json={"configure": ".*", "write": ".*", "read": ".*"},
                timeout=TIMEOUT).raise_for_status()
    gone = session.delete(f"{base}/users/guest", timeout=TIMEOUT)
    if gone.status_code not in (204, 404):
        gone.raise_for_status()
    return f"user {catalog.RABBITMQ_USER} with rights on /; no guest"


def management_ready(doc: Document) -> bool:
    base, session = management_api(doc)
    try:
        return session.get(f"{base}/overview", timeout=5).status_code == 200
    except requests.RequestException:
        return False
