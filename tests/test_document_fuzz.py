"""Property tests: whatever the input, the parser returns a Document or one InvalidInput — never a crash."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firstboot import document
from firstboot.errors import InvalidInput

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                      max_leaves=12)


def _paths(data, prefix=()):
    """Every (path) into nested dicts and lists of the document."""
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, (*prefix, i))


def _replace(data, path, value):
    if not path:
        return value
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return data


def _parse(text: str) -> None:
    try:
        doc = document.load_text(text, "fuzz")
    except InvalidInput as exc:
        assert exc.problems, "an InvalidInput must name at least one problem"
        for problem in exc.problems:
            assert problem.field and problem.message
        return
    assert doc.node.name in {n.name for n in doc.all_nodes}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    _parse(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), replacement=values)
def test_one_field_replaced_by_anything(doc_of, data, replacement):
    base = doc_of("ctl1")
    paths = list(_paths(base))
    path = data.draw(st.sampled_from(paths))
    mutated = _replace(copy.deepcopy(base), path, replacement)
    _parse(yaml.safe_dump(mutated) if not isinstance(mutated, str) else mutated)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_field_deleted(doc_of, data):
    base = doc_of("sto1")
    paths = [p for p in _paths(base) if p and isinstance(p[-1], str)]
    path = data.draw(st.sampled_from(paths))
    mutated = copy.deepcopy(base)
    parent = mutated
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    _parse(yaml.safe_dump(mutated))
