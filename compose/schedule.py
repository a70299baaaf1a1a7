"""Which checks run when: together where they can, each after what it uses of another (NEEDS)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from compose import checks, failover
from compose.labview import CheckFailed, LabView, Result
from firstboot import graph

CHECKS: dict[str, Callable[[LabView], tuple[str, dict]]] = {
    "token": checks.check_token, "image": checks.check_image, "compute": checks.check_compute,
    "network": checks.check_network, "volume": checks.check_volume, "server": checks.check_server,
    "horizon": checks.check_horizon,
}
DESTRUCTIVE = {"failover": failover.check_failover}


# What a check uses that other checks make: it starts once those (when selected) have reached the named
# moment ("check:moment", see LabView.reach) or finished. The others run together (they read, or make
# their own resources). `failover` kills a controller once the rest is checked, alone; the server is built
# while the killed controller rejoins (its restart costs the most, and nova waits on the compute node).
NEEDS: dict[str, tuple[str, ...]] = {
    "server": ("image:uploaded", "network:subnet", "volume:created", "failover:restarted"),
    "failover": tuple(c for c in CHECKS if c != "server"),
}
PARALLEL = 6


def waits(lab: LabView, name: str, pending: set[str]) -> bool:
    """`name` still waits for a pending check (one selected, not finished) or a moment not yet reached."""
    for need in NEEDS.get(name, ()):
        check = need.split(":", 1)[0]
        if check in pending and need not in lab.milestones:
            return True
    return False


def run_one(lab: LabView, name: str) -> Result:
    started = time.monotonic()
    try:
        detail, data = {**CHECKS, **DESTRUCTIVE}[name](lab)
        return Result(name, True, round(time.monotonic() - started, 1), detail, data)
    except (CheckFailed, subprocess.TimeoutExpired) as error:
        return Result(name, False, round(time.monotonic() - started, 1), str(error))
    except Exception as error:  # a check's own bug or an unexpected answer: reported, not fatal
        return Result(name, False, round(time.monotonic() - started, 1), f"{type(error).__name__}: {error}")


def run(lab: LabView, names: list[str], progress: Callable[[Result], None] = lambda r: None) -> list[Result]:
    """Run the checks, together where NEEDS allows; one that fails does not stop the others (each reports
    what it saw). `progress` sees each result as it comes; the list returned is in the order asked."""
    lab.clients.start([lab.containers[c] for c in lab.controllers() if c in lab.containers])
    pending = set(names)

    def finished(name: str, result: Result) -> None:
        pending.discard(name)
        progress(result)

    results = graph.run(names, {}, lambda name: run_one(lab, name), ready=lambda name: not waits(lab, name, pending),
                        workers=PARALLEL, label="check", on_result=finished)
    return [results[n] for n in names]
