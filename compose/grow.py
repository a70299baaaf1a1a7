"""`lab add compute|storage`: a new node joins the running lab. The grown inventory makes every node's
document again (the site secrets reused); the new node starts from its role image while the nodes already
running re-run their agents on their new documents (peers' names in /etc/hosts; the storage nodes' pool
size, min(3, storage nodes) unless the site sets one); then the new node's agent is followed until it has
joined: a compute node's hypervisor listed, a storage node's OSD up with every pool at its new size and
every placement group active+clean."""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from compose.lifecycle import Operator, Report, plan, rollout, wait_for
from compose.site import LabError, image_exists
from firstboot import catalog, document, errors, seed

GROWABLE = {catalog.COMPUTE: ("cmp", 21), catalog.STORAGE: ("sto", 31)}  # name prefix, first address octet
ADDRESSES_PER_ROLE = 9


def new_node(inventory: dict[str, Any], role: str, name: str | None = None) -> dict[str, Any]:
    """The next node of `role`: its name (cmpN, stoN: the lowest N free, or `name`) and the role's next free
    addresses on the lab's networks (compute nodes also on the provider network)."""
    prefix, first = GROWABLE[role]
    names = {n["name"] for n in inventory["nodes"]}
    used = {a for n in inventory["nodes"] for a in n["addresses"].values()}
    if name is not None:
        if not document.NAME_PATTERN.match(name):
            raise LabError(f"--name {name!r}: use lower-case letters, digits and '-', like {prefix}2", 2)
        if name in names:
            raise LabError(f"--name {name}: the lab already has a node of that name", 2)
    nets = {net: inventory["networks"][net].rsplit(".", 1)[0] for net in ("management", "provider")}
    for index in range(ADDRESSES_PER_ROLE):
        octet = first + index
        addresses = {"management": f"{nets['management']}.{octet}"}
        if role == catalog.COMPUTE:
            addresses["provider"] = f"{nets['provider']}.{octet}"
        chosen = name or f"{prefix}{index + 1}"
        if chosen not in names and not set(addresses.values()) & used:
            return {"name": chosen, "role": role, "addresses": addresses}
    raise LabError(f"the lab has no free {role} address left ({ADDRESSES_PER_ROLE} per role)", 2)


def validated(inventory: dict[str, Any]) -> None:
    """The inventory as the seed generator reads it; LabError (exit 2) naming each problem otherwise."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "inventory.yaml"
        path.write_text(yaml.safe_dump(inventory, sort_keys=False))
        try:
            seed.load_inventory(path)
        except errors.InvalidInput as exc:
            raise LabError(str(exc), 2) from None


def add(op: Operator, role: str, name: str | None = None) -> Report:
    lab = op.lab
    if role not in GROWABLE:
        raise LabError(f"a running lab grows by compute or storage nodes, not {role} ones: a controller joins "
                       "Galera and RabbitMQ at their formation (recreate the lab with --controllers)", 2)
    settings = lab.settings()
    lab.require_up(f"add {role}")
    inventory = lab.inventory()
    node = new_node(inventory, role, name)
    image = lab.image_of(node, settings)
    if not image_exists(image):
        raise LabError(f"no image {image} (build it: ./gs build --role {role} --tag {lab.tag_of(node['name'])})", 3)
    current = copy.deepcopy(inventory)
    inventory["nodes"].append(node)
    validated(inventory)
    lab.save_inventory(inventory)
    documents = lab.make_seeds()
    try:
        planned = plan(op, documents, [n for n in lab.changed_documents(documents) if n != node["name"]])
    except LabError:
        lab.save_inventory(current)  # a running node refused its new document: nothing changes
        lab.make_seeds()
        raise
    lab.deliver(documents, [node["name"]])
    lab.write_compose_file(settings)
    op.say(f"{node['name']}: starting ({role}, {node['addresses']['management']})")
    started = time.monotonic()
    lab.compose("up", "-d", "--no-deps", node["name"])
    report = Report()
    rollout(op, documents, planned, report)
    op.follow([node["name"]])
    joined = time.monotonic() - started
    if role == catalog.STORAGE:
        size = document.load_text(documents[node["name"]].decode(), "new node").ceph_pool_size
        wait_for(f"every pool at size {size}", lambda: set(op.pool_sizes().values()) == {size}, op.timeout, 2)
        wait_for("Ceph settled (every placement group active+clean, no health warning)", op.ceph_settled,
                 op.timeout, 2)
    report.add(node["name"], role=role, added=True, joined_s=round(joined, 1),
               settled_s=round(time.monotonic() - started, 1))
    return report
