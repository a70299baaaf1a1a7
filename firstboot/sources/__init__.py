"""Metadata sources in precedence order; the first that holds a document wins.

1. cloud-init    user-data cloud-init already fetched (any datasource it supports)
2. nocloud       NoCloud seed directory or `cidata` ISO
3. configdrive   OpenStack ConfigDrive directory or `config-2` ISO
4. http          the metadata service at 169.254.169.254 (OpenStack, then EC2 paths)
5. file          /etc/goldstack/node.yaml (containers mount it; cloud-init's write_files puts it there too)

Local sources come before the network one so a node with a seed never waits on network timeouts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firstboot.errors import NoMetadata
from firstboot.sources import configdrive, local, metadata_http, nocloud
from firstboot.sources.base import Found

ORDER = ("cloud-init", "nocloud", "configdrive", "http", "file")


@dataclass(frozen=True)
class SourceOptions:
    root: Path = Path("/")
    seed: Path | None = None  # a NoCloud/ConfigDrive directory or ISO to read instead of discovering one
    metadata_url: str = metadata_http.DEFAULT_URL
    file: Path | None = None


def _readers(opts: SourceOptions) -> dict[str, Callable[[], Found | None]]:
    return {
        "cloud-init": lambda: local.read_cloud_init(opts.root),
        "nocloud": lambda: nocloud.read(opts.root, opts.seed),
        "configdrive": lambda: configdrive.read(opts.root, opts.seed),
        "http": lambda: metadata_http.read(opts.metadata_url),
        "file": lambda: local.read_file(opts.root, opts.file),
    }


def discover(opts: SourceOptions, only: str | None = None) -> Found:
    """The document from `only`, or from the first source in ORDER that has one."""
    readers = _readers(opts)
    names = [only] if only else list(ORDER)
    for name in names:
        found = readers[name]()
        if found is not None:
            return found
    tried = ", ".join(names)
    raise NoMetadata(f"no Goldstack document found (tried: {tried}); give the node a NoCloud/ConfigDrive seed "
                     f"made by `python -m firstboot seed`, or write {local.LOCAL_FILE}")
