"""The control plane's one-time work, in dependency order: the one definition of that order.

Each task runs once cluster-wide (firstboot.runonce). Tasks of one phase whose dependencies are done
run concurrently; commands of one service form a chain, so they never overlap.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firstboot import catalog, keysets, keystone_api, mysql, proc, rabbitmq, runonce
from firstboot.document import Document
from firstboot.render import api_url

MESSAGING, DATABASE, CATALOG = "messaging", "database", "catalog"
# Where the firstboot package is: forkrun runs from it as a service's user.
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Task:
    name: str
    phase: str
    package: str  # whose installed version is recorded; a new version re-runs the task
    action: Callable[[Document], str | None]
    after: tuple[str, ...] = ()
    # Databases this task creates the schema of. If its first-ever run was cut off half-way (MySQL DDL
    # is not transactional), they hold a partial schema and no data: they are emptied before the retry.
    schema_of: tuple[str, ...] = ()
    # Its length in command starts, what the phase's longest chain is measured in: the number of its
    # commands, or more for one command that runs as long as several (neutron's upgrade).
    weight: int = 1
    # Run instead of `action` when the task finished before, at an older version: an upgrade.
    upgrade: Callable[[Document], str | None] | None = None
    # An upgrade waits until this holds (every controller on the new version, say): (holds, why not).
    # Until then the task is deferred, and the run that finds it holding does the work.
    gate: Callable[[Document], tuple[bool, str]] | None = None

    def before_retry(self, doc: Document) -> Callable[[], None] | None:
        if not self.schema_of:
            return None
        return lambda: recreate_databases(doc, self.schema_of)

    def run(self, doc: Document, upgrading: bool) -> str | None:
        return (self.upgrade if upgrading and self.upgrade else self.action)(doc)


def package_version(package: str) -> str:
    if package.startswith("goldstack:"):
        return package
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                             timeout=30)
    except FileNotFoundError:
        return "unknown"
    return f"{package} {out.stdout.strip() or 'unknown'}"


def _manage(user: str, *argv: str, ok_codes: tuple[int, ...] = (0,), env: dict[str, str] | None = None):
    def action(doc: Document) -> str:
        proc.run(argv, user=user, ok_codes=ok_codes, env=env, timeout=1800)
        return " ".join(argv)
    return action


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    ok_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Script:
    """A service's console script, as firstboot.forkrun runs it: its code imported once for a chain."""

    user: str
    prog: str
    entry: str  # module:function, what the console script calls
    preload: tuple[str, ...] = ()  # also imported (module) or called (module:function) once, before the fork


CommandOf = Command | Callable[[Document], Command]  # a command, or one made from the node's document


def _chain(script: Script, commands: tuple[CommandOf, ...], env: Callable[[Document], dict[str, str]] | None = None,
           prepare: Callable[[Document], object] | None = None):
    """One task's commands of one script, in order, in one forkrun: one import of the service's code
    instead of one per command (2-3 s of a core each for nova-manage). `prepare` runs first, here."""
    def action(doc: Document) -> str:
        if prepare:
            prepare(doc)
        todo = [c if isinstance(c, Command) else c(doc) for c in commands]
        spec = {"entry": script.entry, "prog": script.prog, "preload": list(script.preload),
                "commands": [{"argv": list(c.argv), "ok": list(c.ok_codes)} for c in todo]}
        proc.run([sys.executable, "-m", "firstboot.forkrun", json.dumps(spec)], user=script.user,
                 env={"PYTHONPATH": PACKAGE_ROOT, **(env(doc) if env else {})}, timeout=1800)
        return "; ".join(" ".join((script.prog, *c.argv)) for c in todo)
    return action


def _chain_task(name: str, phase: str, package: str, script: Script, commands: tuple[CommandOf, ...],
                after: tuple[str, ...] = (), schema_of: tuple[str, ...] = (),
                env: Callable[[Document], dict[str, str]] | None = None,
                upgrade: tuple[CommandOf, ...] | None = None,
                prepare: Callable[[Document], object] | None = None) -> Task:
    return Task(name, phase, package, _chain(script, commands, env, prepare), after, schema_of,
                weight=len(commands), upgrade=_chain(script, upgrade, env, prepare) if upgrade else None)


