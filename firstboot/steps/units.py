"""Starting a role's services: a step per phase, each naming service groups of the catalog.

Role units are disabled in the images; the agent starts them on every boot, in the order its steps
give, once what they need (Galera, RabbitMQ, the database schemas) is there. A service whose config
changed (the config step's restart_pending) is restarted instead.
"""

from __future__ import annotations

from firstboot import catalog, cloud, proc
from firstboot.steps.base import Context, Step

START_TIMEOUT = 300
START_ATTEMPTS = 2
SETTLE_SECONDS = 30


def units_for(ctx: Context, groups: tuple[str, ...]) -> list[str]:
    return [u for g in groups for u in catalog.units_of(g, ctx.doc.role)]


def start_units(ctx: Context, groups: tuple[str, ...], enable: bool = False, block: bool = True) -> list[str]:
    """Start (or restart, when their config changed) the units of these service groups, together: systemd
    runs the jobs in parallel, so one daemon's imports overlap another's wait for its database. With
    block=False the jobs are only queued."""
    pending = set(ctx.state.data["agent"].get("restart_pending", []))
    verbs: dict[str, list[str]] = {"start": [], "restart": []}
    for group in groups:
        restart = group in pending
        for unit in catalog.units_of(group, ctx.doc.role):
            active = proc.unit_state(unit) == "active"
            if active and not restart:
                continue
            if enable:
                proc.systemctl("enable", "--quiet", unit)
            verbs["restart" if active else "start"].append(unit)
    for verb, units in verbs.items():
        if units:
            ctx.note(f"{verb}ing {', '.join(units)}")
            if block:
                start_together(units, verb)
            else:
                proc.systemctl(verb, "--no-block", *units)
    ctx.state.record_changes(restarted=verbs["restart"])
    with ctx.state.lock:  # another step may have started its own groups meanwhile
        agent = ctx.state.data["agent"]
        agent["restart_pending"] = sorted(set(agent.get("restart_pending", [])) - set(groups))
        ctx.state.save()
    return verbs["start"] + verbs["restart"]


def start_together(units: list[str], verb: str) -> None:
    """One systemctl job set for all; a unit that did not come up gets its own retries (start_unit)."""
    try:
        proc.systemctl(verb, *units, timeout=START_TIMEOUT)
        return
    except proc.CommandFailed:
        pass
    for unit in units:
        if proc.unit_state(unit) != "active":
            start_unit(unit, "start")


def start_unit(unit: str, verb: str = "start") -> None:
    """Start a unit; a daemon that exits on its first try while its peers settle (nova-conductor while
    RabbitMQ elects queue leaders, say) gets the time its own Restart= policy needs, then one more try."""
    for attempt in range(1, START_ATTEMPTS + 1):
        if proc.unit_state(unit) == "failed":
            proc.systemctl("reset-failed", unit)
        try:
            proc.systemctl(verb, unit, timeout=START_TIMEOUT)
            return
        except proc.CommandFailed:
            try:
                proc.wait_for(lambda: proc.unit_state(unit) == "active", SETTLE_SECONDS, f"{unit} active")
                return
            except TimeoutError:
                if attempt == START_ATTEMPTS:
                    raise
            verb = "start"


def not_running(ctx: Context, groups: tuple[str, ...]) -> list[str]:
    """What keeps these groups' units from counting as running: a restart still pending, a unit in another
    state than active."""
    pending = sorted(set(ctx.state.data["agent"].get("restart_pending", [])) & set(groups))
    if pending:
        return [f"restart still pending for {g}" for g in pending]
    states = {u: proc.unit_state(u) for u in units_for(ctx, groups)}
    return [f"{u} {state}" for u, state in states.items() if state != "active"]


def all_active(ctx: Context, groups: tuple[str, ...]) -> bool:
    return not not_running(ctx, groups)


class UnitsStep(Step):
    """Start service groups; done when every unit is active and the optional readiness check passes."""

    groups: tuple[str, ...] = ()
    enable: bool = False
    ready_what: str = ""  # what ready() waits for, for messages; empty = no readiness check
    ready_timeout: float = 300
    ready_explains: bool = False  # ready() notes why it is not ready yet (then no generic "waiting" note)

    def ready(self, ctx: Context) -> bool:
        return True

    def done(self, ctx: Context) -> bool:
        return all_active(ctx, self.groups) and self.ready(ctx)

    def why_not_done(self, ctx: Context) -> str:
        if missing := not_running(ctx, self.groups):
            return f"not running: {', '.join(missing)}"
        return f"not yet: {self.ready_what}" if self.ready_what else ""

    def run(self, ctx: Context) -> str:
        touched = start_units(ctx, self.groups, self.enable)
        if self.ready_what:
            proc.wait_for(lambda: self.ready(ctx), self.ready_timeout, self.ready_what, interval=1,
                          progress=None if self.ready_explains else ctx.note)
        return f"started {', '.join(touched)}" if touched else "already running"


class JoinStep(UnitsStep):
    """A node's services joining the cloud: wait until the control plane answers as `service_user`, get
    the node ready (`prepare`), start the units, then wait until the cloud lists them (`registered`)."""

    service_user: str = ""
    service_apis: tuple[str, ...] = ()  # the APIs (catalog names) this node's daemons need answering first
    ready_explains = True

    def registered(self, ctx: Context) -> tuple[bool, str]:
        raise NotImplementedError

    def prepare(self, ctx: Context) -> None:
        """What must hold on this node before its units start; done before the wait for the control plane,
        which it must not need, so that it overlaps the controllers' start."""

    def ready(self, ctx: Context) -> bool:
        ok, why = self.registered(ctx)
        if not ok:
            ctx.note(why)
        return ok

    def run(self, ctx: Context) -> str:
        self.prepare(ctx)
        apis = ", ".join(("keystone", *self.service_apis))
        proc.wait_for(lambda: cloud.control_plane_answers(ctx.doc, self.service_user, self.service_apis),
                      ctx.doc.options["cluster_wait_seconds"], f"the control plane ({apis} through the VIP)",
                      interval=2, progress=ctx.note)
        detail = super().run(ctx)
        return f"{detail}; {self.registered(ctx)[1]}"
