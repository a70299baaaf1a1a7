"""The SQL text the agent builds and reads back: literals and the client's batch-mode escaping."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from firstboot import mysql


def test_literals():
    assert mysql.quote(None) == "NULL"
    assert mysql.quote(3) == "3" and mysql.quote(True) == "1"
    assert mysql.quote("it's") == "'it\\'s'"
    assert mysql.quote("a\\b") == "'a\\\\b'"


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_batch_escaping_round_trips(value):
    # What `mariadb --batch` prints for a value: backslash, newline, tab and NUL escaped.
    printed = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\0", "\\0")
    assert mysql._unescape(printed) == value
