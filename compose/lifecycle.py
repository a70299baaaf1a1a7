"""Day 2 of a lab: grow it, change its documents, and replace every node's image, with the cloud serving
throughout.

A node changes by re-running its agent on a new document (reconfigure, and the nodes already running when
another joins), or by being replaced: a new container from the new image with the same volumes, whose
agent brings it back (roll). A controller is first taken out of service: every HAProxy drains its API
servers, the VIP moves away from it if it holds it (new connections to the VIP are held back on it meanwhile,
not refused), and the Galera writer moves off it; it is put back once it serves again. Storage nodes are
replaced with Ceph's `noout` set, compute nodes once their servers have been live-migrated away.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from compose import agents, cluster, haproxy
from compose.labview import poll
from compose.site import Lab, LabError
from firstboot import catalog
from firstboot.addresses import split_hostport

DRAIN_SECONDS = 60  # the longest an API request is let finish on a node being taken out of service
# A database session is closed once idle this long (ms) and out of any transaction: in its client's pool, nearly
# always. Not shorter: a client that has just checked a connection out (oslo.db pings it first) and is then
# kept off the CPU a moment before its query would lose that query (a quarter second was seen to, under a
# controller's restart). Connections a client keeps reusing are renewed by the client itself (oslo.db's
# connection_recycle_time, _macros.j2), so the release rarely waits for them until DRAIN_SECONDS.
IDLE_MS = 1000
VIP_SECONDS = 30
POLL = 1.0
GALERA = "galera"  # the HAProxy proxy of the database


HOLD_CHAIN = "GOLDSTACK-VIP-HOLD"


def hold_script(vip: str, exempt: list[str]) -> str:
    """iptables commands that drop clients' new connections to the VIP, but not the `exempt` sources'."""
    lines = [f"iptables -w -N {HOLD_CHAIN} 2>/dev/null || iptables -w -F {HOLD_CHAIN}"]
    lines += [f"iptables -w -A {HOLD_CHAIN} -s {source} -j RETURN" for source in exempt]
    lines += [f"iptables -w -A {HOLD_CHAIN} -p tcp --syn -j DROP",
              f"iptables -w -C INPUT -d {vip} -j {HOLD_CHAIN} 2>/dev/null || "
              f"iptables -w -I INPUT -d {vip} -j {HOLD_CHAIN}"]
    return " && ".join(lines)


def seal_script(vip: str, sealed: bool) -> str:
    """Hold back every new connection to the VIP (sealed: the nodes' too), or again only the clients'."""
    rule = f"INPUT -d {vip} -p tcp --syn -j DROP"
    if sealed:
        return f"iptables -w -C {rule} 2>/dev/null || iptables -w -I {rule}"
    return f"iptables -w -D {rule} 2>/dev/null; true"


def open_on(ss_output: str, vip: str, ports: set[int]) -> list[str]:
    """The connections of `ss -Htn` whose own end is the VIP on one of `ports`: requests a client has open
    with the VIP's holder, counted by the kernel (HAProxy does not count one it has not accepted yet)."""
    ends = {(vip, port) for port in ports}
    open_ = []
    for line in ss_output.splitlines():
        if any(split_hostport(token) in ends for token in line.split()):
            open_.append(line.strip())
    return open_


def release_script(vip: str) -> str:
    return (f"{seal_script(vip, False)}; iptables -w -D INPUT -d {vip} -j {HOLD_CHAIN} 2>/dev/null; "
            f"iptables -w -F {HOLD_CHAIN} 2>/dev/null; iptables -w -X {HOLD_CHAIN} 2>/dev/null; true")


@dataclass
class Report:
    """What a lifecycle command did, node by node, for its summary table and --json."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, node: str, **what: Any) -> None:
        self.rows.append({"node": node, **what})


def wait_for(what: str, probe: Callable[[], Any], timeout: float, interval: float = POLL) -> Any:
    return poll(what, probe, timeout, interval, error=LabError)


class Operator:
    """Does to a running lab what an operator does on day 2, one node at a time."""

    def __init__(self, lab: Lab, progress: Callable[[str], None] = print, timeout: float = 1800):
        self.lab, self.progress, self.timeout = lab, progress, timeout
        self.started = time.monotonic()
        self.vip = lab.inventory()["vip"]

    def say(self, message: str) -> None:
        self.progress(f"[{time.monotonic() - self.started:5.0f}s] {message}")

    # --- what the lab looks like now

    def containers(self) -> dict[str, str]:
        return self.lab.running()

    def of_role(self, role: str) -> list[str]:
        return [n for n, r in self.lab.roles().items() if r == role]

    def controller_containers(self, but: str | None = None) -> dict[str, str]:
        running = self.containers()
        return {n: running[n] for n in self.of_role(catalog.CONTROLLER) if n in running and n != but}

    # --- agents

    def rerun_agents(self, nodes: list[str]) -> dict[str, float]:
        """Ask these nodes' agents for a new run (systemd restarts the oneshot unit); when each was asked."""
        since = {}
        for node in nodes:
            since[node] = time.time()
            self.lab.exec(node, "systemctl", "restart", "--no-block", "goldstack-firstboot", check=True)
        return since

    def follow(self, nodes: list[str], since: dict[str, float] | None = None) -> None:
        """Until these nodes' agents are done (each wait gets the whole timeout, counted from now)."""
        timeout = self.timeout + (time.monotonic() - self.started)
        if not agents.follow(self.lab.containers, nodes, timeout, self.started, since, say=self.progress):
            where = "; ".join(f"{node}: {self.where(node, since)}" for node in nodes)
            raise LabError(f"the agent of {', '.join(nodes)} is not done after {self.timeout:.0f}s ({where}; "
                           f"`{self.lab.command} status`, `{self.lab.command} logs NODE`)")

    def where(self, node: str, since: dict[str, float] | None = None) -> str:
        """Where a node's agent run is: its state, its step and what that step last said."""
        container = self.containers().get(node)
        if not container:
            return "not running"
        status = agents.agent_status(container)
        if since and node in since:
            status = agents.of_this_boot(status, since[node])
        state, step, detail = agents.current_step(status)
        return f"{state} at {step}" + (f": {detail[:300]}" if detail else "")

    def agent_record(self, node: str) -> dict[str, Any]:
        return agents.agent_status(self.containers()[node]) or {}

    # --- a controller out of service and back

    def take_out(self, node: str) -> None:
        """No request reaches `node`'s services any more, and none is cut: every other HAProxy drains its
        API servers, the VIP leaves it if it holds it, then its servers (the database's too) go to
        maintenance and the sessions the VIP's holder had on its database end (release_database)."""
        others = self.controller_containers(but=node)
        if not others:
            raise LabError(f"{node} is the only controller: the cloud cannot serve while it restarts")
        for container in others.values():
            proxies = [p for p in haproxy.proxies_of(container, node) if p != GALERA]
            haproxy.set_state(container, node, "drain", proxies)
        if cluster.vip_holder(self.controller_containers(), self.vip) == node:
            self.move_vip(node)
        for peer, container in others.items():
            wait_for(f"{peer}'s HAProxy to finish the requests it sent to {node}",
                     lambda c=container: self._api_sessions(c, node) == 0, DRAIN_SECONDS, 0.5)
            haproxy.set_state(container, node, "maint")
        holder = cluster.vip_holder(others, self.vip)
        if holder:
            self.release_database(node, others[holder])

    def release_database(self, node: str, holder: str) -> int:
        """The sessions the VIP's holder (container `holder`) has on `node`'s database end, none cut in a
        statement or a transaction: the idle ones are closed on `node` until none is left (a client's next
        statement then opens a new connection, which goes to the next writer), and only what is still busy
        after DRAIN_SECONDS is cut. How many were cut (0 unless a client kept one busy throughout).
        The database must already be in maintenance in every HAProxy (no new session goes to it)."""
        container = self.containers().get(node)  # none: the node is down, and its sessions with it
        users = list(catalog.DATABASE_USERS)
        left: list[str] = []

        def released() -> bool:
            nonlocal left
            left = cluster.close_idle_sessions(container, users, IDLE_MS)
            return not left

        cut = 0
        try:
            if container:
                wait_for(f"the database sessions on {node} to end", released, DRAIN_SECONDS, 0.5)
        except LabError as error:
            cut = len(left)
            self.say(f"{node}: {error}; cutting the {cut} left: {', '.join(left)}")
        haproxy.shutdown_sessions(holder, GALERA, node)  # the closed ones' client sides, and what is left
        return cut

    @staticmethod
    def _api_sessions(container: str, node: str) -> int:
        return sum(r.sessions for r in haproxy.stats(container) if r.proxy != GALERA and r.server == node)

    def move_vip(self, node: str) -> None:
        """The VIP moves from `node` to another controller, no request cut: clients' new connections to it
        are held back (their SYN dropped: it is sent again a second later, by then to the new holder) while
        the requests it serves finish, then its keepalived stops and a peer takes the address. The nodes'
        own connections still go through meanwhile: a request in flight may need another API (a token
        checked with keystone, through the VIP)."""
        container = self.containers()[node]
        self.say(f"{node}: moving the VIP {self.vip} to another controller")
        nodes = sorted({a for n in self.lab.nodes() for a in n["addresses"].values()} | {self.vip, "127.0.0.0/8"})
        self.lab.exec(node, "sh", "-c", hold_script(self.vip, nodes), check=True)
        try:
            wait_for(f"{node}'s HAProxy to finish its requests", lambda: self._vip_idle(node, container),
                     DRAIN_SECONDS, 0.2)
        finally:
            self.lab.exec(node, "systemctl", "stop", "keepalived", check=True)
        others = self.controller_containers(but=node)
        holder = wait_for(f"another controller holding the VIP {self.vip}",
                          lambda: cluster.vip_holder(others, self.vip), VIP_SECONDS, 0.2)
        self.say(f"{node}: the VIP is on {holder}")

    def _vip_idle(self, node: str, container: str) -> bool:
        """No request open on the VIP, and none can begin: once HAProxy counts no session, the nodes' new
        connections are held back too (sealed), then the kernel is asked whether a connection is still open
        on an API port of the VIP (one HAProxy has not accepted yet, or still in its TLS handshake, is in no
        count of HAProxy's). If one is, the nodes' connections are let through again, so the request that
        opened it can get what it needs from another API, and the next look tries again."""
        if self._http_sessions(container):
            return False
        self.lab.exec(node, "sh", "-c", seal_script(self.vip, True), check=True)
        ss = self.lab.exec(node, "ss", "-Htn", "state", "syn-recv", "state", "established", check=True).stdout
        if not open_on(ss, self.vip, {catalog.PORTS[api.name] for api in catalog.APIS}):
            return True
        self.lab.exec(node, "sh", "-c", seal_script(self.vip, False), check=True)
        return False

    @staticmethod
    def _http_sessions(container: str) -> int:
        return sum(r.sessions for r in haproxy.stats(container) if r.server == "FRONTEND" and r.proxy != GALERA)

    def put_back(self, node: str, wait: bool = True) -> None:
        """`node` serves again: Galera Synced, in RabbitMQ's cluster, every HAProxy counting its servers up
        (with wait=False, only handed back to the health checks)."""
        controllers = self.of_role(catalog.CONTROLLER)
        container = self.containers().get(node)
        if wait and container:
            wait_for(f"{node} Synced in a Galera cluster of {len(controllers)}",
                     lambda: cluster.galera_synced(container, len(controllers)), self.timeout)
            wait_for(f"{node} running in RabbitMQ's cluster",
                     lambda: f"rabbit@{node}" in cluster.rabbitmq_running(container), self.timeout, 2)
        if container:
            self.lab.exec(node, "sh", "-c", release_script(self.vip))
            self.lab.exec(node, "systemctl", "start", "keepalived")
        for peer, peer_container in self.controller_containers(but=node).items():
            haproxy.set_state(peer_container, node, "ready")
            if wait:
                wait_for(f"{peer}'s HAProxy counting {node}'s services up",
                         lambda c=peer_container: not [s for s in haproxy.counted_out(c) if f"/{node}=" in s],
                         self.timeout)

    # --- storage and compute

    def ceph(self, *args: str, on: str | None = None) -> str:
        node = on or next(n for n in self.of_role(catalog.STORAGE) if n in self.containers())
        return self.lab.exec(node, "ceph", "--connect-timeout", "10", *args, check=True, timeout=60).stdout

    def ceph_settled(self, allowed: tuple[str, ...] = ()) -> bool:
        """Every placement group active+clean and no health check raised but the `allowed` ones (and the
        warning a site with one storage node always has: its pools keep one replica, docs/storage.md)."""
        allowed = (*allowed, "POOL_NO_REDUNDANCY")
        try:
            health = json.loads(self.ceph("health", "--format", "json"))
            pgs = json.loads(self.ceph("pg", "stat", "--format", "json"))
        except (LabError, json.JSONDecodeError, subprocess.TimeoutExpired):
            return False
        summary = pgs.get("pg_summary", pgs)
        clean = sum(s["num"] for s in summary.get("num_pg_by_state", []) if s["name"] == "active+clean")
        raised = set(health.get("checks", {})) - set(allowed)
        return clean == summary.get("num_pgs", -1) and not raised

    def pool_sizes(self) -> dict[str, int]:
        pools = json.loads(self.ceph("osd", "pool", "ls", "detail", "--format", "json"))
        return {p["pool_name"]: p["size"] for p in pools if p["pool_name"] in catalog.CEPH_POOLS}


# --- a new document on running nodes


def changes_of(lab: Lab, node: str, document: bytes) -> dict[str, Any]:
    """What `document` would change on `node` (`goldstack-firstboot changes`, run there): its files and the
    units a run would restart. A document the node refuses (another identity) stops everything here."""
    proc = lab.exec(node, "goldstack-firstboot", "changes", "--document", "-", "--json", stdin=document.decode())
    if proc.returncode != 0:
        raise LabError(f"{node} refuses its new document: {(proc.stderr or proc.stdout).strip()[-1500:]}", 2)
    return json.loads(proc.stdout)


def plan(op: Operator, documents: dict[str, bytes], nodes: list[str]) -> dict[str, dict[str, Any]]:
    """What each node's new document would change there, asked of every node before anything is delivered."""
    return {node: changes_of(op.lab, node, documents[node]) for node in nodes}


def rollout(op: Operator, documents: dict[str, bytes], planned: dict[str, dict[str, Any]], report: Report) -> None:
    """Deliver each planned node its new document and re-run its agent. Nodes whose run restarts nothing go
    together; the others one at a time: a controller out of service meanwhile, a storage node with Ceph's
    `noout` set."""
    nodes = list(planned)
    roles = op.lab.roles()
    quiet = [n for n in nodes if not planned[n]["units"]]
    if quiet:
        op.say(f"re-running the agents of {', '.join(quiet)} (nothing to restart)")
        op.lab.deliver(documents, quiet)
        op.follow(quiet, op.rerun_agents(quiet))
    order = {catalog.STORAGE: 0, catalog.COMPUTE: 1, catalog.CONTROLLER: 2}
    for node in sorted((n for n in nodes if planned[n]["units"]), key=lambda n: (order[roles[n]], n)):
        op.say(f"{node}: {len(planned[node]['files'])} files change; restarting {', '.join(planned[node]['units'])}")
        with out_of_service(op, node, roles[node]):
            op.lab.deliver(documents, [node])
            op.follow([node], op.rerun_agents([node]))
    for node in nodes:
        record = op.agent_record(node).get("agent", {})
        report.add(node, role=roles[node], files=planned[node]["files"], restarted=record.get("restarted", []))


@contextmanager
def out_of_service(op: Operator, node: str, role: str) -> Iterator[None]:
    """A node's services out of rotation while the block changes it: a controller taken out of HAProxy and
    the VIP, a storage node's OSD kept in the map (`noout`). Put back after; when the block failed, without
    waiting for the node (HAProxy's checks then keep it out until it serves)."""
    ok = False
    try:
        if role == catalog.CONTROLLER:
            op.take_out(node)
        elif role == catalog.STORAGE:
            op.ceph("osd", "set", "noout")
        yield
        ok = True
    finally:
        if role == catalog.CONTROLLER:
            op.put_back(node, wait=ok)
        elif role == catalog.STORAGE:
            if ok:
                wait_for(f"Ceph settled after {node} (every placement group active+clean)",
                         lambda: op.ceph_settled(allowed=("OSDMAP_FLAGS",)), op.timeout, 2)
            op.ceph("osd", "unset", "noout")
