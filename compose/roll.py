"""`lab roll`: every node (or every node of a role) replaced by a container of a newly built image, with the
same volumes, one at a time, each back in service before the next: the controllers first (the Galera writer
and the VIP's holder last), then the storage nodes (Ceph's `noout` set), then the compute nodes (their
servers live-migrated to another compute node first, and back once it is replaced if asked; the node kept out
of scheduling meanwhile)."""

from __future__ import annotations

import subprocess
import time
from contextlib import closing
from typing import Any

from compose import cluster, haproxy
from compose.labview import LabView
from compose.lifecycle import GALERA, Operator, Report, out_of_service, wait_for
from compose.site import LabError, image_exists
from firstboot import catalog

ORDER = (catalog.CONTROLLER, catalog.STORAGE, catalog.COMPUTE)
MIGRATION_SECONDS = 900


def writer(op: Operator) -> str | None:
    """The controller the VIP holder's HAProxy sends database sessions to."""
    controllers = op.controller_containers()
    holder = cluster.vip_holder(controllers, op.vip)
    if not holder:
        return None
    rows = [r for r in haproxy.stats(controllers[holder]) if r.proxy == GALERA and r.server not in
            ("FRONTEND", "BACKEND")]
    busiest = max(rows, key=lambda r: r.sessions, default=None)
    return busiest.server if busiest and busiest.sessions else None


def order(op: Operator, roles: tuple[str, ...]) -> list[str]:
    """The nodes to roll, in a safe order."""
    result = []
    for role in ORDER:
        if role not in roles:
            continue
        nodes = sorted(op.of_role(role))
        if role == catalog.CONTROLLER:
            holder = cluster.vip_holder(op.controller_containers(), op.vip)
            busy = writer(op)
            nodes.sort(key=lambda n: (n == holder, n == busy, n))
        result += nodes
    return result


def servers_on(view: LabView, node: str) -> list[dict[str, Any]]:
    return view.openstack("server", "list", "--all-projects", "--host", node, "--long") or []


def check_roll(op: Operator, view: LabView, nodes: list[str], tag: str, allow_downtime: bool) -> None:
    """Everything a roll needs, checked before the first node is touched."""
    roles = op.lab.roles()
    missing = sorted({f"goldstack/{roles[n]}:{tag}" for n in nodes if not image_exists(f"goldstack/{roles[n]}:{tag}")})
    if missing:
        raise LabError(f"no image {', '.join(missing)} (build it: ./gs build --role all --tag {tag}); nothing was "
                       "changed", 2)
    if allow_downtime:
        return
    problems = []
    for role, what in ((catalog.CONTROLLER, "the cloud's APIs and database"), (catalog.STORAGE, "Ceph's data")):
        if any(roles[n] == role for n in nodes) and len(op.of_role(role)) < 2:
            problems.append(f"one {role} node only: {what} stop while it is replaced")
    computes = op.of_role(catalog.COMPUTE)
    for node in (n for n in nodes if roles[n] == catalog.COMPUTE):
        if len(computes) < 2 and servers_on(view, node):
            problems.append(f"{node} runs servers and no other compute node can take them (`lab add compute`)")
    if problems:
        raise LabError("cannot roll without downtime; nothing was changed (--allow-downtime goes on anyway):\n"
                       + "\n".join(f"  - {p}" for p in problems), 2)


def replace(op: Operator, node: str, tag: str) -> float:
    """A new container of `node` from goldstack/ROLE:TAG with the same volumes; seconds until its agent is
    done."""
    lab = op.lab
    settings = lab.settings()
    settings["tags"][node] = tag
    lab.save_settings(settings)
    lab.write_compose_file(settings)
    op.say(f"{node}: replacing its container (image tag {tag})")
    started = time.monotonic()
    lab.compose("up", "-d", "--no-deps", "--force-recreate", node)
    op.follow([node])
    return time.monotonic() - started


