"""What a built artifact must never contain: the seed's secrets, or a private key file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

TOP = Path(__file__).resolve().parent.parent
# Upstream test suites and test-helper packages (python-ldap's slapdtest) ship published test keys.
UPSTREAM_TESTS = re.compile(r"^/?usr/lib/python3/dist-packages/(([^/]+/)+tests?/|[^/]*test/)")
PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\r?\n[A-Za-z0-9+/=]{40}")


def secret_needles(site_secrets: dict[str, Any]) -> list[bytes]:
    """The test's secrets plus the lab's secrets file, if this checkout has one."""
    values = dict(site_secrets)
    lab = TOP / "compose/lab.secrets.yaml"
    if lab.exists():
        values.update(yaml.safe_load(lab.read_text()))
    return [leaf.encode() for leaf in _leaves(values)]


def _leaves(value: Any) -> list[str]:
    """The secret strings in a secrets value: lists' items and mappings' values (a mapping's keys, such as
    the node names of `node_certificates`, are not secret; an empty one holds nothing to look for)."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [str(value)]


def problems_in(name: str, data: bytes, needles: list[bytes]) -> list[str]:
    found = [f"{name} holds a seed secret" for needle in needles if needle in data]
    # A PEM private key file: the armour line followed by key material. Not counted: keys compiled into
    # libraries (self-tests) and the published keys of upstream test suites.
    if not data.startswith(b"\x7fELF") and not UPSTREAM_TESTS.search(name) and PEM_PRIVATE_KEY.search(data):
        found.append(f"{name} holds a private key")
    return found
