"""Galera: form, join or recover the controllers' cluster with no operator (rules in firstboot.galera).

Each agent publishes its node's position through the health endpoint, reads its peers', and acts on
the same decision function; MariaDB is never enabled at boot, so after a power loss it is the agent
that decides who bootstraps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from firstboot import catalog, galera, galera_local, mysql, proc
from firstboot.addresses import hostport
from firstboot.steps.base import Context, Step
from firstboot.steps.units import UnitsStep

PEER_TIMEOUT = 3
POLL_SECONDS = 1  # local status and peers' health endpoints: cheap to ask, and each wait is on the way up
# mariadb.service's ExecStart passes this variable (named for galera_new_cluster, its first user) to
# mariadbd: --wsrep-new-cluster to bootstrap, or a joiner's --wsrep-sst-donor. Read when the unit spawns
# the server, so it is unset once MariaDB runs.
SERVER_ARGS_VARIABLE = "_WSREP_NEW_CLUSTER"
MAX_START_FAILURES = 3
# How long a joiner lets the joiners ahead of it enter first (galera.entering_before): one that does not
# come in that time (its agent slower, its start failing) no longer holds this one back.
YIELD_SECONDS = 10


class GaleraEndpointStep(UnitsStep):
    name = "galera-endpoint"
    description = "start the Galera health endpoint (peers and HAProxy read it)"
    roles = frozenset({catalog.CONTROLLER})
    after = ("config",)
    groups = ("galera-health",)
    enable = True  # up at every boot, before the agent, so peers can read this node's position


def peer_report(address: str) -> galera.Report | None:
    url = f"http://{hostport(address, catalog.PORTS['galera-health'])}/galera"
    try:
        response = requests.get(url, timeout=PEER_TIMEOUT)
        response.raise_for_status()
        return galera.Report.from_dict(response.json())
    except (requests.RequestException, ValueError, TypeError):
        return None


def ensure_accounts(ctx: Context) -> None:
    """The state-transfer account (joiners need it on their donor) and root's password; idempotent."""
    sec = ctx.doc.secrets
    user = mysql.quote(galera_local.SST_USER)
    mysql.run_sql(
        f"CREATE USER IF NOT EXISTS {user}@'localhost' IDENTIFIED BY {mysql.quote(sec['mariadb_sst'])};"
        f"ALTER USER {user}@'localhost' IDENTIFIED BY {mysql.quote(sec['mariadb_sst'])};"
        f"GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO {user}@'localhost';"
        # root keeps socket authentication; the password is the operator's way in over TCP on localhost.
        f"ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password "
        f"USING PASSWORD({mysql.quote(sec['mariadb_root'])});")


@dataclass
class _Formation:
    """What one run of the galera step remembers between its decisions."""

    failures: int = 0  # MariaDB start failures seen
    args_set: bool = False  # SERVER_ARGS_VARIABLE holds a joiner's donors until its server runs
    yielding_since: float | None = None  # since when this node lets earlier joiners enter first
    action: str = "joined"


