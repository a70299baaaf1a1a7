"""What every metadata source returns."""

from __future__ import annotations

from dataclasses import dataclass

NODE_FILE = "/etc/goldstack/node.yaml"  # where the node document lives on a node (and cloud-init writes it)


@dataclass(frozen=True)
class Found:
    source: str  # nocloud, configdrive, http, cloud-init, file
    where: str  # the directory, image, URL or file it came from
    text: str  # the document's YAML/JSON text

