"""The node document: parse, validate and expose it as typed, immutable data.

Validation collects every problem with its dotted field path before anything is applied, so a bad
document is reported once, completely, and never half-applied. docs/metadata.md describes the format.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from firstboot import catalog, ini, tls
from firstboot import secrets as secretspec
from firstboot.addresses import hostport
from firstboot.errors import FieldProblem, InvalidInput

VERSION = 1
ROLES = catalog.ROLES
NETWORKS = ("management", "tunnel", "provider", "storage")
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_REGION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_IFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_DEVICE = re.compile(r"^/dev/[A-Za-z0-9/_.:-]+$")
_MAC = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_VOLUME_GROUP = re.compile(r"[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,126}")
_HOST_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                        r"[A-Za-z0-9])?)*\.?")
# What any document may hold, whoever wrote it: its size before parsing, and after parsing (aliases
# expanded) how many values and how deep. The lab's controller document: 4 KB, 82 values.
MAX_BYTES = 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 32
# C0 controls but tab, line feed and carriage return, and DEL: no file a document reaches carries them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Line breaks as any reader may take them: Python's str.splitlines also breaks at NEL and the Unicode line and
# paragraph separators.
_LINE_BREAK = re.compile("[\r\n\x85\u2028\u2029]")


@dataclass(frozen=True)
class Option:
    """A tunable with its default and the check of a value given in the document."""

    default: Any
    check: Callable[[Any], str | None]
    help: str


def _one_of(*allowed: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}"


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be a whole number from {lo} to {hi}"
        return None

    return check


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _matching(pattern: re.Pattern, what: str) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and pattern.fullmatch(v) else f"must be {what}"


def _host_list(v: Any) -> str | None:
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        return "must be a list of host names or addresses"
    for x in v:
        if not _HOST_NAME.fullmatch(x) and not _is_address(x):
            return f"{x!r} is neither a host name (letters, digits, '-' and '.') nor an IP address"
    return None


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


OPTIONS: dict[str, Option] = {
    "cinder_backend": Option("rbd", _one_of("rbd", "lvm"), "rbd (Ceph) or lvm (LVM + iSCSI, needs device-mapper)"),
    "lvm_volume_group": Option("cinder-volumes", _matching(_VOLUME_GROUP, "a volume group name: letters, digits "
                                                         "and + _ . - (not first), at most 127"),
                               "volume group of the lvm backend"),
    "virt_type": Option("auto", _one_of("auto", "kvm", "qemu"), "auto probes whether a KVM guest can start"),
    "ceph_osd_file_size_gb": Option(8, _int_range(1, 4096), "size of the file-backed OSD when no disk is named"),
    "ceph_osd_wipe": Option(False, _boolean, "let the OSD step erase an osd_device that holds a file system, a "
                            "partition table or an old OSD (else it is refused and left as it is)"),
    "ceph_pool_size": Option(0, _int_range(0, 3), "replicas per pool; 0 = min(3, number of storage nodes)"),
    "ceph_osd_memory_mb": Option(1024, _int_range(896, 65536),
                                 "memory each OSD aims to use for caches (Ceph's minimum is 896)"),
    "ntp_servers": Option([], _host_list, "upstream time servers; empty = controllers serve time to the rest"),
    "debug": Option(False, _boolean, "debug logging in every OpenStack service"),
    "api_workers": Option(2, _int_range(1, 64),
                          "processes per API service (uWSGI) and per worker service (nova-conductor, "
                          "nova-scheduler, glance-api, neutron RPC and metadata); memory grows with each"),
    "cluster_wait_seconds": Option(1800, _int_range(60, 86400),
                                   "how long a controller waits for its peers (Galera, RabbitMQ, run-once tasks) "
                                   "before its agent run fails"),
    "stop_after": Option("", lambda v: None if isinstance(v, str) else "must be a step name or empty",
                         "stop the agent after this step (staged installs, image tests); empty = every step"),
    "tenant_network_type": Option("vxlan", _one_of("vxlan", "flat"), "project network type of ML2"),
}


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    addresses: dict[str, str]
    interfaces: dict[str, str] = field(default_factory=dict)
    osd_device: str | None = None
    macs: dict[str, str] = field(default_factory=dict)  # the NIC of each network, for a VM's or machine's seed

    @property
    def management(self) -> str:
        return self.addresses["management"]

    @property
    def ceph_address(self) -> str:
        """Where a storage node's Ceph daemons listen: its storage network address, else management."""
        return self.addresses.get("storage", self.management)

    @property
    def ceph_mon_vector(self) -> str:
        """This node's monitor address as monmaptool and ceph.conf's mon_host write it: msgr2 only (the v1
        protocol cannot encrypt)."""
        return f"[v2:{hostport(self.ceph_address, catalog.PORTS['ceph-mon'])}]"


