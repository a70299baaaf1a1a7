"""Storage and compute nodes that join by themselves: a real Ceph cluster (monitor, manager, BlueStore
OSD on a file) formed by the storage node's agent, cinder-volume and glance on RBD, nova-compute with
the libvirt secret of client.cinder, neutron's Open vSwitch agents on the userspace datapath. One
controller (the small lab), one storage node, one compute node, all started at once with no operator.
Marked `storage`: `./gs test -m storage` runs these alone.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests import controlplane
from tests.controlplane import Lab

pytestmark = [pytest.mark.docker, pytest.mark.storage, pytest.mark.timeout(3000)]
# What a one-OSD cluster is allowed to warn about: its pools have a single replica by design.
SMALL_LAB_WARNINGS = {"POOL_NO_REDUNDANCY"}
MARKER = b"goldstack volume marker "


@pytest.fixture(scope="module")
def lab(built_images, tmp_path_factory):
    with controlplane.controller_lab(built_images["controller"], tmp_path_factory.mktemp("stg"), names=("ctl1",),
                                     computes=("cmp1",), compute_image=built_images["compute"],
                                     storages=("stg1",), storage_image=built_images["storage"]) as lab:
        controlplane.start_in_order(lab, ["ctl1", "stg1", "cmp1"])
        lab.wait_agents(["ctl1", "stg1", "cmp1"], timeout=1500)
        yield lab


def ceph_json(lab: Lab, *args: str) -> dict | list:
    proc = lab.exec("stg1", "ceph", "--connect-timeout", "20", *args, "--format", "json", check=False, timeout=60)
    assert proc.returncode == 0, f"ceph {' '.join(args)}: {proc.stderr[-1000:]}\n{lab.diagnostics()}"
    return json.loads(proc.stdout)


def wait_status(lab: Lab, kind: str, ident: str, want: str, timeout: float = 300) -> dict:
    found: dict = {}

    def reached() -> bool:
        nonlocal found
        found = lab.openstack(kind, "show", ident)  # type: ignore[assignment]
        assert found.get("status") not in ("error", "killed"), (found, lab.diagnostics())
        return found.get("status") == want

    lab.wait_for(reached, f"{kind} {ident} {want}", timeout)
    return found


def assert_ceph_healthy(lab: Lab) -> None:
    health = ceph_json(lab, "health", "detail")
    assert health["status"] in ("HEALTH_OK", "HEALTH_WARN"), (health, lab.diagnostics())
    assert set(health.get("checks", {})) <= SMALL_LAB_WARNINGS, health
    osds = ceph_json(lab, "osd", "stat")
    assert (osds["num_osds"], osds["num_up_osds"], osds["num_in_osds"]) == (1, 1, 1), osds


def test_ceph_cluster_formed_with_the_openstack_pools(lab):
    assert_ceph_healthy(lab)
    status = ceph_json(lab, "quorum_status")
    assert status["quorum_names"] == ["stg1"]
    pools = {p["pool_name"]: p for p in ceph_json(lab, "osd", "pool", "ls", "detail")}
    for name in ("volumes", "images", "vms"):
        assert name in pools, pools.keys()
        assert pools[name]["size"] == 1  # one OSD: one replica (the lab's explained HEALTH_WARN)
        assert "rbd" in pools[name]["application_metadata"]
    # The OpenStack clients' keys are the ones from the site secrets, with their RBD profiles.
    cinder = ceph_json(lab, "auth", "get", "client.cinder")[0]
    assert "profile rbd pool=volumes" in cinder["caps"]["osd"]
    keyring = lab.exec("cmp1", "cat", "/etc/ceph/ceph.client.cinder.keyring").stdout
    assert cinder["key"] in keyring


def test_cinder_volume_registers_and_a_volume_is_an_rbd_image(lab):
    services = lab.openstack("volume", "service", "list")
    volume_services = [s for s in services if s["Binary"] == "cinder-volume"]
    assert [(s["Host"], s["State"], s["Status"]) for s in volume_services] == [("stg1@rbd", "up", "enabled")], \
        services
    name = f"gs-vol-{uuid.uuid4().hex[:8]}"
    volume = lab.openstack("volume", "create", "--size", "1", name)
    wait_status(lab, "volume", volume["id"], "available")
    images = lab.exec("stg1", "rbd", "-p", "volumes", "ls").stdout.split()
    assert f"volume-{volume['id']}" in images, images


def test_glance_image_upload_lands_in_the_images_pool(lab):
    name = f"gs-img-{uuid.uuid4().hex[:8]}"
    lab.exec("ctl1", "sh", "-c", "head -c 3145728 /dev/urandom > /tmp/gs-image.raw")
    image = lab.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                      "--file", "/tmp/gs-image.raw", name)
    wait_status(lab, "image", image["id"], "active")
    assert image["id"] in lab.exec("stg1", "rbd", "-p", "images", "ls").stdout.split()
    stored = lab.exec("stg1", "rbd", "-p", "images", "info", image["id"], "--format", "json").stdout
    assert json.loads(stored)["size"] == 3145728


def test_compute_node_registered_with_the_libvirt_secret(lab):
    computes = [s for s in lab.openstack("compute", "service", "list") if s["Binary"] == "nova-compute"]
    assert [(s["Host"], s["State"]) for s in computes] == [("cmp1", "up")], computes
    hypervisors = lab.openstack("hypervisor", "list")
    assert [h["Hypervisor Hostname"] for h in hypervisors] == ["cmp1"], hypervisors
    secrets = lab.exec("cmp1", "virsh", "-q", "secret-list").stdout
    assert "client.cinder secret" in secrets, secrets


def test_network_agents_alive_on_controller_and_compute(lab):
    agents = lab.openstack("network", "agent", "list")
    alive = {(a["Host"], a["Binary"]) for a in agents if a["Alive"] and a["State"]}
    expected = {("cmp1", "neutron-openvswitch-agent"), ("ctl1", "neutron-openvswitch-agent"),
                ("ctl1", "neutron-dhcp-agent"), ("ctl1", "neutron-l3-agent"), ("ctl1", "neutron-metadata-agent")}
    assert expected <= alive, agents
    bridges = lab.exec("cmp1", "ovs-vsctl", "list-br").stdout.split()
    assert {"br-int", "br-tun"} <= set(bridges), bridges


def test_storage_node_killed_and_restarted_keeps_its_volume(lab):
    volume = lab.openstack("volume", "create", "--size", "1", f"gs-keep-{uuid.uuid4().hex[:8]}")
    wait_status(lab, "volume", volume["id"], "available")
    marker = MARKER + volume["id"].encode()
    rbd_io = ("import rados, rbd, sys\n"
              "c = rados.Rados(conffile='/etc/ceph/ceph.conf'); c.connect()\n"
              "io = c.open_ioctx('volumes'); img = rbd.Image(io, sys.argv[1])\n"
              "data = sys.argv[2].encode()\n"
              "if sys.argv[3] == 'write': img.write(data, 1048576); img.flush()\n"
              "else: sys.stdout.write(img.read(1048576, len(data)).decode())\n"
              "img.close(); io.close(); c.shutdown()\n")
    lab.exec("stg1", "python3", "-c", rbd_io, f"volume-{volume['id']}", marker.decode(), "write")

    started = time.time()
    controlplane.docker("kill", "-s", "KILL", lab.containers["stg1"])
    controlplane.docker("start", lab.containers["stg1"])
    lab.wait_agents(["stg1"], timeout=900, since=started)
    assert_ceph_healthy(lab)
    read = lab.exec("stg1", "python3", "-c", rbd_io, f"volume-{volume['id']}", marker.decode(), "read").stdout
    assert read == marker.decode()
    assert lab.openstack("volume", "show", volume["id"])["status"] == "available"
    state = [s["State"] for s in lab.openstack("volume", "service", "list") if s["Binary"] == "cinder-volume"]
    assert state == ["up"]
