"""The one definition of every secret: its shape, who needs it, how to make it, how to check it.

The seed generator makes each secret once; the document validator checks them; the log filter
redacts them. Roles receive only the secrets they need.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as _rand
import string
import struct
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from firstboot import sshkeys, tls
from firstboot.catalog import COMPUTE, CONTROLLER, ROLES, STORAGE

ALL_ROLES = frozenset(ROLES)

# Values nobody should ever deploy with. Compared case-insensitively.
KNOWN_DEFAULTS = frozenset(
    {
        "123456", "1234567", "12345678", "123456789", "1234567890", "admin", "administrator",
        "changeme", "change_me", "default", "guest", "letmein", "openstack", "pass", "passw0rd",
        "password", "password1", "qwerty", "root", "secret", "stack", "test", "toor", "nova",
        "keystone", "glance", "neutron", "cinder", "placement", "rabbit", "mysql", "mariadb",
    }
)
# Install-guide placeholders such as RABBIT_PASS or KEYSTONE_DBPASS.
_PLACEHOLDER = re.compile(r"^[A-Z0-9_]*(PASS|DBPASS|SECRET|PASSWORD)$")
MIN_PASSWORD_LENGTH = 16
# What a password may hold besides ASCII letters and digits: what every file it reaches reads back as given,
# written plainly. Left out, with why: $ (oslo.config reads $name as a reference to another option), # and ;
# (comments in MariaDB's option files and rabbitmq.conf), \ (an escape in MariaDB's option files), ' and "
# (a quoted value loses its quotes), % (Python's configparser interpolation), white space (trimmed), and
# the shell's and globbing characters (Galera's SST scripts pass the password through the shell).
PASSWORD_SYMBOLS = "-_.+=@:/,"
REDACTED = "***"


def _password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(_rand.choice(alphabet) for _ in range(32))


def _fernet_keys() -> list[str]:
    # keystone keeps key 0 as the staged key and the highest index as the primary.
    return [base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2)]


def _erlang_cookie() -> str:
    return "".join(_rand.choice(string.ascii_uppercase) for _ in range(32))


def ceph_key() -> str:
    """A CephX key as `ceph-authtool --gen-print-key` prints it (type, created, length, 16 bytes)."""
    secret = os.urandom(16)
    header = struct.pack("<hiih", 1, int(time.time()), 0, len(secret))
    return base64.b64encode(header + secret).decode()


def _uuid() -> str:
    return str(uuid.uuid4())


def _check_password(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not value:
        return "is empty; generate one with `python -m firstboot seed` or `openssl rand -hex 24`"
    if value.lower() in KNOWN_DEFAULTS or _PLACEHOLDER.match(value):
        return "is a well-known default or placeholder; use a generated secret"
    if len(value) < MIN_PASSWORD_LENGTH:
        return f"is too short ({len(value)} characters); use at least {MIN_PASSWORD_LENGTH}"
    if any(c.isspace() for c in value):
        return "must not contain white space"
    if bad := sorted({c for c in value if not (c.isascii() and c.isalnum()) and c not in PASSWORD_SYMBOLS}):
        return (f"holds {' '.join(bad)}: a password may hold ASCII letters, digits and {' '.join(PASSWORD_SYMBOLS)} "
                "only (the configuration files it reaches would read others differently; docs/metadata.md)")
    return None


def _check_fernet_keys(value: object) -> str | None:
    if not isinstance(value, list) or len(value) < 2:
        return "must be a list of at least two Fernet keys (staged key 0 and a primary)"
    for i, key in enumerate(value):
        try:
            if not isinstance(key, str) or len(base64.urlsafe_b64decode(key.encode())) != 32:
                return f"item {i} is not a Fernet key (32 bytes, URL-safe base64)"
        except (binascii.Error, ValueError):
            return f"item {i} is not URL-safe base64"
    if len(set(value)) != len(value):
        return "holds the same key twice"
    return None


def _check_cookie(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a string of letters and digits (quote it in YAML if it is all digits)"
    if not value:
        return "is empty; generate one with `python -m firstboot seed`"
    if not 20 <= len(value) <= 255 or not (value.isascii() and value.isalnum()):
        return "must be 20 to 255 ASCII letters or digits (what Erlang accepts as a cookie)"
    if value.lower() in KNOWN_DEFAULTS:
        return "is a well-known default; use a generated cookie"
    return None


def _check_ceph_key(value: object) -> str | None:
    try:
        raw = base64.b64decode(str(value).encode(), validate=True)
    except (binascii.Error, ValueError):
        return "is not a CephX key (base64)"
    if len(raw) != 28:
        return "is not a CephX key (expected 28 bytes; make one with `ceph-authtool --gen-print-key`)"
    return None


def _check_uuid(value: object) -> str | None:
    try:
        canonical = str(uuid.UUID(str(value)))
    except ValueError:
        return "is not a UUID"
    if value != canonical:
        return f"must be written as a plain lower-case UUID, like {canonical}"
    return None


def _check_site_ca(value: object) -> str | None:
    problems = tls.check_ca(value, "site_ca")
    return "; ".join(f"{f}: {m}" for f, m in problems) or None


def _check_node_certificates(value: object) -> str | None:
    if not isinstance(value, dict) or not all(isinstance(v, dict) and set(v) == {"cert", "key"}
                                              for v in value.values()):
        return "must be a mapping of node name: {cert, key} (PEM); delete it and re-run seed to issue new ones"
    return None


@dataclass(frozen=True)
class SecretKind:
    generate: Callable[[], object]
    check: Callable[[object], str | None]


PASSWORD = SecretKind(_password, _check_password)
FERNET = SecretKind(_fernet_keys, _check_fernet_keys)
COOKIE = SecretKind(_erlang_cookie, _check_cookie)
CEPH_KEY = SecretKind(ceph_key, _check_ceph_key)
UUID = SecretKind(_uuid, _check_uuid)
SSH_KEY = SecretKind(lambda: sshkeys.generate("goldstack"), sshkeys.check)
CA = SecretKind(lambda: tls.make_ca(uuid.uuid4().hex[:8]), _check_site_ca)
NODE_CERTS = SecretKind(dict, _check_node_certificates)


@dataclass(frozen=True)
class SecretSpec:
    name: str
    kind: SecretKind
    roles: frozenset[str]
    purpose: str


def _spec(name: str, kind: SecretKind, roles: Iterable[str], purpose: str) -> SecretSpec:
    return SecretSpec(name, kind, frozenset(roles), purpose)


_C, _K, _S = {CONTROLLER}, {CONTROLLER, COMPUTE}, {CONTROLLER, STORAGE}
SECRETS: tuple[SecretSpec, ...] = (
    _spec("mariadb_root", PASSWORD, _C, "MariaDB root@localhost"),
    _spec("mariadb_sst", PASSWORD, _C, "Galera state transfer (mariabackup) user"),
    _spec("db_keystone", PASSWORD, _C, "keystone database user"),
    _spec("db_glance", PASSWORD, _C, "glance database user"),
    _spec("db_placement", PASSWORD, _C, "placement database user"),
    _spec("db_nova", PASSWORD, _C, "nova database user (nova, nova_api, nova_cell0)"),
    _spec("db_neutron", PASSWORD, _C, "neutron database user"),
    _spec("db_cinder", PASSWORD, _S, "cinder database user"),
    _spec("keystone_admin", PASSWORD, _C, "keystone admin user"),
    _spec("user_glance", PASSWORD, _C, "keystone user of glance"),
    _spec("user_placement", PASSWORD, _K, "keystone user of placement"),
    _spec("user_nova", PASSWORD, _K | {STORAGE}, "keystone user of nova"),
    _spec("user_neutron", PASSWORD, _K, "keystone user of neutron"),
    _spec("user_cinder", PASSWORD, _K | {STORAGE}, "keystone user of cinder"),
    _spec("rabbitmq_openstack", PASSWORD, ALL_ROLES, "RabbitMQ user of the OpenStack services"),
    _spec("rabbitmq_admin", PASSWORD, _C, "RabbitMQ administrator (management UI)"),
    _spec("erlang_cookie", COOKIE, _C, "Erlang cookie shared by the RabbitMQ nodes"),
    _spec("fernet_keys", FERNET, _C, "keystone Fernet token keys, identical on every controller"),
    _spec("credential_keys", FERNET, _C, "keystone credential encryption keys"),
    _spec("metadata_proxy", PASSWORD, _C, "shared secret of nova metadata and the neutron proxy"),
    _spec("horizon_secret_key", PASSWORD, _C, "Django SECRET_KEY of horizon"),
    _spec("memcache_secret_key", PASSWORD, ALL_ROLES, "keystonemiddleware's key that encrypts and signs the "
          "token cache in memcached"),
    _spec("ceph_fsid", UUID, ALL_ROLES, "Ceph cluster fsid"),
    _spec("ceph_mon_key", CEPH_KEY, {STORAGE}, "Ceph mon. keyring"),
    _spec("ceph_admin_key", CEPH_KEY, {STORAGE}, "Ceph client.admin"),
    _spec("ceph_bootstrap_osd_key", CEPH_KEY, {STORAGE}, "Ceph client.bootstrap-osd"),
    _spec("ceph_glance_key", CEPH_KEY, _S, "Ceph client.glance"),
    _spec("ceph_cinder_key", CEPH_KEY, ALL_ROLES, "Ceph client.cinder (volumes; also used by nova)"),
    _spec("ceph_nova_key", CEPH_KEY, _K | {STORAGE}, "Ceph client.nova (ephemeral disks in vms)"),
    _spec("libvirt_secret_uuid", UUID, _K | {STORAGE}, "libvirt secret holding client.cinder's key"),
    _spec("nova_ssh_key", SSH_KEY, {COMPUTE}, "SSH key nova-compute uses to reach its peers' libvirt "
          "(live migration)"),
    _spec("compute_ssh_host_key", SSH_KEY, {COMPUTE}, "SSH host key of every compute node's sshd (known to its "
          "peers, so no host key is taken on trust)"),
    # Never sent to a node: the CA signs each node's certificate in the seed generator, and the node pairs are
    # kept so that re-running seed does not re-issue them (a node gets its own pair in its document's `tls`).
    _spec("site_ca", CA, (), "the site's certificate authority (cert and key); stays with the seed generator"),
    _spec("node_certificates", NODE_CERTS, (), "each node's certificate and key, issued by site_ca"),
)
SECRETS_BY_NAME = {s.name: s for s in SECRETS}


def needed_by(role: str) -> list[SecretSpec]:
    return [s for s in SECRETS if role in s.roles]


def generate_missing(existing: dict[str, object]) -> tuple[dict[str, object], list[str]]:
    """Keep every secret already made; make only the missing ones (so re-runs never rotate)."""
    merged = dict(existing)
    made = []
    for spec in SECRETS:
        if spec.name not in merged:
            merged[spec.name] = spec.kind.generate()
            made.append(spec.name)
    return merged, made


def check(name: str, value: object) -> str | None:
    spec = SECRETS_BY_NAME.get(name)
    return spec.kind.check(value) if spec else None


def secret_strings(values: dict[str, object]) -> set[str]:
    """Every string a log line must never show (list secrets contribute each item)."""
    found: set[str] = set()
    for value in values.values():
        if isinstance(value, dict):
            found |= secret_strings(value)
            continue
        items = value if isinstance(value, list) else [value]
        found.update(str(v) for v in items if v not in (None, "") and len(str(v)) >= 6)
    return found