@dataclass(frozen=True)
class Document:
    cluster: str
    region: str
    node: Node
    peers: dict[str, list[Node]]
    vip: str
    vip_hostname: str | None
    networks: dict[str, str]
    secrets: dict[str, Any]
    options: dict[str, Any]
    overrides: dict[str, dict[str, dict[str, Any]]]
    fingerprint: str
    tls: tls.NodeTls

    @property
    def role(self) -> str:
        return self.node.role

    @property
    def private_strings(self) -> set[str]:
        """Every string of this document a log line or a state file must never show."""
        keys = (k for k in (self.tls.key, self.tls.api_key) if k)
        return secretspec.secret_strings(self.secrets).union(*(tls.pem_secrets(k) for k in keys))

    @property
    def controllers(self) -> list[Node]:
        return self.peers.get(catalog.CONTROLLER, [])

    @property
    def computes(self) -> list[Node]:
        return self.peers.get(catalog.COMPUTE, [])

    @property
    def storages(self) -> list[Node]:
        return self.peers.get(catalog.STORAGE, [])

    @property
    def all_nodes(self) -> list[Node]:
        return [n for role in ROLES for n in self.peers.get(role, [])]

    # --- the site's topology, as the renderer and the steps need it

    @property
    def ceph_enabled(self) -> bool:
        """Ceph runs on the storage nodes whenever the site has any."""
        return bool(self.storages)

    @property
    def rbd_volumes(self) -> bool:
        return self.ceph_enabled and self.options["cinder_backend"] == "rbd"

    @property
    def lvm_volumes(self) -> bool:
        return self.options["cinder_backend"] == "lvm"

    @property
    def features(self) -> frozenset[str]:
        """The catalog's features this site has (which decide the files a node gets)."""
        flags = {catalog.CEPH: self.ceph_enabled, catalog.RBD_VOLUMES: self.rbd_volumes,
                 catalog.LVM_VOLUMES: self.lvm_volumes}
        return frozenset(name for name, on in flags.items() if on)

    @property
    def ceph_monitors(self) -> list[Node]:
        """Monitors run on the first storage nodes by name: as many as the largest odd number the site's storage
        nodes allow, up to catalog.MAX_CEPH_MONITORS (two monitors survive no more losses than one, and
        each must answer for the other to work)."""
        count = min(catalog.MAX_CEPH_MONITORS, len(self.storages))
        return sorted(self.storages, key=lambda n: n.name)[:count - (count + 1) % 2] if count else []

    @property
    def ceph_pool_size(self) -> int:
        """Replicas per pool: the document's option, else one per storage node up to three."""
        return self.options["ceph_pool_size"] or min(3, max(1, len(self.storages)))


class _StrictLoader(yaml.SafeLoader):
    """safe_load's loader, refusing a key given twice in one mapping (YAML and JSON keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):
                continue  # not hashable as Python reads it: SafeLoader refuses it with its own message
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _bounded(data: Any, path: str = "(document)") -> FieldProblem | None:
    """The first way `data` exceeds what a document may be: too many values (aliases counted as often as
    they are used, so a few lines cannot stand for billions), too deep, or a control character in a string."""
    count = 0
    stack: list[tuple[Any, str, int]] = [(data, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        count += 1
        if count > MAX_VALUES:
            return FieldProblem("(document)", f"holds more than {MAX_VALUES} values (aliases expanded); "
                                "the lab's controller document holds 82")
        if depth > MAX_DEPTH:
            return FieldProblem(where, f"nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, str) and _CONTROL.search(value):
            return FieldProblem(where, "holds a control character (NUL, ESC, ...): no configuration file can "
                                "carry it; remove it")
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and (_CONTROL.search(key) or _LINE_BREAK.search(key)):
                    return FieldProblem(f"{where}.{key!r}", "is a key with a line break or control character")
                stack.append((item, f"{where}.{key}" if where != "(document)" else str(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
    return None


def text_of(data: bytes, source: str) -> str:
    """A document's bytes as text: UTF-8 only, or one message saying where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(source, [FieldProblem("(document)", f"is not UTF-8 text (byte 0x{data[exc.start]:02x} "
                                                 f"at offset {exc.start}); save it as UTF-8")]) from None


