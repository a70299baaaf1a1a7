"""OpenStack ConfigDrive: a `config-2` volume (or its tree) with openstack/latest/user_data."""

from __future__ import annotations

from pathlib import Path

from firstboot.files import under_root as under
from firstboot.sources import media
from firstboot.sources.base import Found
from firstboot.sources.userdata import extract_document

SEED_DIRS = ("/var/lib/cloud/seed/config_drive",)
LABELS = ["config-2", "CONFIG-2"]
USER_DATA = "openstack/latest/user_data"


def read(root: Path, seed: Path | None = None) -> Found | None:
    candidates = [seed] if seed else [under(root, d) for d in SEED_DIRS] + media.devices_with_label(
        LABELS, under(root, "/dev"))
    for path in candidates:
        if path.is_dir():
            files = media.read_from_dir(path, [USER_DATA])
        elif path.exists():
            files = media.read_from_iso(path, [USER_DATA])
        else:
            continue
        if USER_DATA in files and (text := extract_document(files[USER_DATA])) is not None:
            return Found("configdrive", str(path), text)
    return None
