"""Ceph on the storage nodes, deployed the manual way with Debian's packages (no cephadm: its container
images cannot be pulled here, and the golden image already holds the daemons).

Every operation is idempotent, so a run killed anywhere converges when repeated: a monitor store made
once (marker file `done`), keys asked for with get-or-create, the OSD's id derived from a UUID that is
itself derived from the fsid and the node name (`ceph osd new` with a known UUID returns the same id),
pools created if missing. All CephX keys the cluster starts with — admin, bootstrap-osd and the
OpenStack clients — come from the site secrets through the monitor keyring, so no key is made at
random on a node and the clients' keyrings on controllers and computes match from the first boot.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import uuid
from pathlib import Path
from typing import Any

from firstboot import catalog, files, proc
from firstboot.document import Document
from firstboot.errors import GoldstackError

CLUSTER = "ceph"
MON_KEYRING = "/etc/goldstack/ceph/ceph.mon.keyring"
CONNECT_TIMEOUT = 10
PG_NUM = 32


def mon_dir(name: str) -> str:
    return f"/var/lib/ceph/mon/{CLUSTER}-{name}"


def mgr_dir(name: str) -> str:
    return f"/var/lib/ceph/mgr/{CLUSTER}-{name}"


def osd_dir(osd_id: int) -> str:
    return f"/var/lib/ceph/osd/{CLUSTER}-{osd_id}"


def osd_uuid(doc: Document) -> str:
    """Stable across re-runs and re-creations of the node: the same node name gets the same OSD id back."""
    return str(uuid.uuid5(uuid.UUID(str(doc.secrets["ceph_fsid"])), f"osd:{doc.node.name}"))


def monmap_args(doc: Document) -> list[str]:
    """monmaptool arguments naming every monitor with its msgr2 address (identical on every monitor)."""
    args = []
    for mon in doc.ceph_monitors:
        args += ["--addv", mon.name, mon.ceph_mon_vector]
    return args


def is_monitor(doc: Document) -> bool:
    return any(m.name == doc.node.name for m in doc.ceph_monitors)


def ceph(*args: str, timeout: float = 120) -> str:
    return proc.run(["ceph", "--connect-timeout", str(CONNECT_TIMEOUT), *args], timeout=timeout).stdout


def ceph_json(*args: str, timeout: float = 120) -> Any:
    return json.loads(ceph(*args, "--format", "json", timeout=timeout) or "null")


def _chown_ceph(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        shutil.chown(p, "ceph", "ceph")


def _write_keyring(path: Path, text: str) -> None:
    """Keyrings are read by the daemons after they drop to the ceph user: private to it."""
    files.atomic_write(path, text.encode(), 0o600, *files.resolve_ids("ceph", "ceph"))


def _other_monitor_listens(doc: Document) -> bool:
    """Another monitor of the document accepts connections (so a cluster may already run)."""
    for mon in doc.ceph_monitors:
        if mon.name != doc.node.name:
            try:
                with socket.create_connection((mon.ceph_address, catalog.PORTS["ceph-mon"]), timeout=1):
                    return True
            except OSError:
                continue
    return False


def _running_monmap(doc: Document, path: Path) -> list[str] | None:
    """The running cluster's monmap, written to `path`, and the monitors it names; None when no quorum
    answers (the cluster is being formed)."""
    if not _other_monitor_listens(doc):
        return None
    try:
        proc.run(["ceph", "--connect-timeout", "5", "mon", "getmap", "-o", str(path)], timeout=20)
    except (proc.CommandFailed, TimeoutError):
        return None
    printed = proc.run(["monmaptool", "--print", str(path)]).stdout
    return [line.rsplit("mon.", 1)[1].strip() for line in printed.splitlines() if " mon." in line]


def make_monitor(doc: Document, root: Path) -> bool:
    """Create this node's monitor store, from the running cluster's monmap when it runs (a storage node added
    to a site, or made a monitor by its growth), else from the document's monitors and the shared keyring;
    False when it exists."""
    name = doc.node.name
    data = root / mon_dir(name).lstrip("/")
    if (data / "done").exists():
        return False
    if data.exists():
        shutil.rmtree(data)  # a mkfs cut off half-way
    data.mkdir(parents=True)
    _chown_ceph(data)
    monmap = root / "var/lib/ceph/tmp/goldstack-monmap"
    monmap.parent.mkdir(parents=True, exist_ok=True)
    monmap.unlink(missing_ok=True)
    members = _running_monmap(doc, monmap)
    if members is None:
        proc.run(["monmaptool", "--create", "--fsid", str(doc.secrets["ceph_fsid"]), *monmap_args(doc),
                  str(monmap)])
    _chown_ceph(monmap)
    # ceph-mon reads the keyring after dropping to the ceph user: hand it a private copy it owns.
    keyring = monmap.with_name("goldstack-mon-keyring")
    _write_keyring(keyring, (root / MON_KEYRING.lstrip("/")).read_text())
    try:
        proc.run(["ceph-mon", "--cluster", CLUSTER, "--mkfs", "-i", name, "--monmap", str(monmap),
                  "--keyring", str(keyring), "--setuser", "ceph", "--setgroup", "ceph"])
    finally:
        keyring.unlink(missing_ok=True)
        monmap.unlink(missing_ok=True)
    if members is not None and name not in members:
        ceph("mon", "add", name, doc.node.ceph_address)
    (data / "done").touch()
    _chown_ceph(data)
    return True


def quorum() -> list[str]:
    """Names of the monitors in quorum; empty when no quorum answers."""
    try:
        status = ceph_json("quorum_status", timeout=CONNECT_TIMEOUT * 3)
    except (proc.CommandFailed, ValueError):
        return []
    return list(status.get("quorum_names", [])) if status else []


def make_manager(name: str, root: Path) -> bool:
    data = root / mgr_dir(name).lstrip("/")
    keyring = data / "keyring"
    if keyring.exists():
        return False
    data.mkdir(parents=True, exist_ok=True)
    key = ceph("auth", "get-or-create", f"mgr.{name}", "mon", "allow profile mgr", "osd", "allow *",
               "mds", "allow *")
    _write_keyring(keyring, key)
    _chown_ceph(data)
    return True


def osd_id(doc: Document) -> int:
    """This node's OSD id, registered in the cluster map if it is not yet (`ceph osd new` is idempotent
    for a known UUID)."""
    return int(ceph("osd", "new", osd_uuid(doc)).strip())


class DeviceRefused(GoldstackError):
    """The OSD's device is not one the step may take."""


