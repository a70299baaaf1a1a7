"""ini.merge in one pass (issue 28, class 7) does exactly what setting one override at a time did."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from firstboot import ini

SECTIONS = ["DEFAULT", "database", "keystone_authtoken", "oslo_messaging_rabbit"]
KEYS = ["debug", "connection", "password", "workers", "auth_url"]


def one_at_a_time(text: str, overrides: dict[str, dict[str, Any]]) -> str:
    """The former merge: each override scans and copies the whole text (quadratic in their number)."""
    lines = text.splitlines()
    for section, keys in overrides.items():
        for key, value in keys.items():
            lines = _set(lines, section, key, ini.ini_value(value))
    return "\n".join(lines) + "\n"


def _set(lines: list[str], section: str, key: str, value: str) -> list[str]:
    current = None
    end_of_section = None
    for i, line in enumerate(lines):
        match = ini._SECTION.match(line)
        if match:
            if current == section:
                end_of_section = i
                break
            current = match.group(1).strip()
            continue
        key_match = ini._KEY.match(line)
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


LINES = st.one_of(st.sampled_from([f"[{s}]" for s in SECTIONS]), st.sampled_from(["", "# a comment", "  "]),
                  st.builds(lambda k, v: f"{k} = {v}", st.sampled_from(KEYS), st.integers(0, 9)))
OVERRIDES = st.dictionaries(st.sampled_from([*SECTIONS, "new_section", "another"]),
                            st.dictionaries(st.sampled_from([*KEYS, "extra"]),
                                            st.one_of(st.integers(), st.booleans(), st.text("abc", max_size=3)),
                                            max_size=4), max_size=4)


@given(lines=st.lists(LINES, max_size=25), overrides=OVERRIDES)
@settings(max_examples=400, deadline=None)
def test_merge_in_one_pass_equals_one_override_at_a_time(lines, overrides):
    text = "\n".join(lines)
    assert ini.merge(text, overrides) == one_at_a_time(text, overrides)


def test_thousands_of_override_keys_merge():
    overrides = {"DEFAULT": {f"key{i}": i for i in range(5000)}, "new": {f"k{i}": True for i in range(5000)}}
    merged = ini.merge("[DEFAULT]\nkey7 = old\n\n[database]\nconnection = x\n", overrides)
    lines = merged.splitlines()
    assert lines[:3] == ["[DEFAULT]", "key7 = 7", "key0 = 0"] and lines.count("[new]") == 1
    assert len(lines) == 5 + 4999 + 2 + 5000 and ini.check(merged) is None
