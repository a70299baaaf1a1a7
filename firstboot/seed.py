"""Turn a site inventory into per-node seeds, with the site's secrets made once and kept apart.

Everything is validated and built in a scratch directory first; only then are node directories
swapped into place, so a bad inventory leaves the output untouched.
"""

from __future__ import annotations

import io
import ipaddress
import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from firstboot import catalog, document, tls
from firstboot import secrets as secretspec
from firstboot.document import Checker, parse_node
from firstboot.errors import FieldProblem, InvalidInput
from firstboot.files import atomic_write
from firstboot.sources.base import NODE_FILE

FORMATS = ("file", "nocloud", "nocloud-iso", "configdrive", "configdrive-iso")
NOCLOUD_LABEL = "cidata"
CONFIGDRIVE_LABEL = "config-2"


@dataclass(frozen=True)
class Inventory:
    data: dict[str, Any]
    nodes: list[dict[str, Any]]


def load_inventory(path: Path) -> Inventory:
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(source, [FieldProblem("(file)", f"cannot be read: {exc.strerror}")]) from None
    data = document.parse_text(text, source)
    chk = Checker()
    top = chk.mapping(data, "(inventory)", {"cluster", "region", "vip", "networks", "options", "overrides",
                                            "nodes", "tls"}, {"cluster", "vip", "nodes"})
    chk.string(top, "cluster", "(inventory)", document.NAME_PATTERN, "lower-case letters, digits and '-'")
    nodes_raw = top.get("nodes", [])
    entries = []
    if not isinstance(nodes_raw, list) or not nodes_raw:
        chk.add("nodes", "must be a non-empty list of {name, role, addresses}")
        nodes_raw = []
    for i, item in enumerate(nodes_raw):
        if node := parse_node(chk, item, f"nodes[{i}]", None):
            if not node.addresses:
                chk.add(f"nodes[{i}].addresses.management", "is missing")
            entries.append((f"nodes[{i}]", node))
    if nodes_raw:
        document.check_controller_count(
            chk, sum(1 for _, n in entries if n.role == catalog.CONTROLLER), "nodes (role: controller)")
    document.check_node_set(chk, entries)
    vip = document.check_vip(chk, top["vip"], entries)[0] if "vip" in top else None
    document.check_networks(chk, top.get("networks", {}), entries, vip)
    document.check_options(chk, top.get("options", {}))
    known_targets = set().union(*(catalog.override_targets(r) for r in document.ROLES))
    chk.mapping(top.get("overrides", {}), "overrides", known_targets)
    if "tls" in top:
        top = {**top, "tls": _own_tls(chk, top["tls"], path.parent, top.get("vip"))}
    if chk.problems:
        raise InvalidInput(source, chk.problems)
    return Inventory(top, nodes_raw)


TLS_FILES = {"ca_cert": ("ca", "cert"), "ca_key": ("ca", "key"), "api_cert": ("api", "cert"),
             "api_key": ("api", "key"), "api_ca": ("api", "ca")}


def _vip_names(vip: Any) -> tuple[str | None, str | None]:
    return (vip.get("address"), vip.get("hostname")) if isinstance(vip, dict) else (vip, None)


def _own_tls(chk: Checker, raw: Any, base: Path, vip: Any) -> dict[str, dict[str, str]]:
    """The inventory's `tls:` files (paths relative to the inventory): the user's CA (ca_cert, ca_key), which
    signs the node certificates instead of the site CA, and/or the user's API certificate for the VIP
    (api_cert, api_key and api_ca, its issuer)."""
    tmap = chk.mapping(raw, "tls", set(TLS_FILES))
    pem: dict[str, dict[str, str]] = {}
    for key, (group, part) in TLS_FILES.items():
        if key not in tmap:
            continue
        file = base / str(tmap[key])
        try:
            pem.setdefault(group, {})[part] = file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            chk.add(f"tls.{key}", f"{file} cannot be read ({getattr(exc, 'strerror', None) or exc})")
    for parts in (("ca_cert", "ca_key"), ("api_cert", "api_key", "api_ca")):
        given = [k for k in parts if k in tmap]
        if given and len(given) < len(parts):
            chk.add(f"tls.{given[0]}", f"needs {' and '.join(k for k in parts if k not in tmap)} too")
    if chk.problems:
        return pem
    if "ca" in pem:
        fields = {"tls": "tls", "tls.cert": "tls.ca_cert", "tls.key": "tls.ca_key"}  # check_ca's names -> ours
        for field, message in tls.check_ca(pem["ca"], "tls"):
            chk.add(fields[field], message)
    if "api" in pem:
        api = pem["api"]
        names = {n for n in _vip_names(vip) if n}
        for field, message in tls.check_issued(api["ca"], api["cert"], api["key"], names,
                                               ("tls.api_ca", "tls.api_cert", "tls.api_key")):
            chk.add(field, message)
    return pem


