"""What an image says about itself: its labels and its package manifest (SPDX 2.3)."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess

from imagebuild import OPENSTACK_RELEASE, RELEASE, TOP, version
from imagebuild.commands import run


def git_commit() -> str:
    try:
        return run(["git", "-C", str(TOP), "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        return "unknown"


def labels_for(role: str) -> dict[str, str]:
    return {
        "org.goldstack.role": role,
        "org.goldstack.version": version(),
        "org.goldstack.commit": git_commit(),
        "org.goldstack.openstack-release": OPENSTACK_RELEASE,
        "org.goldstack.debian-release": RELEASE,
        "org.opencontainers.image.created": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def spdx_sbom(name: str, packages: list[tuple[str, str, str]]) -> dict:
    """An SPDX 2.3 JSON document listing the image's Debian packages."""
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://goldstack.invalid/spdx/{name}-{created}",
        "creationInfo": {"created": created, "creators": [f"Tool: goldstack-build-{version()}"]},
        "packages": [
            {
                "name": pkg,
                "SPDXID": f"SPDXRef-deb-{hashlib.sha1(pkg.encode()).hexdigest()[:12]}",
                "versionInfo": ver,
                "downloadLocation": "NOASSERTION",
                "supplier": "Organization: Debian",
                "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                  "referenceLocator": f"pkg:deb/debian/{pkg}@{ver}?arch={arch}"}],
            }
            for pkg, ver, arch in packages
        ],
    }


def installed_packages(image: str) -> list[tuple[str, str, str]]:
    out = run(["docker", "run", "--rm", "--entrypoint", "dpkg-query", image, "-W", "-f",
               "${Package}\t${Version}\t${Architecture}\n"]).stdout
    return [tuple(line.split("\t")) for line in out.splitlines() if line.count("\t") == 2]
