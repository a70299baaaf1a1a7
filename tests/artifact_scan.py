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
    needles = []
    for value in values.values():
        for item in value if isinstance(value, list) else [value]:
            needles.append(str(item).encode())
    return needles


def problems_in(name: str, data: bytes, needles: list[bytes]) -> list[str]:
    found = [f"{name} holds a seed secret" for needle in needles if needle in data]
    # A PEM private key file: the armour line followed by key material. Not counted: keys compiled into
    # libraries (self-tests) and the published keys of upstream test suites.
    if not data.startswith(b"\x7fELF") and not UPSTREAM_TESTS.search(name) and PEM_PRIVATE_KEY.search(data):
        found.append(f"{name} holds a private key")
    return found
