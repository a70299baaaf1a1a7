"""The few Keystone v3 calls the first boot needs, over HTTPS (the site CA verifies the certificate): no CLI
start-up cost per call.

Everything is create-if-missing (and a password set only when it no longer works), so a task killed half-way
converges when retried, and a re-run changes nothing that works.
"""

from __future__ import annotations

from typing import Any

import requests

from firstboot import catalog
from firstboot.document import Document
from firstboot.render import api_url

TIMEOUT = 30
INTERFACES = ("public", "internal", "admin")


def password_request(user: str, password: str, project: str | None = None) -> dict[str, Any]:
    """The body of a POST /v3/auth/tokens for a user of the default domain, scoped to `project` if given."""
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}}
    if project:
        body["auth"]["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    return body


class Keystone:
    """An authenticated Keystone v3 client. Each call opens its own connection: uWSGI's HTTP socket closes
    a connection after each response without saying so, and a kept-alive connection reused at that moment
    is reset (after 204 answers, for one). Idempotent calls are retried once on a reset."""

    def __init__(self, url: str, password: str, project: str = "admin", user: str = "admin"):
        self.url = url.rstrip("/")
        response = self._authenticate(user, password, project)
        response.raise_for_status()
        self.token = response.headers["X-Subject-Token"]
        self.token_body = response.json()["token"]

    def _authenticate(self, user: str, password: str, project: str | None) -> requests.Response:
        return requests.post(f"{self.url}/auth/tokens", json=password_request(user, password, project),
                             timeout=TIMEOUT, verify=catalog.TLS_CA)

    def password_works(self, user: str, password: str) -> bool:
        """Whether `user` can log in with `password`. Setting a password revokes every token of the user,
        those of the services' running processes too (each one's next check of a client's token fails once):
        so a password is set only when this says it must be."""
        response = self._authenticate(user, password, None)
        if response.status_code == 401:
            return False
        response.raise_for_status()
        return True

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        attempts = 1 if method == "POST" else 2
        for attempt in range(1, attempts + 1):
            try:
                response = requests.request(method, f"{self.url}{path}", headers={"X-Auth-Token": self.token},
                                            timeout=TIMEOUT, verify=catalog.TLS_CA, **kw)
                break
            except requests.ConnectionError:
                if attempt == attempts:
                    raise
        response.raise_for_status()
        return response.json() if response.content else {}

    def find(self, kind: str, **filters: str) -> dict[str, Any] | None:
        items = self._call("GET", f"/{kind}", params=filters)[kind]
        return items[0] if items else None

    def ensure(self, kind: str, body: dict[str, Any], **filters: str) -> dict[str, Any]:
        """The first `kind` matching `filters`, created from `body` when there is none."""
        found = self.find(kind, **filters)
        if found:
            return found
        singular = kind[:-1]
        return self._call("POST", f"/{kind}", json={singular: body})[singular]


def ensure_catalog(doc: Document) -> str:
    """The service project, the service users with their roles, and every API's endpoints (on the VIP)."""
    # This node's own keystone: the VIP may still point at a controller whose keystone is starting.
    ks = Keystone(api_url(doc, "keystone", "/v3", address=doc.node.management), str(doc.secrets["keystone_admin"]))
    project = ks.ensure("projects", {"name": "service", "domain_id": "default",
                                     "description": "OpenStack service users"}, name="service", domain_id="default")
    roles = {name: ks.ensure("roles", {"name": name}, name=name) for name in catalog.SERVICE_USER_ROLES}
    for name, secret in catalog.SERVICE_USERS.items():
        password = str(doc.secrets[secret])
        user = ks.find("users", name=name, domain_id="default")
        if user is None:
            user = ks._call("POST", "/users", json={"user": {"name": name, "domain_id": "default",
                                                             "password": password}})["user"]
        elif not ks.password_works(name, password):
            ks._call("PATCH", f"/users/{user['id']}", json={"user": {"password": password}})
        for role in roles.values():
            ks._call("PUT", f"/projects/{project['id']}/users/{user['id']}/roles/{role['id']}")
    endpoints = 0
    for api in catalog.APIS:
        if api.name == "keystone":  # keystone-manage bootstrap made identity's
            continue
        url = api_url(doc, api.name, api.url_suffix)
        for kind in api.catalog_types:
            name = api.name if kind == api.catalog_type else f"{api.name}-{kind}"
            service = ks.ensure("services", {"name": name, "type": kind, "enabled": True}, type=kind)
            for interface in INTERFACES:
                found = ks.find("endpoints", service_id=service["id"], interface=interface, region_id=doc.region)
                if found is None:
                    ks._call("POST", "/endpoints", json={"endpoint": {
                        "service_id": service["id"], "interface": interface, "region_id": doc.region, "url": url}})
                    endpoints += 1
                elif found["url"] != url:
                    ks._call("PATCH", f"/endpoints/{found['id']}", json={"endpoint": {"url": url}})
    return (f"project service, {len(catalog.SERVICE_USERS)} service users with roles "
            f"{', '.join(catalog.SERVICE_USER_ROLES)}, {endpoints} endpoints created")


def token_via(url: str, password: str) -> dict[str, Any]:
    """Issue an admin token at `url` (a controller or the VIP): the health check of the identity service."""
    return Keystone(url, password).token_body
