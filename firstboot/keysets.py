"""keystone's Fernet and credential keys, kept in Galera and rotated there: every controller's key
repository follows the database within seconds, and a controller that was away catches up when it returns.

The database is the one copy that counts: it is replicated to every controller over TLS, so no key is ever
copied between nodes by hand or over SSH. The site secrets hold only the first key sets (the run-once task
`key-sets` stores them); a rotation replaces a set in one conditional UPDATE, so two controllers rotating
at once rotate it once. `goldstack-keys.service` on each controller polls the generation of every set and
rewrites the repository when it changed; each node records the generation it holds, which `keys status`
shows and a credential rotation waits for.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import pwd
import time
from pathlib import Path

from firstboot import catalog, mysql
from firstboot.document import Document
from firstboot.files import atomic_write
from firstboot.runonce import SCHEMA

log = logging.getLogger("goldstack")


KEY_SETS = catalog.KEY_SETS
OWNER = "keystone"
POLL_SECONDS = 2

DDL = f"""
CREATE DATABASE IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.key_sets (
  name VARCHAR(32) NOT NULL PRIMARY KEY,
  generation INT NOT NULL,
  keyset TEXT NOT NULL,
  rotated DOUBLE NOT NULL
) ENGINE=InnoDB;
CREATE TABLE IF NOT EXISTS {SCHEMA}.key_set_nodes (
  node VARCHAR(64) NOT NULL,
  name VARCHAR(32) NOT NULL,
  generation INT NOT NULL,
  at DOUBLE NOT NULL,
  PRIMARY KEY (node, name)
) ENGINE=InnoDB;
"""
_CAUSAL = "SET SESSION wsrep_sync_wait = 1;"


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def rotated(keys: dict[int, str], max_active: int, fresh: str) -> dict[int, str]:
    """keystone-manage's rotation rule: the staged key (0) becomes the primary under the next index, a fresh
    key is staged, and the oldest secondaries go until at most `max_active` keys remain."""
    primary = max(keys) + 1
    out = {i: k for i, k in keys.items() if i != 0}
    out[primary] = keys[0]
    out[0] = fresh
    for index in sorted(i for i in out if i not in (0, primary)):
        if len(out) <= max_active:
            break
        del out[index]
    return out


def initial(values: list[str]) -> dict[int, str]:
    """The site secret's list as a repository: item i is key i (0 is the staged key, the last the primary)."""
    return dict(enumerate(values))


def _encode(keys: dict[int, str]) -> str:
    return json.dumps({str(i): k for i, k in sorted(keys.items())})


def _decode(text: str) -> dict[int, str]:
    return {int(i): k for i, k in json.loads(text).items()}


def store_initial(doc: Document) -> str:
    """The run-once task: the first key sets from the site secrets; sets already stored are kept."""
    rows = [f"({mysql.quote(ks.name)}, 1, {mysql.quote(_encode(initial(list(doc.secrets[ks.secret]))))}, "
            f"UNIX_TIMESTAMP(NOW(3)))" for ks in KEY_SETS.values()]
    mysql.run_sql(DDL + f"INSERT IGNORE INTO {SCHEMA}.key_sets (name, generation, keyset, rotated) VALUES "
                  + ", ".join(rows) + ";")
    return f"key sets {', '.join(KEY_SETS)} stored (kept where already there)"


def read(name: str | None = None) -> dict[str, tuple[int, dict[int, str], float]]:
    """{set: (generation, keys, rotated epoch)} as the cluster committed it."""
    where = f" WHERE name = {mysql.quote(name)}" if name else ""
    rows = mysql.run_sql(_CAUSAL + f"SELECT name, generation, keyset, rotated FROM {SCHEMA}.key_sets{where};")
    return {r[0]: (int(r[1]), _decode(r[2]), float(r[3])) for r in rows}


def generations() -> dict[str, int]:
    return {r[0]: int(r[1]) for r in mysql.run_sql(f"SELECT name, generation FROM {SCHEMA}.key_sets;", timeout=10)}


