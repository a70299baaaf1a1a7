"""The agent end to end through its CLI: seed -> discover -> validate -> steps -> status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firstboot import seed
from firstboot.agent import SUCCESS_MARK
from tests.metadata_server import MetadataServer

TOP = Path(__file__).resolve().parent.parent


def agent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "firstboot", *args], cwd=TOP, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def node_root(tmp_path, doc_of) -> tuple[Path, Path]:
    """A node's root with its NoCloud seed where cloud-init's seed directory would be."""
    root = tmp_path / "root"
    seed.build_node(tmp_path / "seed", doc_of("ctl1"), ("nocloud", "file"))
    (root / "var/lib/cloud/seed").mkdir(parents=True)
    (tmp_path / "seed/nocloud").rename(root / "var/lib/cloud/seed/nocloud")
    (root / "etc").mkdir()
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    return root, tmp_path / "seed/node.yaml"


def test_first_boot_then_nothing_on_the_second(node_root, doc_of):
    root, _ = node_root
    first = agent("run", "--root", str(root), "--no-chown")
    assert first.returncode == 0, first.stdout + first.stderr
    assert SUCCESS_MARK in first.stdout and "node=ctl1 role=controller ran=2" in first.stdout
    hosts = (root / "etc/hosts").read_text()
    assert "10.99.0.13 ctl3" in hosts and hosts.startswith("127.0.0.1 localhost\n")
    nova = root / "etc/nova/nova.conf"
    assert nova.is_file() and nova.stat().st_mode & 0o777 == 0o640
    mtime = nova.stat().st_mtime_ns

    second = agent("run", "--root", str(root), "--no-chown")
    assert second.returncode == 0
    assert "ran=0 already-done=2" in second.stdout
    assert nova.stat().st_mtime_ns == mtime

    status = agent("status", "--root", str(root))
    assert status.returncode == 0
    assert "node ctl1 (controller, cluster testlab): done" in status.stdout
    assert any(line.split()[:3] == ["config", "done", "1"] for line in status.stdout.splitlines())
    data = json.loads(agent("status", "--root", str(root), "--json").stdout)
    assert data["agent"]["source"] == "nocloud" and data["steps"]["hosts"]["status"] == "done"
    assert "nova" in data["agent"]["restart_pending"]


def test_no_secret_reaches_the_logs_or_state(node_root, doc_of):
    root, _ = node_root
    secrets = doc_of("ctl1")["secrets"]
    result = agent("run", "--root", str(root), "--no-chown", "-v")
    state = (root / "var/lib/goldstack/state.json").read_text()
    for value in secrets.values():
        for item in value if isinstance(value, list) else [value]:
            assert str(item) not in result.stdout + result.stderr
            assert str(item) not in state
    assert (root / "var/lib/goldstack/state.json").stat().st_mode & 0o777 == 0o600


def test_agent_reads_the_metadata_service(tmp_path, doc_of):
    seed.build_node(tmp_path / "seed", doc_of("cmp1"), ("nocloud",))
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    with MetadataServer((tmp_path / "seed/nocloud/user-data").read_text()) as server:
        result = agent("run", "--root", str(root), "--no-chown", "--source", "http", "--metadata-url", server.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "document from http" in result.stdout and "role=compute" in result.stdout
    assert (root / "etc/nova/nova.conf").is_file()


def test_invalid_document_writes_nothing(tmp_path, doc_of):
    data = doc_of("ctl1")
    data["peers"]["controller"].pop()
    doc_file = tmp_path / "node.yaml"
    import yaml

    doc_file.write_text(yaml.safe_dump(data))
    root = tmp_path / "root"
    root.mkdir()
    result = agent("run", "--root", str(root), "--no-chown", "--document", str(doc_file))
    assert result.returncode == 3
    assert "peers.controller: lists 2 controllers" in result.stderr
    assert [p for p in root.rglob("*") if p.is_file() and p.name != "goldstack-firstboot.lock"] == []


def test_no_metadata_exits_4(tmp_path):
    result = agent("run", "--root", str(tmp_path), "--no-chown", "--source", "nocloud")
    assert result.returncode == 4 and "no Goldstack document found" in result.stderr


def test_a_second_agent_waits_its_turn(node_root):
    import fcntl
    import os

    root, _ = node_root
    lock = root / "run/goldstack-firstboot.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = agent("run", "--root", str(root), "--no-chown")
    finally:
        os.close(fd)
    assert result.returncode == 5 and "another goldstack-firstboot run holds" in result.stderr


@pytest.mark.parametrize("command", ["", "run", "validate", "render", "status", "seed"])
def test_help_teaches(command):
    result = agent(*([command] if command else []), "--help")
    assert result.returncode == 0
    assert "exit codes:" in result.stdout
    if command:
        assert "example" in result.stdout
    else:
        for sub in ("run", "validate", "render", "status", "seed"):
            assert sub in result.stdout


def test_under_another_root_the_run_stops_before_touching_host_services(node_root):
    root, _ = node_root
    result = agent("run", "--root", str(root), "--no-chown")
    assert result.returncode == 0 and "[2/2] config" in result.stdout
    assert "] galera" not in result.stdout and "ran=2" in result.stdout
    # The key directories are created private before the keys are written.
    assert (root / "etc/keystone/fernet-keys").stat().st_mode & 0o777 == 0o700
    bad = agent("run", "--root", str(root), "--no-chown", "--until", "no-such-step")
    assert bad.returncode == 2 and "--until no-such-step" in bad.stderr and "galera" in bad.stderr


def test_status_lists_steps_in_run_order(node_root):
    root, _ = node_root
    agent("run", "--root", str(root), "--no-chown")
    lines = agent("status", "--root", str(root)).stdout.splitlines()
    assert lines[1].startswith("certificate /etc/ssl/goldstack/node.pem: valid until ")  # the one the run wrote
    assert lines[2].startswith("this run changed ") and "restarted: nothing" in lines[2]
    header = next(i for i, line in enumerate(lines) if line.startswith("STEP"))
    assert [line.split()[0] for line in lines[header + 1:] if line] == ["hosts", "config"]


def test_galera_bootstrap_override_needs_confirmation(tmp_path):
    refused = agent("galera-bootstrap", "--root", str(tmp_path))
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert not (tmp_path / "var/lib/goldstack/galera-force-bootstrap").exists()
    done = agent("galera-bootstrap", "--root", str(tmp_path), "--yes")
    assert done.returncode == 0 and (tmp_path / "var/lib/goldstack/galera-force-bootstrap").exists()
    assert agent("galera-bootstrap", "--root", str(tmp_path), "--undo").returncode == 0
    assert not (tmp_path / "var/lib/goldstack/galera-force-bootstrap").exists()


def test_the_document_can_stop_the_run_after_a_step(tmp_path, doc_of):
    doc = doc_of("cmp1")
    doc.setdefault("options", {})["stop_after"] = "hosts"
    seed.build_node(tmp_path / "seed", doc, ("file",))
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    # --until given explicitly wins; without it the document's stop_after applies.
    result = agent("run", "--root", str(root), "--no-chown", "--document", str(tmp_path / "seed/node.yaml"),
                   "--until", "hosts")
    assert result.returncode == 0 and "ran=1" in result.stdout
    doc["options"]["stop_after"] = "no-such-step"
    seed.build_node(tmp_path / "seed2", doc, ("file",))
    bad = agent("run", "--root", str(root), "--no-chown", "--document", str(tmp_path / "seed2/node.yaml"))
    assert bad.returncode == 3 and "options.stop_after" in bad.stderr, bad.stderr


def test_hosts_block_drops_other_lines_naming_managed_hosts():
    """Compose lists a node under every network's address, first line winning; only the managed line stays."""
    from firstboot.steps.hosts import BEGIN, END, replace_block

    block = f"{BEGIN}\n10.77.0.11 ctl1\n10.77.0.12 ctl2\n{END}\n"
    engine = "127.0.0.1\tlocalhost\n10.78.0.11\tctl1\n10.77.0.11\tctl1\n192.0.2.5 other # ctl1 in a comment\n"
    once = replace_block(engine, block, {"ctl1", "ctl2"})
    assert once == f"127.0.0.1\tlocalhost\n192.0.2.5 other # ctl1 in a comment\n{block}"
    assert replace_block(once, block, {"ctl1", "ctl2"}) == once  # idempotent: the step is then done


