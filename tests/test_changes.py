"""A node's identity and what a new document would change (firstboot.identity, firstboot.changes), on a
tree rendered under --root: nothing is written by `changes`, a changed override names its file and the
units a run would restart, and a document that would make the node another node is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from firstboot import document, identity
from firstboot.state import StateStore

TOP = Path(__file__).resolve().parent.parent


def agent(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firstboot", *args], cwd=TOP, capture_output=True, text=True,
                          input=stdin)


def rendered_node(tmp_path: Path, doc: dict) -> Path:
    """A node tree configured by a real run under --root (stops after config), its state beside it."""
    root = tmp_path / "root"
    (tmp_path / "node.yaml").write_text(yaml.safe_dump(doc))
    run = agent("run", "--root", str(root), "--document", str(tmp_path / "node.yaml"), "--no-chown",
                "--state", str(tmp_path / "state.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    return root


def changes(tmp_path: Path, root: Path, doc: dict) -> subprocess.CompletedProcess:
    return agent("changes", "--root", str(root), "--state", str(tmp_path / "state.json"), "--document", "-",
                 "--no-chown", "--json", stdin=yaml.safe_dump(doc))


def test_an_override_names_its_file_and_the_units_to_restart_and_writes_nothing(tmp_path, doc_of):
    doc = doc_of("ctl1")
    root = rendered_node(tmp_path, doc)
    unchanged = changes(tmp_path, root, doc)
    assert unchanged.returncode == 0, unchanged.stderr
    assert json.loads(unchanged.stdout)["files"] == []
    before = (root / "etc/nova/nova.conf").read_text()
    doc.setdefault("overrides", {})["nova"] = {"DEFAULT": {"debug": True}}
    proc = changes(tmp_path, root, doc)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["files"] == ["/etc/nova/nova.conf"] and found["services"] == ["nova"]
    assert "nova-api" in found["units"] and "keystone" not in found["units"]
    assert (root / "etc/nova/nova.conf").read_text() == before


def test_a_new_compute_peer_changes_the_hosts_file_and_the_known_hosts(tmp_path, doc_of, inventory, site_secrets):
    from tests.conftest import make_doc

    root = rendered_node(tmp_path, doc_of("cmp1"))
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    inventory["nodes"].append({"name": "cmp2", "role": "compute", "addresses": {"management": "10.99.0.22"}})
    proc = changes(tmp_path, root, make_doc(inventory, "cmp1", site_secrets))
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["files"] == ["/etc/hosts", "/etc/ssh/ssh_config.d/60-goldstack.conf", "/etc/ssh/ssh_known_hosts"]
    assert found["units"] == []  # nova's SSH client reads it at its next migration: nothing restarts


def test_a_document_that_changes_what_the_node_is_is_refused_by_name(tmp_path, doc_of):
    doc = doc_of("ctl1")
    root = rendered_node(tmp_path, doc)
    other = dict(doc, cluster="another")
    proc = changes(tmp_path, root, other)
    assert proc.returncode == 3 and "cluster: 'another' differs from 'testlab'" in proc.stderr, proc.stderr
    run = agent("run", "--root", str(root), "--document", "-", "--no-chown", "--state", str(tmp_path / "state.json"))
    assert run.returncode != 0


def test_identity_is_compared_field_by_field(doc_of):
    doc = document.validate(doc_of("sto1"))
    mine = identity.of(doc)
    assert mine["role"] == "storage" and len(mine["ceph_fsid"]) == 16
    assert str(doc.secrets["ceph_fsid"]) not in json.dumps(mine)
    identity.check(doc, mine, "test")  # the same node: accepted


def test_the_run_records_its_identity_and_facts(tmp_path, doc_of):
    rendered_node(tmp_path, doc_of("cmp1"))
    agent_record = StateStore(tmp_path / "state.json").data["agent"]
    assert agent_record["identity"]["node"] == "cmp1" and agent_record["facts"]["virt_type"]
    assert "/etc/nova/nova.conf" in agent_record["changed_files"]
