"""Merge per-service overrides into rendered INI text, keeping the template's order and comments."""

from __future__ import annotations

import configparser
import re
from typing import Any

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]")


def ini_value(value: Any) -> str:
    """The oslo.config spelling of a YAML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(ini_value(v) for v in value)
    return str(value)


def merge(text: str, overrides: dict[str, dict[str, Any]]) -> str:
    """Set each override: replace the key where the section has it, else append it to the section."""
    lines = text.splitlines()
    for section, keys in overrides.items():
        for key, value in keys.items():
            lines = _set(lines, section, key, ini_value(value))
    return "\n".join(lines) + "\n"


def _set(lines: list[str], section: str, key: str, value: str) -> list[str]:
    current = None
    end_of_section = None
    for i, line in enumerate(lines):
        match = _SECTION.match(line)
        if match:
            if current == section:
                end_of_section = i
                break
            current = match.group(1).strip()
            continue
        key_match = _KEY.match(line)
        if current == section and key_match and key_match.group(1) == key:
            return [*lines[:i], f"{key} = {value}", *lines[i + 1:]]
    if current == section and end_of_section is None:
        end_of_section = len(lines)
    if end_of_section is None:
        suffix = [""] if lines and lines[-1].strip() else []
        return [*lines, *suffix, f"[{section}]", f"{key} = {value}"]
    insert_at = end_of_section
    while insert_at > 0 and not lines[insert_at - 1].strip():
        insert_at -= 1
    return [*lines[:insert_at], f"{key} = {value}", *lines[insert_at:]]


def check(text: str) -> str | None:
    """None when the text parses as INI (repeated keys allowed, as oslo.config allows them)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        return str(exc).splitlines()[0]
    return None