def parse_text(text: str, source: str) -> dict[str, Any]:
    """YAML or JSON text -> mapping; a `#cloud-config` user-data carries the document under `goldstack`.
    Bounded before anything reads it further: size, values, depth, control characters, repeated keys."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        raise InvalidInput(source, [FieldProblem("(document)", f"is {size} bytes; a document may be at most "
                                                 f"{MAX_BYTES} (1 MiB, docs/metadata.md)")])
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no tags but YAML's own
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(source, [FieldProblem("(document)", f"is not valid YAML/JSON{where}: {problem}")]) from None
    except RecursionError:
        raise InvalidInput(source, [FieldProblem("(document)", f"nests deeper than {MAX_DEPTH} levels")]) from None
    problem = _bounded(data)
    if problem:
        raise InvalidInput(source, [problem])
    if isinstance(data, dict) and text.lstrip().startswith("#cloud-config") and "goldstack" in data:
        data = data["goldstack"]
    if not isinstance(data, dict):
        raise InvalidInput(source, [FieldProblem("(document)", "must be a mapping with version, node, peers, ...")])
    return data


class Checker:
    """Collects problems while walking the raw mapping."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(FieldProblem(path, message))

    def mapping(self, data: Any, path: str, allowed: set[str], required: set[str] = frozenset()) -> dict:
        if not isinstance(data, dict):
            self.add(path, "must be a mapping")
            return {}
        for key in sorted(set(data) - allowed, key=str):
            self.add(f"{path}.{key}", f"is not a known field (known: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(data)):
            self.add(f"{path}.{key}", "is missing")
        return data

    def string(self, data: dict, key: str, path: str, pattern: re.Pattern | None = None,
               hint: str = "") -> str | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str) or not value:
            self.add(f"{path}.{key}", "must be a non-empty string")
            return None
        if pattern and not pattern.fullmatch(value):  # not .match: `$` also matches before a final newline
            self.add(f"{path}.{key}", f"{value!r} is not valid{': ' + hint if hint else ''}")
            return None
        return value

    def address(self, value: Any, path: str) -> str | None:
        """A node's or the VIP's address: one a host can be reached at, in its shortest form."""
        try:
            ip = ipaddress.ip_address(value if isinstance(value, str) else str(value))
        except ValueError:
            self.add(path, f"{value!r} is not an IP address")
            return None
        if why := _unusable(ip):
            self.add(path, f"{value} is {why}; no node or VIP can have it")
            return None
        return str(ip)


def _unusable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why no host can be reached at `ip`, if so."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return "an IPv4-mapped IPv6 address (write the IPv4 address itself)"
    for why, test in (("the unspecified address", ip.is_unspecified), ("a loopback address", ip.is_loopback),
                      ("a multicast address", ip.is_multicast), ("a link-local address", ip.is_link_local),
                      ("a reserved address", ip.is_reserved)):
        if test:
            return why
    return None


def parse_node(chk: Checker, raw: Any, path: str, role: str | None) -> Node | None:
    data = chk.mapping(raw, path, {"name", "role", "addresses", "interfaces", "macs", "osd_device"},
                       {"name"} | ({"role"} if role is None else set()))
    name = chk.string(data, "name", path, NAME_PATTERN, "lower-case letters, digits and '-', like ctl1")
    node_role = role
    if role is None:
        node_role = chk.string(data, "role", path)
        if node_role is not None and node_role not in ROLES:
            chk.add(f"{path}.role", f"{node_role!r} is not a role; use one of {', '.join(ROLES)}")
            node_role = None
    addresses: dict[str, str] = {}
    raw_addr = data.get("addresses")
    if raw_addr is not None or role is not None:
        amap = chk.mapping(raw_addr, f"{path}.addresses", set(NETWORKS), {"management"})
        for net, value in amap.items():
            if net in NETWORKS and (ip := chk.address(value, f"{path}.addresses.{net}")):
                addresses[net] = ip
    interfaces: dict[str, str] = {}
    if "interfaces" in data:
        imap = chk.mapping(data["interfaces"], f"{path}.interfaces", set(NETWORKS))
        for net in imap:
            if net in NETWORKS and (iface := chk.string(imap, net, f"{path}.interfaces", _IFACE, "an interface name")):
                interfaces[net] = iface
    macs: dict[str, str] = {}
    if "macs" in data:
        mmap = chk.mapping(data["macs"], f"{path}.macs", set(NETWORKS))
        for net in mmap:
            if isinstance(mmap[net], int):  # YAML 1.1 reads 52:54:00:12:34:56 as a base-60 number
                chk.add(f"{path}.macs.{net}", "was read as a number: quote the MAC, like \"52:54:00:12:34:56\"")
                continue
            if net in NETWORKS and (mac := chk.string(mmap, net, f"{path}.macs", _MAC,
                                                      "a MAC address like 52:54:00:12:34:56")):
                if net not in addresses:
                    chk.add(f"{path}.macs.{net}", f"names the NIC of {net}, but the node has no {net} address: "
                            f"add addresses.{net} or remove macs.{net}")
                macs[net] = mac
    osd_device = chk.string(data, "osd_device", path, _DEVICE, "a block device path like /dev/vdb")
    if osd_device and (posixpath.normpath(osd_device) != osd_device or osd_device.startswith("//")):
        chk.add(f"{path}.osd_device", f"{osd_device!r} is not a plain device path: write it without '.', '..', "
                "'//' or a final '/', like /dev/vdb (the OSD step takes the device it names)")
        osd_device = None
    if name is None or node_role is None:
        return None
    return Node(name, node_role, addresses, interfaces, osd_device, macs)


