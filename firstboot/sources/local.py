"""Sources on the local disk: the user-data cloud-init already fetched, and a plain document file."""

from __future__ import annotations

from pathlib import Path

from firstboot.document import text_of
from firstboot.files import under_root as under
from firstboot.sources.base import NODE_FILE, Found
from firstboot.sources.userdata import extract_document

CLOUD_INIT_USER_DATA = "/var/lib/cloud/instance/user-data.txt"
LOCAL_FILE = NODE_FILE


def read_cloud_init(root: Path) -> Found | None:
    path = under(root, CLOUD_INIT_USER_DATA)
    if not path.is_file():
        return None
    text = extract_document(path.read_bytes())
    return Found("cloud-init", str(path), text) if text is not None else None


def read_file(root: Path, path: Path | None = None) -> Found | None:
    target = path or under(root, LOCAL_FILE)
    if not target.is_file():
        return None
    return Found("file", str(target), text_of(target.read_bytes(), str(target)))
