"""The failover check: kill the controller holding the VIP, measure how soon the API answers through the VIP
again, restart it and wait until it has rejoined. Destructive, so it runs only when asked, once the other
checks are through."""

from __future__ import annotations

import time

from compose import agents, cluster
from compose.labview import CheckFailed, LabView, poll


def controllers_of(lab: LabView, nodes: list[str] | None = None) -> dict[str, str]:
    """Node -> container of the running controllers (or of `nodes`)."""
    return {n: lab.containers[n] for n in (nodes or lab.controllers()) if n in lab.containers}


def vip_holder(lab: LabView) -> str | None:
    return cluster.vip_holder(controllers_of(lab), lab.vip)


def cluster_picture(lab: LabView, nodes: list[str]) -> str:
    return cluster.picture(controllers_of(lab, nodes), lab.vip)


def healthy(lab: LabView) -> bool:
    """Every controller Synced in one Primary cluster of all of them, and the VIP's HAProxy counting
    no server out: a failover test starts from here, not from a cluster still settling."""
    controllers = controllers_of(lab)
    if len(controllers) != len(lab.controllers()) or \
            not all(cluster.galera_synced(c, len(controllers)) for c in controllers.values()):
        return False
    holder = vip_holder(lab)
    return bool(holder) and not cluster.counted_out(controllers[holder])


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
        return cluster.galera_status(container).get("cluster_size") == str(len(lab.controllers()))

    poll(f"{victim} rejoined (agent done again, Galera cluster of {len(lab.controllers())})", rejoined, 900, 1)
    rejoined_s = time.monotonic() - restarted
    return (f"{victim} (VIP holder) killed: API answered through the VIP (now on {holder}) after "
            f"{answered_s:.0f}s; restarted, rejoined after {rejoined_s:.0f}s"), \
        {"victim": victim, "vip_moved_to": holder, "answered_s": round(answered_s, 1),
         "rejoined_s": round(rejoined_s, 1), "errors_while_waiting": errors[-5:]}
