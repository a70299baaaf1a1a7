"""Hostile documents (issue 28): what a file format would read differently, or what costs without bound, is
refused at parsing or validation with one message naming the field; nothing is ever rendered from it."""

from __future__ import annotations

import json

import pytest
import yaml

from firstboot import document
from firstboot.errors import InvalidInput


def refused(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as info:
        document.load_text(text, "test document")
    return [str(p) for p in info.value.problems]


def refused_data(data) -> list[str]:
    return refused(json.dumps(data))


def test_a_name_ending_in_a_line_break_is_refused(doc_of):
    data = doc_of("ctl1")
    data["cluster"] = "site1\n"
    assert any(m.startswith("(document).cluster: 'site1\\n' is not valid") for m in refused_data(data))


@pytest.mark.parametrize("value", ["noauth2\r[DEFAULT]", "a\nauth_strategy = noauth2", ["ok", "x\ny"]])
def test_an_override_value_with_a_line_break_is_refused(doc_of, value):
    data = doc_of("ctl1")
    data["overrides"] = {"nova": {"DEFAULT": {"debug": value}}}
    assert any(m.startswith("overrides.nova.DEFAULT.debug: must be a single-line") for m in refused_data(data))


@pytest.mark.parametrize("section, key", [("DEFAULT\n", "debug"), ("DEFAULT", "debug\n")])
def test_an_override_name_ending_in_a_line_break_is_refused(doc_of, section, key):
    data = doc_of("ctl1")
    data["overrides"] = {"nova": {section: {key: "true"}}}
    assert any("line break" in m or "is not a valid" in m for m in refused_data(data))


@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f"])
def test_a_control_character_anywhere_is_refused(doc_of, char):
    data = doc_of("ctl1")
    secret = next(iter(data["secrets"]))
    data["secrets"][secret] = f"Abc{char}def0123456789XYZabc"
    messages = refused_data(data)
    assert messages == [f"secrets.{secret}: holds a control character (NUL, ESC, ...): no configuration file "
                        "can carry it; remove it"]


def test_a_key_given_twice_is_refused_in_yaml_and_in_json(doc_of):
    text = yaml.safe_dump(doc_of("ctl1"))
    assert any("the key 'cluster' is given twice" in m for m in refused(text + "cluster: other\n"))
    body = json.dumps(doc_of("ctl1"))
    assert any("is given twice" in m for m in refused(body[:-1] + ', "version": 1}'))


def test_version_true_is_not_version_1(doc_of):
    data = doc_of("ctl1")
    data["version"] = True
    assert any(m.startswith("version: True is not supported") for m in refused_data(data))


def test_a_document_over_the_size_limit_is_refused_before_parsing():
    messages = refused("a: " + "x" * document.MAX_BYTES)
    assert len(messages) == 1 and "a document may be at most 1048576" in messages[0]


def test_an_alias_bomb_is_refused_not_expanded():
    lines = ["a0: [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(f"{line.split(':')[0]}: &{line.split(':')[0]} {line.split(': ', 1)[1]}" for line in lines)
    messages = refused(text + "\n")
    assert len(messages) == 1 and f"holds more than {document.MAX_VALUES} values" in messages[0]


@pytest.mark.parametrize("depth", [document.MAX_DEPTH + 5, 5000])
def test_deep_nesting_is_one_message_not_a_traceback(depth):
    messages = refused("a: " + "[" * depth + "]" * depth + "\n")
    assert len(messages) == 1 and f"nests deeper than {document.MAX_DEPTH} levels" in messages[0]


def test_bytes_that_are_not_utf8_are_one_message(tmp_path):
    from firstboot.sources import local

    node = tmp_path / "node.yaml"
    node.write_bytes(b"version: 1\ncluster: caf\xe9\n")
    with pytest.raises(InvalidInput) as info:
        local.read_file(tmp_path, node)
    assert [str(p) for p in info.value.problems] == [
        "(document): is not UTF-8 text (byte 0xe9 at offset 23); save it as UTF-8"]