def node_generations() -> dict[str, dict[str, int]]:
    """{node: {set: generation its repository holds}}."""
    found: dict[str, dict[str, int]] = {}
    rows = mysql.run_sql(_CAUSAL + f"SELECT node, name, generation FROM {SCHEMA}.key_set_nodes;")
    for node, name, generation in rows:
        found.setdefault(node, {})[name] = int(generation)
    return found


def rotate(name: str, if_due: bool = False) -> tuple[bool, int]:
    """Rotate a set once: (rotated here, its generation now). With if_due, only when the last rotation is
    older than the set's period (so the controllers' timers rotate it once per period between them)."""
    ks = KEY_SETS[name]
    generation, keys, last = read(name)[name]
    if if_due and (not ks.rotate_hours or time.time() - last < ks.rotate_hours * 3600):
        return False, generation
    new = _encode(rotated(keys, ks.max_active, new_key()))
    try:
        rows = mysql.run_sql(f"UPDATE {SCHEMA}.key_sets SET keyset = {mysql.quote(new)}, "
                             f"generation = generation + 1, rotated = UNIX_TIMESTAMP(NOW(3)) "
                             f"WHERE name = {mysql.quote(name)} AND generation = {generation}; SELECT ROW_COUNT();")
    except mysql.MysqlError as exc:
        if exc.code != mysql.ER_LOCK_DEADLOCK:
            raise
        return False, generation  # another controller's rotation of the same generation committed first
    return rows[0][0] == "1", generation + 1


def write_repository(ks: catalog.KeySet, keys: dict[int, str], root: Path = Path("/"), owned: bool = True) -> bool:
    """The repository holds exactly `keys` (new files first, then the stale ones go): keystone reads it on
    every token and always finds a complete set. Returns whether anything changed."""
    repo = root / ks.repository.lstrip("/")
    uid, gid = (pwd.getpwnam(OWNER).pw_uid, pwd.getpwnam(OWNER).pw_gid) if owned else (None, None)
    repo.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owned:
        os.chown(repo, uid, gid)
    changed = False
    for index, key in sorted(keys.items(), reverse=True):  # the new primary (highest index) first
        path = repo / str(index)
        if not path.exists() or path.read_text() != key:
            atomic_write(path, key.encode(), 0o600, uid, gid)
            changed = True
    for stale in repo.iterdir():
        if stale.name.isdigit() and int(stale.name) not in keys:
            stale.unlink()
            changed = True
    return changed


def sync(node: str, only_newer_than: dict[str, int] | None = None) -> dict[str, int]:
    """Write every set whose generation moved (all of them without `only_newer_than`) and record what this
    node now holds. Returns the generations held."""
    held = dict(only_newer_than or {})
    current = generations()
    stale = [n for n, g in current.items() if n in KEY_SETS and held.get(n) != g]
    if not stale:
        return held
    for name, (generation, keys, _) in read().items():
        if name in stale:
            if write_repository(KEY_SETS[name], keys):
                log.info("keys: %s key set generation %d written (%d keys)", name, generation, len(keys))
            held[name] = generation
    mysql.run_sql(f"REPLACE INTO {SCHEMA}.key_set_nodes (node, name, generation, at) VALUES "
                  + ", ".join(f"({mysql.quote(node)}, {mysql.quote(n)}, {held[n]}, UNIX_TIMESTAMP(NOW(3)))"
                              for n in stale) + ";")
    return held


def watch(node: str, poll: float = POLL_SECONDS) -> None:
    """Follow the database for ever (goldstack-keys.service): every `poll` seconds, rewrite what changed."""
    held: dict[str, int] = {}
    unavailable = False
    while True:
        try:
            held = sync(node, held)
            if unavailable:
                log.info("keys: the database answers again")
            unavailable = False
        except mysql.MysqlError as exc:
            if not unavailable:
                log.warning("keys: cannot read the key sets yet (%s); retrying every %.0fs", exc, poll)
            unavailable = True
        time.sleep(poll)


def wait_held(name: str, generation: int, nodes: list[str], timeout: float) -> list[str]:
    """Wait until every node holds `generation` of a set; returns those that still do not."""
    deadline = time.monotonic() + timeout
    while True:
        held = node_generations()
        behind = [n for n in nodes if held.get(n, {}).get(name, 0) < generation]
        if not behind or time.monotonic() > deadline:
            return behind
        time.sleep(1)