def signatures(device: str) -> list[str]:
    """What blkid finds on `device` (a file system, a partition table, an old OSD's label): the data an OSD
    made on it would destroy. Empty when it holds none."""
    found = proc.run(["blkid", "-p", "-o", "export", device], ok_codes=(0, 2)).stdout  # 2: nothing found
    fields = dict(line.split("=", 1) for line in found.splitlines() if "=" in line)
    return [f"{what} {fields[key]}" for key, what in (("TYPE", "a file system or label:"),
                                                       ("PTTYPE", "a partition table:")) if key in fields]


def check_osd_device(device: str, wipe: bool) -> None:
    """Refuse a device that is no block device, or that holds data, unless the document says to wipe it."""
    try:
        mode = os.stat(device).st_mode
    except OSError as exc:
        raise DeviceRefused(f"osd_device {device}: {exc.strerror}") from None
    if not stat.S_ISBLK(mode):
        raise DeviceRefused(f"osd_device {device} is not a block device")
    if (found := signatures(device)) and not wipe:
        raise DeviceRefused(f"osd_device {device} holds {'; '.join(found)}. It is left as it is; to let the OSD "
                            "step erase it, set options.ceph_osd_wipe: true")
    if found:
        proc.run(["wipefs", "--all", device])


def make_osd(doc: Document, root: Path, osd: int) -> bool:
    """A BlueStore OSD on the node's data disk when the document names one, else on a file."""
    data = root / osd_dir(osd).lstrip("/")
    if (data / "goldstack-ready").exists():
        return False
    if doc.node.osd_device:
        check_osd_device(doc.node.osd_device, doc.options["ceph_osd_wipe"])
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    block = data / "block"
    if doc.node.osd_device:
        block.symlink_to(doc.node.osd_device)
        shutil.chown(doc.node.osd_device, "ceph", "ceph")
    else:
        with open(block, "wb") as f:
            f.truncate(doc.options["ceph_osd_file_size_gb"] << 30)  # sparse: space is used as data arrives
    key = ceph("auth", "get-or-create", f"osd.{osd}", "mon", "allow profile osd", "mgr", "allow profile osd",
               "osd", "allow *")
    _write_keyring(data / "keyring", key)
    _chown_ceph(data)
    proc.run(["ceph-osd", "--cluster", CLUSTER, "-i", str(osd), "--mkfs", "--osd-uuid", osd_uuid(doc),
              "--osd-objectstore", "bluestore", "--osd-data", str(data), "--setuser", "ceph", "--setgroup", "ceph"],
             timeout=600)
    (data / "goldstack-ready").touch()
    _chown_ceph(data)
    return True


