"""This controller's Galera facts: its grastate, recovered position, service state and live wsrep status.

The health endpoint serves them to the peers (and to HAProxy); the galera step acts on them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firstboot import galera, mysql, proc
from firstboot.files import atomic_write, under_root
from firstboot.proc import unit_state

DATADIR = "/var/lib/mysql"
GRASTATE = f"{DATADIR}/grastate.dat"
# Kept by the image build beside the data it made (elements/goldstack-controller/install.d/
# 62-goldstack-galera-seed): that data's grastate.dat, as of a one-node cluster formed on it and stopped.
SEED_FILE = f"{DATADIR}/goldstack-galera-seed"
SST_USER = "goldstack_sst"
RECOVERED_FILE = "/var/lib/goldstack/galera-recovered.json"
FORCE_FILE = "/var/lib/goldstack/galera-force-bootstrap"
STALE_SST_FILES = ("rsync_sst.pid", "sst_in_progress", "wsrep_sst.pid", "sst_in_progress.lock")


def grastate(root: Path = Path("/")) -> tuple[galera.Position | None, float]:
    """The grastate.dat position (None when the node never joined a cluster) and the file's mtime."""
    path = under_root(root, GRASTATE)
    try:
        return galera.parse_grastate(path.read_text()), path.stat().st_mtime
    except FileNotFoundError:
        return None, 0.0


def recovered(root: Path = Path("/")) -> tuple[str, int] | None:
    """The position `--wsrep-recover` found, if it was taken since grastate.dat last changed."""
    pos, mtime = grastate(root)
    try:
        data = json.loads(under_root(root, RECOVERED_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if pos is None or data.get("grastate_mtime") != mtime or data.get("uuid") != pos.uuid:
        return None
    return data["uuid"], int(data["seqno"])


def save_recovered(uuid: str, seqno: int, root: Path = Path("/")) -> None:
    _, mtime = grastate(root)
    record = {"uuid": uuid, "seqno": seqno, "grastate_mtime": mtime}
    atomic_write(under_root(root, RECOVERED_FILE), json.dumps(record).encode(), 0o600)


def force_requested(root: Path = Path("/")) -> bool:
    return under_root(root, FORCE_FILE).exists()


def live_status() -> dict[str, str] | None:
    try:
        return mysql.wsrep_status()
    except mysql.MysqlError:
        return None


def accounts_ready() -> bool:
    try:
        rows = mysql.run_sql(f"SELECT COUNT(*) FROM mysql.global_priv WHERE User={mysql.quote(SST_USER)};",
                             timeout=5)
    except mysql.MysqlError:
        return False
    return bool(rows) and rows[0][0] != "0"


def serving() -> tuple[bool, str]:
    """Whether this node serves (Primary and Synced or donating), and its state: the cheap check HAProxy
    polls every two seconds, without the position and account lookups of report(). One `mariadb` query;
    systemd is asked only to say why MariaDB does not answer."""
    status = live_status()
    if status is None:
        return False, f"MariaDB {unit_state('mariadb')}"
    primary = status.get("wsrep_cluster_status") == "Primary"
    state = status.get("wsrep_local_state_comment", "")
    return primary and state in galera.SERVING_STATES, f"{'Primary' if primary else 'non-Primary'}, {state}"


DEBIAN_START = "/etc/mysql/debian-start"


def settling(service: str) -> bool:
    """MariaDB started but its start-up work not over (see galera.Report.settling): the unit is not yet
    active, or debian-start's background part (mariadb-upgrade, then a root account check) still runs."""
    if service != "active":
        return True
    return proc.run(["pgrep", "-f", DEBIAN_START], timeout=30, ok_codes=(0, 1)).returncode == 0


def report(node: str, root: Path = Path("/")) -> galera.Report:
    service = unit_state("mariadb")
    pos, _ = grastate(root)
    fresh = pos is None or pos.uuid == galera.NIL_UUID
    uuid = pos.uuid if pos else galera.NIL_UUID
    seqno = pos.seqno if pos else -1
    if pos and seqno < 0 and (found := recovered(root)):
        uuid, seqno = found
    common = dict(node=node, service=service, fresh=fresh, uuid=uuid, seqno=seqno,
                  safe_to_bootstrap=bool(pos and pos.safe_to_bootstrap), force_bootstrap=force_requested(root))
    status = live_status() if service in ("active", "activating") else None
    if status is None:
        return galera.Report(**common)  # type: ignore[arg-type]
    primary = status.get("wsrep_cluster_status") == "Primary"
    state = status.get("wsrep_local_state_comment", "")
    if primary:
        common["uuid"] = status.get("wsrep_cluster_state_uuid", uuid)
        common["seqno"] = int(status.get("wsrep_last_committed", seqno) or -1)
        common["fresh"] = False
    return galera.Report(**common, primary=primary, state=state,  # type: ignore[arg-type]
                         accounts=primary and state in galera.SERVING_STATES and accounts_ready(),
                         settling=settling(service), members=int(status.get("wsrep_cluster_size") or 0))


def seed_from_image(root: Path = Path("/"), bootstrap: bool = False) -> str | None:
    """Give a blank node the image's seed state before MariaDB first starts on it; the seed's UUID, or None.

    Every controller's data starts as the same image's, with the same Galera position in InnoDB. With
    grastate.dat saying so too, the cluster a seeded node bootstraps continues the seed's history, and
    a seeded joiner needs only the writesets since: an IST from the donor's cache, not a full state
    transfer (SST) of the donor's data. A node whose data or cache does not fit still gets an SST, as
    Galera decides. The seed is used once: from then on MariaDB keeps grastate.dat."""
    seed = under_root(root, SEED_FILE)
    try:
        text = seed.read_text()
        owner = seed.stat()
    except FileNotFoundError:
        return None
    path = under_root(root, GRASTATE)
    try:
        if path.exists():  # MariaDB ran on this data already: the seed no longer describes it
            return None
        position = galera.parse_grastate(text)
        atomic_write(path, galera.seeded_grastate(position, bootstrap).encode(), 0o660, owner.st_uid,
                     owner.st_gid)
        return position.uuid
    except ValueError:  # not a position: no seed
        return None
    finally:
        seed.unlink()


def clean_stale_sst_files(root: Path = Path("/")) -> list[str]:
    removed = []
    for name in STALE_SST_FILES:
        path = under_root(root, f"{DATADIR}/{name}")
        if path.exists():
            path.unlink()
            removed.append(name)
    return removed


def wsrep_recover(root: Path = Path("/")) -> tuple[str, int] | None:
    """Ask InnoDB for the last committed position (mariadbd --wsrep-recover; the server must be stopped)."""
    log = under_root(root, f"{DATADIR}/goldstack-wsrep-recover.log")  # the datadir is the mysql user's
    log.unlink(missing_ok=True)
    subprocess.run(["mariadbd", "--user=mysql", "--wsrep-recover", f"--log-error={log}"],
                   capture_output=True, text=True, timeout=600)
    text = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    return galera.parse_recovered(text)
