"""RabbitMQ facts and actions: cluster membership through rabbitmqctl, users through the management API."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import quote

import requests

from firstboot import catalog, proc
from firstboot.document import Document

OPENSTACK_USER = "openstack"
ADMIN_USER = "goldstack-admin"  # rabbitmq.conf's default_user: replaces guest, which is never created
TIMEOUT = 20


def node_name(name: str) -> str:
    return f"rabbit@{name}"


def cluster_status(node: str | None = None) -> dict | None:
    """`rabbitmqctl cluster_status` of the local node (or `node`); None when it does not answer."""
    cmd = ["rabbitmqctl", "-q", "--timeout", "15"]
    if node:
        cmd += ["-n", node]
    try:
        out = subprocess.run([*cmd, "cluster_status", "--formatter", "json"], capture_output=True, text=True,
                             timeout=40)
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return None


def running_nodes(status: dict | None) -> list[str]:
    return sorted(status.get("running_nodes", [])) if status else []


def members(status: dict | None) -> list[str]:
    if not status:
        return []
    return sorted(set(status.get("disk_nodes", [])) | set(status.get("ram_nodes", [])))


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    proc.run(["rabbitmqctl", *args], timeout=timeout)


def _api(doc: Document) -> tuple[str, tuple[str, str]]:
    base = f"http://{doc.node.management}:{catalog.PORTS['rabbitmq-management']}/api"
    return base, (ADMIN_USER, str(doc.secrets["rabbitmq_admin"]))


def ensure_users(doc: Document) -> str:
    """The OpenStack user with rights on the default vhost; guest removed if anything created it."""
    base, auth = _api(doc)
    session = requests.Session()
    session.auth = auth
    user = quote(OPENSTACK_USER, safe="")
    session.put(f"{base}/users/{user}", json={"password": str(doc.secrets["rabbitmq_openstack"]), "tags": ""},
                timeout=TIMEOUT).raise_for_status()
    session.put(f"{base}/permissions/%2F/{user}", json={"configure": ".*", "write": ".*", "read": ".*"},
                timeout=TIMEOUT).raise_for_status()
    gone = session.delete(f"{base}/users/guest", timeout=TIMEOUT)
    if gone.status_code not in (204, 404):
        gone.raise_for_status()
    return f"user {OPENSTACK_USER} with rights on /; no guest"


def management_ready(doc: Document) -> bool:
    base, auth = _api(doc)
    try:
        return requests.get(f"{base}/overview", auth=auth, timeout=5).status_code == 200
    except requests.RequestException:
        return False
