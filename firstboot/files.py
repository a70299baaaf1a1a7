"""Atomic file writes with owner and mode, and applying a rendered tree under a root."""

from __future__ import annotations

import grp
import os
import pwd
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from firstboot.errors import GoldstackError


class OwnershipError(GoldstackError):
    """A file's owner or group does not exist on this host (the image lacks a package?)."""


def atomic_write(path: Path, content: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Write beside the target, fix owner and mode, fsync, then rename: readers see old or new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".goldstack-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def resolve_ids(owner: str, group: str) -> tuple[int, int]:
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        raise OwnershipError(f"user {owner!r} does not exist on this host") from None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise OwnershipError(f"group {group!r} does not exist on this host") from None
    return uid, gid


def is_current(path: Path, content: bytes, mode: int, ids: tuple[int, int] | None) -> bool:
    """True when the file already has this content, mode and (if checked) owner."""
    try:
        st = path.stat()
        if (st.st_mode & 0o7777) != mode or (ids is not None and (st.st_uid, st.st_gid) != ids):
            return False
        return st.st_size == len(content) and path.read_bytes() == content
    except FileNotFoundError:
        return False


@dataclass
class ApplyReport:
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed_services: set[str] = field(default_factory=set)


def under_root(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def apply_files(files: Iterable, root: Path, set_owner: bool) -> ApplyReport:
    """Write every file that differs; check all owners first so a missing account writes nothing."""
    files = list(files)
    ids = {f.path: resolve_ids(f.owner, f.group) for f in files} if set_owner else {}
    report = ApplyReport()
    for f in files:
        target = under_root(root, f.path)
        owner_ids = ids.get(f.path)
        if is_current(target, f.content, f.mode, owner_ids):
            report.unchanged.append(f.path)
            continue
        uid, gid = owner_ids if owner_ids else (None, None)
        atomic_write(target, f.content, f.mode, uid, gid)
        report.written.append(f.path)
        report.changed_services.add(f.service)
    return report


def dir_is_current(path: Path, mode: int, ids: tuple[int, int] | None) -> bool:
    try:
        st = path.stat()
    except FileNotFoundError:
        return False
    return (st.st_mode & 0o7777) == mode and (ids is None or (st.st_uid, st.st_gid) == ids)


def ensure_dir(path: Path, mode: int, ids: tuple[int, int] | None) -> bool:
    """Create or fix a directory's mode and owner; True when something changed."""
    if dir_is_current(path, mode, ids):
        return False
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if ids is not None:
        os.chown(path, *ids)
    return True
