"""The diskimage-builder elements of each role: their dependencies, layer order and packages."""

from __future__ import annotations

import yaml

from imagebuild import ELEMENTS


def element_deps(name: str) -> list[str]:
    path = ELEMENTS / name / "element-deps"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def layer_order(role: str) -> list[str]:
    """Goldstack elements of a role, in cache-friendly layer order: what changes least comes first."""
    seen: list[str] = []

    def visit(name: str) -> None:
        if not (ELEMENTS / name).is_dir() or name in seen:
            return  # a diskimage-builder element (package-installs, install-static): built into DIB itself
        for dep in element_deps(name):
            if dep != "goldstack-agent":
                visit(dep)
        seen.append(name)

    visit(f"goldstack-{role}")
    return [*seen, "goldstack-agent"]


def element_packages(name: str) -> list[str]:
    path = ELEMENTS / name / "package-installs.yaml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text()) or {}
    return [pkg for pkg, opts in data.items() if not (isinstance(opts, dict) and opts.get("uninstall"))]


def role_packages(role: str) -> set[str]:
    return {p for e in layer_order(role) for p in element_packages(e)}
