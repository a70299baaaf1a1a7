"""Render the role's whole config tree and write what changed; remember which services need a restart."""

from __future__ import annotations

from pathlib import Path

from firstboot import catalog, files, proc, render
from firstboot.steps.base import Context, Step


class ConfigStep(Step):
    name = "config"
    description = "render and write the role's configuration files"
    after = ("hosts",)

    def _tree(self, ctx: Context) -> dict[str, render.RenderedFile]:
        return render.render_tree(ctx.doc, ctx.facts)

    def _dirs(self, ctx: Context) -> list[tuple[catalog.Directory, tuple[int, int] | None]]:
        return [(d, files.resolve_ids(d.owner, d.group) if ctx.set_owner else None)
                for d in catalog.DIRECTORIES if ctx.doc.role in d.roles]

    def done(self, ctx: Context) -> bool:
        if not all(files.dir_is_current(ctx.path(d.path), d.mode, ids) for d, ids in self._dirs(ctx)):
            return False
        tree = self._tree(ctx)
        ids = {p: files.resolve_ids(f.owner, f.group) for p, f in tree.items()} if ctx.set_owner else {}
        return all(files.is_current(files.under_root(ctx.root, p), f.content, f.mode, ids.get(p))
                   for p, f in tree.items())

    def run(self, ctx: Context) -> str:
        for d, ids in self._dirs(ctx):  # before the files, so keys never sit in a loose directory
            files.ensure_dir(ctx.path(d.path), d.mode, ids)
        report = files.apply_files(self._tree(ctx).values(), ctx.root, ctx.set_owner)
        ctx.state.record_changes(files=report.written)
        if ctx.root == Path("/") and any(p.startswith("/etc/systemd/") for p in report.written):
            proc.systemctl("daemon-reload")  # a unit drop-in changed: systemd reads it before any unit starts
        with ctx.state.lock:
            pending = set(ctx.state.data["agent"].get("restart_pending", []))
            ctx.state.data["agent"]["restart_pending"] = sorted(pending | report.changed_services)
            ctx.state.save()
        return (f"{len(report.written)} written, {len(report.unchanged)} unchanged; "
                f"changed: {', '.join(sorted(report.changed_services)) or 'nothing'}")