def site_ca(inv: Inventory, site_secrets: dict[str, Any]) -> dict[str, str]:
    """The CA that signs this site's node certificates: the user's own, else the one the seed generator made."""
    return inv.data.get("tls", {}).get("ca") or site_secrets["site_ca"]


def node_tls(inv: Inventory, node: dict[str, Any], site_secrets: dict[str, Any]) -> dict[str, str]:
    """A node document's `tls`: the CA, the node's pair; with the user's API certificate, its issuer for every
    node and the certificate with its key for the controllers (they present it on the VIP)."""
    value = {"ca": site_ca(inv, site_secrets)["cert"], **node_pair(inv, node, site_secrets)[0]}
    if api := inv.data.get("tls", {}).get("api"):
        value["api_ca"] = api["ca"]
        if node["role"] == catalog.CONTROLLER:
            value |= {"api_cert": api["cert"], "api_key": api["key"]}
    return value


def node_pair(inv: Inventory, node: dict[str, Any], site_secrets: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """The node's certificate and key: the one kept from an earlier run while it is still right (same CA, same
    names, not near its end), else a new one. Returns (pair, newly issued)."""
    ca = site_ca(inv, site_secrets)
    vip_address, vip_host = _vip_names(inv.data["vip"])
    names = document.tls_names(document.Node(node["name"], node["role"], dict(node["addresses"])),
                               vip_address, vip_host)
    kept = site_secrets.setdefault("node_certificates", {})
    if tls.still_good(kept.get(node["name"]), ca, names):
        return kept[node["name"]], False
    kept[node["name"]] = tls.issue(ca, node["name"], sorted(names))
    return kept[node["name"]], True


def load_secrets(path: Path) -> tuple[dict[str, Any], list[str]]:
    """Read the site secrets (refusing loose permissions) and make the missing ones, in memory only."""
    existing: dict[str, Any] = {}
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise InvalidInput(str(path), [FieldProblem("(file mode)", f"is {mode:04o}; secrets must be private: "
                                                        f"chmod 600 {path}")])
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise InvalidInput(str(path), [FieldProblem("(file)", "must be a mapping of secret name: value")])
        problems = [FieldProblem(name, msg) for name, value in loaded.items()
                    if (msg := secretspec.check(name, value))]
        problems += [FieldProblem(name, "is not a known secret") for name in loaded
                     if name not in secretspec.SECRETS_BY_NAME]
        if problems:
            raise InvalidInput(str(path), problems)
        existing = loaded
    return secretspec.generate_missing(existing)


def save_secrets(path: Path, values: dict[str, Any]) -> None:
    body = "# Goldstack site secrets: generated once, never in images or git. Keep this file private.\n"
    body += yaml.safe_dump(values, sort_keys=True, default_flow_style=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, body.encode(), 0o600)


def node_document(inv: Inventory, node: dict[str, Any], site_secrets: dict[str, Any]) -> dict[str, Any]:
    """The document one node receives: its own identity, every peer, and only its role's secrets."""
    role = node["role"]
    peers: dict[str, list[dict[str, Any]]] = {}
    for n in inv.nodes:
        entry = {k: n[k] for k in ("name", "addresses", "interfaces", "macs", "osd_device") if k in n}
        peers.setdefault(n["role"], []).append(entry)
    doc: dict[str, Any] = {
        "version": document.VERSION,
        "cluster": inv.data["cluster"],
        "region": inv.data.get("region", "RegionOne"),
        "node": {"name": node["name"], "role": role},
        "peers": peers,
        "vip": inv.data["vip"],
        "secrets": {s.name: site_secrets[s.name] for s in secretspec.needed_by(role)},
        "tls": node_tls(inv, node, site_secrets),
    }
    for key in ("networks", "options"):
        if key in inv.data:
            doc[key] = inv.data[key]
    targets = catalog.override_targets(role)
    overrides = {t: v for t, v in (inv.data.get("overrides") or {}).items() if t in targets}
    if overrides:
        doc["overrides"] = overrides
    return doc


def user_data(doc: dict[str, Any]) -> str:
    """Schema-valid cloud-config: cloud-init writes the document; the agent can also read it straight."""
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    cloud_config = {
        "hostname": doc["node"]["name"],
        "preserve_hostname": False,
        "write_files": [{"path": NODE_FILE, "owner": "root:root", "permissions": "0600", "content": body}],
    }
    return "#cloud-config\n" + yaml.safe_dump(cloud_config, sort_keys=False, default_flow_style=False)


def _own_entry(doc: dict[str, Any]) -> dict[str, Any]:
    me = doc["node"]["name"]
    return next(p for p in doc["peers"][doc["node"]["role"]] if p["name"] == me)


def static_links(doc: dict[str, Any]) -> list[dict[str, str]]:
    """The node's NICs with their static addresses: one per network that has an address here and a prefix in
    `networks`, in NETWORKS order. A NIC is found by its MAC when the inventory gives one, else by its name:
    the inventory's `interfaces` name, else eth0, eth1, ... in that order (the disk images boot with
    net.ifnames=0, so a VM's NICs take those names in PCI order)."""
    me = _own_entry(doc)
    prefixes = {net: ipaddress.ip_network(cidr, strict=False).prefixlen
                for net, cidr in (doc.get("networks") or {}).items()}
    links = []
    for index, net in enumerate(n for n in document.NETWORKS if n in me["addresses"]):
        if net not in prefixes:
            continue
        name = (me.get("interfaces") or {}).get(net, f"eth{index}")
        link = {"network": net, "name": name, "address": f"{me['addresses'][net]}/{prefixes[net]}"}
        if mac := (me.get("macs") or {}).get(net):
            link["mac"] = mac
        links.append(link)
    return links


def network_config(links: list[dict[str, str]]) -> dict[str, Any]:
    """cloud-init's network configuration (version 2) for a NoCloud seed: the static addresses, no DHCP."""
    ethernets = {}
    for link in links:
        entry: dict[str, Any] = {"dhcp4": False, "dhcp6": False, "addresses": [link["address"]]}
        if "mac" in link:
            entry = {"match": {"macaddress": link["mac"]}, "set-name": link["name"], **entry}
        else:
            entry = {"match": {"name": link["name"]}, **entry}
        ethernets[link["name"]] = entry
    return {"version": 2, "ethernets": ethernets}


def network_data(links: list[dict[str, str]]) -> dict[str, Any]:
    """The same for a config drive (OpenStack's network_data.json, which names each NIC by its MAC)."""
    data: dict[str, Any] = {"links": [], "networks": [], "services": []}
    for link in links:
        interface = ipaddress.ip_interface(link["address"])
        data["links"].append({"id": link["name"], "name": link["name"], "type": "phy",
                              "ethernet_mac_address": link["mac"]})
        data["networks"].append({"id": f"{link['network']}-v{interface.version}", "link": link["name"],
                                 "type": f"ipv{interface.version}", "ip_address": str(interface.ip),
                                 "netmask": str(interface.netmask), "routes": []})
    return data


def _instance_id(doc: dict[str, Any]) -> str:
    return f"goldstack-{doc['cluster']}-{doc['node']['name']}"


def write_iso(path: Path, label: str, files: dict[str, bytes]) -> None:
    """An ISO9660 image with Joliet and Rock Ridge names, made in userspace (no mount, no external tool)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=label)
    made_dirs: set[str] = set()
    for name, content in sorted(files.items()):
        parts = name.split("/")
        for depth in range(1, len(parts)):
            rel = "/".join(parts[:depth])
            if rel not in made_dirs:
                made_dirs.add(rel)
                iso.add_directory(_iso_path(rel), rr_name=parts[depth - 1], joliet_path="/" + rel)
        iso.add_fp(io.BytesIO(content), len(content), _iso_path(name) + ";1", rr_name=parts[-1],
                   joliet_path="/" + name)
    buffer = io.BytesIO()
    iso.write_fp(buffer)
    iso.close()
    atomic_write(path, buffer.getvalue(), 0o600)


def _iso_path(rel: str) -> str:
    """ISO9660 level-3 names: upper case, [A-Z0-9_] only; Rock Ridge and Joliet carry the real names."""
    parts = ["".join(c if c.isalnum() else "_" for c in p.upper())[:30] for p in rel.split("/")]
    return "/" + "/".join(parts)


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        target = root / name
        for directory in reversed(target.relative_to(root).parents):
            (root / directory).mkdir(mode=0o700, exist_ok=True)
        target.write_bytes(content)
        target.chmod(0o600)


def seed_files(doc: dict[str, Any]) -> dict[str, dict[str, bytes]]:
    """Each format's files for one node."""
    ud = user_data(doc).encode()
    name = doc["node"]["name"]
    meta = f"instance-id: {_instance_id(doc)}\nlocal-hostname: {name}\n".encode()
    cd_meta = json.dumps({"uuid": _instance_id(doc), "name": name, "hostname": name,
                          "availability_zone": "nova", "meta": {"goldstack_role": doc["node"]["role"]}},
                         indent=2).encode()
    nocloud = {"meta-data": meta, "user-data": ud}
    configdrive = {"openstack/latest/meta_data.json": cd_meta, "openstack/latest/user_data": ud}
    # Without a static address to give, no network configuration: cloud-init's default (DHCP on the first NIC).
    if links := static_links(doc):
        nocloud["network-config"] = yaml.safe_dump(network_config(links), sort_keys=False).encode()
        if all("mac" in link for link in links):  # a config drive's links are found by MAC only
            configdrive["openstack/latest/network_data.json"] = json.dumps(network_data(links), indent=2).encode()
    node_yaml = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False).encode()
    return {"file": {"node.yaml": node_yaml}, "nocloud": nocloud, "configdrive": configdrive}


