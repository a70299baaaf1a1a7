"""The failover check: kill the controller holding the VIP, measure how soon the API answers through the VIP
again, restart it and wait until it has rejoined. Destructive, so it runs only when asked, once the other
checks are through."""

from __future__ import annotations

import time

from compose import agents
from compose.labview import CheckFailed, LabView, poll


def vip_holder(lab: LabView) -> str | None:
    for node in lab.controllers():
        if node in lab.containers:
            out = lab.exec(node, "ip", "-o", "-4", "addr", "show", timeout=30).stdout.decode()
            if f" {lab.vip}/" in out:
                return node
    return None


# Asks a controller's HAProxy (admin socket) for its servers' states; prints the ones not UP.
HAPROXY_DOWN = """
import socket
s = socket.socket(socket.AF_UNIX); s.connect("/run/haproxy/admin.sock"); s.sendall(b"show stat\\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
for row in data.decode().splitlines()[1:]:
    f = row.split(",")
    if len(f) > 17 and f[1] not in ("FRONTEND", "BACKEND") and not f[17].startswith("UP"):
        print(f"{f[0]}/{f[1]}={f[17]}", end=" ")
"""


def galera_status(lab: LabView, node: str) -> dict[str, str]:
    """A controller's view of its Galera cluster (wsrep_cluster_status, _size, _local_state_comment);
    empty when its MariaDB does not answer."""
    proc = lab.exec(node, "mariadb", "-N", "-B", "-e", "SHOW GLOBAL STATUS WHERE Variable_name IN "
                    "('wsrep_cluster_status','wsrep_cluster_size','wsrep_local_state_comment')", timeout=30)
    rows = (line.split("\t") for line in proc.stdout.decode().splitlines())
    return {row[0].removeprefix("wsrep_"): row[1] for row in rows if len(row) == 2}


def haproxy_counts_out(lab: LabView, node: str) -> str:
    proc = lab.exec(node, "python3", "-c", HAPROXY_DOWN, timeout=30)
    return proc.stdout.decode().strip() or (proc.stderr.decode().strip()[-200:] if proc.returncode else "")


def cluster_picture(lab: LabView, nodes: list[str]) -> str:
    """Where the VIP is, which HAProxy servers its holder counts out, and each node's Galera state."""
    holder = vip_holder(lab)
    parts = [f"VIP on {holder or 'no controller'}"]
    if holder:
        parts.append(f"HAProxy on {holder} counts out: {haproxy_counts_out(lab, holder) or 'none'}")
    for node in nodes:
        state = galera_status(lab, node)
        parts.append(f"{node} Galera: {' '.join(f'{k}={v}' for k, v in state.items()) or 'no answer'}")
    return "; ".join(parts)


def healthy(lab: LabView) -> bool:
    """Every controller Synced in one Primary cluster of all of them, and the VIP's HAProxy counting
    no server out: a failover test starts from here, not from a cluster still settling."""
    controllers = lab.controllers()
    for node in controllers:
        state = galera_status(lab, node)
        if (state.get("cluster_status"), state.get("cluster_size"), state.get("local_state_comment")) != \
                ("Primary", str(len(controllers)), "Synced"):
            return False
    holder = vip_holder(lab)
    return bool(holder) and not haproxy_counts_out(lab, holder)


# How long one request may take while the VIP moves. A connection opened toward the dead holder waits in
# TCP's SYN backoff (resent after 1, 3, 7 s) even once the VIP answers elsewhere; a fresh request shows
# when the API is back, a stuck one only when its next SYN happens to go out.
PROBE_SECONDS = 4


def check_failover(lab: LabView) -> tuple[str, dict]:
    if len(lab.controllers()) < 3 or lab.compose is None:
        raise CheckFailed("failover needs the three-controller lab (./gs lab up --controllers 3)")
    try:
        poll("every controller Synced and every HAProxy server up before the kill", lambda: healthy(lab), 600, 2)
    except CheckFailed as error:
        raise CheckFailed(f"{error} ({cluster_picture(lab, lab.controllers())})") from None
    victim = vip_holder(lab)
    if not victim:
        raise CheckFailed(f"no controller holds the VIP {lab.vip}")
    survivors = [c for c in lab.controllers() if c != victim]
    lab.client = survivors[0]
    container = lab.containers[victim]
    errors: list[str] = []  # what the API said while it did not answer, in order, each once

    def answers() -> bool:
        try:
            return bool(lab.openstack("token", "issue", timeout=PROBE_SECONDS) and
                        lab.openstack("image", "list", timeout=PROBE_SECONDS))
        except CheckFailed as error:
            seen = f"{time.monotonic() - killed:.0f}s: {str(error)[-300:]}"
            if not errors or errors[-1].split(": ", 1)[1] != seen.split(": ", 1)[1]:
                errors.append(seen)
            return False

    lab.compose("kill", victim)
    killed = time.monotonic()
    try:
        poll(f"the API answering through the VIP with {victim} killed", answers, 300, 0.5)
        answered_s = time.monotonic() - killed
        holder = vip_holder(lab)
    except CheckFailed as error:
        raise CheckFailed(f"{error} (last answer: {errors[-1] if errors else 'none'}; "
                          f"{cluster_picture(lab, survivors)})") from None
    finally:  # the lab gets its controller back whatever happened
        lab.compose("start", victim)
    restarted = time.monotonic()
    lab.reach("failover", "restarted")  # the cloud answers again: a server can be built while it rejoins
    lab.containers[victim] = container  # `start` brings back the same container
    booted = agents.container_started(container) or time.time()

    def rejoined() -> bool:
        status = agents.of_this_boot(agents.agent_status(container), booted)
        if (status or {}).get("agent", {}).get("status") != "done":
            return False
        return galera_status(lab, victim).get("cluster_size") == str(len(lab.controllers()))

    poll(f"{victim} rejoined (agent done again, Galera cluster of {len(lab.controllers())})", rejoined, 900, 1)
    rejoined_s = time.monotonic() - restarted
    return (f"{victim} (VIP holder) killed: API answered through the VIP (now on {holder}) after "
            f"{answered_s:.0f}s; restarted, rejoined after {rejoined_s:.0f}s"), \
        {"victim": victim, "vip_moved_to": holder, "answered_s": round(answered_s, 1),
         "rejoined_s": round(rejoined_s, 1), "errors_while_waiting": errors[-5:]}