def live_migrate(view: LabView, sid: str, off: str, to: str | None = None) -> None:
    """Live-migrate server `sid` off compute node `off` (to `to`, or where the scheduler chooses) and wait
    until it is ACTIVE again on another host."""
    view.openstack("server", "migrate", "--live-migration", *(["--host", to] if to else []), sid, json_out=False)

    def settled() -> dict[str, Any] | None:
        shown = view.openstack("server", "show", sid)
        if shown["status"] == "ERROR":
            raise LabError(f"server {sid} went to ERROR while migrating off {off}: {shown.get('fault')}")
        busy = shown.get("OS-EXT-STS:task_state") or shown["status"] != "ACTIVE"
        return None if busy else shown

    shown = wait_for(f"server {sid} live-migrated off {off}", settled, MIGRATION_SECONDS, 2)
    if shown.get("OS-EXT-SRV-ATTR:host") == off or (to and shown.get("OS-EXT-SRV-ATTR:host") != to):
        raise LabError(f"the live migration of server {sid} off {off} failed; it runs on "
                       f"{shown.get('OS-EXT-SRV-ATTR:host')} (`openstack server migration list --server {sid}`; "
                       f"nova-compute's log on {off})")


def evacuate(op: Operator, view: LabView, node: str) -> list[str]:
    """Live-migrate every server off `node` (kept out of scheduling); the servers moved."""
    moved = []
    for server in servers_on(view, node):
        op.say(f"{node}: live-migrating server {server['Name']} ({server['ID'][:8]})")
        live_migrate(view, server["ID"], node)
        moved.append(server["ID"])
    return moved


def roll_compute(op: Operator, view: LabView, node: str, tag: str, migrate_back: bool) -> dict[str, Any]:
    view.openstack("compute", "service", "set", "--disable", "--disable-reason", f"goldstack roll to {tag}", node,
                   catalog.NOVA_COMPUTE, json_out=False)
    try:
        moved = evacuate(op, view, node)
        seconds = replace(op, node, tag)
    finally:
        view.openstack("compute", "service", "set", "--enable", node, catalog.NOVA_COMPUTE, json_out=False)
    back = []
    if migrate_back:
        for sid in moved:
            shown = view.openstack("server", "show", sid)
            op.say(f"{node}: live-migrating server {shown['name']} ({sid[:8]}) back")
            live_migrate(view, sid, shown["OS-EXT-SRV-ATTR:host"], node)
            back.append(sid)
    return {"replaced_s": round(seconds, 1), "migrated": moved, "migrated_back": back}


def finish_upgrade(op: Operator) -> None:
    """One more run of a controller's agent once every node runs the new image: the upgrade tasks that wait
    for that (schema contraction, nova's online data migrations) run there; nothing restarts."""
    first = sorted(op.of_role(catalog.CONTROLLER))[0]
    op.say(f"{first}: re-running its agent for the upgrade tasks that waited for every node")
    op.follow([first], op.rerun_agents([first]))


def runs_image(op: Operator, node: str, ref: str) -> bool:
    """The node's container runs exactly the image `ref` names now (a roll stopped half-way goes on from
    the nodes it had not replaced; images rebuilt under the same tag are newer, so they roll)."""
    container = op.containers().get(node)
    if not container:
        return False
    running = subprocess.run(["docker", "inspect", "-f", "{{.Image}}", container], capture_output=True, text=True)
    wanted = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", ref], capture_output=True, text=True)
    return running.returncode == 0 and running.stdout.strip() == wanted.stdout.strip() != ""


def roll(op: Operator, tag: str | None, roles: tuple[str, ...], allow_downtime: bool = False,
         migrate_back: bool = False) -> Report:
    lab = op.lab
    settings = lab.settings()
    tag = tag or settings["tag"]
    kinds = lab.roles()
    nodes = [n for n in order(op, roles) if not runs_image(op, n, f"goldstack/{kinds[n]}:{tag}")]
    if not nodes:
        op.say(f"every node already runs its goldstack/ROLE:{tag} image")
    with closing(lab.view("roll")) as view:
        check_roll(op, view, nodes, tag, allow_downtime)
    report = Report()
    for node in nodes:
        started = time.monotonic()
        if kinds[node] == catalog.COMPUTE:
            # A client on the controllers as they are now: the ones it began on were replaced.
            with closing(lab.view("roll")) as view:
                done = roll_compute(op, view, node, tag, migrate_back)
        else:
            with out_of_service(op, node, kinds[node]):
                done = {"replaced_s": round(replace(op, node, tag), 1)}
        report.add(node, role=kinds[node], tag=tag, seconds=round(time.monotonic() - started, 1), **done)
        op.say(f"{node}: back in service")
    finish_upgrade(op)
    settings = lab.settings()
    if all(settings["tags"].get(n["name"]) == tag for n in lab.nodes()):
        settings.update(tag=tag, tags={})
        lab.save_settings(settings)
    return report
