"""Cluster-wide run-once tasks, with the mutual exclusion Galera itself replicates.

MariaDB refuses GET_LOCK() under wsrep, so a task is claimed by a row: the INSERT that commits first
wins (the other node's INSERT fails with a duplicate key or a certification deadlock). The holder
renews a heartbeat; a lease not renewed for LEASE_SECONDS is taken over by a conditional UPDATE that
names the old holder's token, so two nodes can never both take it. A task is finished with the package
version it ran with; a later run (or a new node) skips it, and an upgraded package re-runs it.
Every claim, takeover, failure and completion is appended to a log table: who ran what, when.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from firstboot import mysql
from firstboot.logsetup import REDACT
from firstboot.mysql import MysqlError, quote

log = logging.getLogger("goldstack")

SCHEMA = "goldstack"
LEASE_SECONDS = 30
HEARTBEAT_SECONDS = 5
POLL_SECONDS = 2
# What a detail column keeps of a message (it holds 1024): a take-over's reason quotes the failure before it.
DETAIL_CHARS = 1000
FINISH_ATTEMPTS = 5
_LOST_RACE = (mysql.ER_DUP_ENTRY, mysql.ER_LOCK_DEADLOCK)

DDL = f"""
CREATE DATABASE IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.runonce (
  task VARCHAR(64) NOT NULL PRIMARY KEY,
  state VARCHAR(16) NOT NULL,
  owner VARCHAR(64) NOT NULL,
  token CHAR(32) NOT NULL,
  version VARCHAR(255) NOT NULL,
  claimed DOUBLE NOT NULL,
  heartbeat DOUBLE NOT NULL,
  finished DOUBLE NULL,
  attempts INT NOT NULL DEFAULT 1,
  detail VARCHAR(1024) NULL
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS {SCHEMA}.node_versions (
  node VARCHAR(64) NOT NULL,
  package VARCHAR(64) NOT NULL,
  version VARCHAR(255) NOT NULL,
  at DOUBLE NOT NULL,
  PRIMARY KEY (node, package)
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS {SCHEMA}.runonce_log (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  task VARCHAR(64) NOT NULL,
  event VARCHAR(16) NOT NULL,
  owner VARCHAR(64) NOT NULL,
  token CHAR(32) NOT NULL,
  version VARCHAR(255) NOT NULL,
  at DOUBLE NOT NULL,
  seconds DOUBLE NULL,
  detail VARCHAR(1024) NULL
) ENGINE=InnoDB;
"""
# Reads wait until this node has applied every write the cluster committed before them.
_CAUSAL = "SET SESSION wsrep_sync_wait = 1;"
_NOW = "UNIX_TIMESTAMP(NOW(3))"


@dataclass(frozen=True)
class Record:
    task: str
    state: str
    owner: str
    token: str
    version: str
    claimed: float
    heartbeat: float
    finished: float | None
    attempts: int
    detail: str | None
    age: float  # seconds since the last heartbeat, by the database's clock


def ensure_schema() -> None:
    mysql.run_sql(DDL)


def debian_version_at_least(version: str, other: str) -> bool:
    try:
        return subprocess.run(["dpkg", "--compare-versions", version, "ge", other], capture_output=True,
                              timeout=30).returncode == 0
    except FileNotFoundError:
        return False


def covers(recorded: str, installed: str) -> bool:
    """A run recorded at version `recorded` covers a node with `installed`: the same version, or a later one
    of the same package (a node still on an older image must not run a task again behind a newer one).
    Versions are "PACKAGE DEBIAN-VERSION", or goldstack's own "goldstack:DIGEST", which only equality covers."""
    if recorded == installed:
        return True
    package, _, newer = recorded.partition(" ")
    other, _, older = installed.partition(" ")
    return bool(newer and older) and package == other and debian_version_at_least(newer, older)


def register_versions(node: str, versions: dict[str, str]) -> None:
    """What this node runs (package -> "PACKAGE VERSION"), for the tasks that wait until every controller
    runs a version (gates)."""
    rows = ", ".join(f"({quote(node)}, {quote(package)}, {quote(version)}, {_NOW})" for package, version in
                     sorted(versions.items()))
    if rows:
        mysql.run_sql(f"REPLACE INTO {SCHEMA}.node_versions (node, package, version, at) VALUES {rows};")


def node_versions(package: str) -> dict[str, str]:
    rows = mysql.run_sql(f"{_CAUSAL} SELECT node, version FROM {SCHEMA}.node_versions "
                         f"WHERE package = {quote(package)};")
    return {row[0]: row[1] for row in rows}


# The columns _record() reads, in its order.
_SELECT_LEASES = (f"{_CAUSAL} SELECT task, state, owner, token, version, claimed, heartbeat, finished, attempts, "
                  f"detail, {_NOW} - heartbeat FROM {SCHEMA}.runonce")


def read(task: str) -> Record | None:
    rows = mysql.run_sql(f"{_SELECT_LEASES} WHERE task = {quote(task)};")
    return _record(rows[0]) if rows else None


def read_all() -> list[Record]:
    rows = mysql.run_sql(f"{_SELECT_LEASES} ORDER BY claimed;")
    return [_record(r) for r in rows]


def history(task: str | None = None) -> list[dict[str, object]]:
    where = f"WHERE task = {quote(task)}" if task else ""
    rows = mysql.run_sql(f"{_CAUSAL} SELECT task, event, owner, version, at, seconds, detail "
                         f"FROM {SCHEMA}.runonce_log {where} ORDER BY id;")
    keys = ("task", "event", "owner", "version", "at", "seconds", "detail")
    return [{k: (None if v == "NULL" else v) for k, v in zip(keys, r, strict=True)} for r in rows]


def _record(row: list[str]) -> Record:
    def num(v: str) -> float | None:
        return None if v == "NULL" else float(v)

    return Record(row[0], row[1], row[2], row[3], row[4], float(row[5]), float(row[6]), num(row[7]), int(row[8]),
                  None if row[9] == "NULL" else row[9], float(row[10]))


def _detail(text: str | None) -> str:
    """A detail column's SQL literal: at most DETAIL_CHARS of the message."""
    return quote(None if text is None else text[:DETAIL_CHARS])


def _log(task: str, event: str, owner: str, token: str, version: str, seconds: float | None = None,
         detail: str | None = None, only_if_changed: bool = False) -> str:
    """The log entry's INSERT; with only_if_changed, it is written only when @n (the row count) is 1."""
    values = (f"{quote(task)}, {quote(event)}, {quote(owner)}, {quote(token)}, {quote(version)}, {_NOW}, "
              f"{quote(seconds)}, {_detail(detail or None)}")
    condition = " FROM DUAL WHERE @n = 1" if only_if_changed else ""
    return (f"INSERT INTO {SCHEMA}.runonce_log (task, event, owner, token, version, at, seconds, detail) "
            f"SELECT {values}{condition};")


class Lease:
    """One claim of one task by this node; renewed by a background heartbeat while the work runs."""

    def __init__(self, task: str, owner: str, version: str):
        self.task, self.owner, self.version = task, owner, version
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def claim(self) -> bool:
        sql = (f"INSERT INTO {SCHEMA}.runonce (task, state, owner, token, version, claimed, heartbeat) VALUES "
               f"({quote(self.task)}, 'running', {quote(self.owner)}, {quote(self.token)}, {quote(self.version)}, "
               f"{_NOW}, {_NOW});")
        return self._write(sql, "claim")

    def take_over(self, old: Record, why: str) -> bool:
        """Take a stale (or re-runnable) task, only if nobody changed it since `old` was read."""
        sql = (f"UPDATE {SCHEMA}.runonce SET state = 'running', owner = {quote(self.owner)}, "
               f"token = {quote(self.token)}, version = {quote(self.version)}, claimed = {_NOW}, "
               f"heartbeat = {_NOW}, finished = NULL, attempts = attempts + 1, "
               f"detail = {_detail(why)} "
               f"WHERE task = {quote(self.task)} AND token = {quote(old.token)} AND state = {quote(old.state)};")
        return self._write(sql, "takeover", why)

    def _write(self, sql: str, event: str, detail: str | None = None) -> bool:
        """One transaction: the claim, and its log entry only if the claim changed the row."""
        entry = _log(self.task, event, self.owner, self.token, self.version, None, detail, only_if_changed=True)
        try:
            rows = mysql.run_sql(f"BEGIN; {sql} SELECT ROW_COUNT() INTO @n; {entry} COMMIT; SELECT @n;")
        except MysqlError as exc:
            if exc.code in _LOST_RACE:
                return False
            raise
        return bool(rows) and rows[-1][0] == "1"

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.task}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                rows = mysql.run_sql(f"UPDATE {SCHEMA}.runonce SET heartbeat = {_NOW} WHERE task = {quote(self.task)} "
                                     f"AND token = {quote(self.token)}; SELECT ROW_COUNT();")
                if rows and rows[-1][0] == "0":
                    self.lost = True
                    log.error("run-once %s: lease lost to another node", self.task)
                    return
            except MysqlError as exc:  # a missed beat is survivable; LEASE_SECONDS allows several
                log.warning("run-once %s: heartbeat failed: %s", self.task, exc)

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=30)

    def finish(self, seconds: float, detail: str) -> None:
        sql = (f"BEGIN; UPDATE {SCHEMA}.runonce SET state = 'done', finished = {_NOW}, heartbeat = {_NOW}, "
               f"detail = {_detail(detail)} "
               f"WHERE task = {quote(self.task)} AND token = {quote(self.token)}; "
               f"SELECT ROW_COUNT() INTO @n; "
               f"{_log(self.task, 'done', self.owner, self.token, self.version, round(seconds, 3), detail, True)} "
               "COMMIT; SELECT @n;")
        for attempt in range(1, FINISH_ATTEMPTS + 1):
            try:
                rows = mysql.run_sql(sql)
                break
            except MysqlError as exc:
                # Galera refuses a COMMIT that conflicts with another node's write (certification, said as a
                # deadlock); nothing of it was applied, so it is sent again rather than the work thrown away.
                if exc.code != mysql.ER_LOCK_DEADLOCK or attempt == FINISH_ATTEMPTS:
                    raise
                log.warning("run-once %s: recording it done conflicted with another node; again", self.task)
                time.sleep(0.2 * attempt)
        if not rows or rows[-1][0] != "1":
            raise RuntimeError(f"run-once {self.task}: finished, but the lease had been taken over meanwhile")

    def release_failed(self, seconds: float, error: str) -> None:
        """Give the task up at once (heartbeat 0) so this or another node retries it without waiting."""
        mysql.run_sql(f"BEGIN; UPDATE {SCHEMA}.runonce SET heartbeat = 0, detail = {_detail(error)} "
                      f"WHERE task = {quote(self.task)} AND token = {quote(self.token)}; "
                      f"{_log(self.task, 'failed', self.owner, self.token, self.version, round(seconds, 3), error)} "
                      "COMMIT;")


