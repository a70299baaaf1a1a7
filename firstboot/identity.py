"""What a node was set up as, and may not become something else while it runs: its cluster, name and role,
and the Ceph cluster it belongs to. A document that changes one of these is refused (exit 3, nothing
written): such a change is a new node, made by replacing this one, not by reconfiguring it."""

from __future__ import annotations

import hashlib
from typing import Any

from firstboot.document import Document
from firstboot.errors import FieldProblem, InvalidInput


def of(doc: Document) -> dict[str, str]:
    """The identity a document gives its node (the fsid by digest: the state file holds no secret)."""
    found = {"cluster": doc.cluster, "node": doc.node.name, "role": doc.role}
    if "ceph_fsid" in doc.secrets:
        found["ceph_fsid"] = hashlib.sha256(str(doc.secrets["ceph_fsid"]).encode()).hexdigest()[:16]
    return found


FIELDS = {"cluster": "cluster", "node": "node.name", "role": "node.role", "ceph_fsid": "secrets.ceph_fsid"}


def check(doc: Document, recorded: dict[str, Any] | None, source: str) -> None:
    """Refuse a document whose identity differs from the one this node was set up with."""
    if not recorded:
        return
    mine = of(doc)
    problems = [FieldProblem(FIELDS[key], f"{shown(key, mine[key])} differs from {shown(key, recorded[key])}, which "
                             "this node was set up with; a running node cannot change it: replace the node (a "
                             "new node with its own name and fresh state) instead")
                for key in FIELDS if key in mine and key in recorded and mine[key] != recorded[key]]
    if problems:
        raise InvalidInput(source, problems)


def shown(key: str, value: str) -> str:
    return "the new fsid" if key == "ceph_fsid" and value else repr(value)
