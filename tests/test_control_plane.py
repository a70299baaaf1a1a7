"""The HA control plane formed by the agents of three real controller containers, with no operator.

Real MariaDB 11.8 + Galera 4, RabbitMQ 4, keystone and the other services' DB syncs, on a private
Docker network. Marked `cluster`: `./gs test -m cluster` runs these alone. Every failure message
carries each node's agent status and service logs (Lab.diagnostics).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from firstboot import tasks
from firstboot.keystone_api import password_request
from tests import controlplane
from tests.controlplane import Lab

pytestmark = [pytest.mark.docker, pytest.mark.cluster, pytest.mark.timeout(3000)]
NAMES = ["ctl1", "ctl2", "ctl3"]


@dataclass(frozen=True)
class Formation:
    """The module's one three-controller formation: the order the containers started in, and the DB sync
    whose holder's agent was SIGKILLed while it ran."""

    lab: Lab
    order: list[str]
    killed: controlplane.RunningTask


@pytest.fixture(scope="module")
def formation(built_images, tmp_path_factory) -> Iterator[Formation]:
    """Three controllers started in a random order with random delays; the agent holding one of the longest
    DB syncs (20-30 s: the kill lands while the command runs) is SIGKILLed. Every test below runs on this
    one formation, in file order (the second formation it once had cost the CI run ~200 s)."""
    with controlplane.controller_lab(built_images["controller"], tmp_path_factory.mktemp("cp"),
                                     computes=("cmp1",), compute_image=built_images["compute"]) as lab:
        order = random.sample(NAMES, 3)
        controlplane.start_in_order(lab, order, max_delay=6)
        victim = lab.wait_for_running_task(("neutron-db-upgrade", "placement-db-sync"), timeout=900)
        lab.exec(victim.owner, "pkill", "-KILL", "-f", "firstboot run")
        lab.wait_agents(timeout=1500)
        yield Formation(lab, order, victim)


@pytest.fixture(scope="module")
def lab(formation: Formation) -> Lab:
    return formation.lab


def admin_password(lab: Lab) -> str:
    return lab.exec("ctl1", "sh", "-c", ". /root/admin-openrc && printf %s \"$OS_PASSWORD\"").stdout


def token(url: str, password: str, ca_file: str) -> str:
    response = requests.post(f"{url}/v3/auth/tokens", json=password_request("admin", password, "admin"), timeout=30,
                             verify=ca_file)
    assert response.status_code == 201, response.text[:500]
    return response.headers["X-Subject-Token"]


def assert_cluster_whole(lab: Lab, names: list[str] = NAMES) -> None:
    for name in names:
        status = lab.wsrep(name)
        assert status.get("wsrep_cluster_size") == str(len(names)), (name, status, lab.diagnostics())
        assert status.get("wsrep_cluster_status") == "Primary"
        assert status.get("wsrep_local_state_comment") == "Synced"
    expected = sorted(f"rabbit@{n}" for n in names)
    lab.wait_for(lambda: all(lab.rabbit_running(n) == expected for n in names), "RabbitMQ cluster of 3", 300)


def assert_tasks_ran_once(lab: Lab, name: str) -> dict:
    report = lab.tasks(name)
    records = {r["task"]: r for r in report["tasks"]}
    assert set(records) == {t.name for t in tasks.TASKS}, records.keys()
    assert all(r["state"] == "done" for r in records.values()), records
    finished = [h["task"] for h in report["history"] if h["event"] == "done"]
    assert sorted(finished) == sorted(records), f"a task finished twice or never: {finished}"
    return report


@pytest.mark.sequence
def test_agent_killed_during_db_syncs_is_taken_over_and_nothing_runs_twice(formation):
    lab, killed = formation.lab, formation.killed
    assert_cluster_whole(lab)
    report = assert_tasks_ran_once(lab, formation.order[0])
    events = [h["event"] for h in report["history"] if h["task"] == killed.task]
    assert "takeover" in events, f"{killed.task} (held by {killed.owner} when killed): {events}"


@pytest.mark.sequence
def test_three_controllers_form_one_control_plane(lab):
    assert_cluster_whole(lab)
    assert_tasks_ran_once(lab, "ctl2")
    password = admin_password(lab)
    # A token from each controller, and through the VIP; all share the Fernet keys.
    issued = {name: token(f"https://{lab.ip(name)}:5000", password, lab.ca_file) for name in NAMES}
    issued["vip"] = token(f"https://{lab.vip}:5000", password, lab.ca_file)
    for source, subject in issued.items():
        for name in NAMES:
            check = requests.get(f"https://{lab.ip(name)}:5000/v3/auth/tokens", timeout=30, verify=lab.ca_file,
                                 headers={"X-Auth-Token": subject, "X-Subject-Token": subject})
            assert check.status_code == 200, f"token from {source} rejected by {name}: {check.text[:300]}"
    # The health endpoint HAProxy checks says Synced; HAProxy sees every Galera backend up.
    for name in NAMES:
        assert requests.get(f"http://{lab.ip(name)}:9200/", timeout=10).status_code == 200
    # RabbitMQ: no guest; the management API answers on the management address only.
    users = lab.exec("ctl1", "rabbitmqctl", "-q", "list_users").stdout
    assert "openstack" in users and "guest" not in users
    assert lab.exec("ctl1", "curl", "-s", "-m", "5", "http://127.0.0.1:15672/", check=False).returncode != 0
    assert lab.exec("ctl1", "curl", "-s", "-m", "5", "http://127.0.0.1:15671/", check=False).returncode != 0
    # Every API is in the catalog, through the VIP.
    catalog = requests.get(f"https://{lab.vip}:5000/v3/auth/catalog", timeout=30, verify=lab.ca_file,
                           headers={"X-Auth-Token": issued["vip"]}).json()["catalog"]
    types = {s["type"] for s in catalog}
    assert {"identity", "image", "placement", "compute", "network", "block-storage", "volumev3"} <= types
    for service in catalog:
        assert all(lab.vip in e["url"] for e in service["endpoints"]), service


