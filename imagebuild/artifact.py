"""One built image or disk, as the summary reports it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Artifact:
    role: str
    fmt: str
    name: str
    size_bytes: int
    seconds: float
    sbom: Path | None
