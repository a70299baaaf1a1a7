"""Shared fixtures: a small valid site, built through the real seed code."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from firstboot import catalog, seed
from firstboot import secrets as secretspec

LAB = {
    "cluster": "testlab",
    "region": "RegionOne",
    "vip": "10.99.0.10",
    "networks": {"management": "10.99.0.0/24"},
    "nodes": [
        {"name": "ctl1", "role": "controller", "addresses": {"management": "10.99.0.11"}},
        {"name": "ctl2", "role": "controller", "addresses": {"management": "10.99.0.12"}},
        {"name": "ctl3", "role": "controller", "addresses": {"management": "10.99.0.13"}},
        {"name": "cmp1", "role": "compute", "addresses": {"management": "10.99.0.21"}},
        {"name": "sto1", "role": "storage", "addresses": {"management": "10.99.0.31"}},
    ],
}


@pytest.fixture(scope="session")
def site_secrets() -> dict[str, Any]:
    return secretspec.generate_missing({})[0]


@pytest.fixture
def inventory() -> dict[str, Any]:
    return copy.deepcopy(LAB)


def make_doc(inv: dict[str, Any], name: str, site_secrets: dict[str, Any]) -> dict[str, Any]:
    inventory = seed.Inventory(inv, inv["nodes"])
    node = next(n for n in inv["nodes"] if n["name"] == name)
    return seed.node_document(inventory, node, site_secrets)


@pytest.fixture
def doc_of(inventory, site_secrets):
    """doc_of("ctl1") -> a fresh, valid node document (a plain dict the test may break)."""
    return lambda name: make_doc(inventory, name, site_secrets)


@pytest.fixture
def inventory_file(tmp_path: Path, inventory) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(inventory))
    return path


HEAVY = ("docker", "image", "cluster", "qcow2", "lab", "storage", "tempest")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`heavy` marks every test that builds images or runs containers or VMs: `-m "not heavy"` is the fast
    tier of pure logic."""
    for item in items:
        if any(item.get_closest_marker(m) for m in HEAVY):
            item.add_marker(pytest.mark.heavy)


def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> None:
    """Remember the first failure in a `sequence` module: its shared lab is then in an unknown state."""
    if call.excinfo is not None and call.when in ("setup", "call") and item.get_closest_marker("sequence") \
            and not call.excinfo.errisinstance(pytest.skip.Exception):
        item.module.__dict__.setdefault("_sequence_broken_by", item.name)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """The tests after a failure in a `sequence` module would each wait out their timeouts on a lab left
    broken (the power-loss test failing once cost the CI run 50 minutes); they fail at once instead."""
    broken_by = getattr(item.module, "_sequence_broken_by", None) if item.get_closest_marker("sequence") else None
    if broken_by:
        pytest.fail(f"not run: {broken_by} failed earlier in this module and left its shared lab in an unknown "
                    f"state; see that failure", pytrace=False)


TOP = Path(__file__).resolve().parent.parent
IMAGE_TAG = "test"


@pytest.fixture(scope="session")
def built_images(tmp_path_factory) -> dict[str, str]:
    """Every role's container image, built once per session by the real build.py (Docker's layer cache
    makes later sessions fast). Returns role -> image reference, and "_output" -> the manifests' folder."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("images")
    proc = subprocess.run([sys.executable, str(TOP / "build.py"), "--role", "all", "--output", str(out),
                           "--tag", IMAGE_TAG], cwd=TOP, capture_output=True, text=True, timeout=3000)
    log = out / "build.log"
    tail = "\n".join(log.read_text().splitlines()[-80:]) if log.exists() else ""
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:] + tail
    images = {role: f"goldstack/{role}:{IMAGE_TAG}" for role in catalog.ROLES}
    for ref in images.values():
        assert ref in proc.stdout  # the summary table names every artifact
    return {**images, "_output": str(out)}
