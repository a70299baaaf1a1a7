"""Issue 28, class 2: a password a document may hold reads back exactly from every file it reaches, through
each file's reader (oslo.config itself for the services' INI files, the shell for openrc, YAML, Python, and
MariaDB's and RabbitMQ's documented rules for theirs); one it could not is refused at validation, saying why.
"""

from __future__ import annotations

import ast
import json
import shlex
import string
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from firstboot import document, render
from firstboot import secrets as secretspec

PASSWORDS = [s.name for s in secretspec.SECRETS if s.kind is secretspec.PASSWORD]
ALLOWED = string.ascii_letters + string.digits + secretspec.PASSWORD_SYMBOLS
# Printable ASCII (every symbol a keyboard gives) and a few characters beyond it.
HOSTILE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("é€\u00a0\u2028\x85"),
                  min_size=16, max_size=40)


@given(value=HOSTILE)
@settings(max_examples=300, deadline=None)
@example(value="$oslo_interpolation${x}ab")
@example(value="'quoted-and-long-enough'")
@example(value="hash#comment;semicolon1")
@example(value="back\\slash\\nescapes0123")
def test_a_password_outside_the_alphabet_is_refused_saying_why(value):
    message = secretspec.check("db_nova", value)
    outside = sorted({c for c in value if c not in ALLOWED and not c.isspace()})
    if any(c.isspace() for c in value):
        assert message == "must not contain white space"
    elif outside:
        assert message is not None and message.startswith(f"holds {' '.join(outside)}: a password may hold"), message


def _oslo_values(path: Path) -> list[str]:
    """Every option's value as a service reads it: through oslo.config's own parser and ConfigOpts (which
    strips quotes and resolves $references)."""
    sections: dict = {}
    cfg.ConfigParser(str(path), sections).parse()
    conf = cfg.ConfigOpts()
    names = []
    for section, options in sections.items():
        for key in options:
            if key.startswith("config_"):
                continue
            conf.register_opt(cfg.StrOpt(key), group=None if section == "DEFAULT" else section)
            names.append((section, key))
    conf(args=[], default_config_files=[str(path)], use_env=False)
    values = []
    for section, key in names:
        group = conf if section == "DEFAULT" else conf[section]
        values.append(getattr(group, key.replace("-", "_")))
    return [v for v in values if isinstance(v, str)]


def _mariadb_values(text: str) -> list[str]:
    """Option values as MariaDB reads its option files: `#` starts a comment anywhere outside quotes, a
    value in matching quotes loses them, and \\b \\t \\n \\r \\\\ \\s are escapes."""
    escapes = {"b": "\b", "t": "\t", "n": "\n", "r": "\r", "\\": "\\", "s": " "}
    values = []
    for line in text.split("\n"):
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        raw = line.split("=", 1)[1].strip()
        if raw[:1] in ("'", '"') and raw.count(raw[0]) >= 2:
            values.append(raw[1:raw.index(raw[0], 1)])
            continue
        raw = raw.split("#", 1)[0].rstrip()
        out, i = [], 0
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw):
                out.append(escapes.get(raw[i + 1], raw[i + 1]))
                i += 2
            else:
                out.append(raw[i])
                i += 1
        values.append("".join(out))
    return values


def _rabbitmq_values(text: str) -> list[str]:
    """rabbitmq.conf as its reader (cuttlefish) takes it: `key = value` per line, `#` starts a comment."""
    return [line.split("=", 1)[1].split("#", 1)[0].strip() for line in text.splitlines()
            if "=" in line and not line.lstrip().startswith("#")]


