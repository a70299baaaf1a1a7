"""Render a role's whole config tree in memory, check it, then write it atomically.

Nothing is written unless every file rendered and passed its syntax check (os-apply-config's rule).
"""

from __future__ import annotations

import ast
import hashlib
import json
import shlex
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import yaml

from firstboot import catalog, ini, sshkeys
from firstboot.addresses import hostport
from firstboot.document import Document
from firstboot.errors import GoldstackError

TEMPLATES = Path(__file__).parent / "templates"


class RenderError(GoldstackError):
    """A template failed or produced a file that does not parse; nothing was written."""


@dataclass(frozen=True)
class RenderedFile:
    path: str
    content: bytes
    owner: str
    group: str
    mode: int
    service: str


@dataclass(frozen=True)
class Facts:
    """What the agent learns from the running host; rendering is a pure function of (document, facts)."""

    management_interface: str = "eth0"
    virt_type: str = "qemu"
    in_container: bool = False
    provider_interface: str | None = None  # the interface holding the node's provider address, if any


# PyMySQL waits for the server with no limit of its own. A connection whose HAProxy died with its
# controller (the VIP moved on) would hold its worker, and keystone's cache lock with it, until the dead
# controller came back. No API answer may take longer than HAProxy's 90 s anyway; a database sync with
# longer single statements needs this raised (overrides).
DB_IO_TIMEOUT_S = 90
# Seconds a service's cache client leaves a memcached it could not reach (see the [cache] macro): how long
# controllers may disagree about the cache after an outage, and how often a dead one costs a 1 s attempt.
CACHE_DEAD_RETRY_S = 10


def api_url(doc: Document, api: str, suffix: str = "", address: str | None = None) -> str:
    """An API's URL through the VIP (what the catalog and every client use), or on one controller's TLS front."""
    return f"https://{hostport(address or doc.vip, catalog.PORTS[api])}{suffix}"


def db_url(doc: Document, database: str, user: str | None = None) -> str:
    """SQLAlchemy's URL of a service database through the VIP, as its owner (default: a user named alike)."""
    user = user or database
    password = quote(str(doc.secrets[catalog.DATABASE_USERS[user].secret]), safe="")
    return (f"mysql+pymysql://{user}:{password}@{hostport(doc.vip, catalog.PORTS['mysql'])}/{database}"
            f"?charset=utf8mb4&read_timeout={DB_IO_TIMEOUT_S}&write_timeout={DB_IO_TIMEOUT_S}"
            f"&ssl_ca={quote(catalog.TLS_CA, safe='/')}")


def transport_url(doc: Document) -> str:
    """oslo.messaging's URL: the OpenStack user on every controller's RabbitMQ."""
    password = quote(str(doc.secrets[catalog.RABBITMQ_SECRET]), safe="")
    servers = ",".join(f"{catalog.RABBITMQ_USER}:{password}@{hostport(c.management, catalog.PORTS['rabbitmq'])}"
                       for c in doc.controllers)
    return f"rabbit://{servers}/"


def _node_context(doc: Document, facts: Facts) -> dict[str, Any]:
    """Who this node is and where it listens."""
    ip = doc.node.management
    return {
        "node": doc.node,
        "role": doc.role,
        "ip": ip,
        "tunnel_ip": doc.node.addresses.get("tunnel", ip),
        "storage_ip": doc.node.addresses.get("storage", ip),
        "management_interface": doc.node.interfaces.get("management", facts.management_interface),
        "provider_interface": doc.node.interfaces.get("provider") or facts.provider_interface,
        "facts": facts,
    }


def _site_context(doc: Document) -> dict[str, Any]:
    """The site: its peers, the VIP and the networks."""
    controllers = doc.controllers
    mgmt_net = doc.networks.get("management")
    return {
        "cluster": doc.cluster,
        "region": doc.region,
        "controllers": controllers,
        "storages": doc.storages,
        "computes": doc.computes,
        "others": [c for c in controllers if c.name != doc.node.name],
        # A blank node discovers the controllers before it by name (and itself), which run when it starts (the
        # rabbitmq step): the first seeds the cluster; no node probes a peer that waits for it.
        "rabbitmq_discovery_nodes": [c for c in controllers if c.name <= doc.node.name],
        "vip": doc.vip,
        "vip_prefix": int(mgmt_net.split("/")[1]) if mgmt_net else 32,
        # Same on every controller of a cluster, different between clusters sharing a segment.
        "vrrp_router_id": 1 + int(hashlib.sha256(doc.cluster.encode()).hexdigest()[:8], 16) % 254,
        "networks": doc.networks,
        "provider_bridge": catalog.PROVIDER_BRIDGE,
        "options": doc.options,
        "debug": "true" if doc.options["debug"] else "false",
    }