Entry = tuple[str, Node]  # (field path of the node, the node)


def _check_peers(chk: Checker, raw: Any) -> tuple[dict[str, list[Node]], list[Entry]]:
    pmap = chk.mapping(raw, "peers", set(ROLES), {"controller"})
    peers: dict[str, list[Node]] = {}
    entries: list[Entry] = []
    for role in ROLES:
        items = pmap.get(role, [])
        if not isinstance(items, list):
            chk.add(f"peers.{role}", "must be a list of nodes")
            continue
        peers[role] = []
        for i, item in enumerate(items):
            if n := parse_node(chk, item, f"peers.{role}[{i}]", role):
                peers[role].append(n)
                entries.append((f"peers.{role}[{i}]", n))
    if "controller" in pmap:
        check_controller_count(chk, len(pmap["controller"] or []) if isinstance(pmap["controller"], list) else 0,
                               "peers.controller")
    check_node_set(chk, entries)
    return peers, entries


def check_controller_count(chk: Checker, count: int, path: str) -> None:
    if count == 0:
        chk.add(path, "lists no controller; a cluster needs 1 (lab) or at least 3 (HA)")
    elif count == 2:
        chk.add(path, "lists 2 controllers; Galera cannot keep quorum when one of two fails: "
                "use 1 (lab) or 3 or more (HA)")


def check_node_set(chk: Checker, entries: list[Entry]) -> None:
    """Names unique across the site; each address, and each NIC's MAC, used by one node only."""
    names: dict[str, str] = {}
    seen_addr: dict[tuple[str, str], str] = {}
    seen_mac: dict[str, tuple[str, str]] = {}
    for where, n in entries:
        if n.name in names:
            chk.add(f"{where}.name", f"{n.name!r} is used twice (also {names[n.name]}); node names must be unique")
        names.setdefault(n.name, where)
        for net, ip in n.addresses.items():
            if (net, ip) in seen_addr:
                chk.add(f"{where}.addresses.{net}", f"{ip} is also the address of {seen_addr[(net, ip)]}")
            seen_addr.setdefault((net, ip), n.name)
        for net, mac in n.macs.items():
            if owner := seen_mac.get(mac.lower()):
                chk.add(f"{where}.macs.{net}", f"{mac} is also the NIC of {owner[0]}'s {owner[1]} network; each "
                        "network of each node needs a NIC of its own")
            seen_mac.setdefault(mac.lower(), (n.name, net))


def check_vip(chk: Checker, raw: Any, entries: list[Entry]) -> tuple[str | None, str | None]:
    raw_vip = raw if isinstance(raw, dict) else {"address": raw}
    vmap = chk.mapping(raw_vip, "vip", {"address", "hostname"}, {"address"})
    vip = chk.address(vmap["address"], "vip.address") if "address" in vmap else None
    hostname = chk.string(vmap, "hostname", "vip", re.compile(r"^[A-Za-z0-9.-]+$"), "a DNS name")
    for where, n in entries:
        if vip and vip in n.addresses.values():
            chk.add("vip.address", f"{vip} is also the address of {where} ({n.name}); "
                    "the VIP must be an address of its own")
    return vip, hostname


