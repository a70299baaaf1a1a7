"""What the lab's checks see of a running lab, and how they ask it things: its nodes and containers, the
OpenStack client on a controller (compose/osc.py), polling with a deadline."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compose import osc


class CheckFailed(Exception):
    pass


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class LabView:
    """What the checks need of a running lab: its nodes by role, their containers, the VIP, the admin
    credentials and a directory for artifacts (the Horizon screenshot)."""

    nodes: dict[str, str]  # node name -> role
    containers: dict[str, str]  # node name -> container id (running ones)
    vip: str
    admin_password: str
    artifacts: Path
    ca_file: Path | None = None  # the site CA on this host (the browser's and this host's clients' trust)
    compose: Callable[..., subprocess.CompletedProcess] | None = None  # runs a compose subcommand
    client: str = ""  # controller whose OpenStack client the checks use
    clients: osc.Clients = field(default_factory=osc.Clients)
    milestones: set[str] = field(default_factory=set)  # "check:moment" reached by a running check
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reach(self, check: str, moment: str) -> None:
        """A check got far enough for the checks that wait on `check:moment` (compose.schedule.NEEDS)."""
        with self._lock:
            self.milestones.add(f"{check}:{moment}")

    def __post_init__(self) -> None:
        self.client = self.client or self.controllers()[0]

    def controllers(self) -> list[str]:
        return [n for n, r in self.nodes.items() if r == "controller"]

    def of_role(self, role: str) -> list[str]:
        return [n for n, r in self.nodes.items() if r == role]

    def exec(self, node: str, *cmd: str, stdin: bytes | None = None, timeout: float = 180
             ) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", "-i", self.containers[node], *cmd], input=stdin,
                              capture_output=True, timeout=timeout)

    def openstack(self, *args: str, node: str = "", json_out: bool = True, timeout: float = 180,
                  check: bool = True) -> Any:
        """`openstack ARGS` on a controller (the client, unless `node`), through a runner kept there."""
        fmt = ["-f", "json"] if json_out else []
        try:
            rc, out, err = self.clients.call(self.containers[node or self.client], [*args, *fmt], timeout)
        except subprocess.TimeoutExpired:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: no answer within {timeout:.0f}s") from None
            return None  # a caller polling (the VIP moving, say) asks again
        except osc.RunnerGone as gone:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: {gone}") from None
            return None
        if rc != 0:
            if check:
                raise CheckFailed(f"openstack {' '.join(args)}: {err.strip()[-800:]}")
            return None
        return json.loads(out) if json_out else out

    def close(self) -> None:
        self.clients.close()


def poll(what: str, probe: Callable[[], Any], timeout: float, interval: float = 2,
         error: Callable[[str], Exception] = CheckFailed) -> Any:
    """probe() until it returns something true; its last value, or `error` naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


def find(lab: LabView, kind: str, name: str) -> dict[str, Any] | None:
    return lab.openstack(kind, "show", name, check=False)
