"""`lab reconfigure`: a changed inventory (an option, an override, ...) rolled out to the nodes whose documents
it changes. Each node is asked first what its new document would change (and refuses one that would make
it another node); then every node whose run restarts nothing re-runs together, and the others one at a
time, a controller out of HAProxy's rotation and the VIP meanwhile. The report says what changed where."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from compose.grow import validated
from compose.lifecycle import Operator, Report, plan, rollout
from compose.site import LabError


def set_value(inventory: dict[str, Any], assignment: str) -> None:
    """`options.api_workers=2` or `overrides.nova.DEFAULT.debug=true`: the value is read as YAML."""
    path, sep, text = assignment.partition("=")
    keys = [k for k in path.split(".") if k]
    if not sep or not keys:
        raise LabError(f"--set {assignment!r}: write KEY.PATH=VALUE, like options.api_workers=2", 2)
    if keys[0] not in ("options", "overrides"):
        raise LabError(f"--set {assignment!r}: only options.* and overrides.* can be set here; edit the lab's "
                       "inventory for anything else (--inventory FILE)", 2)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LabError(f"--set {assignment!r}: the value is not YAML: {str(exc).splitlines()[0]}", 2) from None
    where = inventory
    for key in keys[:-1]:
        where = where.setdefault(key, {})
        if not isinstance(where, dict):
            raise LabError(f"--set {assignment!r}: {key} is not a mapping in the inventory", 2)
    where[keys[-1]] = value


def same_nodes(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A reconfiguration keeps the site and its nodes: the cluster's name, each node's role and addresses;
    nodes come with `add`."""
    problems = []
    if new.get("cluster") != old.get("cluster"):
        problems.append(f"cluster: {new.get('cluster')!r} differs from {old.get('cluster')!r}; a running site "
                        "cannot be renamed")
    before = {n["name"]: n for n in old["nodes"]}
    after = {n.get("name"): n for n in new.get("nodes") or []}
    for name in sorted(set(before) - set(after)):
        problems.append(f"nodes: {name} is missing; removing a node is not a reconfiguration")
    for name in sorted(set(after) - set(before), key=str):
        problems.append(f"nodes: {name} is new; add nodes with `lab add`")
    for name in sorted(set(before) & set(after)):
        for key in ("role", "addresses"):
            if after[name].get(key) != before[name].get(key):
                problems.append(f"nodes ({name}).{key}: {after[name].get(key)!r} differs from "
                                f"{before[name].get(key)!r}; a running node keeps its {key}")
    if problems:
        raise LabError("the new inventory is not a reconfiguration of this lab; nothing was changed:\n"
                       + "\n".join(f"  - {p}" for p in problems), 2)


def reconfigure(op: Operator, assignments: list[str], inventory_file: Path | None = None) -> Report:
    lab = op.lab
    lab.settings()
    lab.require_up("reconfigure")
    current = lab.inventory()
    if inventory_file is not None:
        try:
            new = yaml.safe_load(inventory_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise LabError(f"--inventory {inventory_file}: cannot be read: {exc}", 2) from None
        if not isinstance(new, dict):
            raise LabError(f"--inventory {inventory_file}: must be a mapping (an inventory)", 2)
    else:
        new = copy.deepcopy(current)
    for assignment in assignments:
        set_value(new, assignment)
    same_nodes(current, new)
    validated(new)
    lab.save_inventory(new)
    documents = lab.make_seeds()
    changed = lab.changed_documents(documents)
    try:
        planned = plan(op, documents, changed)
    except LabError:
        lab.save_inventory(current)  # a node refused its document: the lab stays as it was
        lab.make_seeds()
        raise
    report = Report()
    if changed:
        rollout(op, documents, planned, report)
    return report
