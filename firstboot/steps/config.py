"""Render the role's whole config tree and write what changed; remember which services need a restart."""

from __future__ import annotations

from firstboot import files, render
from firstboot.steps.base import Context, Step


class ConfigStep(Step):
    name = "config"
    description = "render and write the role's configuration files"
    after = ("hosts",)

    def _tree(self, ctx: Context) -> dict[str, render.RenderedFile]:
        return render.render_tree(ctx.doc, ctx.facts)

    def done(self, ctx: Context) -> bool:
        tree = self._tree(ctx)
        ids = {p: files.resolve_ids(f.owner, f.group) for p, f in tree.items()} if ctx.set_owner else {}
        return all(files.is_current(files.under_root(ctx.root, p), f.content, f.mode, ids.get(p))
                   for p, f in tree.items())

    def run(self, ctx: Context) -> str:
        report = files.apply_files(self._tree(ctx).values(), ctx.root, ctx.set_owner)
        pending = set(ctx.state.data["agent"].get("restart_pending", []))
        ctx.state.data["agent"]["restart_pending"] = sorted(pending | report.changed_services)
        ctx.state.save()
        return (f"{len(report.written)} written, {len(report.unchanged)} unchanged; "
                f"changed: {', '.join(sorted(report.changed_services)) or 'nothing'}")