def osd_up(osd: int) -> bool:
    try:
        dump = ceph_json("osd", "dump")
    except (proc.CommandFailed, ValueError):
        return False
    return any(o.get("osd") == osd and o.get("up") == 1 and o.get("in") == 1 for o in dump.get("osds", []))


def ensure_pools(size: int) -> list[str]:
    """The OpenStack pools with the rbd application, and every pool (Ceph's own .mgr too, made with the size of
    its day) with `size` replicas; returns the pools created now."""
    existing = set(ceph_json("osd", "pool", "ls") or [])
    created = []
    for pool in catalog.CEPH_POOLS:
        if pool not in existing:
            ceph("osd", "pool", "create", pool, str(PG_NUM), str(PG_NUM), "replicated", "--size", str(size))
            created.append(pool)
        ceph("osd", "pool", "application", "enable", pool, "rbd")
    for pool in sorted(existing | set(catalog.CEPH_POOLS)):
        ceph("osd", "pool", "set", pool, "size", str(size), *(["--yes-i-really-mean-it"] if size == 1 else []))
        ceph("osd", "pool", "set", pool, "min_size", str(catalog.ceph_min_size(size)))
    return created


def pools_ready(size: int) -> bool:
    try:
        details = ceph_json("osd", "pool", "ls", "detail")
    except (proc.CommandFailed, ValueError):
        return False
    found = {p.get("pool_name"): p for p in details or []}
    return all(pool in found and "rbd" in found[pool].get("application_metadata", {}) for pool in catalog.CEPH_POOLS) \
        and all(p.get("size") == size for p in found.values())


def pgs_active() -> tuple[bool, str]:
    """Every placement group is active (I/O can be served); the reason otherwise."""
    try:
        stat = ceph_json("pg", "stat")
    except (proc.CommandFailed, ValueError):
        return False, "the monitors do not answer"
    summary = stat.get("pg_summary", stat) if isinstance(stat, dict) else {}
    total = summary.get("num_pgs", 0)
    states = {s["name"]: s["num"] for s in summary.get("num_pg_by_state", [])}
    active = sum(n for state, n in states.items() if "active" in state.split("+"))
    if total == 0:
        return False, "no placement groups yet"
    return active == total, f"{active}/{total} placement groups active ({', '.join(sorted(states))})"


def health() -> dict[str, Any]:
    """`ceph health detail` as JSON: status and the checks raised."""
    return ceph_json("health", "detail")