def stopped_at_facts(tmp_path: Path, data: dict, field: str) -> str:
    """Run the agent on a NoCloud seed of `data` that names hardware this machine lacks: it must fail at
    `facts` with nothing rendered, `field` named in its status; its output."""
    seed.build_node(tmp_path / "seed", data, ("nocloud",))
    root = tmp_path / "root"
    (root / "var/lib/cloud/seed").mkdir(parents=True)
    (tmp_path / "seed/nocloud").rename(root / "var/lib/cloud/seed/nocloud")
    result = agent("run", "--root", str(root), "--no-chown")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not (root / "etc").exists()  # nothing rendered
    status = json.loads(agent("status", "--root", str(root), "--json").stdout)
    assert status["agent"]["status"] == "failed" and field in status["agent"]["error"]
    return result.stdout + result.stderr


def test_a_nic_the_document_names_by_mac_and_this_machine_lacks_stops_the_run_before_any_file(tmp_path, doc_of):
    data = doc_of("cmp1")
    next(p for p in data["peers"]["compute"] if p["name"] == "cmp1")["macs"] = {"management": "02:00:5e:00:53:99"}
    output = stopped_at_facts(tmp_path, data, "node.macs.management")
    assert "FAILED node=cmp1 role=compute step=facts: node.macs.management: no NIC has 02:00:5e:00:53:99" in output


def test_an_osd_disk_this_machine_lacks_stops_the_run_before_any_file(tmp_path, doc_of):
    """A storage VM started without its second disk: the agent says which field names which disk and stops at
    `facts`, before Ceph's monitor or anything else is configured."""
    data = doc_of("sto1")
    next(p for p in data["peers"]["storage"] if p["name"] == "sto1")["osd_device"] = "/dev/goldstack-absent"
    output = stopped_at_facts(tmp_path, data, "node.osd_device")
    assert "FAILED node=sto1 role=storage step=facts: node.osd_device: /dev/goldstack-absent: no such file" in output
