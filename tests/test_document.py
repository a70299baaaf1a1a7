"""Every validation rule gives one clear message naming the field; valid documents parse."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from firstboot import document
from firstboot.errors import InvalidInput


def problems(data) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        document.validate(data, "test document")
    return [str(p) for p in info.value.problems]


def test_valid_documents_of_every_role(doc_of):
    for name, role in (("ctl1", "controller"), ("cmp1", "compute"), ("sto1", "storage")):
        doc = document.validate(doc_of(name))
        assert doc.node.name == name and doc.role == role
        assert [c.name for c in doc.controllers] == ["ctl1", "ctl2", "ctl3"]
        assert doc.node.management.startswith("10.99.0.")
        assert doc.options["cinder_backend"] == "rbd"


def test_compute_document_carries_only_its_secrets(doc_of):
    doc = document.validate(doc_of("cmp1"))
    assert "mariadb_root" not in doc.secrets and "erlang_cookie" not in doc.secrets
    assert "rabbitmq_openstack" in doc.secrets and "user_nova" in doc.secrets


def test_missing_role(doc_of):
    data = doc_of("ctl1")
    del data["node"]["role"]
    assert "node.role: is missing" in problems(data)


def test_unknown_role(doc_of):
    data = doc_of("ctl1")
    data["node"]["role"] = "contoller"
    msgs = problems(data)
    assert any(m.startswith("node.role: 'contoller' is not a role; use one of controller") for m in msgs)


def test_node_absent_from_its_peer_list(doc_of):
    data = doc_of("ctl1")
    data["node"]["name"] = "ctl9"
    assert any(m.startswith("peers.controller: does not list this node (ctl9)") for m in problems(data))


def test_duplicate_names(doc_of):
    data = doc_of("ctl1")
    data["peers"]["compute"][0]["name"] = "ctl2"
    assert any(m.startswith("peers.compute[0].name: 'ctl2' is used twice") for m in problems(data))


def test_duplicate_addresses(doc_of):
    data = doc_of("ctl1")
    data["peers"]["storage"][0]["addresses"]["management"] = "10.99.0.12"
    msgs = problems(data)
    assert "peers.storage[0].addresses.management: 10.99.0.12 is also the address of ctl2" in msgs


def test_vip_colliding_with_a_node(doc_of):
    data = doc_of("ctl1")
    data["vip"] = "10.99.0.21"
    assert any(m.startswith("vip.address: 10.99.0.21 is also the address of peers.compute[0]") for m in problems(data))


def test_two_controllers_are_refused(doc_of):
    data = doc_of("ctl1")
    data["peers"]["controller"] = data["peers"]["controller"][:2]
    assert any(m.startswith("peers.controller: lists 2 controllers; Galera cannot keep quorum")
               for m in problems(data))


def test_one_controller_is_a_valid_lab(doc_of):
    data = doc_of("ctl1")
    data["peers"]["controller"] = data["peers"]["controller"][:1]
    assert len(document.validate(data).controllers) == 1


def test_malformed_yaml():
    with pytest.raises(InvalidInput) as info:
        document.load_text("version: 1\nnode: {name: ctl1\n  role: x\n", "node.yaml")
    (problem,) = info.value.problems
    assert problem.field == "(document)" and "is not valid YAML/JSON at line" in problem.message


def test_malformed_json(doc_of):
    text = json.dumps(doc_of("ctl1"))[:-5]
    with pytest.raises(InvalidInput) as info:
        document.load_text(text, "node.json")
    assert "is not valid YAML/JSON" in str(info.value)


def test_valid_json_document(doc_of):
    assert document.load_text(json.dumps(doc_of("cmp1")), "node.json").role == "compute"


def test_not_a_mapping():
    with pytest.raises(InvalidInput, match=r"\(document\): must be a mapping"):
        document.load_text("- just\n- a list\n", "x")


@pytest.mark.parametrize("value", ["", "123456", "guest", "password", "Password", "admin", "changeme",
                                   "RABBIT_PASS", "KEYSTONE_DBPASS", "short-secret"])
def test_empty_default_or_weak_secret(doc_of, value):
    data = doc_of("ctl1")
    data["secrets"]["rabbitmq_openstack"] = value
    msgs = [m for m in problems(data) if m.startswith("secrets.rabbitmq_openstack:")]
    assert len(msgs) == 1
    assert any(word in msgs[0] for word in ("is empty", "well-known default", "too short"))


def test_missing_secret_names_its_purpose(doc_of):
    data = doc_of("ctl1")
    del data["secrets"]["erlang_cookie"]
    assert any(m.startswith("secrets.erlang_cookie: is missing; a controller needs it") for m in problems(data))


def test_bad_fernet_and_ceph_keys(doc_of):
    data = doc_of("sto1")
    data["secrets"]["ceph_admin_key"] = "bm90IGEga2V5"
    assert any(m.startswith("secrets.ceph_admin_key: is not a CephX key") for m in problems(data))
    data = doc_of("ctl1")
    data["secrets"]["fernet_keys"] = ["abc", "def"]
    assert any(m.startswith("secrets.fernet_keys: item 0") for m in problems(data))


def test_unknown_fields_are_named(doc_of):
    data = doc_of("ctl1")
    data["secret"] = {}
    data["node"]["adresses"] = {}
    msgs = problems(data)
    assert any(m.startswith("(document).secret: is not a known field") for m in msgs)
    assert any(m.startswith("node.adresses: is not a known field") for m in msgs)


def test_bad_address_version_and_option(doc_of):
    data = doc_of("ctl1")
    data["version"] = 7
    data["peers"]["compute"][0]["addresses"]["management"] = "10.99.0.300"
    data["options"] = {"cinder_backend": "nfs"}
    msgs = problems(data)
    assert any(m.startswith("version: 7 is not supported") for m in msgs)
    assert "peers.compute[0].addresses.management: '10.99.0.300' is not an IP address" in msgs
    assert "options.cinder_backend: must be one of rbd, lvm" in msgs


def test_address_outside_its_network(doc_of):
    data = doc_of("ctl1")
    data["peers"]["storage"][0]["addresses"]["management"] = "10.98.0.31"
    assert "peers.storage[0].addresses.management: 10.98.0.31 is outside networks.management (10.99.0.0/24)" \
        in problems(data)


def test_overrides_target_must_exist_for_the_role(doc_of):
    data = doc_of("cmp1")
    data["overrides"] = {"keystone": {"DEFAULT": {"debug": True}}}
    assert any(m.startswith("overrides.keystone: is not a known field") for m in problems(data))


def test_cloud_config_wrapper_is_unwrapped(doc_of):
    text = "#cloud-config\n" + yaml.safe_dump({"goldstack": doc_of("ctl2")})
    assert document.load_text(text, "user-data").node.name == "ctl2"


def test_cli_validate_reports_and_exits_3_without_writing(tmp_path, doc_of):
    data = doc_of("ctl1")
    data["node"]["role"] = "boss"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "firstboot", "validate", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 3
    assert "node.role: 'boss' is not a role" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_cli_validate_accepts_a_good_document(tmp_path, doc_of):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(doc_of("sto1")))
    proc = subprocess.run([sys.executable, "-m", "firstboot", "validate", str(good)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("valid: node sto1 (storage) of cluster testlab")
