"""The facts defined once and read elsewhere: each role's step order (pinned here, so a change to an `after`
list shows up as a change of order), the docs' generated tables, and the link between the catalog's
accounts and the secrets that hold their passwords."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from firstboot import catalog, reference, secrets

TOP = Path(__file__).resolve().parent.parent

ORDER = {
    "controller": ["hosts", "config", "rabbitmq-boot", "galera-endpoint", "galera", "infra", "rabbitmq",
                   "rabbitmq-users", "databases", "keystone", "catalog", "services", "network", "image-store"],
    "compute": ["hosts", "config", "network", "compute"],
    "storage": ["hosts", "config", "ceph-mon", "ceph-osd", "ceph-pools", "volume"],
}


@pytest.mark.parametrize("role", catalog.ROLES)
def test_each_roles_step_order_is_pinned(role):
    assert [s.name for s in reference.plan(role)] == ORDER[role]


def test_steps_command_prints_the_order_with_dependencies():
    proc = subprocess.run([sys.executable, "-m", "firstboot", "steps", "--role", "storage"], capture_output=True,
                          text=True, cwd=TOP)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line[:2].strip().isdigit()]
    assert [r[1] for r in rows] == ORDER["storage"]
    assert rows[4][:3] == ["5", "ceph-pools", "ceph-osd"]


def test_the_docs_generated_tables_are_current():
    stale = reference.refresh(TOP, write=False)
    assert not stale, f"stale generated tables in {stale}: run `.venv/bin/python -m firstboot.reference`"


def test_every_account_of_the_catalog_has_its_password_secret_and_every_such_secret_an_account():
    named = {a.secret for a in catalog.DATABASE_USERS.values()} | set(catalog.SERVICE_USERS.values()) \
        | {catalog.RABBITMQ_SECRET}
    for secret in named:
        assert secret in secrets.SECRETS_BY_NAME, secret
        assert secrets.SECRETS_BY_NAME[secret].kind is secrets.PASSWORD, secret
    passwords = {s.name for s in secrets.SECRETS if s.name.startswith(("db_", "user_"))}
    assert passwords <= named, passwords - named


def test_roles_that_run_a_service_get_its_keystone_password():
    """Where a service's config file is rendered, the role holds that service user's password (the
    renderer would fail there otherwise; database passwords reach only the roles whose files name them,
    which the render tests cover)."""
    for service, secret in catalog.SERVICE_USERS.items():
        rendered = {r for f in catalog.CONFIG_FILES if f.service == service for r in f.roles}
        assert rendered <= secrets.SECRETS_BY_NAME[secret].roles, (service, rendered)
