"""RabbitMQ: start the node, see it in one cluster with a majority of the controllers, create the users.

Formation: classic_config peer discovery lists every controller; RabbitMQ's discovery lock keeps nodes
that start together in one cluster. Should a blank node still end up alone while a peer runs a cluster
(a race, or a controller re-created under its old name, which the others still list), the step resets
it, has the peer forget the former node if needed, and joins. After a power loss, nodes just start: each waits
for the peers it last ran with. Partition handling is pause_minority (rabbitmq.conf).
"""

from __future__ import annotations

import time

from firstboot import catalog, proc, rabbitmq
from firstboot.steps.base import Context, Step
from firstboot.steps.runonce import run_phase
from firstboot.steps.units import all_active, start_units
from firstboot.tasks import MESSAGING

POLL_SECONDS = 3


def majority(count: int) -> int:
    return count // 2 + 1


class RabbitmqStep(Step):
    name = "rabbitmq"
    description = "start RabbitMQ and join the controllers' cluster; create the OpenStack user once"
    roles = frozenset({catalog.CONTROLLER})
    after = ("databases",)  # the run-once record of the users lives in Galera

    def _clustered(self, ctx: Context) -> bool:
        running = rabbitmq.running_nodes(rabbitmq.cluster_status())
        return rabbitmq.node_name(ctx.doc.node.name) in running and \
            len(running) >= majority(len(ctx.doc.controllers))

    def done(self, ctx: Context) -> bool:
        return all_active(ctx, ("rabbitmq",)) and self._clustered(ctx) and rabbitmq.management_ready(ctx.doc) \
            and run_phase(ctx, MESSAGING, check_only=True)

    def run(self, ctx: Context) -> str:
        start_units(ctx, ("rabbitmq",))
        me = rabbitmq.node_name(ctx.doc.node.name)
        deadline = time.monotonic() + ctx.doc.options["cluster_wait_seconds"]
        while not self._clustered(ctx):
            if time.monotonic() > deadline:
                raise TimeoutError("RabbitMQ: no cluster with a majority of the controllers; see "
                                   "`rabbitmqctl cluster_status` and journalctl -u rabbitmq-server")
            mine = rabbitmq.cluster_status()
            if rabbitmq.members(mine) == [me]:
                self._join_if_alone(ctx, me)
            ctx.note(f"running nodes: {', '.join(rabbitmq.running_nodes(mine)) or 'none yet'}; waiting for a "
                     f"majority of {len(ctx.doc.controllers)}")
            time.sleep(POLL_SECONDS)
        proc.wait_for(lambda: rabbitmq.management_ready(ctx.doc), 120, "RabbitMQ management API", progress=ctx.note)
        run_phase(ctx, MESSAGING)
        running = rabbitmq.running_nodes(rabbitmq.cluster_status())
        return f"cluster of {len(running)}: {', '.join(running)}"

    def _join_if_alone(self, ctx: Context, me: str) -> None:
        """This node is in a cluster of its own: join a peer's cluster, forgetting a former self there."""
        for peer in ctx.doc.controllers:
            node = rabbitmq.node_name(peer.name)
            if node == me:
                continue
            theirs = rabbitmq.cluster_status(node)
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