def write_rows(lab: Lab, count: int, tag: str) -> None:
    """Committed rows, each its own transaction, spread over the three writers."""
    lab.sql("ctl1", "CREATE DATABASE IF NOT EXISTS cptest; CREATE TABLE IF NOT EXISTS cptest.rows "
                    "(id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(32), n INT) ENGINE=InnoDB")
    for i in range(count):
        lab.sql(NAMES[i % 3], f"INSERT INTO cptest.rows (tag, n) VALUES ('{tag}', {i})")
    for name in NAMES:
        assert row_count(lab, name, tag) == count


def row_count(lab: Lab, name: str, tag: str) -> int:
    out = lab.sql(name, f"SET SESSION wsrep_sync_wait=1; SELECT COUNT(*) FROM cptest.rows WHERE tag='{tag}'")
    return int(out.stdout.split()[-1])


@pytest.mark.sequence
def test_full_power_loss_recovers_without_an_operator(lab):
    write_rows(lab, 60, "before-power-loss")
    for name in NAMES:  # SIGKILL to every container's PID 1: no clean shutdown anywhere
        controlplane.docker("kill", "-s", "KILL", lab.containers[name])
    since = time.time()
    order = random.sample(NAMES, 3)
    for name in order:
        controlplane.docker("start", lab.containers[name])
        time.sleep(random.uniform(0, 8))  # the scenario: nodes come back at different moments
    lab.wait_agents(timeout=900, since=since)
    assert_cluster_whole(lab)
    for name in NAMES:
        assert row_count(lab, name, "before-power-loss") == 60, f"rows lost on {name} (restart order {order})"
    token(f"https://{lab.vip}:5000", admin_password(lab), lab.ca_file)


@pytest.mark.sequence
def test_isolated_controller_refuses_writes_and_rejoins(lab):
    victim = "ctl3"
    controlplane.docker("network", "disconnect", lab.net, lab.containers[victim])
    try:
        lab.wait_for(lambda: lab.wsrep("ctl1").get("wsrep_cluster_size") == "2", "majority sees 2 nodes", 120)
        write_rows_during = "during-partition"
        lab.sql("ctl1", f"INSERT INTO cptest.rows (tag, n) VALUES ('{write_rows_during}', 1)")
        lab.sql("ctl2", f"INSERT INTO cptest.rows (tag, n) VALUES ('{write_rows_during}', 2)")
        assert lab.wsrep(victim).get("wsrep_cluster_status") != "Primary"
        refused = lab.sql(victim, "INSERT INTO cptest.rows (tag, n) VALUES ('minority', 3)", check=False)
        assert refused.returncode != 0 and "1047" in refused.stderr + refused.stdout, refused
    finally:
        controlplane.docker("network", "connect", "--ip", lab.ip(victim), lab.net, lab.containers[victim])
    lab.wait_for(lambda: lab.wsrep(victim).get("wsrep_local_state_comment") == "Synced"
                 and lab.wsrep(victim).get("wsrep_cluster_size") == "3", "isolated node rejoined", 300)
    assert row_count(lab, victim, "during-partition") == 2
    assert row_count(lab, victim, "minority") == 0
    assert_cluster_whole(lab)


@pytest.mark.sequence
def test_wiped_controller_rejoins_under_its_name(lab):
    since = time.time()
    lab.start("ctl2")  # removes the container and its data, then starts the image afresh
    lab.wait_agents(["ctl2"], timeout=900, since=since)
    assert_cluster_whole(lab)
    assert row_count(lab, "ctl2", "before-power-loss") == 60
    token(f"https://{lab.ip('ctl2')}:5000", admin_password(lab), lab.ca_file)


@pytest.mark.sequence
def test_compute_node_registers_and_is_discovered_without_an_operator(lab):
    since = time.time()
    lab.start("cmp1")
    lab.wait_agents(["cmp1"], timeout=900, since=since)
    subject = token(f"https://{lab.vip}:5000", admin_password(lab), lab.ca_file)
    headers = {"X-Auth-Token": subject, "OpenStack-API-Version": "compute 2.53"}
    services = requests.get(f"https://{lab.vip}:8774/v2.1/os-services", headers=headers, timeout=30,
                            verify=lab.ca_file,
                            params={"binary": "nova-compute"}).json()["services"]
    assert [(s["host"], s["state"]) for s in services] == [("cmp1", "up")], services
    hypervisors = requests.get(f"https://{lab.vip}:8774/v2.1/os-hypervisors", headers=headers, verify=lab.ca_file,
                               timeout=30).json()["hypervisors"]
    assert [h["hypervisor_hostname"] for h in hypervisors] == ["cmp1"], hypervisors
    # Mapped into cell1 by the schedulers' periodic discovery: no discover_hosts was typed anywhere.
    cells = lab.exec("ctl1", "su", "-s", "/bin/sh", "nova", "-c", "nova-manage cell_v2 list_hosts").stdout
    assert "cell1" in cells and "cmp1" in cells, cells
