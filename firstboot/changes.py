"""What a new node document would change on this node, before anything is written: the files whose
content, mode or owner would differ, the service groups they belong to and the units a run would restart.
An operator (or `./gs lab reconfigure`) reads it to take the node's services out of rotation first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from firstboot import catalog, facts, files, identity, render
from firstboot.document import Document
from firstboot.state import StateStore
from firstboot.steps.hosts import HOSTS, hosts_current


@dataclass
class Changes:
    node: str
    role: str
    files: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"node": self.node, "role": self.role, "files": self.files, "services": self.services,
                "units": self.units}


def _owner_ids(owner: str, group: str) -> tuple[int, int] | None:
    try:
        return files.resolve_ids(owner, group)
    except files.OwnershipError:  # accounts of another host (a preview off the node): content and mode only
        return None


def of(doc: Document, root: Path, state: StateStore, source: str, owners: bool = True) -> Changes:
    """The changes a run with `doc` would make here (refused, like the run, for another identity)."""
    identity.check(doc, state.data["agent"].get("identity"), source)
    recorded = state.data["agent"].get("facts")
    host = render.Facts(**recorded) if recorded else facts.gather(doc, root)
    tree = render.render_tree(doc, host)
    changed = [f for f in tree.values()
               if not files.is_current(files.under_root(root, f.path), f.content, f.mode,
                                       _owner_ids(f.owner, f.group) if owners else None)]
    result = Changes(doc.node.name, doc.role, sorted(f.path for f in changed), sorted({f.service for f in changed}))
    if not hosts_current(doc, files.under_root(root, HOSTS)):
        result.files.insert(0, HOSTS)
    result.units = sorted({u for group in result.services for u in catalog.units_of(group, doc.role)})
    return result
