"""Work in dependency order: each piece starts, in a thread of its own, as soon as what it follows is done.

One scheduler for the agent's steps, the run-once tasks of a phase and the lab's checks: independent
work overlaps, and a dependency cycle (or a wait nothing can end) is reported instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

R = TypeVar("R")
# How often a wait for a `ready` condition looks again when no `wake` event says it changed.
READY_POLL_SECONDS = 0.2


class CycleError(Exception):
    """The work waits on itself: nothing runs and nothing left can start."""


def order(names: Sequence[str], after: Mapping[str, Iterable[str]]) -> list[str]:
    """`names`, each after the names it follows among them (others are ignored); ties keep the given
    order, so the result is the same on every node."""
    among = set(names)
    placed: set[str] = set()
    result: list[str] = []
    pending = list(names)
    while pending:
        ready = next((n for n in pending if all(a in placed or a not in among for a in after.get(n, ()))), None)
        if ready is None:
            raise CycleError("they depend on each other in a cycle: " + ", ".join(pending))
        result.append(ready)
        placed.add(ready)
        pending.remove(ready)
    return result


def run(names: Sequence[str], after: Mapping[str, Iterable[str]], work: Callable[[str], R], *,
        stops: Callable[[R], bool] = lambda result: False, ready: Callable[[str], bool] = lambda name: True,
        workers: int | None = None, label: str = "work",
        on_result: Callable[[str, R], None] = lambda name, result: None) -> dict[str, R]:
    """Run work(name) for each name once the names it follows (among `names`) have finished and
    ready(name) holds (a condition other work makes true while it runs; looked at every
    READY_POLL_SECONDS); at most `workers` at once (default: no limit).

    A result for which stops() is true, or an exception from work(), starts nothing more; the running
    ones end, then the first exception is raised again. Returns each finished name's result.
    """
    among = set(names)
    waiting = list(names)
    finished: set[str] = set()
    results: dict[str, R] = {}
    running: dict[Future, str] = {}
    stopped = False
    error: BaseException | None = None

    def followed_done(name: str) -> bool:
        return all(a in finished or a not in among for a in after.get(name, ()))

    with ThreadPoolExecutor(max_workers=workers or max(1, len(names)), thread_name_prefix=label) as pool:
        while True:
            if not stopped:
                for name in [n for n in waiting if followed_done(n) and ready(n)]:
                    waiting.remove(name)
                    running[pool.submit(work, name)] = name
            if not running:
                if waiting and not stopped:
                    raise CycleError(f"{label}: these wait on each other: {', '.join(waiting)}")
                break
            held_by_ready = not stopped and any(followed_done(n) for n in waiting)
            done, _ = wait(list(running), timeout=READY_POLL_SECONDS if held_by_ready else None,
                           return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                finished.add(name)
                try:
                    result = future.result()
                except BaseException as exc:  # raised again once the running work has ended
                    error = error or exc
                    stopped = True
                    continue
                results[name] = result
                on_result(name, result)
                stopped = stopped or stops(result)
    if error is not None:
        raise error
    return results
