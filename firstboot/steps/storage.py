"""Storage node: a Ceph monitor (on the first three storage nodes), a manager and one BlueStore OSD
(every storage node), the OpenStack pools, then cinder-volume on RBD registered with the cloud.

The daemons' units are templated (ceph-mon@NAME, ceph-osd@ID); like every role unit they stay
disabled and the agent starts them at each boot, after checking that what they need is there.
"""

from __future__ import annotations

from firstboot import catalog, ceph, cloud, proc
from firstboot.steps.base import Context, Step
from firstboot.steps.units import JoinStep, all_active, start_units

_S = frozenset({catalog.STORAGE})
GROUP = "ceph"  # service group whose config change restarts the daemons


def _restart_pending(ctx: Context, unit: str) -> bool:
    """ceph.conf changed since this daemon last started (the config step marks the group; each daemon is
    restarted once, then the pools step clears the mark)."""
    agent = ctx.state.data["agent"]
    return GROUP in agent.get("restart_pending", []) and unit not in agent.get("ceph_restarted", [])


def run_unit(ctx: Context, unit: str) -> None:
    """Start a daemon, or restart it when ceph.conf changed since it started."""
    state = proc.unit_state(unit)
    if state != "active" or _restart_pending(ctx, unit):
        if state == "failed":
            proc.systemctl("reset-failed", unit)
        ctx.note(f"{'restarting' if state == 'active' else 'starting'} {unit}")
        proc.systemctl("restart" if state == "active" else "start", unit, timeout=300)
        if state == "active":
            ctx.state.record_changes(restarted=[unit])
    with ctx.state.lock:
        agent = ctx.state.data["agent"]
        agent["ceph_restarted"] = sorted(set(agent.get("ceph_restarted", [])) | {unit})
        ctx.state.save()


def _current(ctx: Context, unit: str) -> bool:
    return proc.unit_state(unit) == "active" and not _restart_pending(ctx, unit)


def _wait(ctx: Context, check, what: str) -> None:
    proc.wait_for(check, ctx.doc.options["cluster_wait_seconds"], what, interval=2, progress=ctx.note)


class CephMonStep(Step):
    name = "ceph-mon"
    description = "create and start this node's Ceph monitor and manager; wait for a quorum"
    roles = _S
    after = ("config",)

    def _units(self, ctx: Context) -> list[str]:
        name = ctx.doc.node.name
        return [f"ceph-mon@{name}", f"ceph-mgr@{name}"] if ceph.is_monitor(ctx.doc) else []

    def done(self, ctx: Context) -> bool:
        if not all(_current(ctx, u) for u in self._units(ctx)):
            return False
        return bool(ceph.quorum())

    def run(self, ctx: Context) -> str:
        doc = ctx.doc
        if not ceph.is_monitor(doc):
            names = ", ".join(m.name for m in doc.ceph_monitors)
            _wait(ctx, lambda: bool(ceph.quorum()), f"a quorum of the Ceph monitors ({names})")
            return f"monitors elsewhere ({names}) in quorum"
        created = ceph.make_monitor(doc, ctx.root)
        run_unit(ctx, f"ceph-mon@{doc.node.name}")
        monitors = [m.name for m in doc.ceph_monitors]
        _wait(ctx, lambda: doc.node.name in ceph.quorum(),
              f"this monitor in a quorum (monitors: {', '.join(monitors)}; a majority must be up)")
        ceph.make_manager(doc.node.name, ctx.root)
        run_unit(ctx, f"ceph-mgr@{doc.node.name}")
        return f"monitor {'created' if created else 'started'}; quorum {', '.join(ceph.quorum())}"


class CephOsdStep(Step):
    name = "ceph-osd"
    description = "create and start this node's BlueStore OSD"
    roles = _S
    after = ("ceph-mon",)

    def done(self, ctx: Context) -> bool:
        osd = ctx.state.data["agent"].get("ceph_osd_id")
        if osd is None or not _current(ctx, f"ceph-osd@{osd}"):
            return False
        return ceph.osd_up(osd)

    def run(self, ctx: Context) -> str:
        doc = ctx.doc
        osd = ceph.osd_id(doc)
        with ctx.state.lock:
            ctx.state.data["agent"]["ceph_osd_id"] = osd
            ctx.state.save()
        where = doc.node.osd_device or f"a {doc.options['ceph_osd_file_size_gb']} GiB file"
        if ceph.make_osd(doc, ctx.root, osd):
            ctx.note(f"made osd.{osd} on {where}")
        run_unit(ctx, f"ceph-osd@{osd}")
        _wait(ctx, lambda: ceph.osd_up(osd), f"osd.{osd} up and in")
        return f"osd.{osd} up on {where}"


class CephPoolsStep(Step):
    name = "ceph-pools"
    description = "create the volumes, images and vms pools; wait until every placement group is active"
    roles = _S
    after = ("ceph-osd",)

    def done(self, ctx: Context) -> bool:
        return ceph.pools_ready(ctx.doc.ceph_pool_size) and ceph.pgs_active()[0]

    def run(self, ctx: Context) -> str:
        size = ctx.doc.ceph_pool_size
        created = ceph.ensure_pools(size)
        # The daemons now run with the current ceph.conf: nothing of this group is left to restart.
        with ctx.state.lock:
            agent = ctx.state.data["agent"]
            agent["restart_pending"] = sorted(set(agent.get("restart_pending", [])) - {GROUP})
            agent["ceph_restarted"] = []
            ctx.state.save()

        def active() -> bool:
            ok, why = ceph.pgs_active()
            if not ok:
                ctx.note(why)
            return ok

        _wait(ctx, active, f"every placement group active (pool size {size}: that many OSDs must be up)")
        status = ceph.health().get("status", "?")
        return f"pools {', '.join(catalog.CEPH_POOLS)} (size {size}{', created now' if created else ''}); {status}"


class VolumeStep(JoinStep):
    name = "volume"
    description = "start cinder-volume; wait until the block-storage API lists it up"
    roles = _S
    after = ("ceph-pools",)
    groups = ("cinder",)
    service_user = "cinder"
    service_apis = ("cinder",)
    ready_what = "cinder-volume of this node up in the block-storage API"
    ready_timeout = 600

    def prepare(self, ctx: Context) -> None:
        if ctx.doc.lvm_volumes:
            start_units(ctx, ("lio-target",))

    def registered(self, ctx: Context) -> tuple[bool, str]:
        return cloud.volume_registered(ctx.doc, "lvm" if ctx.doc.lvm_volumes else "rbd",
                                       proc.unit_active_since(catalog.CINDER_VOLUME))

    def done(self, ctx: Context) -> bool:
        extra = ("lio-target",) if ctx.doc.lvm_volumes else ()
        return all_active(ctx, extra) and super().done(ctx)
