"""The control plane's one-time work, in dependency order: the one definition of that order.

Each task runs once cluster-wide (firstboot.runonce). Tasks of one phase whose dependencies are done
run concurrently; commands of one service form a chain, so they never overlap.
"""

from __future__ import annotations

import hashlib
import ipaddress
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from firstboot import catalog, keystone_api, mysql, proc, rabbitmq
from firstboot.document import Document
from firstboot.render import api_url

MESSAGING, DATABASE, CATALOG = "messaging", "database", "catalog"


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

    def before_retry(self, doc: Document) -> Callable[[], None] | None:
        if not self.schema_of:
            return None
        return lambda: recreate_databases(doc, self.schema_of)


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


def _db_host(doc: Document) -> str:
    """Database users may connect only from the management network (HAProxy forwards from there)."""
    net = ipaddress.ip_network(doc.networks["management"], strict=False)
    return f"{net.network_address}/{net.netmask}"


def create_databases(doc: Document) -> str:
    host = mysql.quote(_db_host(doc))
    sql = []
    for user, databases in catalog.DATABASES.items():
        password = mysql.quote(doc.secrets[f"db_{user}"])
        sql.append(f"CREATE USER IF NOT EXISTS {mysql.quote(user)}@{host} IDENTIFIED BY {password};")
        sql.append(f"ALTER USER {mysql.quote(user)}@{host} IDENTIFIED BY {password};")
        for database in databases:
            sql.append(f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4;")
            sql.append(f"GRANT ALL PRIVILEGES ON `{database}`.* TO {mysql.quote(user)}@{host};")
    mysql.run_sql("\n".join(sql))
    return f"{sum(len(d) for d in catalog.DATABASES.values())} databases, {len(catalog.DATABASES)} users"


def recreate_databases(doc: Document, databases: tuple[str, ...]) -> None:
    """Drop and re-create databases that only ever held a partial first schema (never any data)."""
    mysql.run_sql("\n".join(f"DROP DATABASE IF EXISTS `{d}`; CREATE DATABASE `{d}` CHARACTER SET utf8mb4;"
                            for d in databases))


def keystone_bootstrap(doc: Document) -> str:
    url = api_url(doc, "keystone", "/v3")
    proc.run(["keystone-manage", "bootstrap", "--bootstrap-username", "admin", "--bootstrap-project-name", "admin",
              "--bootstrap-role-name", "admin", "--bootstrap-service-name", "keystone",
              "--bootstrap-region-id", doc.region, "--bootstrap-admin-url", url, "--bootstrap-internal-url", url,
              "--bootstrap-public-url", url],
             user="keystone", env={"OS_BOOTSTRAP_PASSWORD": str(doc.secrets["keystone_admin"])})
    return f"admin user, project, roles and the identity endpoints at {url}"


def rabbitmq_users(doc: Document) -> str:
    return rabbitmq.ensure_users(doc)


def _schema_version() -> str:
    return "goldstack:" + hashlib.sha256(repr(sorted(catalog.DATABASES.items())).encode()).hexdigest()[:12]


_NEUTRON_CONF = ("--config-file", "/etc/neutron/neutron.conf", "--config-file", "/etc/neutron/plugins/ml2/ml2_conf.ini")

TASKS: tuple[Task, ...] = (
    Task("rabbitmq-users", MESSAGING, "rabbitmq-server", rabbitmq_users),
    Task("databases", DATABASE, _schema_version(), create_databases),
    Task("keystone-db-sync", DATABASE, "keystone", _manage("keystone", "keystone-manage", "db_sync"), ("databases",),
         ("keystone",)),
    Task("keystone-bootstrap", DATABASE, "keystone", keystone_bootstrap, ("keystone-db-sync",)),
    Task("glance-db-sync", DATABASE, "glance-common", _manage("glance", "glance-manage", "db_sync"), ("databases",),
         ("glance",)),
    Task("glance-metadefs", DATABASE, "glance-common", _manage("glance", "glance-manage", "db_load_metadefs"),
         ("glance-db-sync",)),
    Task("placement-db-sync", DATABASE, "placement-common", _manage("placement", "placement-manage", "db", "sync"),
         ("databases",), ("placement",)),
    Task("nova-api-db-sync", DATABASE, "nova-common", _manage("nova", "nova-manage", "api_db", "sync"),
         ("databases",), ("nova_api",)),
    Task("nova-map-cell0", DATABASE, "nova-common", _manage("nova", "nova-manage", "cell_v2", "map_cell0"),
         ("nova-api-db-sync",)),
    # create_cell exits 2 when cell1 exists (a run killed after creating it, then retried). It only adds
    # cell1's row to the API database, and `db sync` needs only cell0's mapping (it syncs cell0 through
    # it, and cell1 through [database]): the install guides' one-line order is not a dependency, and
    # running it beside map_cell0 and the sync takes one nova-manage start off the longest chain.
    Task("nova-create-cell1", DATABASE, "nova-common",
         _manage("nova", "nova-manage", "cell_v2", "create_cell", "--name=cell1", "--verbose", ok_codes=(0, 2)),
         ("nova-api-db-sync",)),
    Task("nova-db-sync", DATABASE, "nova-common", _manage("nova", "nova-manage", "db", "sync"),
         ("nova-map-cell0",), ("nova", "nova_cell0")),
    Task("neutron-db-upgrade", DATABASE, "neutron-common",
         _manage("neutron", "neutron-db-manage", *_NEUTRON_CONF, "upgrade", "heads"), ("databases",), ("neutron",)),
    Task("cinder-db-sync", DATABASE, "cinder-common", _manage("cinder", "cinder-manage", "db", "sync"),
         ("databases",), ("cinder",)),
    Task("keystone-catalog", CATALOG, "keystone", keystone_api.ensure_catalog),
    # A fresh schema has nothing to migrate (exit 0); after a package upgrade this converts the rows. Data,
    # not schema, and nova's services run while it does (as nova's upgrade guide has it): it runs with the
    # catalog, off the schema syncs' longest chain.
    Task("nova-online-migrations", CATALOG, "nova-common",
         _manage("nova", "nova-manage", "db", "online_data_migrations"), ("nova-db-sync",)),
)
TASKS_BY_NAME = {t.name: t for t in TASKS}


def phase(name: str) -> list[Task]:
    return [t for t in TASKS if t.phase == name]