def build_node(out: Path, doc: dict[str, Any], formats: tuple[str, ...]) -> list[str]:
    files = seed_files(doc)
    made = []
    out.mkdir(mode=0o700)
    if "file" in formats:
        _tree(out, files["file"])
        made.append("node.yaml")
    for kind, label in (("nocloud", NOCLOUD_LABEL), ("configdrive", CONFIGDRIVE_LABEL)):
        if kind in formats:
            _tree(out / kind, files[kind])
            made.append(f"{kind}/")
        if f"{kind}-iso" in formats:
            write_iso(out / f"{kind}.iso", label, files[kind])
            made.append(f"{kind}.iso")
    return made


def generate(inventory: Path, out: Path, secrets_file: Path | None, formats: tuple[str, ...] = FORMATS,
             progress=print) -> dict[str, list[str]]:
    """Validate, build every node's seed in scratch space, then swap the node directories in."""
    inv = load_inventory(inventory)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InvalidInput("--formats", [FieldProblem("formats", f"{', '.join(unknown)} unknown; use "
                                                      f"{', '.join(FORMATS)}")])
    secrets_file = secrets_file or inventory.with_name(f"{inv.data['cluster']}.secrets.yaml")
    site_secrets, made_secrets = load_secrets(secrets_file)
    issued = [node["name"] for node in inv.nodes if node_pair(inv, node, site_secrets)[1]]
    docs = {}
    for node in inv.nodes:
        doc = node_document(inv, node, site_secrets)
        document.validate(doc, f"document of {node['name']}")  # the agent would refuse it otherwise
        docs[node["name"]] = doc
    if made_secrets or issued:
        save_secrets(secrets_file, site_secrets)
    progress(f"secrets: {secrets_file} ({'made ' + str(len(made_secrets)) if made_secrets else 'reused'})")
    if issued:
        by = "your CA" if "ca" in inv.data.get("tls", {}) else "the site CA"
        progress(f"certificates issued by {by}: {', '.join(issued)}")
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    scratch = Path(tempfile.mkdtemp(prefix=".seed-", dir=out))
    result: dict[str, list[str]] = {}
    try:
        for name, doc in docs.items():
            result[name] = build_node(scratch / name, doc, formats)
        for name in docs:
            final, old = out / name, out / f".{name}.old"
            if final.exists():
                final.rename(old)
            (scratch / name).rename(final)
            shutil.rmtree(old, ignore_errors=True)
            progress(f"{name}: {', '.join(result[name])}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
