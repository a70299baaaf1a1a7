"""The seed generator: per-node seeds, secrets made once and kept private, bad inventories write nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from firstboot import document, seed, sources

TOP = Path(__file__).resolve().parent.parent


def run_seed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firstboot", "seed", *args], cwd=TOP, capture_output=True,
                          text=True, timeout=120)


def test_every_node_gets_every_format(tmp_path, inventory_file):
    out = tmp_path / "out"
    result = run_seed(str(inventory_file), "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("ctl1", "ctl2", "ctl3", "cmp1", "sto1"):
        node = out / name
        for rel in ("node.yaml", "nocloud/meta-data", "nocloud/user-data", "nocloud.iso",
                    "configdrive/openstack/latest/meta_data.json", "configdrive/openstack/latest/user_data",
                    "configdrive.iso"):
            assert (node / rel).is_file(), f"{name}/{rel}"
            assert (node / rel).stat().st_mode & 0o077 == 0, f"{name}/{rel} is readable by others"
        found = sources.discover(sources.SourceOptions(root=tmp_path, seed=node / "configdrive.iso"), "configdrive")
        assert document.load_text(found.text, "x").node.name == name
    meta = (out / "cmp1/nocloud/meta-data").read_text()
    assert "instance-id: goldstack-testlab-cmp1" in meta and "local-hostname: cmp1" in meta
    user_data = (out / "cmp1/nocloud/user-data").read_text()
    assert user_data.startswith("#cloud-config\n")
    config = yaml.safe_load(user_data)
    assert set(config) == {"hostname", "preserve_hostname", "write_files"}  # schema-valid cloud-config
    assert config["write_files"][0]["permissions"] == "0600"


def test_secrets_made_once_private_and_reused(tmp_path, inventory_file):
    secrets_file = tmp_path / "site.secrets.yaml"
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "a"), "--secrets", str(secrets_file)).returncode == 0
    assert secrets_file.stat().st_mode & 0o777 == 0o600
    first = yaml.safe_load(secrets_file.read_text())
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "b"), "--secrets", str(secrets_file))
    assert result.returncode == 0 and "reused" in result.stdout
    assert yaml.safe_load(secrets_file.read_text()) == first
    doc_a = yaml.safe_load((tmp_path / "a/ctl1/node.yaml").read_text())
    doc_b = yaml.safe_load((tmp_path / "b/ctl1/node.yaml").read_text())
    assert doc_a["secrets"] == doc_b["secrets"]


def test_each_role_gets_only_its_secrets(tmp_path, inventory_file):
    run_seed(str(inventory_file), "--out", str(tmp_path / "o"))
    compute = yaml.safe_load((tmp_path / "o/cmp1/node.yaml").read_text())["secrets"]
    storage = yaml.safe_load((tmp_path / "o/sto1/node.yaml").read_text())["secrets"]
    assert "mariadb_root" not in compute and "ceph_admin_key" not in compute and "erlang_cookie" not in compute
    assert "ceph_admin_key" in storage and "keystone_admin" not in storage


def test_loose_secrets_file_is_refused(tmp_path, inventory_file):
    secrets_file = tmp_path / "s.yaml"
    run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(secrets_file))
    secrets_file.chmod(0o644)
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o2"), "--secrets", str(secrets_file))
    assert result.returncode == 3 and "chmod 600" in result.stderr
    assert not (tmp_path / "o2").exists()


def test_weak_secret_in_the_file_is_refused(tmp_path, inventory_file):
    secrets_file = tmp_path / "s.yaml"
    secrets_file.write_text("rabbitmq_openstack: guest\n")
    secrets_file.chmod(0o600)
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--secrets", str(secrets_file))
    assert result.returncode == 3 and "rabbitmq_openstack: is a well-known default" in result.stderr
    assert secrets_file.read_text() == "rabbitmq_openstack: guest\n"


def test_bad_inventory_names_the_field_and_writes_nothing(tmp_path, inventory, inventory_file):
    out = tmp_path / "out"
    assert run_seed(str(inventory_file), "--out", str(out)).returncode == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    inventory["nodes"][4]["role"] = "storag"
    inventory["nodes"][3]["addresses"]["management"] = "10.99.0.11"
    inventory["nodes"] = inventory["nodes"][1:]  # two controllers left
    inventory_file.write_text(yaml.safe_dump(inventory))
    result = run_seed(str(inventory_file), "--out", str(out))
    assert result.returncode == 3
    assert "nodes[3].role: 'storag' is not a role" in result.stderr
    assert "nodes (role: controller): lists 2 controllers" in result.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_seed_rerun_replaces_node_directories_whole(tmp_path, inventory_file):
    out = tmp_path / "out"
    run_seed(str(inventory_file), "--out", str(out), "--formats", "file,nocloud")
    (out / "ctl1/stale").write_text("x")
    assert run_seed(str(inventory_file), "--out", str(out), "--formats", "file").returncode == 0
    assert sorted(p.name for p in (out / "ctl1").iterdir()) == ["node.yaml"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_unknown_format_is_refused(tmp_path, inventory_file):
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"), "--formats", "nocloud,vmdk")
    assert result.returncode == 3 and "vmdk" in result.stderr


def test_inventory_override_for_no_role_is_refused(tmp_path, inventory, inventory_file):
    inventory["overrides"] = {"nvoa": {"DEFAULT": {"debug": True}}}
    inventory_file.write_text(yaml.safe_dump(inventory))
    result = run_seed(str(inventory_file), "--out", str(tmp_path / "o"))
    assert result.returncode == 3 and "overrides.nvoa: is not a known field" in result.stderr


def test_overrides_reach_only_roles_that_have_the_file(tmp_path, inventory, inventory_file):
    inventory["overrides"] = {"keystone": {"DEFAULT": {"debug": True}}}
    inventory_file.write_text(yaml.safe_dump(inventory))
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "o")).returncode == 0
    assert "overrides" in yaml.safe_load((tmp_path / "o/ctl1/node.yaml").read_text())
    assert "overrides" not in yaml.safe_load((tmp_path / "o/cmp1/node.yaml").read_text())
    assert seed.FORMATS


def _with_nics(inventory: dict, inventory_file: Path) -> None:
    """cmp1 with a provider network too: management found by MAC, provider by name."""
    inventory["networks"]["provider"] = "10.98.0.0/23"
    cmp1 = inventory["nodes"][3]
    cmp1["addresses"]["provider"] = "10.98.1.21"
    cmp1["macs"] = {"management": "52:54:00:AA:00:21"}
    inventory_file.write_text(yaml.safe_dump(inventory))


def test_nocloud_seed_gives_each_network_its_static_address(tmp_path, inventory, inventory_file):
    _with_nics(inventory, inventory_file)
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "o")).returncode == 0
    config = yaml.safe_load((tmp_path / "o/cmp1/nocloud/network-config").read_text())
    assert config == {"version": 2, "ethernets": {
        "eth0": {"match": {"macaddress": "52:54:00:AA:00:21"}, "set-name": "eth0", "dhcp4": False, "dhcp6": False,
                 "addresses": ["10.99.0.21/24"]},
        "eth1": {"match": {"name": "eth1"}, "dhcp4": False, "dhcp6": False, "addresses": ["10.98.1.21/23"]}}}
    # Not every NIC has a MAC: a config drive (whose links are found by MAC only) gets no network data.
    assert not (tmp_path / "o/cmp1/configdrive/openstack/latest/network_data.json").exists()
    # The node document carries the MACs too (the agent validates them with the rest).
    doc = document.load_text((tmp_path / "o/cmp1/node.yaml").read_text(), "x")
    assert doc.node.macs == {"management": "52:54:00:AA:00:21"}


def test_config_drive_gets_network_data_when_every_nic_has_a_mac(tmp_path, inventory, inventory_file):
    _with_nics(inventory, inventory_file)
    inventory["nodes"][3]["macs"]["provider"] = "52:54:00:aa:01:21"
    inventory["nodes"][3]["interfaces"] = {"provider": "prov0"}
    inventory_file.write_text(yaml.safe_dump(inventory))
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "o")).returncode == 0
    data = json.loads((tmp_path / "o/cmp1/configdrive/openstack/latest/network_data.json").read_text())
    assert [(link["name"], link["ethernet_mac_address"]) for link in data["links"]] == [
        ("eth0", "52:54:00:AA:00:21"), ("prov0", "52:54:00:aa:01:21")]
    assert [(n["link"], n["ip_address"], n["netmask"]) for n in data["networks"]] == [
        ("eth0", "10.99.0.21", "255.255.255.0"), ("prov0", "10.98.1.21", "255.255.254.0")]
    config = yaml.safe_load((tmp_path / "o/cmp1/nocloud/network-config").read_text())
    assert config["ethernets"]["prov0"]["set-name"] == "prov0"


def test_network_without_a_prefix_gets_no_static_address(tmp_path, inventory, inventory_file):
    del inventory["networks"]
    inventory_file.write_text(yaml.safe_dump(inventory))
    assert run_seed(str(inventory_file), "--out", str(tmp_path / "o")).returncode == 0
    assert not (tmp_path / "o/cmp1/nocloud/network-config").exists()  # cloud-init's default: DHCP


def test_bad_or_shared_mac_is_refused_by_name(tmp_path, inventory, inventory_file):
    out = tmp_path / "out"
    inventory["nodes"][3]["macs"] = {"management": "52:54:00:aa:00:2"}
    inventory["nodes"][4]["macs"] = {"management": "52:54:00:aa:00:31", "provider": "52:54:00:aa:00:32"}
    inventory["nodes"][2]["macs"] = {"management": "52:54:00:AA:00:31"}
    # ctl1's MAC unquoted, as a user may write it: YAML reads it as a number.
    unquoted = "name: ctl1\n  macs: {management: 52:54:00:12:34:56}"
    inventory_file.write_text(yaml.safe_dump(inventory).replace("name: ctl1", unquoted, 1))
    result = run_seed(str(inventory_file), "--out", str(out))
    assert result.returncode == 3
    assert "nodes[3].macs.management" in result.stderr and "a MAC address like 52:54:00:12:34:56" in result.stderr
    assert "nodes[4].macs.provider: names the NIC of provider, but the node has no provider address" in result.stderr
    assert "nodes[4].macs.management: 52:54:00:aa:00:31 is also the NIC of ctl3's management network" \
        in result.stderr
    assert "nodes[0].macs.management: was read as a number: quote the MAC" in result.stderr
    assert not out.exists() or not any(out.iterdir())