def check_networks(chk: Checker, raw: Any, entries: list[Entry], vip: str | None) -> dict[str, str]:
    nmap = chk.mapping(raw, "networks", set(NETWORKS))
    nets: dict[str, str] = {}
    for net, cidr in nmap.items():
        if net not in NETWORKS:
            continue
        try:
            network = ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            chk.add(f"networks.{net}", f"{cidr!r} is not a network in CIDR form like 10.10.0.0/24")
            continue
        nets[net] = str(network)
        placed = [(f"{where}.addresses.{net}", n.addresses.get(net)) for where, n in entries]
        if net == "management":
            placed.append(("vip.address", vip))
        for path, ip in placed:
            if ip and (why := _outside(ipaddress.ip_address(ip), network)):
                chk.add(path, f"{ip} is {why} networks.{net} ({network})")
    return nets


def _outside(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
             network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str | None:
    """Why `ip` cannot be a host of `network`: outside it, or its network or broadcast address."""
    if ip not in network:
        return "outside"
    if network.num_addresses > 2 and ip == network.network_address:
        return "the network address of"
    if network.version == 4 and network.num_addresses > 2 and ip == network.broadcast_address:
        return "the broadcast address of"
    return None


def check_one_family(chk: Checker, entries: list[Entry], vip: str | None) -> None:
    """Every node's address on one network, and the VIP with the management addresses, are of one IP version:
    the services bind one address family per network."""
    for net in NETWORKS:
        placed = [(f"{where}.addresses.{net}", n.addresses[net]) for where, n in entries if net in n.addresses]
        if net == "management" and vip:
            placed.insert(0, ("vip.address", vip))
        if placed:
            first = ipaddress.ip_address(placed[0][1]).version
            for path, ip in placed[1:]:
                if ipaddress.ip_address(ip).version != first:
                    chk.add(path, f"{ip} is IPv{6 if first == 4 else 4} but {placed[0][0]} is IPv{first}: "
                            f"give every {net} address (and the VIP) one IP version")


def check_options(chk: Checker, raw: Any) -> dict[str, Any]:
    omap = chk.mapping(raw, "options", set(OPTIONS))
    options = {name: opt.default for name, opt in OPTIONS.items()}
    for name, value in omap.items():
        if name in OPTIONS:
            if msg := OPTIONS[name].check(value):
                chk.add(f"options.{name}", msg)
            else:
                options[name] = value
    return options


def tls_names(node: Node, vip: str | None, vip_hostname: str | None) -> set[str]:
    """What a node's certificate must name: the node and its addresses; a controller's also the VIP (HAProxy
    presents it there, and MariaDB behind the VIP's TCP proxy)."""
    names = {node.name, *node.addresses.values()}
    if node.role == catalog.CONTROLLER:
        names |= {n for n in (vip, vip_hostname) if n}
    return names


def _check_tls(chk: Checker, raw: Any, me: Node | None, vip: str | None, vip_hostname: str | None) -> None:
    names = tls_names(me, vip, vip_hostname) if me else set()
    for path, message in tls.check_node(raw, names, api_names={n for n in (vip, vip_hostname) if n}):
        chk.add(path, message)
    if me and me.role != catalog.CONTROLLER and isinstance(raw, dict) and "api_cert" in raw:
        chk.add("tls.api_cert", f"is for controllers (they present it on the VIP); a {me.role} gets api_ca only")


def _check_secrets(chk: Checker, raw: Any, role: str | None) -> dict[str, Any]:
    smap = chk.mapping(raw, "secrets", {s.name for s in secretspec.SECRETS if s.roles})
    needed = {s.name for s in secretspec.needed_by(role)} if role else set()
    for name in sorted(needed - set(smap)):
        chk.add(f"secrets.{name}", f"is missing; a {role} needs it ({secretspec.SECRETS_BY_NAME[name].purpose})")
    for name, value in smap.items():
        if name in secretspec.SECRETS_BY_NAME and (msg := secretspec.check(name, value)):
            chk.add(f"secrets.{name}", msg)
    return {k: v for k, v in smap.items() if k in secretspec.SECRETS_BY_NAME}


def _check_overrides(chk: Checker, raw: Any, role: str | None) -> dict[str, dict[str, dict[str, Any]]]:
    targets = catalog.override_targets(role) if role else set()
    omap = chk.mapping(raw, "overrides", targets or {"(none for this role)"})
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for target, sections in omap.items():
        if target not in targets:
            continue
        smap = chk.mapping(sections, f"overrides.{target}", set(sections) if isinstance(sections, dict) else set())
        for section, keys in smap.items():
            path = f"overrides.{target}.{section}"
            if not isinstance(section, str) or not re.fullmatch(r"[A-Za-z0-9_.:-]+", section):
                chk.add(path, "is not a valid INI section name")
                continue
            if not isinstance(keys, dict):
                chk.add(path, "must be a mapping of option: value")
                continue
            for key, value in keys.items():
                if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                    chk.add(f"{path}.{key}", "is not a valid option name")
                elif not _one_line(value) and not (isinstance(value, list) and all(_one_line(v) for v in value)):
                    chk.add(f"{path}.{key}", "must be a single-line string, number, boolean or a list of them "
                            "(no line break: it would start a new option or section in the file)")
                elif why := ini.value_problem(value, catalog.override_reader(target)):
                    chk.add(f"{path}.{key}", why)
            result.setdefault(target, {})[section] = dict(keys)
    return result


def _one_line(value: Any) -> bool:
    return isinstance(value, (int, float, bool)) or (isinstance(value, str) and not _LINE_BREAK.search(value))


def validate(data: dict[str, Any], source: str = "document") -> Document:
    """Check everything, then build the Document; raise InvalidInput listing every problem."""
    chk = Checker()
    top = chk.mapping(data, "(document)", {"version", "cluster", "region", "node", "peers", "vip", "networks",
                                           "secrets", "options", "overrides", "tls"},
                      {"version", "cluster", "node", "peers", "vip", "secrets", "tls"})
    if "version" in top and (type(top["version"]) is not int or top["version"] != VERSION):  # true == 1
        chk.add("version", f"{top['version']!r} is not supported; this agent reads version {VERSION}")
    cluster = chk.string(top, "cluster", "(document)", NAME_PATTERN, "lower-case letters, digits and '-'")
    region = chk.string(top, "region", "(document)", _REGION, "letters, digits, '_', '-' or '.'") or "RegionOne"
    node = parse_node(chk, top["node"], "node", None) if "node" in top else None
    peers, entries = _check_peers(chk, top["peers"]) if "peers" in top else ({}, [])
    vip, vip_hostname = check_vip(chk, top["vip"], entries) if "vip" in top else (None, None)

    me = None
    if node is not None:
        same = [p for p in peers.get(node.role, []) if p.name == node.name]
        if not same:
            chk.add(f"peers.{node.role}", f"does not list this node ({node.name}); every node lists itself "
                    "among its peers, under its own role")
        else:
            me = same[0]
            for net, ip in node.addresses.items():
                if me.addresses.get(net) != ip:
                    chk.add(f"node.addresses.{net}", f"{ip} differs from the peer list ({me.addresses.get(net)})")
            me = Node(me.name, me.role, me.addresses, node.interfaces or me.interfaces,
                      node.osd_device or me.osd_device, node.macs or me.macs)

    networks = check_networks(chk, top.get("networks", {}), entries, vip)
    check_one_family(chk, entries, vip)
    role = node.role if node else None
    secret_values = _check_secrets(chk, top["secrets"], role) if "secrets" in top else {}
    options = check_options(chk, top.get("options", {}))
    # Which overrides a node may have follows from its role: unknown, they are not judged (the role's own
    # message says why).
    overrides = _check_overrides(chk, top.get("overrides", {}), role) if role else {}
    if "tls" in top:
        _check_tls(chk, top["tls"], me, vip, vip_hostname)

    if chk.problems:
        raise InvalidInput(source, chk.problems)
    assert cluster and me and vip  # guaranteed when no problem was found
    canonical = json.dumps(data, sort_keys=True, default=str).encode()
    doc = Document(cluster=cluster, region=region, node=me, peers=peers, vip=vip, vip_hostname=vip_hostname,
                   networks=networks, secrets=secret_values, options=options, overrides=overrides,
                   fingerprint=hashlib.sha256(canonical).hexdigest()[:16], tls=tls.NodeTls(**top["tls"]))
    rendered = catalog.override_targets(me.role, doc.features)
    if unrendered := sorted(set(overrides) - rendered):
        raise InvalidInput(source, [FieldProblem(f"overrides.{t}", f"this site renders no {t} file for a {me.role} "
                                                 "(Ceph's needs storage nodes; cinder's LVM needs cinder_backend lvm)"
                                                 "; remove the override") for t in unrendered])
    return doc


def load_text(text: str, source: str) -> Document:
    return validate(parse_text(text, source), source)
