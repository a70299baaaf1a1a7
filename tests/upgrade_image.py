"""Images that look like an upgrade: the role images again, the controller's with newer versions of some
OpenStack packages recorded (this machine has one OpenStack release only). A roll to them re-runs exactly
the run-once tasks recorded with those packages' older versions, in upgrade order."""

from __future__ import annotations

import subprocess

from firstboot import catalog

BUMPED = ("keystone", "neutron-common", "nova-common")
SUFFIX = "+goldstack1"


def dockerfile(base: str, role: str) -> str:
    """A new image of `role` (a new image id, as a rebuild gives), the controller's with BUMPED packages."""
    lines = [f"FROM {base}", f"LABEL org.goldstack.test-upgrade={SUFFIX.lstrip('+')}"]
    if role == catalog.CONTROLLER:
        edits = " ".join(f"-e '/^Package: {p}$/,/^Version:/ s/^Version: \\(.*\\)$/Version: \\1{SUFFIX}/'"
                         for p in BUMPED)
        lines.append(f"RUN sed -i {edits} /var/lib/dpkg/status")
    return "\n".join(lines) + "\n"


def build(from_tag: str, to_tag: str) -> dict[str, str]:
    """goldstack/ROLE:TO_TAG for every role; the controller's with BUMPED packages at a newer version."""
    images = {}
    for role in catalog.ROLES:
        target = f"goldstack/{role}:{to_tag}"
        subprocess.run(["docker", "build", "-q", "-t", target, "-"], input=dockerfile(f"goldstack/{role}:{from_tag}",
                       role), text=True, check=True, capture_output=True)
        images[role] = target
    return images


def remove(tag: str) -> None:
    subprocess.run(["docker", "rmi", *(f"goldstack/{r}:{tag}" for r in catalog.ROLES)], capture_output=True)