def _shell_values(path: Path) -> list[str]:
    out = subprocess.run(["sh", "-c", '. "$1" && printf "%s\\0" "$OS_PASSWORD" "$OS_USERNAME"', "sh", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return out.split("\0")


def _python_values(text: str) -> list[str]:
    return [node.value.value for node in ast.parse(text).body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)]


def _yaml_values(data) -> list[str]:
    if isinstance(data, dict):
        return [v for item in data.values() for v in _yaml_values(item)]
    if isinstance(data, list):
        return [v for item in data for v in _yaml_values(item)]
    return [data] if isinstance(data, str) else []


def _read_back(path: Path, text: str) -> list[str]:
    """What a file's reader takes from it, and the passwords inside the URLs and user:password pairs it holds."""
    name = path.name
    if name == "rabbitmq.conf":
        values = _rabbitmq_values(text)
    elif path.suffix == ".cnf":
        values = _mariadb_values(text)
    elif path.suffix in (".conf", ".ini") and any(p in str(path) for p in ("/nova/", "/neutron/", "/cinder/",
                                                                            "/glance/", "/keystone/", "/placement/")):
        values = _oslo_values(path)
    elif path.suffix in (".yaml", ".yml"):
        values = _yaml_values(yaml.safe_load(text))
    elif name.endswith("openrc"):
        values = _shell_values(path)
    elif path.suffix == ".py":
        values = _python_values(text)
    else:
        return []
    found = list(values)
    for value in values:
        for url in value.split(","):  # rabbit://u:p@h1,u:p@h2/ lists one user:password per host
            parts = urlsplit(url if "://" in url else "x://" + url)
            if parts.password is not None:
                found.append(unquote(parts.password))
        if ":" in value:
            found.append(value.split(":", 1)[1])  # wsrep_sst_auth = user:password
    return found


def _appears(value: str, text: str) -> bool:
    return any(form in text for form in (value, quote(value, safe=""), json.dumps(value)[1:-1], shlex.quote(value)))


def _documents(inventory, site_secrets, passwords: dict[str, str]) -> list[document.Document]:
    from tests.conftest import make_doc

    docs = []
    for node in ("ctl1", "cmp1", "sto1"):
        data = make_doc(inventory, node, site_secrets)
        data["secrets"].update({k: v for k, v in passwords.items() if k in data["secrets"]})
        docs.append(document.validate(data))
    return docs


ACCEPTED = st.text(st.sampled_from(ALLOWED), min_size=16, max_size=40)


@given(seed=ACCEPTED)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(seed="-_.+=@:/,AZaz09" + "x")
@example(seed=",,,,@@@@::::////====")
def test_every_password_reads_back_from_every_file_it_reaches(tmp_path_factory, inventory, site_secrets, seed):
    # Each password its own value (the seed, then the secret's position), so each is found for itself.
    passwords = {name: f"{seed}{i:02d}" for i, name in enumerate(PASSWORDS)}
    assert all(secretspec.check(name, value) is None for name, value in passwords.items())
    root = tmp_path_factory.mktemp("rendered")
    reached: dict[str, int] = {}
    for doc in _documents(inventory, site_secrets, passwords):
        for rendered in render.render_tree(doc).values():
            text = rendered.content.decode()
            mine = [n for n in PASSWORDS if n in doc.secrets and _appears(passwords[n], text)]
            if not mine:
                continue
            path = root / doc.node.name / rendered.path.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            values = _read_back(path, text)
            assert values, f"{rendered.path} holds a password but no reader of its format is known to this test"
            for name in mine:
                assert passwords[name] in values, (rendered.path, name, passwords[name])
                reached[name] = reached.get(name, 0) + 1
    # Every password reaches some file but MariaDB's root password (only ever given to MariaDB itself, in SQL).
    assert set(PASSWORDS) - set(reached) == {"mariadb_root"}, reached


@pytest.mark.parametrize("value", ["$oslo_interpolation${x}ab", "'quoted-and-long-enough'", "hash#comment0123456"])
def test_a_document_with_such_a_password_is_refused_by_field(doc_of, value):
    data = doc_of("ctl1")
    data["secrets"]["user_nova"] = value
    with pytest.raises(document.InvalidInput) as info:
        document.validate(data)
    assert str(info.value.problems[0]).startswith("secrets.user_nova: holds ")


def _override_read_back(doc_of, target: str, path: str, value) -> tuple[str, document.Document] | None:
    """The rendered `path` (and its document) with [probe] check_value overridden by `value`; None if refused."""
    data = doc_of("ctl1")
    data["overrides"] = {target: {"probe": {"check_value": value}}}
    try:
        doc = document.validate(data)
    except document.InvalidInput as exc:
        assert [str(p) for p in exc.problems if "check_value" in str(p)], exc
        return None
    text = render.render_tree(doc)[path].content.decode()
    return text, doc


def _breaks_a_line(value) -> bool:
    return any(set(v) & set("\r\n\x85\u2028\u2029") for v in (value if isinstance(value, list) else [value]))


SCALARS = HOSTILE.filter(lambda v: "\n" not in v and "\r" not in v) | st.text(max_size=6)


@given(value=SCALARS | st.lists(SCALARS, min_size=1, max_size=3))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(value="$state_path/x")
@example(value="'quoted'")
@example(value="  padded  ")
@example(value='"')
@example(value=["a,b", "c"])
def test_an_override_value_reads_back_through_oslo_config_or_is_refused(tmp_path_factory, doc_of, value):
    found = _override_read_back(doc_of, "nova", "/etc/nova/nova.conf", value)
    if found is None:
        # What a comma-separated list cannot carry: an empty item, outer white space, a comma or a quote.
        assert _breaks_a_line(value) or (isinstance(value, list) and any(
            not v or v != v.strip() or set(v) & set(",'\"") for v in value))
        return
    text, _ = found
    path = tmp_path_factory.mktemp("nova") / "nova.conf"
    path.write_text(text)
    sections: dict = {}
    cfg.ConfigParser(str(path), sections).parse()
    conf = cfg.ConfigOpts()
    conf.register_opt(cfg.ListOpt("check_value") if isinstance(value, list) else cfg.StrOpt("check_value"),
                      group="probe")
    conf(args=[], default_config_files=[str(path)], use_env=False)
    assert conf.probe.check_value == value


@given(value=SCALARS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(value="a # not a comment")
@example(value="back\\slash")
@example(value="gcache.size=512M;gcs.fc_limit=128")
def test_a_mariadb_override_value_reads_back_or_is_refused(doc_of, value):
    found = _override_read_back(doc_of, "galera", "/etc/mysql/mariadb.conf.d/99-goldstack.cnf", value)
    if found is None:
        assert _breaks_a_line(value) or set(value) & set("#\\\"'") or value != value.strip()
        return
    text, _ = found
    section = text[text.index("[probe]"):]
    assert _mariadb_values(section)[0] == value
