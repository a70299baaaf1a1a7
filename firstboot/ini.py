"""Merge per-service overrides into rendered INI text, keeping the template's order and comments."""

from __future__ import annotations

import configparser
import re
from typing import Any

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[=:]")


# The readers of the files overrides reach. oslo.config's is encoded for (a value reads back as given);
# the others' rules (comments, escapes, quotes, $ expansion) leave no plain way, so what they would read
# differently is refused.
OSLO, MARIADB, CEPH = "oslo.config", "MariaDB's option file reader", "Ceph's configuration reader"
# What each of the others reads differently: MariaDB a # comment (anywhere), \ escapes and quotes; Ceph
# also ; comments and $name expansion.
_NOT_PLAIN = {MARIADB: re.compile(r"[#\\\"']"), CEPH: re.compile(r"[#;\\\"'$]")}


def ini_value(value: Any) -> str:
    """The oslo.config spelling of a YAML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(ini_value(v) for v in value)
    return str(value)


def value_problem(value: Any, reader: str) -> str | None:
    """Why `value` (a scalar or a list of them) cannot be written for `reader` to read it back as given."""
    items = value if isinstance(value, list) else [value]
    texts = [ini_value(v) for v in items]
    if isinstance(value, list) and any(not t or t != t.strip() or set(t) & set(",'\"") for t in texts):
        return ("holds an item that is empty, has outer white space or holds , ' or \": a list is written "
                "comma-separated, and its reader splits it on commas, trims the items and honours quotes")
    if reader == OSLO:
        return None
    if bad := sorted({c for t in texts for c in _NOT_PLAIN[reader].findall(t)}):
        return (f"holds {' '.join(bad)}, which {reader} takes for a comment, an escape, a quote or an expansion; "
                "this file's overrides carry none of them")
    if any(t != t.strip() for t in texts):
        return f"begins or ends with white space, which {reader} trims"
    return None


def encoded(value: Any, reader: str) -> str:
    """`value` written for `reader`: for oslo.config, $ doubled (no reference to another option) and the whole
    value quoted when it has outer white space or quotes of its own (which oslo.config would strip)."""
    text = ini_value(value)
    if reader != OSLO:
        return text
    text = text.replace("$", "$$")
    if text != text.strip() or (text[:1] in ("'", '"') and text[0] == text[-1]):
        text = f'"{text}"'
    return text


def merge(text: str, overrides: dict[str, dict[str, Any]], reader: str = OSLO) -> str:
    """Set each override: replace the key where the section has it (its first block, the key's first line),
    else add it at the end of that block, else add the section at the end. One pass over the text and one
    over the overrides: a document's thousands of keys cost what they number, not its square."""
    lines = text.split("\n")  # "\n" only, as the files' readers split: not the other breaks str.splitlines knows
    if lines[-1] == "":
        lines.pop()
    blocks: dict[str, tuple[int, int]] = {}  # section -> (first line after its header, end) of its first block
    keys: dict[tuple[str, str], int] = {}  # (section, key) -> the key's first line in that block
    current, start = None, 0
    for i, line in enumerate([*lines, "[ ]"]):  # a sentinel header closes the last block
        if match := _SECTION.match(line):
            if current is not None and current not in blocks:
                blocks[current] = (start, i)
            current, start = match.group(1).strip(), i + 1
        elif current is not None and current not in blocks and (key := _KEY.match(line)):
            keys.setdefault((current, key.group(1)), i)
    replaced: dict[int, str] = {}
    added: dict[int, list[str]] = {}  # lines to add before line i (len(lines): at the end of the text)
    new_sections: dict[str, list[str]] = {}
    for section, options in overrides.items():
        for key, value in options.items():
            line = f"{key} = {encoded(value, reader)}"
            if (section, key) in keys:
                replaced[keys[section, key]] = line
            elif section in blocks:
                first, end = blocks[section]
                while end > first and not lines[end - 1].strip():
                    end -= 1
                added.setdefault(end, []).append(line)
            else:
                new_sections.setdefault(section, []).append(line)
    out: list[str] = []
    for i, line in enumerate(lines):
        out.extend(added.get(i, ()))
        out.append(replaced.get(i, line))
    out.extend(added.get(len(lines), ()))
    for section, options in new_sections.items():
        if out and out[-1].strip():
            out.append("")
        out.extend([f"[{section}]", *options])
    return "\n".join(out) + "\n"


def check(text: str) -> str | None:
    """None when the text parses as INI (repeated keys allowed, as oslo.config allows them)."""
    parser = configparser.ConfigParser(strict=False, interpolation=None, allow_no_value=True)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        return str(exc).splitlines()[0]
    return None