def _key_repositories(doc: Document) -> None:
    """keystone-manage bootstrap signs with the Fernet keys: this node's repositories from Galera first."""
    keysets.sync(doc.node.name)


def _nothing_on_first_install(what: str) -> Callable[[Document], str]:
    return lambda doc: f"nothing to {what}: the first install's sync made the current schema"


def every_controller_at(package: str) -> Callable[[Document], tuple[bool, str]]:
    """Every controller runs this package at (at least) the version installed here."""
    def gate(doc: Document) -> tuple[bool, str]:
        installed = package_version(package)
        known = runonce.node_versions(package)
        behind = [c.name for c in doc.controllers
                  if c.name not in known or not runonce.covers(known[c.name], installed)]
        return not behind, f"waits until every controller runs {installed} (not yet: {', '.join(behind)})"
    return gate


def nova_services_current(doc: Document) -> tuple[bool, str]:
    """Every nova service (compute nodes' too) reports the newest service version: no old one is left, which
    nova's online data migrations wait for."""
    rows = mysql.run_sql("SELECT COUNT(DISTINCT version), MIN(version), MAX(version) FROM nova.services "
                         "WHERE deleted = 0;")
    distinct, oldest, newest = rows[0] if rows else ("0", "", "")
    return distinct in ("0", "1"), f"waits until every nova service runs service version {newest} " \
                                   f"(oldest: {oldest})"


def _db_host(doc: Document) -> str:
    """Database users may connect only from the management network (HAProxy forwards from there)."""
    net = ipaddress.ip_network(doc.networks["management"], strict=False)
    return f"{net.network_address}/{net.netmask}"


