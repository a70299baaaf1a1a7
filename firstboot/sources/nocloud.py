"""NoCloud: a seed directory or a `cidata` volume (ISO) with meta-data and user-data."""

from __future__ import annotations

from pathlib import Path

from firstboot.files import under_root as under
from firstboot.sources import media
from firstboot.sources.base import Found
from firstboot.sources.userdata import extract_document

SEED_DIRS = ("/var/lib/cloud/seed/nocloud", "/var/lib/cloud/seed/nocloud-net")
LABELS = ["cidata", "CIDATA"]
FILES = ["meta-data", "user-data"]


def from_files(files: dict[str, bytes], where: str) -> Found | None:
    if "user-data" not in files:
        return None
    text = extract_document(files["user-data"])
    return Found("nocloud", where, text) if text is not None else None


def read(root: Path, seed: Path | None = None) -> Found | None:
    """`seed` (a directory or an ISO) overrides discovery."""
    candidates = [seed] if seed else [under(root, d) for d in SEED_DIRS] + media.devices_with_label(
        LABELS, under(root, "/dev"))
    for path in candidates:
        if path.is_dir():
            files = media.read_from_dir(path, FILES)
        elif path.exists():
            files = media.read_from_iso(path, FILES)
        else:
            continue
        if found := from_files(files, str(path)):
            return found
    return None