def _services_context(doc: Document) -> dict[str, Any]:
    """How the services reach each other: URLs, credentials, the catalog's tables."""
    return {
        "secrets": doc.secrets,
        "tls": {"ca": doc.tls.ca, "cert": doc.tls.cert, "key": doc.tls.key, "trusted": doc.tls.trusted,
                "vip_pair": doc.tls.vip_pair},
        "tls_ca": catalog.TLS_CA,
        "tls_cert": catalog.TLS_CERT,
        "tls_keys": catalog.TLS_KEYS,
        "api_loopback": catalog.API_LOOPBACK,
        "local_front_suffix": catalog.LOCAL_FRONT_SUFFIX,
        "key_sets": catalog.KEY_SETS,
        "service_password": lambda user: doc.secrets[catalog.SERVICE_USERS[user]],
        "ssh_public_key": lambda secret, comment="": sshkeys.public_key(str(doc.secrets[secret]), comment),
        "ports": catalog.PORTS,
        "apis": catalog.APIS,
        "uwsgi_apis": catalog.UWSGI_APIS,
        "url": lambda api, suffix="": api_url(doc, api, suffix),
        "db_url": lambda database, user=None: db_url(doc, database, user),
        "keystone_url": api_url(doc, "keystone"),
        "transport_url": transport_url(doc),
        "memcached_servers": ",".join(hostport(c.management, catalog.PORTS["memcached"]) for c in doc.controllers),
        "cache_dead_retry": CACHE_DEAD_RETRY_S,
    }


def _storage_context(doc: Document) -> dict[str, Any]:
    """Ceph and the volume backends."""
    return {
        "ceph_enabled": doc.ceph_enabled,
        "rbd_volumes": doc.rbd_volumes,
        "lvm_volumes": doc.lvm_volumes,
        "ceph_entities": catalog.CEPH_ENTITIES,
        "ceph_pool_size": doc.ceph_pool_size,
        "ceph_min_size": catalog.ceph_min_size(doc.ceph_pool_size),
        "ceph_public_network": doc.networks.get("storage") or doc.networks.get("management"),
        "mon_nodes": doc.ceph_monitors,
    }


def build_context(doc: Document, facts: Facts) -> dict[str, Any]:
    """Every value the templates may use: derived once here, so templates stay declarative."""
    return {**_node_context(doc, facts), **_site_context(doc), **_services_context(doc), **_storage_context(doc)}


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["shquote"] = lambda v: shlex.quote(str(v))
    env.filters["pyrepr"] = lambda v: repr(v)
    env.filters["hostport"] = hostport
    env.filters["tojson"] = lambda v: json.dumps(v)
    return env


_ENV = _environment()


def _syntax_problem(path: str, text: str, is_ini: bool) -> str | None:
    if is_ini or (path.endswith((".conf", ".ini", ".cnf")) and _looks_like_ini(text)):
        return ini.check(text)
    if path.endswith(".py"):
        try:
            ast.parse(text)
        except SyntaxError as exc:
            return f"Python syntax error at line {exc.lineno}: {exc.msg}"
    if path.endswith((".yaml", ".yml")):
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            return f"YAML error: {str(exc).splitlines()[0]}"
    if path.endswith(".xml"):
        try:
            ET.fromstring(text)
        except ET.ParseError as exc:
            return f"XML error: {exc}"
    return None


def _looks_like_ini(text: str) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("#", ";"))), "")
    return first.lstrip().startswith("[")


def render_tree(doc: Document, facts: Facts | None = None) -> dict[str, RenderedFile]:
    """Render every file of the node's role; raise RenderError listing every failure."""
    context = build_context(doc, facts or Facts())
    rendered: dict[str, RenderedFile] = {}
    failures: list[str] = []
    for spec in catalog.files_for(doc.role, doc.features):
        name, *args = spec.template.split(":")
        try:
            text = _ENV.get_template(name).render(context, args=args)
        except jinja2.UndefinedError as exc:
            failures.append(f"{spec.path} ({name}): missing value: {exc.message}")
            continue
        except KeyError as exc:  # a context helper looked up a value the document lacks
            failures.append(f"{spec.path} ({name}): missing value: {exc.args[0]!r}")
            continue
        except jinja2.TemplateError as exc:
            failures.append(f"{spec.path} ({name}): template error: {exc}")
            continue
        if spec.override and spec.override in doc.overrides:
            text = ini.merge(text, doc.overrides[spec.override], catalog.override_reader(spec.override))
        if problem := _syntax_problem(spec.path, text, spec.override is not None):
            failures.append(f"{spec.path}: rendered text does not parse: {problem}")
            continue
        rendered[spec.path] = RenderedFile(spec.path, text.encode(), spec.owner, spec.group, spec.mode,
                                           spec.service)
    if failures:
        raise RenderError("config rendering failed; nothing was written:\n" + "\n".join(f"  - {f}" for f in failures))
    return rendered