def create_databases(doc: Document) -> str:
    host = mysql.quote(_db_host(doc))
    sql = []
    for user, account in catalog.DATABASE_USERS.items():
        password = mysql.quote(doc.secrets[account.secret])
        sql.append(f"CREATE USER IF NOT EXISTS {mysql.quote(user)}@{host} IDENTIFIED BY {password} REQUIRE SSL;")
        sql.append(f"ALTER USER {mysql.quote(user)}@{host} IDENTIFIED BY {password} REQUIRE SSL;")
        for database in account.databases:
            sql.append(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;")
            sql.append(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {mysql.quote(user)}@{host};")
    mysql.run_sql("\n".join(sql))
    databases = sum(len(a.databases) for a in catalog.DATABASE_USERS.values())
    return f"{databases} databases, {len(catalog.DATABASE_USERS)} users"


def recreate_databases(doc: Document, databases: tuple[str, ...]) -> None:
    """Drop and re-create databases that only ever held a partial first schema (never any data)."""
    mysql.run_sql("\n".join(f"DROP DATABASE IF EXISTS `{d}`; CREATE DATABASE `{d}` CHARACTER SET utf8mb4;"
                            for d in databases))


def keystone_bootstrap(doc: Document) -> Command:
    """Admin user, project, roles and the identity endpoints at the VIP; the password comes by environment."""
    url = api_url(doc, "keystone", "/v3")
    return Command(("bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
                    "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
                    "--bootstrap-region-id", doc.region, "--bootstrap-admin-url", url,
                    "--bootstrap-internal-url", url, "--bootstrap-public-url", url))


def keystone_bootstrap_env(doc: Document) -> dict[str, str]:
    """The admin password, and keystone's cache off (oslo.config reads OS_<SECTION>__<OPTION> before the
    file): a retry after a failed first attempt re-creates the empty database, and bootstrap must not find
    the region it made last time in memcached (it then skipped creating it, and every endpoint insert
    failed its foreign key until the cache entry expired ten minutes later; seen in the lab)."""
    return {"OS_BOOTSTRAP_PASSWORD": str(doc.secrets["keystone_admin"]), "OS_CACHE__ENABLED": "false"}


def rabbitmq_users(doc: Document) -> str:
    return rabbitmq.ensure_users(doc)


def _schema_version() -> str:
    """The databases and their owners (who must connect over TLS): a change re-runs the task that creates them."""
    owned = sorted((user, account.databases, "REQUIRE SSL") for user, account in catalog.DATABASE_USERS.items())
    return "goldstack:" + hashlib.sha256(repr(owned).encode()).hexdigest()[:12]


_NEUTRON_CONF = ("--config-file", "/etc/neutron/neutron.conf", "--config-file", "/etc/neutron/plugins/ml2/ml2_conf.ini")

KEYSTONE_MANAGE = Script("keystone", "keystone-manage", "keystone.cmd.manage:main")
GLANCE_MANAGE = Script("glance", "glance-manage", "glance.cmd.manage:main")
NOVA_MANAGE = Script("nova", "nova-manage", "nova.cmd.manage:main", ("nova.objects:register_all",))

TASKS: tuple[Task, ...] = (
    Task("rabbitmq-users", MESSAGING, "rabbitmq-server", rabbitmq_users),
    Task("databases", DATABASE, _schema_version(), create_databases),
    # The first Fernet and credential keys, from the site secrets into Galera, where they are rotated.
    Task("key-sets", DATABASE, "goldstack:key-sets-1", keysets.store_initial),
    # A first install syncs the whole schema; an upgrade expands it and migrates the data while the older
    # keystones still run, and contracts it once every controller runs the new one (keystone's rolling
    # upgrade order).
    _chain_task("keystone-db", DATABASE, "keystone", KEYSTONE_MANAGE, (Command(("db_sync",)), keystone_bootstrap),
                ("databases", "key-sets"), ("keystone",), env=keystone_bootstrap_env,
                upgrade=(Command(("db_sync", "--expand")), Command(("db_sync", "--migrate")), keystone_bootstrap),
                prepare=_key_repositories),
    # Weight 0: no command on a first install, so off the longest chain.
    Task("keystone-db-contract", DATABASE, "keystone", _nothing_on_first_install("contract"), ("keystone-db",),
         weight=0, upgrade=_chain(KEYSTONE_MANAGE, (Command(("db_sync", "--contract")),)),
         gate=every_controller_at("keystone")),
    _chain_task("glance-db", DATABASE, "glance-common", GLANCE_MANAGE,
                (Command(("db_sync",)), Command(("db_load_metadefs",))), ("databases",), ("glance",)),
    Task("placement-db-sync", DATABASE, "placement-common", _manage("placement", "placement-manage", "db", "sync"),
         ("databases",), ("placement",)),
    # The install guides' order. create_cell exits 2 when cell1 exists (a run killed after creating it, then
    # retried); `db sync` syncs cell0 through its mapping and cell1 through [database].
    _chain_task("nova-db", DATABASE, "nova-common", NOVA_MANAGE,
                (Command(("api_db", "sync")), Command(("cell_v2", "map_cell0")),
                 Command(("cell_v2", "create_cell", "--name=cell1", "--verbose"), ok_codes=(0, 2)),
                 Command(("db", "sync"))), ("databases",), ("nova_api", "nova", "nova_cell0")),
    # One command, but some 140 migrations of DDL, each waiting on Galera: it takes as long as nova's chain.
    Task("neutron-db-upgrade", DATABASE, "neutron-common",
         _manage("neutron", "neutron-db-manage", *_NEUTRON_CONF, "upgrade", "heads"), ("databases",), ("neutron",),
         weight=4, upgrade=_manage("neutron", "neutron-db-manage", *_NEUTRON_CONF, "upgrade", "--expand")),
    Task("neutron-db-contract", DATABASE, "neutron-common", _nothing_on_first_install("contract"),
         ("neutron-db-upgrade",), weight=0, upgrade=_manage("neutron", "neutron-db-manage", *_NEUTRON_CONF, "upgrade",
                                                  "--contract"), gate=every_controller_at("neutron-common")),
    Task("cinder-db-sync", DATABASE, "cinder-common", _manage("cinder", "cinder-manage", "db", "sync"),
         ("databases",), ("cinder",)),
    Task("keystone-catalog", CATALOG, "keystone", keystone_api.ensure_catalog),
    # A fresh schema has nothing to migrate (exit 0); after a package upgrade this converts the rows, once no
    # older nova service is left (nova's upgrade order). Data, not schema, and nova's services run while it
    # does: it runs with the catalog, off the schema syncs' longest chain.
    Task("nova-online-migrations", CATALOG, "nova-common",
         _manage("nova", "nova-manage", "db", "online_data_migrations"), ("nova-db",), gate=nova_services_current),
)
TASKS_BY_NAME = {t.name: t for t in TASKS}


def phase(name: str) -> list[Task]:
    return [t for t in TASKS if t.phase == name]