class GaleraStep(Step):
    name = "galera"
    description = "form, join or recover the Galera cluster"
    roles = frozenset({catalog.CONTROLLER})
    after = ("galera-endpoint",)

    def done(self, ctx: Context) -> bool:
        return galera_local.report(ctx.doc.node.name, ctx.root).serving

    def run(self, ctx: Context) -> str:
        formation = _Formation()
        deadline = time.monotonic() + ctx.doc.options["cluster_wait_seconds"]
        while True:
            mine = galera_local.report(ctx.doc.node.name, ctx.root)
            if mine.primary and mine.synced:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"Galera not formed after {ctx.doc.options['cluster_wait_seconds']}s; last "
                                   f"state: {ctx.state.step(self.name).get('detail')}")
            if mine.service == "failed":
                self._start_failed(ctx, formation)
                continue
            if mine.running:
                self._wait_running(ctx, mine, formation)
            elif self._step(ctx, mine, formation) == "again":
                continue
            time.sleep(POLL_SECONDS)
        # This node's own mariadb-upgrade first: its account changes are replicated to every peer.
        proc.wait_for(lambda: not galera_local.settling(proc.unit_state("mariadb")), 600,
                      "MariaDB's start-up work (debian-start: mariadb-upgrade) to end", progress=ctx.note)
        ensure_accounts(ctx)
        ctx.path(galera_local.FORCE_FILE).unlink(missing_ok=True)
        status = mysql.wsrep_status()
        return (f"{formation.action}; cluster size {status.get('wsrep_cluster_size')}, "
                f"{status.get('wsrep_local_state_comment')}, seqno {status.get('wsrep_last_committed')}")

    def _start_failed(self, ctx: Context, formation: _Formation) -> None:
        formation.failures += 1
        if formation.failures >= MAX_START_FAILURES:
            raise RuntimeError(f"MariaDB failed to start {formation.failures} times; see journalctl -u mariadb")
        ctx.note(f"MariaDB failed to start (attempt {formation.failures}); deciding again")
        proc.systemctl("reset-failed", "mariadb")

    def _wait_running(self, ctx: Context, mine: galera.Report, formation: _Formation) -> None:
        if formation.args_set:
            proc.systemctl("unset-environment", SERVER_ARGS_VARIABLE)
            formation.args_set = False
        ctx.note(f"MariaDB is {mine.service}; waiting for Primary and Synced (state transfer may take a while)")

    def _step(self, ctx: Context, mine: galera.Report, formation: _Formation) -> str:
        """One decision of a node whose server is down: recover its position, wait, join or bootstrap.
        "again" when the decision is to be made anew at once."""
        me = ctx.doc.node.name
        reports = gather_reports(ctx, mine)
        # Only a choice of who bootstraps needs this node's position: a node joining a serving peer
        # leaves it to MariaDB's own start (galera_recovery), which takes it again anyway.
        if not mine.fresh and mine.seqno < 0 and not galera.serving_peers(me, reports):
            ctx.note("recovering the last committed position (mariadbd --wsrep-recover)")
            found = galera_local.wsrep_recover(ctx.root)
            if found is None:
                raise RuntimeError("mariadbd --wsrep-recover printed no position; see the MariaDB error log")
            galera_local.save_recovered(*found, root=ctx.root)
            return "again"
        decision = galera.decide(me, reports)
        if decision.yielding:
            formation.yielding_since = formation.yielding_since or time.monotonic()
            if time.monotonic() - formation.yielding_since > YIELD_SECONDS:
                decision = galera.decide(me, reports, yield_to_earlier=False)
        ctx.note(f"{decision.action}: {decision.reason}; peers: {_summary(reports)}")
        if decision.action == galera.WAIT:
            return "wait"
        galera_local.clean_stale_sst_files(ctx.root)
        if decision.action == galera.JOIN:
            self._join(ctx, mine, reports, formation)
        else:
            formation.action = "bootstrapped a new cluster" if decision.new_cluster else \
                "bootstrapped after a full stop"
            self._bootstrap(ctx, mine)
        return "acted"

    def _join(self, ctx: Context, mine: galera.Report, reports: dict[str, galera.Report | None],
              formation: _Formation) -> None:
        if mine.fresh and galera_local.seed_from_image(ctx.root):
            ctx.note("joining with the image's seed state: the donor sends the writesets since (IST)")
        # The donor is one that served before this join: left to choose, a joiner waiting for a busy donor
        # could take another joiner just Synced, whose cache lacks the latest writeset, and fail its IST.
        donors = ",".join(galera.serving_peers(ctx.doc.node.name, reports))
        proc.systemctl("set-environment", f"{SERVER_ARGS_VARIABLE}=--wsrep-sst-donor={donors}")
        formation.args_set = True
        proc.systemctl("start", "--no-block", "mariadb")

    def _bootstrap(self, ctx: Context, mine: galera.Report) -> None:
        if not mine.fresh:
            path = ctx.path(galera_local.GRASTATE)
            path.write_text(galera.set_safe_to_bootstrap(path.read_text()))
        else:
            galera_local.seed_from_image(ctx.root, bootstrap=True)
        # What galera_new_cluster does, without its environment file: that file moved between MariaDB
        # 11.8 updates (/run/mysqld/wsrep-new-cluster, then /run/mariadb-wsrep-new-cluster), while the
        # unit's ExecStart reads $_WSREP_NEW_CLUSTER from systemd's environment in every version.
        proc.systemctl("set-environment", f"{SERVER_ARGS_VARIABLE}=--wsrep-new-cluster")
        try:
            proc.systemctl("start", "mariadb", timeout=900)
        finally:
            proc.systemctl("unset-environment", SERVER_ARGS_VARIABLE)


def gather_reports(ctx: Context, mine: galera.Report) -> dict[str, galera.Report | None]:
    """This node's report and every other controller's (None where its health endpoint does not answer)."""
    reports: dict[str, galera.Report | None] = {ctx.doc.node.name: mine}
    for peer in ctx.doc.controllers:
        if peer.name != ctx.doc.node.name:
            reports[peer.name] = peer_report(peer.management)
    return reports


def cluster_complete(ctx: Context) -> bool:
    """Every controller is in the Primary component and serving (none joining or donating a state
    transfer). Schema changes wait for this: a state transfer taken while DDL runs can leave the
    joiner with tables it cannot apply the next DDL to (it goes Inconsistent)."""
    reports = gather_reports(ctx, galera_local.report(ctx.doc.node.name, ctx.root))
    complete = all(r is not None and r.serving and r.state == "Synced" and not r.settling for r in reports.values())
    if not complete:
        ctx.note(f"waiting for every controller to be Synced, its start-up upgrade check over, before schema "
                 f"changes; peers: {_summary(reports)}")
    return complete


def _summary(reports: dict[str, galera.Report | None]) -> str:
    parts = []
    for name in sorted(reports):
        r = reports[name]
        if r is None:
            parts.append(f"{name}=unreachable")
        elif r.serving:
            parts.append(f"{name}=Synced" + (" (MariaDB's start-up upgrade check still running)" if r.settling else ""))
        else:
            parts.append(f"{name}={r.service}/{'new' if r.fresh else f'seqno {r.seqno}'}")
    return ", ".join(parts)