@dataclass(frozen=True)
class Outcome:
    task: str
    ran: bool  # this node did the work in this run
    owner: str
    seconds: float
    waited: float


def ever_done(task: str) -> bool:
    rows = mysql.run_sql(f"{_CAUSAL} SELECT COUNT(*) FROM {SCHEMA}.runonce_log WHERE task = {quote(task)} "
                         "AND event = 'done';")
    return bool(rows) and rows[0][0] != "0"


def run_once(task: str, owner: str, version: str, work: Callable[[bool], str | None],
             progress: Callable[[str], None] = lambda m: None, timeout: float = 3600,
             before_retry: Callable[[], None] | None = None) -> Outcome:
    """Run `work` once cluster-wide: claim the task, or wait for whoever holds it, or take it over.

    `owner` is this node's name. A running record owned by this node with a token from an earlier run
    means that run died (the agent's run lock allows one run per node), so it is taken over at once.
    `before_retry` runs before `work` when an earlier attempt began and the task never finished, ever
    (a first schema sync cut off half-way, say). `work(upgrading)` is told whether the task finished
    before, at some version: an upgrade then, not a first install.
    """
    started = time.monotonic()
    deadline = started + timeout
    while True:
        record = read(task)
        lease = Lease(task, owner, version)
        won = False
        if record is None:
            won = lease.claim()
        elif record.state == "done" and covers(record.version, version):
            return Outcome(task, False, record.owner, 0.0, time.monotonic() - started)
        elif record.state == "done":
            won = lease.take_over(record, f"package version changed from {record.version} to {version}")
        elif record.owner == owner:
            won = lease.take_over(record, "an earlier run on this node died holding it")
        elif record.heartbeat == 0:
            won = lease.take_over(record, f"{record.owner} gave it up after a failure: {record.detail}")
        elif record.age > LEASE_SECONDS:
            won = lease.take_over(record, f"{record.owner}'s lease expired ({record.age:.0f}s without heartbeat)")
        else:
            progress(f"waiting for {record.owner}, which runs {task}")
        if won:
            upgrading = record is not None and ever_done(task)
            if record is not None and before_retry is not None and not upgrading:
                progress(f"{task}: an earlier attempt did not finish; cleaning up before retrying")
                before_retry()
            return _work(lease, lambda upgrading=upgrading: work(upgrading), progress, started)
        if time.monotonic() > deadline:
            raise TimeoutError(f"run-once {task}: still not done after {timeout:.0f}s "
                               f"(held by {record.owner if record else 'nobody'})")
        time.sleep(POLL_SECONDS)


def _work(lease: Lease, work: Callable[[], str | None], progress: Callable[[str], None], started: float) -> Outcome:
    waited = time.monotonic() - started
    progress(f"running {lease.task}")
    lease.start_heartbeat()
    began = time.monotonic()
    try:
        detail = work() or "ok"
    except BaseException as exc:
        lease.stop_heartbeat()
        try:
            lease.release_failed(time.monotonic() - began, REDACT(f"{type(exc).__name__}: {exc}"))
        except MysqlError as db_exc:
            log.warning("run-once %s: could not record the failure: %s", lease.task, db_exc)
        raise
    lease.stop_heartbeat()
    if lease.lost:
        raise RuntimeError(f"run-once {lease.task}: lease lost while running; another node took over")
    seconds = time.monotonic() - began
    lease.finish(seconds, detail)
    return Outcome(lease.task, True, lease.owner, seconds, waited)
