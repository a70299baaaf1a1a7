"""Galera's state machine: which node bootstraps, which join, and when to wait.

Every controller computes the same decision from the same peer reports, so there is no orchestrator.
The rules (from MariaDB's and the Galera operators' recovery procedures):
- a peer that is Primary and Synced (with the accounts state transfer needs) exists -> join it;
- every node reachable and none ever in a cluster -> the lowest name bootstraps a new cluster;
- after a full stop -> only when every node reported its last committed position, the most advanced
  node bootstraps (highest seqno of the majority cluster UUID; ties: safe_to_bootstrap, then lowest name);
- a node that cannot see every peer never bootstraps on its own: it waits and says so. The operator's
  explicit override (`goldstack-firstboot galera-bootstrap`) is the only way around that rule.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

NIL_UUID = "00000000-0000-0000-0000-000000000000"
JOIN, BOOTSTRAP, WAIT = "join", "bootstrap", "wait"
SERVING_STATES = ("Synced", "Donor/Desynced")


@dataclass(frozen=True)
class Position:
    uuid: str
    seqno: int
    safe_to_bootstrap: bool = False


def parse_grastate(text: str) -> Position:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    try:
        seqno = int(fields.get("seqno", "-1"))
    except ValueError:
        seqno = -1
    return Position(fields.get("uuid", NIL_UUID) or NIL_UUID, seqno, fields.get("safe_to_bootstrap", "0") == "1")


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def seeded_grastate(seed: Position, safe_to_bootstrap: bool) -> str:
    """The saved state of a node whose data is still the image's: the seed's position (see
    galera_local.seed_from_image)."""
    if not _UUID.match(seed.uuid) or seed.uuid == NIL_UUID or seed.seqno < 0:
        raise ValueError(f"not a Galera position: {seed.uuid}:{seed.seqno}")
    return (f"# GALERA saved state\nversion: 2.1\nuuid:    {seed.uuid}\nseqno:   {seed.seqno}\n"
            f"safe_to_bootstrap: {int(safe_to_bootstrap)}\n")


def set_safe_to_bootstrap(text: str) -> str:
    """grastate.dat with safe_to_bootstrap: 1 (what galera_new_cluster needs after a crash)."""
    if re.search(r"^safe_to_bootstrap:", text, re.M):
        return re.sub(r"^safe_to_bootstrap:.*$", "safe_to_bootstrap: 1", text, flags=re.M)
    return text.rstrip("\n") + "\nsafe_to_bootstrap: 1\n"


_RECOVERED = re.compile(r"WSREP: Recovered position:?\s*([0-9a-f-]{36}):(-?\d+)")


def parse_recovered(log: str) -> tuple[str, int] | None:
    """The position `mariadbd --wsrep-recover` logged ('WSREP: Recovered position: UUID:SEQNO')."""
    found = _RECOVERED.findall(log)
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid, int(seqno)


@dataclass(frozen=True)
class Report:
    """What one controller says about its Galera node (served by its health endpoint at /galera)."""

    node: str
    service: str  # systemd state of mariadb: active, activating, inactive, failed...
    primary: bool = False  # wsrep_cluster_status == Primary
    state: str = ""  # wsrep_local_state_comment: Joining, Donor/Desynced, Joined, Synced...
    accounts: bool = False  # the state-transfer account exists (joiners can be served)
    fresh: bool = True  # never part of a cluster (no grastate.dat, or the nil UUID)
    uuid: str = NIL_UUID
    seqno: int = -1  # last committed; -1 = unknown
    safe_to_bootstrap: bool = False
    force_bootstrap: bool = False  # the operator asked this node to bootstrap
    # MariaDB's start is not over: the unit is still activating, or debian-start (mariadb-upgrade, which
    # alters the mysql.* tables) still runs. A joiner upgrades the tables its state transfer brought, and
    # a GRANT replicated to it meanwhile deadlocks its applier with the upgrade: every node then hangs.
    settling: bool = False
    members: int = 0  # wsrep_cluster_size: how many nodes its Primary component holds (0 = not known)

    @property
    def running(self) -> bool:
        return self.service in ("active", "activating", "reloading")

    @property
    def synced(self) -> bool:
        """Up to date and serving clients. A mariabackup donor keeps serving while it streams a state
        transfer, so it counts: dropping it from HAProxy would cut a DB sync in the middle of its DDL."""
        return self.state in SERVING_STATES

    @property
    def serving(self) -> bool:
        return self.primary and self.synced and self.accounts

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Report:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    action: str  # join | bootstrap | wait
    reason: str
    new_cluster: bool = False  # bootstrap of a brand-new cluster (vs. recovery)
    yielding: bool = False  # waits for earlier joiners only: the caller may stop yielding (see decide)


def serving_peers(me: str, reports: dict[str, Report | None]) -> list[str]:
    """The other controllers a joiner can join now (Primary, Synced, with the state-transfer account)."""
    return sorted(n for n, r in reports.items() if r and n != me and r.serving)


def entering_before(me: str, reports: dict[str, Report | None]) -> list[str]:
    """Joiners ahead of `me` (earlier by name) not yet in the serving peers' Primary component.

    Joiners enter one at a time: a node that connects while the cluster installs the view admitting
    another is turned away (the donor "forgets" it) and may not reconnect for gmcast.time_wait (5 s),
    while the schema syncs wait for it."""
    serving = serving_peers(me, reports)
    members = max((reports[n].members for n in serving if reports[n]), default=0)  # type: ignore[union-attr]
    ahead = sorted(n for n, r in reports.items()
                   if r is not None and n < me and n not in serving and r.service != "failed")
    return ahead if members < len(serving) + len(ahead) else []


def decide(me: str, reports: dict[str, Report | None], yield_to_earlier: bool = True) -> Decision:
    """The action for node `me`, given every controller's report (None = unreachable). With a serving peer
    it joins, once the joiners ahead of it are in (unless yield_to_earlier is off: the caller bounds how
    long it yields to a joiner that does not come)."""
    serving = serving_peers(me, reports)
    if serving:
        ahead = entering_before(me, reports) if yield_to_earlier else []
        if ahead:
            return Decision(WAIT, f"{serving[0]} is Primary and Synced; letting {', '.join(ahead)} enter the "
                                  "cluster first (joiners enter one at a time)", yielding=True)
        return Decision(JOIN, f"{serving[0]} is Primary and Synced")
    mine = reports.get(me)
    if mine and mine.force_bootstrap:
        return Decision(BOOTSTRAP, "the operator forced this node to bootstrap (galera-bootstrap)",
                        new_cluster=mine.fresh)
    missing = sorted(n for n, r in reports.items() if r is None)
    if missing:
        return Decision(WAIT, f"cannot reach {', '.join(missing)}; a node that cannot see every peer never "
                              "bootstraps (override: goldstack-firstboot galera-bootstrap)")
    present = {n: r for n, r in reports.items() if r is not None}
    busy = sorted(n for n, r in present.items() if r.running and n != me)
    if busy:
        return Decision(WAIT, f"waiting for {', '.join(busy)} (MariaDB starting, not yet Primary and Synced)")
    if all(r.fresh for r in present.values()):
        first = min(present)
        if first == me:
            return Decision(BOOTSTRAP, "every controller is new; the first by name starts the cluster",
                            new_cluster=True)
        return Decision(WAIT, f"every controller is new; waiting for {first} to start the cluster")
    with_data = {n: r for n, r in present.items() if not r.fresh}
    unknown = sorted(n for n, r in with_data.items() if r.seqno < 0)
    if unknown:
        return Decision(WAIT, f"the last committed position of {', '.join(unknown)} is not known yet")
    majority_uuid = Counter(r.uuid for r in with_data.values()).most_common(1)[0][0]
    candidates = [r for r in with_data.values() if r.uuid == majority_uuid]
    winner = min(candidates, key=lambda r: (-r.seqno, not r.safe_to_bootstrap, r.node))
    if winner.node == me:
        return Decision(BOOTSTRAP, f"most advanced node (seqno {winner.seqno} of {majority_uuid}) after a full stop")
    return Decision(WAIT, f"{winner.node} is the most advanced (seqno {winner.seqno}); waiting for it to "
                          "bootstrap")
