"""Real golden container images: built from the elements, booted under systemd, agent succeeds.

Marked `docker` and `image`: `./gs test -m image` runs them alone. The first run builds the images
(several minutes); later runs reuse Docker's layer cache.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import yaml

from firstboot import catalog
from imagebuild.elements import role_packages
from tests import artifact_scan, dockerlab

pytestmark = [pytest.mark.docker, pytest.mark.image]
TOP = Path(__file__).resolve().parent.parent

ROLES_UNDER_TEST = catalog.ROLES


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
def test_image_carries_its_role_packages_labels_and_manifest(built_images, role):
    image = built_images[role]
    sbom = json.loads((Path(built_images["_output"]) / f"{role}.docker.spdx.json").read_text())
    installed = {p["name"] for p in sbom["packages"]}
    assert sbom["spdxVersion"] == "SPDX-2.3" and len(installed) > 100
    missing = role_packages(role) - installed
    assert not missing, f"element packages missing from the {role} image: {missing}"
    labels = json.loads(dockerlab.docker("image", "inspect", "-f", "{{json .Config.Labels}}", image).stdout)
    assert labels["org.goldstack.role"] == role
    assert labels["org.goldstack.openstack-release"] == "2025.1"
    assert labels["org.goldstack.commit"]


def _in_image(image: str, script: str) -> str:
    return dockerlab.docker("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
def test_image_is_role_generic(built_images, role):
    image = built_images[role]
    assert _in_image(image, "cat /etc/machine-id") == ""
    assert _in_image(image, "ls /etc/ssh/ssh_host_* 2>/dev/null; true") == ""
    assert _in_image(image, "ls -A /etc/goldstack /var/lib/goldstack") == "/etc/goldstack:\n\n/var/lib/goldstack:\n"
    assert _in_image(image, "test -e /etc/cloud/cloud-init.disabled && echo off").strip() == "off"
    assert _in_image(image, "systemctl is-enabled goldstack-firstboot.service").strip() == "enabled"
    # Role services stay off until the agent has configured them.
    states = _in_image(image, f"for u in $(goldstack-firstboot units --role {role}); do "
                              "echo $u $(systemctl is-enabled $u 2>&1); done")
    assert states.strip() and "enabled" not in states.replace("disabled", ""), states


# The package units the elements extend with a drop-in (static/etc/systemd/system/UNIT.d/), by role.
EXTENDED_UNITS = {catalog.CONTROLLER: {"neutron-openvswitch-agent.service", "rabbitmq-server.service"},
                  catalog.COMPUTE: {"neutron-openvswitch-agent.service"}, catalog.STORAGE: set()}


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
def test_the_elements_drop_ins_extend_the_package_units(built_images, role):
    """A drop-in under a misspelt unit name, or for a unit the image lacks, is silently ignored by systemd:
    systemd-delta (which reads the unit directories without a running systemd) must list each as extending
    its unit."""
    ours = {path.parent.name.removesuffix(".d") for path in (TOP / "elements").glob(
        "*/static/etc/systemd/system/*.service.d/*.conf")}
    assert ours == set().union(*EXTENDED_UNITS.values()), ours
    extended = _in_image(built_images[role], "systemd-delta --type=extended --no-pager || true")
    found = {unit for unit in ours if f"/{unit} → /etc/systemd/system/{unit}.d/" in extended}
    assert found == EXTENDED_UNITS[role], extended


@pytest.mark.parametrize("role", ROLES_UNDER_TEST)
def test_no_secret_or_private_key_in_the_image(built_images, role, tmp_path, site_secrets):
    tarball = tmp_path / "image.tar"
    dockerlab.docker("save", "-o", str(tarball), built_images[role], timeout=600)
    needles = artifact_scan.secret_needles(site_secrets)
    problems: list[str] = []
    layers = 0
    with tarfile.open(tarball) as outer:
        for member in outer:
            if not member.name.endswith("layer.tar"):
                continue
            layers += 1
            with tarfile.open(fileobj=outer.extractfile(member)) as layer:
                for entry in layer:
                    if entry.isfile() and entry.size <= 50 * 2**20:
                        problems += artifact_scan.problems_in(entry.name, layer.extractfile(entry).read(), needles)
    assert layers >= 4
    assert not problems, "\n".join(problems)


def test_compute_container_boots_and_the_agent_configures_it(built_images, tmp_path, site_secrets):
    from firstboot import seed

    net_name = dockerlab.unique("gs-img-net")
    node = dockerlab.unique("cmp")
    with dockerlab.network(net_name) as prefix:
        inv = {"cluster": "imgtest", "vip": f"{prefix}.10", "networks": {"management": f"{prefix}.0/24"},
               "nodes": [{"name": "ctl1", "role": "controller", "addresses": {"management": f"{prefix}.11"}},
                         {"name": node, "role": "compute", "addresses": {"management": f"{prefix}.21"}}]}
        doc = seed.node_document(seed.Inventory(inv, inv["nodes"]), inv["nodes"][1], site_secrets)
        doc.setdefault("options", {})["stop_after"] = "config"  # no control plane here to register with
        node_yaml = tmp_path / "node.yaml"
        node_yaml.write_text(yaml.safe_dump(doc))
        node_yaml.chmod(0o600)
        try:
            dockerlab.run_node(node, built_images["compute"], net_name, f"{prefix}.21", node_yaml)
            state = dockerlab.wait_agent(node, timeout=240)
            report = dockerlab.diagnostics(node)
            assert state["agent"]["status"] == "done", report
            assert state["agent"]["source"] == "file"
            assert {s: r["status"] for s, r in state["steps"].items()} == {"hosts": "done", "config": "done"}, report
            owner = dockerlab.docker("exec", node, "stat", "-c", "%U:%G %a", "/etc/nova/nova.conf").stdout.split()
            assert owner == ["root:nova", "640"]
            conf = dockerlab.docker("exec", node, "grep", "-E", "^(virt_type|my_ip)", "/etc/nova/nova.conf").stdout
            assert "virt_type = " in conf and f"my_ip = {prefix}.21" in conf
            hosts = dockerlab.docker("exec", node, "cat", "/etc/hosts").stdout
            assert f"{prefix}.11 ctl1" in hosts
            journal = dockerlab.docker("exec", node, "journalctl", "-u", "goldstack-firstboot", "--no-pager").stdout
            assert "goldstack-firstboot: SUCCESS" in journal, report
            for value in doc["secrets"].values():
                assert str(value) not in journal
        finally:
            dockerlab.remove(node)


def test_real_cloud_init_reads_the_nocloud_seed(built_images, tmp_path, doc_of):
    """Debian's cloud-init (in the image) accepts the seed's user-data and writes the node document."""
    from firstboot import seed

    doc = doc_of("cmp1")
    seed.build_node(tmp_path / "seed", doc, ("nocloud",))
    nocloud = tmp_path / "seed/nocloud"
    script = (
        "rm -f /etc/cloud/cloud-init.disabled; "
        "cloud-init schema --config-file /var/lib/cloud/seed/nocloud/user-data 2>&1; "
        "cloud-init init --local >/tmp/ci.log 2>&1; cloud-init init >>/tmp/ci.log 2>&1; "
        "echo datasource=$(cat /run/cloud-init/instance-data.json | python3 -c "
        "'import json,sys; print(json.load(sys.stdin)[\"v1\"][\"platform\"])'); "
        "stat -c 'mode=%a owner=%U' /etc/goldstack/node.yaml; "
        "goldstack-firstboot validate --source cloud-init 2>&1; "
        "grep -c 'goldstack' /tmp/ci.log; grep -E 'Traceback|ERROR' /tmp/ci.log | head -5"
    )
    proc = dockerlab.docker("run", "--rm", "-v", f"{nocloud}:/var/lib/cloud/seed/nocloud:ro", "--entrypoint",
                            "sh", built_images["compute"], "-c", script, timeout=300)
    out = proc.stdout
    assert "Valid schema" in out or "Valid cloud-config" in out, out
    assert "datasource=nocloud" in out, out
    assert "mode=600 owner=root" in out, out
    assert "valid: node cmp1 (compute) of cluster testlab" in out and "from cloud-init" in out, out
    for value in doc["secrets"].values():
        assert str(value) not in out
