"""Read seed files from a directory, an ISO image file, or a block device found by its label.

ISOs are read in userspace with pycdlib, so no mount is needed (this build host's kernel has no
ISO9660 driver, and an agent should not leave mounts behind).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from firstboot.errors import SourceError


def read_from_dir(directory: Path, names: list[str]) -> dict[str, bytes]:
    return {n: (directory / n).read_bytes() for n in names if (directory / n).is_file()}


def read_from_iso(image: Path, names: list[str]) -> dict[str, bytes]:
    """Files by their Rock Ridge (or Joliet) names."""
    import io

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(image))
    except (PyCdlibException, OSError) as exc:
        raise SourceError(f"{image}: not a readable ISO9660 image: {exc}") from None
    found: dict[str, bytes] = {}
    try:
        for name in names:
            for kind in ("rr_path", "joliet_path"):
                if kind == "rr_path" and not iso.has_rock_ridge():
                    continue
                if kind == "joliet_path" and not iso.has_joliet():
                    continue
                buffer = io.BytesIO()
                try:
                    iso.get_file_from_iso_fp(buffer, **{kind: "/" + name})
                except PyCdlibException:
                    continue
                found[name] = buffer.getvalue()
                break
    finally:
        iso.close()
    return found


def devices_with_label(labels: list[str], dev_root: Path = Path("/dev")) -> list[Path]:
    """Block devices carrying one of these filesystem labels (udev links first, then blkid)."""
    found: list[Path] = []
    for label in labels:
        link = dev_root / "disk" / "by-label" / label
        if link.exists():
            found.append(link.resolve())
    if found or dev_root != Path("/dev"):
        return found
    for label in labels:
        try:
            out = subprocess.run(["blkid", "-t", f"LABEL={label}", "-o", "device"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        found += [Path(line) for line in out.split() if line]
    return found
