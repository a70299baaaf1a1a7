"""Every rendered OpenStack INI file passes `oslo-config-validator` with the service's own option
namespaces, inside the role image that runs the service (so the options match the packaged release)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from firstboot import catalog, document, render
from tests import dockerlab

pytestmark = [pytest.mark.docker, pytest.mark.image]


@dataclass(frozen=True)
class OsloCheck:
    """How `oslo-config-validator` checks one rendered INI file (in the role image that runs the service).

    sections_as: backend sections named at run time (enabled_backends) are checked as the static group
    that holds the same options. gaps: options the service registers at run time, so the validator's
    sample lacks them.
    """

    namespaces: tuple[str, ...]
    sections_as: tuple[tuple[str, str], ...] = ()
    gaps: tuple[str, ...] = ()


_OSLO = ("oslo.log", "oslo.messaging", "oslo.concurrency", "oslo.db", "oslo.policy", "oslo.middleware",
         "keystonemiddleware.auth_token")
_AGENT = ("neutron.az.agent", "neutron.base.agent", "oslo.log")
OSLO_VALIDATION: dict[str, OsloCheck] = {
    "keystone": OsloCheck(("keystone", "oslo.cache", *_OSLO)),
    "glance-api": OsloCheck(("glance.api", "glance.store", "glance.multi_store", "oslo.cache", *_OSLO),
                            sections_as=(("rbd", "glance_store"), ("file", "glance_store"))),
    "placement": OsloCheck(("placement.conf", *_OSLO)),
    "nova": OsloCheck(("nova.conf", "oslo.cache", *_OSLO)),
    "neutron": OsloCheck(("neutron", "neutron.agent", "neutron.db", "neutron.extensions", "nova.auth",
                          "oslo.cache", *_OSLO)),
    "ml2": OsloCheck(("neutron.ml2",)),
    "openvswitch-agent": OsloCheck(("neutron.ml2.ovs.agent", "oslo.log")),
    "dhcp-agent": OsloCheck(("neutron.dhcp.agent", *_AGENT)),
    "metadata-agent": OsloCheck(("neutron.metadata.agent", "oslo.log")),
    "l3-agent": OsloCheck(("neutron.l3.agent", *_AGENT)),
    "cinder": OsloCheck(("cinder", "oslo.cache", *_OSLO),
                        sections_as=(("rbd", "backend_defaults"), ("lvm", "backend_defaults")),
                        gaps=("service_user/auth_type",)),
}


def prepare(text: str, check: OsloCheck) -> str:
    """Rename run-time backend sections to their static group and drop documented validator gaps."""
    for section, group in check.sections_as:
        text = re.sub(rf"^\[{re.escape(section)}\]$", f"[{group}]", text, flags=re.M)
    current = None
    kept = []
    for line in text.splitlines():
        if m := re.match(r"^\[([^\]]+)\]", line):
            current = m.group(1)
        key = line.split("=", 1)[0].strip()
        if f"{current}/{key}" not in check.gaps:
            kept.append(line)
    return "\n".join(kept) + "\n"


@pytest.mark.parametrize("node,role", [("ctl1", "controller"), ("cmp1", "compute"), ("sto1", "storage")])
def test_rendered_ini_files_validate_in_their_image(built_images, doc_of, tmp_path, node, role):
    doc = document.validate(doc_of(node))
    tree = render.render_tree(doc, render.Facts())
    files = {f.path: f for f in catalog.files_for(doc.role, doc.features) if f.override in OSLO_VALIDATION}
    assert files, f"no validated files for {role}"
    script = []
    for i, (path, spec) in enumerate(sorted(files.items())):
        check = OSLO_VALIDATION[spec.override]
        (tmp_path / f"{i}.conf").write_text(prepare(tree[path].content.decode(), check))
        namespaces = " ".join(f"--namespace {n}" for n in check.namespaces)
        script.append(f'echo "== {path}"; oslo-config-validator {namespaces} --input-file /v/{i}.conf 2>&1 '
                      f'| grep -E "^(ERROR|WARNING:stevedore)" ; echo "rc=${{PIPESTATUS[0]}}"')
    (tmp_path / "run.sh").write_text("\n".join(script) + "\n")
    proc = dockerlab.docker("run", "--rm", "-v", f"{tmp_path}:/v:ro", "--entrypoint", "bash",
                            built_images[role], "/v/run.sh", timeout=900)
    report = proc.stdout + proc.stderr
    results = re.findall(r"^== (\S+)\n(.*?)rc=(\d+)$", proc.stdout, flags=re.M | re.S)
    assert len(results) == len(files), report
    bad = {path: out.strip() for path, out, rc in results if rc != "0" or out.strip()}
    assert not bad, "\n".join(f"{p}:\n{o}" for p, o in bad.items())
    assert Path(tmp_path / "run.sh").exists()
