"""RabbitMQ: start the node and see it in one cluster with a majority of the controllers (the users: the
rabbitmq-users step).

Formation: blank nodes never discover together. RabbitMQ 4.0's peer discovery can hang when blank
nodes discover each other at once (a node stuck after "virgin node -> run peer discovery" until
systemd's start timeout, with three nodes started together as with two joining a running one). So the
first controller by name seeds a new cluster: it lists only itself for discovery (rabbitmq.conf) and
starts at once; every other blank node lists the controllers before it by name, starts once they
run (at most BLANK_WAIT_SECONDS), then discovers them and joins: one blank node joins at a time.
Should a blank node still end up alone while a peer runs a cluster (a controller re-created under its
old name, which the others still list), the step resets it, has the peer forget the former node if
needed, and joins. After a power loss, nodes just start: each waits for the peers it last ran with, for
five minutes a try (then systemd starts it again). So a node that ran before starts RabbitMQ early
(rabbitmq-boot, right after config): the peers' wait must not last as long as this node's Galera
recovery, and a controller held up there must not stop the others' RabbitMQ.
Partition handling is pause_minority (rabbitmq.conf).
"""

from __future__ import annotations

import time

from firstboot import catalog, proc, rabbitmq
from firstboot.steps.base import Context, Step
from firstboot.steps.units import all_active, start_units, units_for

POLL_SECONDS = 3
BLANK_WAIT_SECONDS = 180
MNESIA = "/var/lib/rabbitmq/mnesia"


def majority(count: int) -> int:
    return count // 2 + 1


def has_run_before(ctx: Context) -> bool:
    return ctx.path(f"{MNESIA}/{rabbitmq.node_name(ctx.doc.node.name)}").exists()


class RabbitmqBootStep(Step):
    name = "rabbitmq-boot"
    description = "start RabbitMQ at once on a node that ran before (it waits for the peers it last ran with)"
    roles = frozenset({catalog.CONTROLLER})
    after = ("config",)

    def done(self, ctx: Context) -> bool:
        # A blank node has nothing to do here: the rabbitmq step starts it in its turn.
        if not has_run_before(ctx):
            return True
        pending = "rabbitmq" in ctx.state.data["agent"].get("restart_pending", [])
        return not pending and all(proc.unit_state(u) in ("active", "activating", "reloading")
                                   for u in units_for(ctx, ("rabbitmq",)))

    def run(self, ctx: Context) -> str:
        start_units(ctx, ("rabbitmq",), block=False)
        return "rabbitmq-server starting; it waits for the peers it last ran with"


class RabbitmqStep(Step):
    name = "rabbitmq"
    description = "start RabbitMQ and join the controllers' cluster"
    roles = frozenset({catalog.CONTROLLER})
    after = ("rabbitmq-boot",)  # beside Galera: the users (rabbitmq-users) wait for it, the cluster does not

    def _clustered(self, ctx: Context) -> bool:
        running = rabbitmq.running_nodes(rabbitmq.cluster_status(ctx.doc))
        return rabbitmq.node_name(ctx.doc.node.name) in running and \
            len(running) >= majority(len(ctx.doc.controllers))

    def done(self, ctx: Context) -> bool:
        return all_active(ctx, ("rabbitmq",)) and self._clustered(ctx) and rabbitmq.management_ready(ctx.doc)

    def run(self, ctx: Context) -> str:
        me = rabbitmq.node_name(ctx.doc.node.name)
        self._wait_for_predecessors_if_blank(ctx, me)
        start_units(ctx, ("rabbitmq",))
        deadline = time.monotonic() + ctx.doc.options["cluster_wait_seconds"]
        while not self._clustered(ctx):
            if time.monotonic() > deadline:
                raise TimeoutError("RabbitMQ: no cluster with a majority of the controllers; see "
                                   "`rabbitmqctl cluster_status` and journalctl -u rabbitmq-server")
            mine = rabbitmq.cluster_status(ctx.doc)
            if rabbitmq.members(mine) == [me]:
                self._join_if_alone(ctx, me)
            ctx.note(f"running nodes: {', '.join(rabbitmq.running_nodes(mine)) or 'none yet'}; waiting for a "
                     f"majority of {len(ctx.doc.controllers)}")
            time.sleep(POLL_SECONDS)
        proc.wait_for(lambda: rabbitmq.management_ready(ctx.doc), 120, "RabbitMQ management API", progress=ctx.note)
        running = rabbitmq.running_nodes(rabbitmq.cluster_status(ctx.doc))
        return f"cluster of {len(running)}: {', '.join(running)}"

    def _wait_for_predecessors_if_blank(self, ctx: Context, me: str) -> None:
        """A blank node starts only once every controller before it (by name) runs in the cluster: one
        blank node discovers and joins at a time."""
        if has_run_before(ctx):
            return  # a node with data waits for the peers it last ran with by itself
        before = [rabbitmq.node_name(c.name) for c in ctx.doc.controllers if c.name < ctx.doc.node.name]
        if not before:
            return  # the first controller seeds a new cluster
        peers = [c.name for c in ctx.doc.controllers if c.name != ctx.doc.node.name]

        def predecessors_run() -> bool:
            return any(set(before) <= set(rabbitmq.running_nodes(rabbitmq.cluster_status(ctx.doc, p))) for p in peers)

        try:
            proc.wait_for(predecessors_run, BLANK_WAIT_SECONDS, f"{', '.join(before)} running, to join them",
                          interval=POLL_SECONDS, progress=ctx.note)
        except TimeoutError:
            ctx.note(f"{', '.join(before)} not all running after {BLANK_WAIT_SECONDS}s; starting anyway")

    def _join_if_alone(self, ctx: Context, me: str) -> None:
        """This node is in a cluster of its own: join a peer's cluster, forgetting a former self there."""
        for peer in ctx.doc.controllers:
            node = rabbitmq.node_name(peer.name)
            if node == me:
                continue
            theirs = rabbitmq.cluster_status(ctx.doc, peer.name)
            others = [n for n in rabbitmq.running_nodes(theirs) if n != me]
            if not others:
                continue
            replaced = me in rabbitmq.members(theirs)  # they remember a node of this name: it was re-created
            # Join a real cluster, or another lone node with a lower name (never both ways at once).
            if replaced or len(others) > 1 or node < me:
                ctx.note(f"this node is alone while {node} runs a cluster; resetting and joining it"
                         + (" (forgetting this node's former self there first)" if replaced else ""))
                rabbitmq.rabbitmqctl("stop_app")
                rabbitmq.rabbitmqctl("reset")
                if replaced:
                    rabbitmq.rabbitmqctl("-n", node, "forget_cluster_node", me)
                rabbitmq.rabbitmqctl("join_cluster", node)
                rabbitmq.rabbitmqctl("start_app")
                return
