"""What this host reads of the controllers' clustering from outside their containers: who holds the VIP,
each node's view of Galera and of RabbitMQ, and what the VIP holder's HAProxy counts out."""

from __future__ import annotations

import json
import subprocess

from compose import haproxy


def _exec(container: str, *cmd: str, timeout: float = 30) -> str:
    try:
        proc = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def vip_holder(containers: dict[str, str], vip: str) -> str | None:
    """The controller (of `containers`, node -> container) whose interface holds the VIP."""
    for node, container in containers.items():
        if f" {vip}/" in _exec(container, "ip", "-o", "-4", "addr", "show"):
            return node
    return None


def galera_status(container: str) -> dict[str, str]:
    """A controller's view of its Galera cluster (cluster_status, cluster_size, local_state_comment);
    empty when its MariaDB does not answer."""
    out = _exec(container, "mariadb", "-N", "-B", "-e", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                "('wsrep_cluster_status','wsrep_cluster_size','wsrep_local_state_comment')")
    rows = (line.split("\t") for line in out.splitlines())
    return {row[0].removeprefix("wsrep_"): row[1] for row in rows if len(row) == 2}


def galera_synced(container: str, size: int) -> bool:
    """This controller is Synced in a Primary component of `size` members."""
    state = galera_status(container)
    return (state.get("cluster_status"), state.get("cluster_size"), state.get("local_state_comment")) == \
        ("Primary", str(size), "Synced")


# A transaction that has written and locked nothing, idle this long, is one its client has left behind
# (keystone leaves some until Python's garbage collector returns their connection to the pool): closing it
# loses no work. A client that reads inside a transaction and thinks between statements does so for seconds.
ABANDONED_READ_S = 20


def release_sessions_sql(users: list[str], idle_ms: int, abandoned_s: int = ABANDONED_READ_S) -> str:
    """A script for the mariadb client that closes the connections of `users` for which that is harmless,
    then lists the others (user, client host, command, seconds, transaction age or -1). Harmless: it waits
    for its client's next statement, has waited `idle_ms` milliseconds at least, and holds no transaction open (it
    cuts no statement and loses no uncommitted work; oslo.db checks a pooled connection as it hands it out,
    and opens a new one), or only one that has written and locked nothing and waited `abandoned_s`. The
    server finds and kills them in one block, so a client has microseconds, not a round trip, to start a
    statement on one found idle. The statement text is left out: it may carry a password hash."""
    names = ", ".join(f"'{u}'" for u in users)
    sessions = ("information_schema.PROCESSLIST p LEFT JOIN information_schema.INNODB_TRX t "
                f"ON t.trx_mysql_thread_id = p.ID WHERE p.USER IN ({names})")
    harmless = (f"p.COMMAND = 'Sleep' AND p.TIME_MS >= {int(idle_ms)} AND (t.trx_id IS NULL OR "
                f"(t.trx_rows_modified = 0 AND t.trx_lock_structs = 0 AND p.TIME >= {int(abandoned_s)}))")
    return ("DELIMITER //\nBEGIN NOT ATOMIC\n"
            "  DECLARE CONTINUE HANDLER FOR SQLEXCEPTION BEGIN END;  -- one that ended meanwhile\n"
            f"  FOR s IN (SELECT p.ID FROM {sessions} AND {harmless}) DO KILL CONNECTION s.ID; END FOR;\n"
            "END//\nDELIMITER ;\n"
            "SELECT p.USER, SUBSTRING_INDEX(p.HOST, ':', 1), p.COMMAND, p.TIME, "
            f"IFNULL(TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), -1) FROM {sessions} AND p.COMMAND <> 'Killed';\n")


def close_idle_sessions(container: str, users: list[str], idle_ms: int = 1000) -> list[str]:
    """Close the connections of `users` on this controller's MariaDB that release_sessions_sql finds
    harmless to close; the ones that stay open, each said as "user@host command Ns [transaction open Ns]".
    A client's HAProxy session ends only when the client next uses it (HAProxy passes the close on and
    waits for the client's), so MariaDB's count is the one that says when the database has no client left."""
    try:
        proc = subprocess.run(["docker", "exec", "-i", container, "mariadb", "-N", "-B"], capture_output=True,
                              text=True, input=release_sessions_sql(users, idle_ms), timeout=30)
    except subprocess.TimeoutExpired:
        return ["the database did not answer within 30s"]
    if proc.returncode != 0:
        if "Can't connect" in proc.stderr or "is not running" in proc.stderr:
            return []  # a node whose database is down has no session left to end
        return [f"the database answered: {proc.stderr.strip()[-300:]}"]
    rows = [line.split("\t") for line in proc.stdout.splitlines()]
    return [f"{user}@{host} {command} {seconds}s" + (f" transaction open {trx}s" if trx != "-1" else "")
            for user, host, command, seconds, trx in (row for row in rows if len(row) == 5)]


def rabbitmq_running(container: str) -> list[str]:
    """The RabbitMQ nodes running in this controller's cluster, as its CLI sees them."""
    out = _exec(container, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json", timeout=60)
    try:
        return sorted(json.loads(out).get("running_nodes", []))
    except (json.JSONDecodeError, AttributeError):
        return []


def counted_out(container: str) -> str:
    """The servers this controller's HAProxy counts out, or why it could not say."""
    try:
        return " ".join(haproxy.counted_out(container))
    except haproxy.Unreachable as error:
        return str(error)


def picture(containers: dict[str, str], vip: str) -> str:
    """Where the VIP is, which HAProxy servers its holder counts out, and each node's Galera state."""
    holder = vip_holder(containers, vip)
    parts = [f"VIP on {holder or 'no controller'}"]
    if holder:
        parts.append(f"HAProxy on {holder} counts out: {counted_out(containers[holder]) or 'none'}")
    for node, container in containers.items():
        state = galera_status(container)
        parts.append(f"{node} Galera: {' '.join(f'{k}={v}' for k, v in state.items()) or 'no answer'}")
    return "; ".join(parts)
