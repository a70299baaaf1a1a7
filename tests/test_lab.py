"""The compose lab through its real command (`compose/lab.py`, what `./gs lab` runs) and the real compose
tool: the small lab (one controller, a compute and a storage node) comes up from the role images with
nothing but seeds, answers through the VIP, and comes back from its volumes after `down` + `up`.
Marked `lab`: `./gs test -m lab` runs these alone. Each lab gets a unique name and subnets, and is
destroyed (containers, volumes, seeds, secrets) even on failure.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from tests.dockerlab import docker

pytestmark = [pytest.mark.docker, pytest.mark.lab, pytest.mark.timeout(3000)]
TOP = Path(__file__).resolve().parent.parent
LAB = [sys.executable, str(TOP / "compose" / "lab.py")]


# Asks keystone for a token with the OS_* variables of an openrc; prints the HTTP status.
TOKEN_REQUEST = """
import json, os, urllib.request
user = {"name": os.environ["OS_USERNAME"], "domain": {"id": "default"}, "password": os.environ["OS_PASSWORD"]}
body = json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}).encode()
request = urllib.request.Request(os.environ["OS_AUTH_URL"] + "/auth/tokens", body,
                                 {"Content-Type": "application/json"})
print(urllib.request.urlopen(request, timeout=30).status)
"""


def lab(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([*LAB, *args], capture_output=True, text=True, timeout=timeout, cwd=TOP)


def free_prefixes() -> tuple[str, str]:
    used = set()
    for net in docker("network", "ls", "-q").stdout.split():
        info = json.loads(docker("network", "inspect", net).stdout)[0]
        used |= {c.get("Subnet", "") for c in (info.get("IPAM") or {}).get("Config") or []}
    while True:
        a, b = random.randint(0, 255), random.randint(0, 255)
        first, second = f"10.{random.randint(200, 250)}.{a}", f"10.{random.randint(200, 250)}.{b}"
        if first != second and not {f"{first}.0/24", f"{second}.0/24"} & used:
            return first, second


def test_compose_file_is_valid_for_compose_v1():
    proc = subprocess.run(["docker-compose", "-f", str(TOP / "compose/docker-compose.yml"), "-p", "gs-validate",
                           "--profile", "ha", "config"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    services = yaml.safe_load(proc.stdout)["services"]
    assert set(services) == {"ctl1", "ctl2", "ctl3", "cmp1", "sto1"}
    for name, service in services.items():
        assert "/etc/goldstack/node.yaml" in " ".join(map(str, service["volumes"])), name


def test_lab_commands_refuse_bad_input_clearly():
    missing = lab("--name", f"gs-none-{uuid.uuid4().hex[:6]}", "status")
    assert missing.returncode == 1 and "no lab named" in missing.stderr, missing.stderr
    bad = lab("up", "--controllers", "2")
    assert bad.returncode == 2 and "--controllers" in bad.stderr


@pytest.fixture(scope="module")
def small_lab(built_images):
    name = f"gs-lab-{uuid.uuid4().hex[:6]}"
    management, provider = free_prefixes()
    try:
        up = lab("--name", name, "up", "--controllers", "1", "--tag", "test", "--no-build",
                 "--management-prefix", management, "--provider-prefix", provider, "--timeout", "1500")
        yield name, management, up
    finally:
        status = lab("--name", name, "status", "--json")
        print(status.stdout[-20000:])  # shown by pytest when a test failed
        lab("--name", name, "destroy")


def status_of(name: str) -> dict:
    proc = lab("--name", name, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_small_lab_comes_up_with_every_agent_done(small_lab):
    name, _, up = small_lab
    assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
    assert "ready after" in up.stdout
    nodes = {n["node"]: n for n in status_of(name)["nodes"]}
    assert set(nodes) == {"ctl1", "cmp1", "sto1"}
    assert all(n["agent"] == "done" and n["container"] == "running" for n in nodes.values()), nodes
    secrets = TOP / "build" / "lab" / name / "site.secrets.yaml"
    assert secrets.stat().st_mode & 0o777 == 0o600


def test_openrc_gives_a_token_through_the_vip(small_lab):
    name, management, _ = small_lab
    openrc = lab("--name", name, "openrc")
    assert openrc.returncode == 0, openrc.stderr
    assert f"{management}.10" in openrc.stdout  # the VIP
    container = container_of(name, "cmp1")
    # From another node than the controller: the credentials and the VIP are all a client needs.
    token = subprocess.run(["docker", "exec", "-i", container, "sh", "-c",
                            f"cat > /tmp/openrc && . /tmp/openrc && python3 -c '{TOKEN_REQUEST}'"],
                           input=openrc.stdout, capture_output=True, text=True, timeout=60)
    assert token.returncode == 0 and token.stdout.strip() == "201", token.stderr


def container_of(name: str, node: str) -> str:
    return docker("ps", "-q", "--filter", f"label=com.docker.compose.project={name}",
                  "--filter", f"label=com.docker.compose.service={node}").stdout.strip()


def test_down_keeps_volumes_and_up_brings_the_same_cloud_back(small_lab):
    name, _, _ = small_lab
    down = lab("--name", name, "down")
    assert down.returncode == 0, down.stderr
    assert all(n["container"] == "absent" for n in status_of(name)["nodes"])
    up = lab("--name", name, "up", "--no-build", "--timeout", "1500")
    assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
    # The same databases: every run-once task is recorded done exactly once, across both `up`s.
    history = json.loads(docker("exec", container_of(name, "ctl1"), "goldstack-firstboot", "tasks", "--history",
                                "--json").stdout)["history"]
    done = [h["task"] for h in history if h["event"] == "done"]
    assert sorted(done) == sorted(set(done)), done
    # The same Ceph data: one OSD (its id came back), the pools still there.
    osds = json.loads(docker("exec", container_of(name, "sto1"), "ceph", "osd", "stat", "--format", "json").stdout)
    assert (osds["num_osds"], osds["num_up_osds"]) == (1, 1), osds
    logs = lab("--name", name, "logs", "ctl1")
    assert logs.returncode == 0 and "goldstack-firstboot" in logs.stdout
