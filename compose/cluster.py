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


def sessions_sql(users: list[str], idle_s: int) -> str:
    """The query listing the connections of `users`, each with 1 when closing it is harmless: it waits for its
    client's next statement, has waited `idle_s` seconds at least, and holds no transaction open (it cuts no
    statement and loses no uncommitted work; oslo.db checks a pooled connection as it hands it out, and
    opens a new one)."""
    names = ", ".join(f"'{u}'" for u in users)
    return (f"SELECT ID, COMMAND = 'Sleep' AND TIME >= {int(idle_s)} AND ID NOT IN "
            "(SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX) "
            f"FROM information_schema.PROCESSLIST WHERE USER IN ({names})")


def close_idle_sessions(container: str, users: list[str], idle_s: int = 1) -> int:
    """Close the connections of `users` on this controller's MariaDB that sessions_sql finds idle; how many
    stay open (busy, or idle for less than `idle_s`). A client's HAProxy session ends only when the client
    next uses it (HAProxy passes the close on and waits for the client's), so MariaDB's count is the one
    that says when the database has no client left."""
    rows = [line.split("\t") for line in _exec(container, "mariadb", "-N", "-B", "-e",
                                                sessions_sql(users, idle_s)).splitlines()]
    idle = [row[0] for row in rows if len(row) == 2 and row[0].isdigit() and row[1] == "1"]
    if idle:
        # --force on standard input: one that ended meanwhile (its KILL fails) does not stop the others.
        subprocess.run(["docker", "exec", "-i", container, "mariadb", "--force"], capture_output=True, text=True,
                       input="".join(f"KILL CONNECTION {i};\n" for i in idle), timeout=30)
    return len(rows) - len(idle)


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
